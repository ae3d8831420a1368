//! OFREP flag evaluation and the flags API on local mode's control port, over real
//! HTTP on loopback: flags and API keys in the SQLite store, a key's SHA-256 checked,
//! a flag that does not exist, the bulk answer's ETag; every change through the flags
//! API recorded in the flag's history and served by OFREP at once, a revoked key
//! refused at once, and bad input refused with nothing written.

use ripcord_core::domain::Weight;
use ripcord_core::flags::stored::{api_key_sha256, new_rollout_flag};
use ripcord_core::history::Actor;
use ripcord_core::ports::{ApiKeyRecord, FlagRecordKind, FlagWrite};
use ripcord_core::time::Timestamp;
use ripcord_local::probe::{ProbeAnswer, send};
use ripcord_local::runtime::LocalRuntime;
use ripcord_local::sample_app::SampleApp;
use ripcord_local::testing::{
    SANITY, TOKEN, TempDir, control_url, healthy_apps, json_of, start_runtime,
};
use serde_json::{Value, json};

const KEY: &str = "rcf_local-ofrep-test-key";
const T0: Timestamp = Timestamp::from_millis(1_795_675_415_000);

/// One service in local mode, all at once: the flags are what these tests are about.
fn config(blue: &SampleApp, green: &SampleApp) -> String {
    format!(
        r#"
[services.web]
strategy = "all_at_once"
[services.web.local]
listen = "127.0.0.1:0"
upstreams = ["{}", "{}"]
"#,
        blue.url(),
        green.url()
    )
}

