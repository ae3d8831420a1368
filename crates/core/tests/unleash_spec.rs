//! Unleash's client specification, run case by case.
//!
//! Every `.json` file in `tests/data/unleash-client-spec/` is a specification file: a
//! feature state, `tests` (is the flag on for this context?) and `variantTests`
//! (which variant does this context get?). Each case is evaluated with three
//! differently seeded random sources, since the specification's random strategies are
//! written to give the same answer whatever the draw. Every failure is collected and
//! reported with its file, its description and the expected and actual results.
//! Files are found by listing the folder, so a newly added one is run as it is.

use std::path::{Path, PathBuf};

use ripcord_core::flags::{Context, FlagSet, SeededRandom, unleash};
use serde_json::Value;

const SEEDS: [u64; 3] = [1, 0x5eed, u64::MAX];

fn spec_files() -> Vec<PathBuf> {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/unleash-client-spec");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&folder)
        .unwrap_or_else(|error| panic!("cannot list {}: {error}", folder.display()))
        .map(|entry| entry.expect("a readable folder entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();
    files
}

/// The expected variant, in the shape Ripcord returns. Older specification files
/// spell `feature_enabled` as `featureEnabled` or leave it out; a file that leaves it
/// out does not test it.
fn expected_variant(expected: &Value, actual: &mut Value) -> Value {
    let mut expected = expected.clone();
    if let Some(object) = expected.as_object_mut()
        && let Some(flag) = object.remove("featureEnabled")
    {
        object.insert("feature_enabled".to_string(), flag);
    }
    if expected.get("feature_enabled").is_none()
        && let Some(object) = actual.as_object_mut()
    {
        object.remove("feature_enabled");
    }
    expected
}

struct Outcome {
    cases: usize,
    failures: Vec<String>,
}

fn run_file(path: &Path, outcome: &mut Outcome) {
    let file = path.file_name().unwrap().to_string_lossy().into_owned();
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{file}: {e}"));
    let spec: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
    let flags: FlagSet = match unleash::state_from_json(&spec["state"]) {
        Ok(flags) => flags,
        Err(error) => {
            outcome
                .failures
                .push(format!("{file}: the state does not load: {error}"));
            return;
        }
    };
    let cases = |key: &str| spec[key].as_array().cloned().unwrap_or_default();

    for case in cases("tests") {
        outcome.cases += 1;
        let description = case["description"].as_str().unwrap_or("(no description)");
        let flag = case["toggleName"].as_str().expect("toggleName is a string");
        let context = match Context::from_json(&case["context"]) {
            Ok(context) => context,
            Err(error) => {
                outcome.failures.push(format!(
                    "{file}: {description}: the context does not load: {error}"
                ));
                continue;
            }
        };
        let expected = case["expectedResult"]
            .as_bool()
            .expect("expectedResult is a boolean");
        for seed in SEEDS {
            let actual = flags.is_enabled(flag, &context, &mut SeededRandom::new(seed));
            if actual != expected {
                outcome.failures.push(format!(
                    "{file}: {description}: {flag} expected enabled = {expected}, got {actual} (seed {seed})"
                ));
                break;
            }
        }
    }

    for case in cases("variantTests") {
        outcome.cases += 1;
        let description = case["description"].as_str().unwrap_or("(no description)");
        let flag = case["toggleName"].as_str().expect("toggleName is a string");
        let context = match Context::from_json(&case["context"]) {
            Ok(context) => context,
            Err(error) => {
                outcome.failures.push(format!(
                    "{file}: {description}: the context does not load: {error}"
                ));
                continue;
            }
        };
        for seed in SEEDS {
            let variant = flags.variant(flag, &context, &mut SeededRandom::new(seed));
            let mut actual = serde_json::to_value(&variant).expect("a variant serialises");
            let expected = expected_variant(&case["expectedResult"], &mut actual);
            if actual != expected {
                outcome.failures.push(format!(
                    "{file}: {description}: {flag}\n    expected {expected}\n    actual   {actual} (seed {seed})"
                ));
                break;
            }
        }
    }
}

#[test]
fn every_case_of_every_specification_file_passes() {
    let files = spec_files();
    // The folder holds at least the nine files it was created with; fewer means the
    // test data went missing, not that there is nothing to check.
    assert!(
        files.len() >= 9,
        "only {} specification files found",
        files.len()
    );

    let mut outcome = Outcome {
        cases: 0,
        failures: Vec::new(),
    };
    for file in &files {
        run_file(file, &mut outcome);
    }
    assert!(
        outcome.failures.is_empty(),
        "{} of {} specification cases failed:\n{}",
        outcome.failures.len(),
        outcome.cases,
        outcome.failures.join("\n")
    );
    assert!(
        outcome.cases >= 100,
        "only {} cases were run",
        outcome.cases
    );
    println!(
        "{} specification cases from {} files passed",
        outcome.cases,
        files.len()
    );
}

#[test]
fn the_harness_notices_a_wrong_answer() {
    // A case with the wrong expectation must be reported, or the test above proves
    // nothing.
    let dir = std::env::temp_dir().join(format!("ripcord-spec-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("99-wrong.json");
    std::fs::write(
        &path,
        r#"{"name": "wrong", "state": {"version": 1, "features": [
            {"name": "on", "enabled": true, "strategies": [{"name": "default"}]}]},
          "tests": [{"description": "claims off", "context": {}, "toggleName": "on", "expectedResult": false}],
          "variantTests": [{"description": "claims a variant", "context": {}, "toggleName": "on",
            "expectedResult": {"name": "blue", "enabled": true}}]}"#,
    )
    .unwrap();
    let mut outcome = Outcome {
        cases: 0,
        failures: Vec::new(),
    };
    run_file(&path, &mut outcome);
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(outcome.cases, 2);
    assert_eq!(outcome.failures.len(), 2, "{:#?}", outcome.failures);
    assert!(outcome.failures[0].contains("99-wrong.json: claims off"));
    assert!(outcome.failures[1].contains("expected {\"enabled\":true,\"name\":\"blue\"}"));
}
