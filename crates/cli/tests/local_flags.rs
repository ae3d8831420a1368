//! `ripcord flags ... --local URL`, run as a user runs it against a local mode started
//! by the test: every change goes through the control port's flags API, printed in
//! the same words as on the table, a key the CLI creates evaluates flags over OFREP
//! on the same port until it is revoked, and a flag set from Ripcord's flag file
//! evaluates over OFREP as `flags eval` evaluates it from the file.

use std::path::Path;
use std::process::{Command, Output};

use ripcord_local::probe::send;
use ripcord_local::testing::{SANITY, TOKEN, TempDir, control_url, healthy_apps, start_runtime};
use serde_json::{Value, json};

/// Runs the binary in `dir`, so that no `.ripcord/token` of the developer's is read.
fn ripcord(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ripcord"))
        .args(args)
        .current_dir(dir)
        .env_remove("RIPCORD_TABLE")
        .env_remove("RIPCORD_LOCAL_TOKEN")
        .output()
        .expect("the binary runs")
}

/// The command's standard output, after asserting that it succeeded.
fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim_end().to_string()
}

fn failed(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flag_commands_work_against_local_mode() {
    let (blue, green) = healthy_apps().await;
    let temp = TempDir::new("cli-flags");
    let dir = temp.path();
    let config = format!(
        r#"
[services.web]
strategy = "all_at_once"
[services.web.local]
listen = "127.0.0.1:0"
upstreams = ["{}", "{}"]
"#,
        blue.url(),
        green.url()
    );
    let local = start_runtime(&config, &temp).await;
    let url = control_url(&local);
    let run = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--local", &url]);
        ripcord(dir, &all)
    };
    let with_token = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--token", TOKEN]);
        run(&all)
    };

    assert_eq!(
        ok(&run(&["flags", "list"])),
        "no flags; create one with `ripcord flags rollout NAME 0` or `ripcord flags import --unleash FILE`"
    );
    // A change without the token says how to give it, and writes nothing.
    let refused = failed(&run(&["flags", "rollout", "checkout", "10"]));
    assert!(refused.contains("--token"), "{refused}");
    let wrong = failed(&run(&[
        "flags", "rollout", "checkout", "10", "--token", "nope",
    ]));
    assert!(wrong.contains("401"), "{wrong}");
    assert!(!wrong.contains("nope"), "{wrong}");
    assert_eq!(ok(&run(&["flags", "list", "--json"])), "[]");

    assert_eq!(
        ok(&with_token(&["flags", "rollout", "checkout", "10"])),
        "checkout: created with rollout 10% (version 1)"
    );
    assert_eq!(
        ok(&with_token(&["flags", "rollout", "checkout", "25"])),
        "checkout: rollout 10% → 25% (version 2)"
    );
    let too_much = failed(&with_token(&["flags", "rollout", "checkout", "101"]));
    assert!(too_much.contains("PERCENT"), "{too_much}");
    assert_eq!(
        ok(&with_token(&["flags", "disable", "checkout"])),
        "checkout disabled (version 3)"
    );
    assert_eq!(
        ok(&with_token(&["flags", "disable", "checkout"])),
        "checkout is already disabled (version 3)"
    );
    let listed = ok(&run(&["flags", "list"]));
    assert!(
        listed.starts_with("checkout  off  rollout 25%    v3  ")
            && listed.ends_with(" by cli local"),
        "{listed}"
    );
    let shown: Value =
        serde_json::from_str(&ok(&run(&["flags", "get", "checkout", "--json"]))).unwrap();
    assert_eq!(shown["enabled"], false);
    assert_eq!(shown["rollout"], 25.0);
    let summaries: Vec<&str> = shown["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["summary"].as_str().unwrap())
        .collect();
    assert_eq!(
        summaries,
        ["created with rollout 10%", "rollout 10% → 25%", "disabled"]
    );
    assert!(
        shown["history"]
            .as_array()
            .unwrap()
            .iter()
            .all(|h| h["by"] == "cli local")
    );
    let text = ok(&run(&["flags", "get", "checkout"]));
    assert!(
        text.starts_with("checkout: off, rollout 25%, version 3\n{"),
        "{text}"
    );
    assert!(
        text.contains("\nhistory:\n  v1  ") && text.ends_with("  cli local  disabled"),
        "{text}"
    );
    let unknown = failed(&run(&["flags", "get", "absent"]));
    assert!(unknown.contains("ripcord flags list"), "{unknown}");

    // set and import read the file here and send it; a broken one changes nothing.
    let feature = dir.join("checkout.json");
    std::fs::write(
        &feature,
        json!({"name": "checkout", "enabled": true, "strategies": [
            {"name": "userWithId", "parameters": {"userIds": "user-42"}}]})
        .to_string(),
    )
    .unwrap();
    let feature_arg = feature.display().to_string();
    assert_eq!(
        ok(&with_token(&[
            "flags",
            "set",
            "checkout",
            "--from",
            &feature_arg
        ])),
        "checkout stored as version 4"
    );
    let misnamed = failed(&with_token(&[
        "flags",
        "set",
        "other",
        "--from",
        &feature_arg,
    ]));
    assert!(
        misnamed.contains("must be \"other\"") && misnamed.contains("nothing was changed"),
        "{misnamed}"
    );
    let state = dir.join("state.json");
    std::fs::write(
        &state,
        r#"{"version": 1,
            "features": [{"name": "banner", "enabled": true, "strategies": [{"name": "default", "segments": [1]}]}],
            "segments": [{"id": 1, "constraints": [{"contextName": "plan", "operator": "IN", "values": ["pro"]}]}]}"#,
    )
    .unwrap();
    let state_arg = state.display().to_string();
    assert_eq!(
        ok(&with_token(&["flags", "import", "--unleash", &state_arg])),
        format!("imported {state_arg}: 2 created, 0 updated, 0 unchanged")
    );
    let broken = dir.join("broken.json");
    std::fs::write(
        &broken,
        r#"{"features": [{"name": "c", "enabled": "yes"}]}"#,
    )
    .unwrap();
    let refused = failed(&with_token(&[
        "flags",
        "import",
        "--unleash",
        &broken.display().to_string(),
    ]));
    assert!(refused.contains("nothing was imported"), "{refused}");
    let names: Vec<String> =
        serde_json::from_str::<Vec<Value>>(&ok(&run(&["flags", "list", "--json"])))
            .unwrap()
            .iter()
            .map(|f| f["name"].as_str().unwrap().to_string())
            .collect();
    assert_eq!(names, ["banner", "checkout"]);

    // A key made here evaluates flags over OFREP on the same port.
    assert_eq!(
        ok(&run(&["flags", "keys", "list"])),
        "no API keys; create one with `ripcord flags keys create NAME`"
    );
    let key = ok(&with_token(&["flags", "keys", "create", "web"]));
    assert!(key.starts_with("rcf_") && key.len() == 68, "{key}");
    let again = failed(&with_token(&["flags", "keys", "create", "web"]));
    assert!(again.contains("exists already"), "{again}");
    let keys = ok(&run(&["flags", "keys", "list"]));
    assert!(
        keys.starts_with("web  created ")
            && keys.ends_with(" by cli local")
            && !keys.contains("rcf_"),
        "{keys}"
    );
    let bearer = format!("Bearer {key}");
    let answer = ofrep(
        &url,
        &bearer,
        "checkout",
        json!({"targetingKey": "user-42"}),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let answer: Value = serde_json::from_str(&answer.body).unwrap();
    assert_eq!(
        (answer["value"].clone(), answer["reason"].clone()),
        (json!(true), json!("TARGETING_MATCH"))
    );

    // Revoked, the key is refused over OFREP at once; an unknown name is an error.
    let unknown = failed(&with_token(&["flags", "keys", "revoke", "absent"]));
    assert!(
        unknown.contains("no API key named \"absent\"") && unknown.contains("404"),
        "{unknown}"
    );
    let without_token = failed(&run(&["flags", "keys", "revoke", "web"]));
    assert!(without_token.contains("--token"), "{without_token}");
    let revoked = ok(&with_token(&["flags", "keys", "revoke", "web"]));
    assert!(
        revoked.starts_with("API key web revoked (created ")
            && revoked.ends_with(
                "by cli local); OFREP refuses it within 5 seconds, at once in local mode"
            ),
        "{revoked}"
    );
    let answer = ofrep(
        &url,
        &bearer,
        "checkout",
        json!({"targetingKey": "user-42"}),
    )
    .await;
    assert_eq!(answer.status, 401, "{}", answer.body);
    let answer: Value = serde_json::from_str(&answer.body).unwrap();
    assert_eq!(answer["error"], "unauthorized", "{answer}");
    assert_eq!(
        ok(&run(&["flags", "keys", "list"])),
        "no API keys; create one with `ripcord flags keys create NAME`"
    );

    // `flags set` from Ripcord's own flag file: the flag and the segment it uses are
    // stored, and the stored flag evaluates as the file does.
    let toml = dir.join("flags.toml");
    std::fs::write(
        &toml,
        r#"
[flags.beta-search]
enabled = true
variant_stickiness = "userId"

[[flags.beta-search.strategies]]
name = "flexibleRollout"
rollout = 50
stickiness = "userId"
segments = ["beta"]

[[flags.beta-search.variants]]
name = "fast"
weight = 30
payload = { type = "string", value = "fast-index" }

[[flags.beta-search.variants]]
name = "full"
overrides = [{ field = "userId", values = ["u-3"] }]

[flags.other]
enabled = false

[segments.beta]
constraints = [{ field = "plan", operator = "IN", values = ["beta"] }]
"#,
    )
    .unwrap();
    let toml_arg = toml.display().to_string();
    let unknown = failed(&with_token(&[
        "flags",
        "set",
        "beta-serch",
        "--from",
        &toml_arg,
    ]));
    assert!(
        unknown.contains("defines no flag \"beta-serch\"")
            && unknown.contains("it defines beta-search, other"),
        "{unknown}"
    );
    assert_eq!(
        serde_json::from_str::<Vec<Value>>(&ok(&run(&["flags", "list", "--json"])))
            .unwrap()
            .len(),
        2,
        "nothing was written"
    );
    assert_eq!(
        ok(&with_token(&[
            "flags",
            "set",
            "beta-search",
            "--from",
            &toml_arg
        ])),
        "beta-search stored as version 1; segment beta created (version 1)"
    );
    assert_eq!(
        ok(&with_token(&[
            "flags",
            "set",
            "beta-search",
            "--from",
            &toml_arg
        ])),
        "beta-search is already this definition (version 1)"
    );
    let shown: Value =
        serde_json::from_str(&ok(&run(&["flags", "get", "beta-search", "--json"]))).unwrap();
    assert_eq!(shown["enabled"], true);
    assert_eq!(shown["rollout"], 50.0);
    assert_eq!(
        shown["definition"]["strategies"][0]["segments"],
        json!(["beta"])
    );
    assert_eq!(
        shown["history"][0]["summary"],
        format!("set from {toml_arg}")
    );

    let key = ok(&with_token(&["flags", "keys", "create", "web"]));
    let bearer = format!("Bearer {key}");
    let mut seen = std::collections::BTreeSet::new();
    for n in 0..24 {
        let user = format!("u-{n}");
        let plan = if n % 4 == 0 { "free" } else { "beta" };
        let from_file: Value = serde_json::from_str(&ok(&ripcord(
            dir,
            &[
                "flags",
                "eval",
                "beta-search",
                "--from",
                &toml_arg,
                "--json",
                "--context",
                &json!({"userId": user, "properties": {"plan": plan}}).to_string(),
            ],
        )))
        .unwrap();
        let stored = ofrep(
            &url,
            &bearer,
            "beta-search",
            json!({"targetingKey": user, "plan": plan}),
        )
        .await;
        assert_eq!(stored.status, 200, "{}", stored.body);
        let stored: Value = serde_json::from_str(&stored.body).unwrap();
        let stored_variant = if stored["reason"] == "SPLIT" {
            stored["variant"].clone()
        } else {
            json!("disabled")
        };
        assert_eq!(
            (
                from_file["enabled"].clone(),
                from_file["variant"]["name"].clone()
            ),
            (
                json!(stored["reason"] == "SPLIT" || stored["reason"] == "TARGETING_MATCH"),
                stored_variant
            ),
            "{user} ({plan}): the file says {from_file}, the stored flag {stored}"
        );
        seen.insert(from_file["variant"]["name"].as_str().unwrap().to_string());
    }
    assert_eq!(
        seen,
        ["disabled", "fast", "full"].map(String::from).into(),
        "the contexts reach every outcome"
    );

    local.shutdown().await;
}

/// Evaluates one flag over local mode's OFREP endpoint with the `Authorization` header
/// `bearer`, for `context`.
async fn ofrep(
    url: &str,
    bearer: &str,
    flag: &str,
    context: Value,
) -> ripcord_local::probe::ProbeAnswer {
    send(
        url,
        "POST",
        &format!("/ofrep/v1/evaluate/flags/{flag}"),
        &[
            ("authorization", bearer),
            ("content-type", "application/json"),
        ],
        json!({ "context": context }).to_string().into_bytes(),
        SANITY,
    )
    .await
    .unwrap()
}