async fn evaluate(
    runtime: &LocalRuntime,
    path: &str,
    headers: &[(&str, &str)],
    body: &Value,
) -> ProbeAnswer {
    let mut all = vec![("content-type", "application/json")];
    all.extend_from_slice(headers);
    send(
        &control_url(runtime),
        "POST",
        path,
        &all,
        body.to_string().into_bytes(),
        SANITY,
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_control_port_evaluates_stored_flags_for_a_known_key() {
    let (blue, green) = healthy_apps().await;
    let store = TempDir::new("ofrep");
    let runtime = start_runtime(&config(&blue, &green), &store).await;
    let flags = runtime.flag_store();
    let actor = Actor::Cli {
        user: "tester".into(),
    };
    for (name, percent) in [("everyone", 100), ("nobody", 0)] {
        flags
            .put_flag_record(FlagWrite {
                kind: FlagRecordKind::Flag,
                name: name.into(),
                expected_version: 0,
                definition: new_rollout_flag(name, Weight::new(percent).unwrap()),
                at: T0,
                actor: actor.clone(),
                summary: format!("created with rollout {percent}%"),
            })
            .await
            .unwrap();
    }
    flags
        .create_api_key(ApiKeyRecord {
            name: "web".into(),
            sha256: api_key_sha256(KEY),
            created_at: T0,
            created_by: actor,
        })
        .await
        .unwrap();
    let bearer = format!("Bearer {KEY}");
    let auth = [("authorization", bearer.as_str())];
    let context = json!({"context": {"targetingKey": "user-42"}});

    let one = evaluate(
        &runtime,
        "/ofrep/v1/evaluate/flags/everyone",
        &auth,
        &context,
    )
    .await;
    assert_eq!(one.status, 200, "{}", one.body);
    let one = json_of(&one);
    assert_eq!(one["key"], "everyone");
    assert_eq!(one["value"], true);
    assert_eq!(one["reason"], "TARGETING_MATCH");
    let off =
        json_of(&evaluate(&runtime, "/ofrep/v1/evaluate/flags/nobody", &auth, &context).await);
    assert_eq!(
        (off["value"].clone(), off["reason"].clone()),
        (json!(false), json!("DEFAULT"))
    );

    // The same key in X-API-Key works; no key, or another one, gets 401.
    let by_header = evaluate(
        &runtime,
        "/ofrep/v1/evaluate/flags/everyone",
        &[("x-api-key", KEY)],
        &context,
    )
    .await;
    assert_eq!(by_header.status, 200, "{}", by_header.body);
    let without = evaluate(&runtime, "/ofrep/v1/evaluate/flags/everyone", &[], &context).await;
    assert_eq!(without.status, 401, "{}", without.body);
    assert_eq!(json_of(&without)["error"], "unauthorized");
    let wrong = evaluate(
        &runtime,
        "/ofrep/v1/evaluate/flags/everyone",
        &[("authorization", "Bearer rcf_not-a-key")],
        &context,
    )
    .await;
    assert_eq!(wrong.status, 401, "{}", wrong.body);
    assert!(!wrong.body.contains("rcf_not-a-key"), "{}", wrong.body);

    let missing = evaluate(&runtime, "/ofrep/v1/evaluate/flags/absent", &auth, &context).await;
    assert_eq!(missing.status, 404, "{}", missing.body);
    let missing = json_of(&missing);
    assert_eq!(missing["errorCode"], "FLAG_NOT_FOUND");
    assert_eq!(missing["key"], "absent");

    let bulk = evaluate(&runtime, "/ofrep/v1/evaluate/flags", &auth, &context).await;
    assert_eq!(bulk.status, 200, "{}", bulk.body);
    let keys: Vec<Value> = json_of(&bulk)["flags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["key"].clone())
        .collect();
    assert_eq!(keys, [json!("everyone"), json!("nobody")]);
    let etag = bulk.headers["etag"].to_str().unwrap().to_string();
    let again = evaluate(
        &runtime,
        "/ofrep/v1/evaluate/flags",
        &[auth[0], ("if-none-match", etag.as_str())],
        &context,
    )
    .await;
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());
    let other_etag = evaluate(
        &runtime,
        "/ofrep/v1/evaluate/flags",
        &[auth[0], ("if-none-match", "\"something-else\"")],
        &context,
    )
    .await;
    assert_eq!(other_etag.status, 200);

    // The 404 for anything else names OFREP among what the port serves.
    let elsewhere = evaluate(&runtime, "/nothing-here", &auth, &context).await;
    assert_eq!(elsewhere.status, 404);
    assert!(
        json_of(&elsewhere)["message"]
            .as_str()
            .unwrap()
            .contains("/ofrep/v1/evaluate/flags")
    );

    runtime.shutdown().await;
}

/// Sends `method path` with a JSON body, with the local token when `token` holds.
async fn call(
    runtime: &LocalRuntime,
    method: &str,
    path: &str,
    token: bool,
    body: Value,
) -> ProbeAnswer {
    let bearer = format!("Bearer {TOKEN}");
    let mut headers = vec![("content-type", "application/json")];
    if token {
        headers.push(("authorization", bearer.as_str()));
    }
    send(
        &control_url(runtime),
        method,
        path,
        &headers,
        body.to_string().into_bytes(),
        SANITY,
    )
    .await
    .unwrap()
}

/// Asserts a refusal: its status, its JSON error code and, for a 400, the field.
fn refused(answer: &ProbeAnswer, status: u16, code: &str, field: Option<&str>) {
    assert_eq!(answer.status, status, "{}", answer.body);
    let body = json_of(answer);
    assert_eq!(body["error"], code, "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    if let Some(field) = field {
        assert_eq!(body["field"], field, "{body}");
    }
}

async fn flags_and_keys(runtime: &LocalRuntime) -> (Value, Value) {
    let flags = call(runtime, "GET", "/api/flags", false, json!(null)).await;
    assert_eq!(flags.status, 200, "{}", flags.body);
    let keys = call(runtime, "GET", "/api/flag-keys", false, json!(null)).await;
    assert_eq!(keys.status, 200, "{}", keys.body);
    (json_of(&flags), json_of(&keys))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_flags_api_changes_flags_with_history_and_ofrep_serves_them_at_once() {
    let (blue, green) = healthy_apps().await;
    let store = TempDir::new("ofrep-flags-api");
    let runtime = start_runtime(&config(&blue, &green), &store).await;
    let empty = flags_and_keys(&runtime).await;
    assert_eq!(empty, (json!({"flags": []}), json!({"keys": []})));

    // Refusals, each writing nothing.
    let rollout = "/api/flags/checkout/rollout";
    refused(
        &call(&runtime, "POST", rollout, false, json!({"percent": 10})).await,
        401,
        "unauthorized",
        None,
    );
    let wrong_token = send(
        &control_url(&runtime),
        "POST",
        rollout,
        &[("authorization", "Bearer not-the-token")],
        json!({"percent": 10}).to_string().into_bytes(),
        SANITY,
    )
    .await
    .unwrap();
    refused(&wrong_token, 401, "unauthorized", None);
    refused(
        &call(&runtime, "POST", rollout, true, json!({"percent": 101})).await,
        400,
        "invalid_request",
        Some("percent"),
    );
    refused(
        &call(&runtime, "POST", rollout, true, json!({"percent": "ten"})).await,
        400,
        "invalid_request",
        Some("percent"),
    );
    let not_json = send(
        &control_url(&runtime),
        "POST",
        rollout,
        &[("authorization", &format!("Bearer {TOKEN}"))],
        b"{percent".to_vec(),
        SANITY,
    )
    .await
    .unwrap();
    refused(&not_json, 400, "invalid_request", Some("body"));
    let misnamed = json!({"definition": {"name": "other", "enabled": true, "strategies": []}});
    refused(
        &call(&runtime, "PUT", "/api/flags/checkout", true, misnamed).await,
        400,
        "invalid_request",
        Some("definition"),
    );
    let broken_state =
        json!({"state": {"features": [{"name": "a", "enabled": "yes"}]}, "source": "broken.json"});
    let broken = call(&runtime, "POST", "/api/flags", true, broken_state).await;
    refused(&broken, 400, "invalid_request", Some("state"));
    assert!(
        json_of(&broken)["message"]
            .as_str()
            .unwrap()
            .contains("broken.json")
    );
    refused(
        &call(
            &runtime,
            "POST",
            "/api/flags/absent/enable",
            true,
            json!({}),
        )
        .await,
        404,
        "unknown_flag",
        None,
    );
    refused(
        &call(
            &runtime,
            "POST",
            "/api/flag-keys",
            true,
            json!({"name": "two words"}),
        )
        .await,
        400,
        "invalid_request",
        Some("name"),
    );
    refused(
        &call(
            &runtime,
            "POST",
            "/api/flag-keys",
            false,
            json!({"name": "web"}),
        )
        .await,
        401,
        "unauthorized",
        None,
    );
    refused(
        &call(&runtime, "DELETE", "/api/flags", true, json!({})).await,
        405,
        "method_not_allowed",
        None,
    );
    assert_eq!(flags_and_keys(&runtime).await, empty);

    // A key, shown once; the listing never holds it nor its hash.
    let created = call(
        &runtime,
        "POST",
        "/api/flag-keys",
        true,
        json!({"name": "web"}),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let key = json_of(&created)["key"].as_str().unwrap().to_string();
    assert!(key.starts_with("rcf_") && key.len() == 68, "{key}");
    refused(
        &call(
            &runtime,
            "POST",
            "/api/flag-keys",
            true,
            json!({"name": "web"}),
        )
        .await,
        409,
        "conflict",
        None,
    );
    let (_, keys) = flags_and_keys(&runtime).await;
    assert_eq!(keys["keys"][0]["name"], "web");
    assert_eq!(
        keys["keys"][0]["created_by"],
        json!({"type": "cli", "user": "local"})
    );
    assert!(!keys.to_string().contains(&key[4..]) && keys["keys"][0].get("sha256").is_none());

    let bearer = format!("Bearer {key}");
    let auth = [("authorization", bearer.as_str())];
    let context = json!({"context": {"targetingKey": "user-42"}});
    let ofrep = async |flag: &str| {
        let answer = evaluate(
            &runtime,
            &format!("/ofrep/v1/evaluate/flags/{flag}"),
            &auth,
            &context,
        )
        .await;
        json_of(&answer)
    };

    let message = |answer: ProbeAnswer| {
        assert_eq!(answer.status, 200, "{}", answer.body);
        json_of(&answer)["message"].as_str().unwrap().to_string()
    };
    assert_eq!(
        message(call(&runtime, "POST", rollout, true, json!({"percent": 100})).await),
        "checkout: created with rollout 100% (version 1)"
    );
    assert_eq!(ofrep("checkout").await["reason"], "TARGETING_MATCH");
    assert_eq!(
        message(
            call(
                &runtime,
                "POST",
                "/api/flags/checkout/disable",
                true,
                json!({})
            )
            .await
        ),
        "checkout disabled (version 2)"
    );
    // Served at once, well within OFREP's five-second cache.
    assert_eq!(ofrep("checkout").await["reason"], "DISABLED");
    assert_eq!(
        message(
            call(
                &runtime,
                "POST",
                "/api/flags/checkout/disable",
                true,
                json!({})
            )
            .await
        ),
        "checkout is already disabled (version 2)"
    );
    let definition = json!({"name": "checkout", "enabled": true, "strategies": [
        {"name": "userWithId", "parameters": {"userIds": "user-42"}}]});
    assert_eq!(
        message(
            call(
                &runtime,
                "PUT",
                "/api/flags/checkout",
                true,
                json!({"definition": definition, "source": "checkout.json"})
            )
            .await
        ),
        "checkout stored as version 3"
    );
    assert_eq!(ofrep("checkout").await["value"], true);
    let state = json!({"state": {"version": 1,
        "features": [{"name": "banner", "enabled": true, "strategies": [{"name": "default", "segments": [1]}]}],
        "segments": [{"id": 1, "constraints": [{"contextName": "plan", "operator": "IN", "values": ["pro"]}]}]},
        "source": "state.json"});
    assert_eq!(
        message(call(&runtime, "POST", "/api/flags", true, state).await),
        "imported state.json: 2 created, 0 updated, 0 unchanged"
    );
    assert_eq!(ofrep("banner").await["reason"], "DEFAULT");

    let (flags, _) = flags_and_keys(&runtime).await;
    let names: Vec<&str> = flags["flags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["banner", "checkout"]);
    let one = call(&runtime, "GET", "/api/flags/checkout", false, json!(null)).await;
    assert_eq!(one.status, 200, "{}", one.body);
    let one = json_of(&one);
    assert_eq!(one["flag"]["version"], 3);
    let history: Vec<(Value, Value)> = one["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["summary"].clone(), c["record"]["updated_by"].clone()))
        .collect();
    let local = json!({"type": "cli", "user": "local"});
    assert_eq!(
        history,
        [
            (json!("created with rollout 100%"), local.clone()),
            (json!("disabled"), local.clone()),
            (json!("set from checkout.json"), local),
        ]
    );
    refused(
        &call(&runtime, "GET", "/api/flags/absent", false, json!(null)).await,
        404,
        "unknown_flag",
        None,
    );

    // Revoking the key: refused without the token or for an unknown name, writing
    // nothing; then OFREP refuses the key at once, well within its cache's interval.
    let revoke = "/api/flag-keys/web";
    refused(
        &call(&runtime, "DELETE", revoke, false, json!(null)).await,
        401,
        "unauthorized",
        None,
    );
    refused(
        &call(
            &runtime,
            "DELETE",
            "/api/flag-keys/absent",
            true,
            json!(null),
        )
        .await,
        404,
        "unknown_key",
        None,
    );
    refused(
        &call(&runtime, "PUT", revoke, true, json!({})).await,
        405,
        "method_not_allowed",
        None,
    );
    assert_eq!(flags_and_keys(&runtime).await.1["keys"][0]["name"], "web");
    assert_eq!(
        ofrep("checkout").await["value"],
        true,
        "the key still works"
    );
    let revoked = message(call(&runtime, "DELETE", revoke, true, json!(null)).await);
    assert!(
        revoked.starts_with("API key web revoked (created "),
        "{revoked}"
    );
    let after = evaluate(
        &runtime,
        "/ofrep/v1/evaluate/flags/checkout",
        &auth,
        &context,
    )
    .await;
    refused(&after, 401, "unauthorized", None);
    assert!(!after.body.contains(&key[4..]), "{}", after.body);
    assert_eq!(flags_and_keys(&runtime).await.1, json!({"keys": []}));
    refused(
        &call(&runtime, "DELETE", revoke, true, json!(null)).await,
        404,
        "unknown_key",
        None,
    );

    runtime.shutdown().await;
}
