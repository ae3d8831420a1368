//! `ripcord flags eval`, run as a user runs it: on a Ripcord flag file, on an Unleash
//! feature state written for these tests, and on a state from Unleash's own client
//! specification, with exact output, exit codes and error messages.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn data(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
        .display()
        .to_string()
}

fn ripcord(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ripcord"))
        .args(args)
        .output()
        .expect("the binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Evaluates a flag with `--json` and returns stdout, checking that it succeeded.
fn eval_json(file: &str, flag: &str, context: &str) -> String {
    let out = ripcord(&[
        "flags",
        "eval",
        flag,
        "--from",
        file,
        "--context",
        context,
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{flag} {context}: {}",
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// Evaluates a flag without `--json` and returns stdout, checking that it succeeded.
fn eval_line(file: &str, flag: &str, extra: &[&str]) -> String {
    let mut args = vec!["flags", "eval", flag, "--from", file];
    args.extend_from_slice(extra);
    let out = ripcord(&args);
    assert!(out.status.success(), "{flag}: {}", text(&out.stderr));
    text(&out.stdout)
}

#[test]
fn a_ripcord_flag_file_evaluates_to_exact_json() {
    let file = data("flags.toml");
    let production = |user: &str| {
        format!(
            r#"{{"userId": "{user}", "environment": "production", "properties": {{"appVersion": "2.3.0"}}}}"#
        )
    };
    let cases = [
        // Listed by userWithId; bucketed into the first half of the variants.
        (
            "new-checkout",
            r#"{"userId": "qa-alice"}"#.to_string(),
            r#"{"flag":"new-checkout","enabled":true,"variant":{"name":"blue","enabled":true,"feature_enabled":true,"payload":{"type":"string","value":"blue-button"}}}"#,
        ),
        // Listed too, and overridden onto green whatever the bucket.
        (
            "new-checkout",
            r#"{"userId": "qa-bob"}"#.to_string(),
            r#"{"flag":"new-checkout","enabled":true,"variant":{"name":"green","enabled":true,"feature_enabled":true,"payload":{"type":"json","value":"{\"button\": \"green\", \"size\": 2}"}}}"#,
        ),
        // In the 50% rollout (bucket 6 of group "new-checkout").
        (
            "new-checkout",
            production("2"),
            r#"{"flag":"new-checkout","enabled":true,"variant":{"name":"blue","enabled":true,"feature_enabled":true,"payload":{"type":"string","value":"blue-button"}}}"#,
        ),
        // Outside it (bucket 56).
        (
            "new-checkout",
            production("1"),
            r#"{"flag":"new-checkout","enabled":false,"variant":{"name":"disabled","enabled":false,"feature_enabled":false}}"#,
        ),
        // In the bucket, but the version constraint fails.
        (
            "new-checkout",
            production("2").replace("2.3.0", "2.0.9"),
            r#"{"flag":"new-checkout","enabled":false,"variant":{"name":"disabled","enabled":false,"feature_enabled":false}}"#,
        ),
        // On through the staff segment, without variants.
        (
            "dark-mode",
            r#"{"properties": {"email": "Ann@EXAMPLE.com"}}"#.to_string(),
            r#"{"flag":"dark-mode","enabled":true,"variant":{"name":"disabled","enabled":false,"feature_enabled":true}}"#,
        ),
        (
            "dark-mode",
            r#"{"properties": {"email": "ann@example.org"}}"#.to_string(),
            r#"{"flag":"dark-mode","enabled":false,"variant":{"name":"disabled","enabled":false,"feature_enabled":false}}"#,
        ),
        (
            "legacy-cart",
            r#"{"userId": "qa-alice"}"#.to_string(),
            r#"{"flag":"legacy-cart","enabled":false,"variant":{"name":"disabled","enabled":false,"feature_enabled":false}}"#,
        ),
        // Depends on new-checkout giving green: true for qa-bob, not for qa-alice.
        (
            "search-v2",
            r#"{"userId": "qa-bob"}"#.to_string(),
            r#"{"flag":"search-v2","enabled":true,"variant":{"name":"disabled","enabled":false,"feature_enabled":true}}"#,
        ),
        (
            "search-v2",
            r#"{"userId": "qa-alice"}"#.to_string(),
            r#"{"flag":"search-v2","enabled":false,"variant":{"name":"disabled","enabled":false,"feature_enabled":false}}"#,
        ),
    ];
    for (flag, context, expected) in cases {
        assert_eq!(
            eval_json(&file, flag, &context).trim_end(),
            expected,
            "{flag} for {context}"
        );
    }
}

#[test]
fn an_unleash_state_is_detected_and_evaluated() {
    let file = data("unleash-state.json");
    let beta = |user: &str| format!(r#"{{"userId": "{user}", "properties": {{"plan": "beta"}}}}"#);
    assert_eq!(
        eval_json(&file, "beta-banner", &beta("3")).trim_end(),
        r#"{"flag":"beta-banner","enabled":true,"variant":{"name":"long","enabled":true,"feature_enabled":true,"payload":{"type":"string","value":"Try the new beta!"}}}"#
    );
    assert_eq!(
        eval_json(&file, "beta-banner", &beta("1")).trim_end(),
        r#"{"flag":"beta-banner","enabled":true,"variant":{"name":"short","enabled":true,"feature_enabled":true}}"#
    );
    // The segment requires plan=beta.
    assert_eq!(
        eval_json(
            &file,
            "beta-banner",
            r#"{"userId": "3", "properties": {"plan": "free"}}"#
        )
        .trim_end(),
        r#"{"flag":"beta-banner","enabled":false,"variant":{"name":"disabled","enabled":false,"feature_enabled":false}}"#
    );
    assert_eq!(
        eval_line(&file, "maintenance-mode", &[]),
        "maintenance-mode: off\n"
    );
}

#[test]
fn a_state_from_unleash_s_specification_gives_the_specified_variants() {
    // The state of the specification's variant file, as an Unleash server would serve
    // it, with every variant case run through the binary.
    let spec_file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../core/tests/data/unleash-client-spec/08-variants.json");
    let spec: Value = serde_json::from_str(&std::fs::read_to_string(&spec_file).unwrap()).unwrap();
    let state = temp_file("state.json", &spec["state"].to_string());
    let cases = spec["variantTests"].as_array().unwrap();
    assert!(cases.len() >= 10);
    let mut checked = 0;
    for case in cases {
        let flag = case["toggleName"].as_str().unwrap();
        if !spec_flag_exists(&spec, flag) {
            continue;
        }
        let context = case["context"].to_string();
        let out = eval_json(state.to_str().unwrap(), flag, &context);
        let actual: Value = serde_json::from_str(&out).unwrap();
        let expected = &case["expectedResult"];
        assert_eq!(actual["flag"], flag);
        assert_eq!(
            actual["enabled"], expected["feature_enabled"],
            "{}",
            case["description"]
        );
        assert_eq!(&actual["variant"], expected, "{}", case["description"]);
        checked += 1;
    }
    assert_eq!(
        checked,
        cases.len() - 1,
        "every case but the missing flag's"
    );
    // The specification's missing flag is an error on the command line.
    let out = ripcord(&[
        "flags",
        "eval",
        "Feature.Variants.MissingToggle",
        "--from",
        state.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("known flags are Feature.Variants."));
}

fn spec_flag_exists(spec: &Value, flag: &str) -> bool {
    spec["state"]["features"]
        .as_array()
        .unwrap()
        .iter()
        .any(|feature| feature["name"] == flag)
}

#[test]
fn the_readable_line_says_on_off_and_the_variant() {
    let file = data("flags.toml");
    assert_eq!(
        eval_line(
            &file,
            "new-checkout",
            &["--context", r#"{"userId": "qa-alice"}"#]
        ),
        "new-checkout: on, variant blue (string \"blue-button\")\n"
    );
    assert_eq!(
        eval_line(
            &file,
            "dark-mode",
            &[
                "--context",
                r#"{"properties": {"email": "ann@example.com"}}"#
            ]
        ),
        "dark-mode: on, no variant\n"
    );
    assert_eq!(eval_line(&file, "legacy-cart", &[]), "legacy-cart: off\n");
}

#[test]
fn current_time_defaults_to_now() {
    let file = data("flags.toml");
    // spring-sale started on 2021-03-20: on now, off on a day given before it.
    assert_eq!(
        eval_line(&file, "spring-sale", &[]),
        "spring-sale: on, no variant\n"
    );
    assert_eq!(
        eval_line(
            &file,
            "spring-sale",
            &["--context", r#"{"currentTime": "2021-03-19T23:59:59Z"}"#]
        ),
        "spring-sale: off\n"
    );
}

#[test]
fn a_seed_repeats_a_random_rollout() {
    let file = data("flags.toml");
    let mut outcomes = Vec::new();
    for seed in 1..=12 {
        let seed = seed.to_string();
        let first = eval_line(&file, "coin-flip", &["--seed", &seed]);
        let again = eval_line(&file, "coin-flip", &["--seed", &seed]);
        assert_eq!(first, again, "seed {seed}");
        outcomes.push(first);
    }
    // At 50%, twelve seeds land on both sides.
    assert!(outcomes.contains(&"coin-flip: on, no variant\n".to_string()));
    assert!(outcomes.contains(&"coin-flip: off\n".to_string()));
}

#[test]
fn an_unknown_flag_lists_the_closest_known_ones() {
    let out = ripcord(&[
        "flags",
        "eval",
        "new-chekout",
        "--from",
        &data("flags.toml"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let err = text(&out.stderr);
    assert!(
        err.contains("unknown flag \"new-chekout\" in ")
            && err.contains("known flags are new-checkout, "),
        "{err}"
    );
    assert!(err.contains("(and 1 more)"), "{err}");
}

#[test]
fn a_bad_context_is_named() {
    let cases = [
        (
            r#"{"userId": "42""#,
            "--context: the context is not valid JSON",
        ),
        (
            r#"["userId"]"#,
            "--context: the context must be a JSON object",
        ),
        (
            r#"{"userID": "42"}"#,
            "--context: unknown context field \"userID\"",
        ),
        (
            r#"{"properties": {"plan": ["pro"]}}"#,
            "--context: context field \"properties.plan\" must be a string, not an array",
        ),
        (
            r#"{"currentTime": "tomorrow"}"#,
            "--context: context field \"currentTime\"",
        ),
    ];
    for (context, expected) in cases {
        let out = ripcord(&[
            "flags",
            "eval",
            "new-checkout",
            "--from",
            &data("flags.toml"),
            "--context",
            context,
        ]);
        assert_eq!(out.status.code(), Some(1), "{context}");
        let err = text(&out.stderr);
        assert!(err.contains(expected), "{context}: {err}");
    }
}

#[test]
fn a_broken_flag_file_shows_line_and_column() {
    let file = temp_file(
        "flags.toml",
        "[flags.a]\nenabled = true\n\n[[flags.a.strategies]]\nname = \"flexibleRollout\"\nrollout = 150\n",
    );
    let out = ripcord(&["flags", "eval", "a", "--from", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("is not a valid flag file"), "{err}");
    assert!(
        err.contains(":6:11: percentage 150 is out of range"),
        "{err}"
    );
    assert!(err.contains("6 | rollout = 150"), "{err}");

    let state = temp_file(
        "state.json",
        r#"{"features": [{"name": "a", "enabled": true, "strategies": [{"name": "flexibleRollout", "parameters": {"rollout": "many"}}]}]}"#,
    );
    let out = ripcord(&["flags", "eval", "a", "--from", state.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("looks like an Unleash feature state")
            && err.contains("flag \"a\", strategies[0].parameters.rollout"),
        "{err}"
    );

    let out = ripcord(&["flags", "eval", "a", "--from", "no-such-flags.toml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("cannot read no-such-flags.toml"));
}

const USER_2_IN_PRODUCTION: &str =
    r#"{"userId": "2", "environment": "production", "properties": {"appVersion": "2.3.0"}}"#;
const USER_2_GETS_BLUE: &str = r#"{"flag":"new-checkout","enabled":true,"variant":{"name":"blue","enabled":true,"feature_enabled":true,"payload":{"type":"string","value":"blue-button"}}}"#;

#[test]
fn the_example_flag_file_evaluates_as_its_comments_say() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/flags.toml");
    let example = example.to_str().unwrap();
    assert_eq!(
        eval_json(example, "new-checkout", USER_2_IN_PRODUCTION).trim_end(),
        USER_2_GETS_BLUE
    );
    let bob = eval_json(example, "new-checkout", r#"{"userId": "qa-bob"}"#);
    assert!(bob.contains(r#""name":"green""#), "{bob}");
    assert_eq!(
        eval_line(
            example,
            "saved-carts",
            &["--context", r#"{"userId": "qa-bob"}"#]
        ),
        "saved-carts: on, no variant\n"
    );
    assert_eq!(
        eval_line(example, "saved-carts", &["--context", r#"{"userId": "1"}"#]),
        "saved-carts: off\n"
    );
}

#[test]
fn the_readme_flag_file_and_output_are_real() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"))
            .unwrap();
    let section = &readme[readme.find("## Feature flags").expect("the section exists")..];
    let start = section.find("```toml\n").unwrap() + "```toml\n".len();
    let toml = &section[start..start + section[start..].find("```").unwrap()];
    let file = temp_file("flags.toml", toml);
    let output = eval_json(file.to_str().unwrap(), "new-checkout", USER_2_IN_PRODUCTION);
    assert_eq!(output.trim_end(), USER_2_GETS_BLUE);
    // The README shows the same line.
    assert!(section.contains(USER_2_GETS_BLUE));
}

/// Writes `content` to a fresh temporary file and returns its path.
fn temp_file(name: &str, content: &str) -> PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "ripcord-flags-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path
}
