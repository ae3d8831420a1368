//! `ripcord flags list | get | set | enable | disable | rollout | import` and
//! `ripcord flags keys create | list`: the flags in the flag store, written against the
//! core's `FlagStore` port (the DynamoDB table here; local mode's file later).
//!
//! Every change is a conditional write on the version it was based on, recorded with
//! who made it (the CLI's user) and when; a change that lost a race is reported, not
//! retried blindly, so nobody's edit is overwritten unseen.

use std::io::Read as _;
use std::path::Path;

use anyhow::{Context as _, anyhow, bail};
use ripcord_core::domain::Weight;
use ripcord_core::flags::stored::{
    api_key_sha256, check_definition, format_percent, is_enabled, new_rollout_flag, rollout,
    with_enabled, with_rollout,
};
use ripcord_core::flags::unleash::state_from_json;
use ripcord_core::ports::{
    ApiKeyRecord, FlagRecord, FlagRecordKind, FlagStore, FlagStoreError, FlagWrite,
};
use ripcord_core::time::Timestamp;
use serde_json::{Value, json};

use crate::ops::cli_actor;

fn write(
    kind: FlagRecordKind,
    name: &str,
    expected: u64,
    definition: Value,
    at: Timestamp,
    summary: String,
) -> FlagWrite {
    FlagWrite {
        kind,
        name: name.to_string(),
        expected_version: expected,
        definition,
        at,
        actor: cli_actor(),
        summary,
    }
}

fn conflict_hint(error: FlagStoreError) -> anyhow::Error {
    match error {
        FlagStoreError::Conflict { .. } => anyhow!("{error}; nothing was changed"),
        other => anyhow!(other),
    }
}

async fn existing(store: &dyn FlagStore, name: &str) -> anyhow::Result<FlagRecord> {
    store
        .flag_record(FlagRecordKind::Flag, name)
        .await?
        .ok_or_else(|| anyhow!("no flag {name:?}; `ripcord flags list` shows the flags"))
}

fn rollout_text(definition: &Value) -> String {
    rollout(definition).map_or_else(|| "-".to_string(), format_percent)
}

fn summary_json(record: &FlagRecord) -> Value {
    json!({
        "name": record.name,
        "enabled": is_enabled(&record.definition),
        "rollout": rollout(&record.definition).map(|p| p.get()),
        "version": record.version,
        "updated_at": record.updated_at,
        "updated_by": record.updated_by.describe(),
    })
}

/// `ripcord flags list`: every flag, its switch, rollout and version.
pub async fn list(store: &dyn FlagStore, as_json: bool) -> anyhow::Result<String> {
    let records = store.flag_records().await?;
    let flags: Vec<&FlagRecord> = records
        .iter()
        .filter(|r| r.kind == FlagRecordKind::Flag)
        .collect();
    if as_json {
        let list: Vec<Value> = flags.iter().map(|r| summary_json(r)).collect();
        return Ok(serde_json::to_string_pretty(&list)?);
    }
    if flags.is_empty() {
        return Ok("no flags; create one with `ripcord flags rollout NAME 0` or `ripcord flags import --unleash FILE`".into());
    }
    let width = flags.iter().map(|r| r.name.len()).max().unwrap_or(0);
    let lines: Vec<String> = flags
        .iter()
        .map(|r| {
            format!(
                "{:width$}  {:3}  rollout {:5}  v{}  {} by {}",
                r.name,
                if is_enabled(&r.definition) {
                    "on"
                } else {
                    "off"
                },
                rollout_text(&r.definition),
                r.version,
                r.updated_at,
                r.updated_by.describe()
            )
        })
        .collect();
    Ok(lines.join("\n"))
}

/// `ripcord flags get FLAG`: the definition and every change.
pub async fn get(store: &dyn FlagStore, name: &str, as_json: bool) -> anyhow::Result<String> {
    let record = existing(store, name).await?;
    let changes = store.flag_changes(FlagRecordKind::Flag, name).await?;
    if as_json {
        let mut out = summary_json(&record);
        out["definition"] = record.definition.clone();
        out["history"] = changes
            .iter()
            .map(|c| {
                json!({
                    "version": c.record.version,
                    "at": c.record.updated_at,
                    "by": c.record.updated_by.describe(),
                    "summary": c.summary,
                })
            })
            .collect();
        return Ok(serde_json::to_string_pretty(&out)?);
    }
    let mut out = format!(
        "{}: {}, rollout {}, version {}\n{}\nhistory:",
        record.name,
        if is_enabled(&record.definition) {
            "on"
        } else {
            "off"
        },
        rollout_text(&record.definition),
        record.version,
        serde_json::to_string_pretty(&record.definition)?
    );
    for change in &changes {
        out.push_str(&format!(
            "\n  v{}  {}  {}  {}",
            change.record.version,
            change.record.updated_at,
            change.record.updated_by.describe(),
            change.summary
        ));
    }
    Ok(out)
}

/// `ripcord flags enable|disable FLAG`: the switch, for everyone at once.
pub async fn switch(
    store: &dyn FlagStore,
    name: &str,
    enabled: bool,
    now: Timestamp,
) -> anyhow::Result<String> {
    let record = existing(store, name).await?;
    let word = if enabled { "enabled" } else { "disabled" };
    if is_enabled(&record.definition) == enabled {
        return Ok(format!(
            "{name} is already {word} (version {})",
            record.version
        ));
    }
    let definition = with_enabled(name, &record.definition, enabled)?;
    let stored = store
        .put_flag_record(write(
            FlagRecordKind::Flag,
            name,
            record.version,
            definition,
            now,
            word.to_string(),
        ))
        .await
        .map_err(conflict_hint)?;
    Ok(format!("{name} {word} (version {})", stored.version))
}

/// `ripcord flags rollout FLAG PERCENT`: every flexibleRollout strategy of the flag at
/// `percent`; a flag that does not exist is created, on, with one such strategy.
pub async fn set_rollout(
    store: &dyn FlagStore,
    name: &str,
    percent: u32,
    now: Timestamp,
) -> anyhow::Result<String> {
    let weight = Weight::new(percent).map_err(|e| anyhow!("PERCENT: {e}"))?;
    let current = store.flag_record(FlagRecordKind::Flag, name).await?;
    let (expected, definition, summary) = match &current {
        Some(record) => (
            record.version,
            with_rollout(name, &record.definition, weight)?,
            format!("rollout {} → {percent}%", rollout_text(&record.definition)),
        ),
        None => (
            0,
            new_rollout_flag(name, weight),
            format!("created with rollout {percent}%"),
        ),
    };
    if current.as_ref().is_some_and(|r| r.definition == definition) {
        return Ok(format!("{name} is already at rollout {percent}%"));
    }
    let stored = store
        .put_flag_record(write(
            FlagRecordKind::Flag,
            name,
            expected,
            definition,
            now,
            summary.clone(),
        ))
        .await
        .map_err(conflict_hint)?;
    Ok(format!("{name}: {summary} (version {})", stored.version))
}

/// Reads a JSON file, or standard input for `-`.
fn read_json(file: &Path) -> anyhow::Result<Value> {
    let text = if file == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read standard input")?;
        text
    } else {
        std::fs::read_to_string(file)
            .with_context(|| format!("cannot read {}: check the path", file.display()))?
    };
    serde_json::from_str(text.trim_start_matches('\u{feff}'))
        .with_context(|| format!("{} is not JSON", file.display()))
}

/// `ripcord flags set FLAG --from FILE`: replaces the flag's definition with an Unleash
/// feature (a JSON object), or with the feature of that name in an Unleash state.
pub async fn set(
    store: &dyn FlagStore,
    name: &str,
    file: &Path,
    now: Timestamp,
) -> anyhow::Result<String> {
    let document = read_json(file)?;
    let definition = match document.get("features").and_then(Value::as_array) {
        Some(features) => features
            .iter()
            .find(|f| f.get("name").and_then(Value::as_str) == Some(name))
            .cloned()
            .ok_or_else(|| anyhow!("{} has no feature named {name:?}", file.display()))?,
        None => document,
    };
    check_definition(FlagRecordKind::Flag, name, &definition)
        .map_err(|e| anyhow!("{}: {e}; nothing was changed", file.display()))?;
    let current = store.flag_record(FlagRecordKind::Flag, name).await?;
    if current.as_ref().is_some_and(|r| r.definition == definition) {
        return Ok(format!(
            "{name} is already this definition (version {})",
            current.map_or(0, |r| r.version)
        ));
    }
    let expected = current.map_or(0, |r| r.version);
    let stored = store
        .put_flag_record(write(
            FlagRecordKind::Flag,
            name,
            expected,
            definition,
            now,
            format!("set from {}", file.display()),
        ))
        .await
        .map_err(conflict_hint)?;
    Ok(format!("{name} stored as version {}", stored.version))
}

/// `ripcord flags import --unleash FILE`: every feature and segment of an Unleash
/// feature state (GET /api/client/features). The whole state is checked first, so a
/// broken file imports nothing; then each record that differs is written.
pub async fn import(store: &dyn FlagStore, file: &Path, now: Timestamp) -> anyhow::Result<String> {
    let document = read_json(file)?;
    if document.get("features").is_none() {
        bail!(
            "{} has no \"features\" array: export the state with GET /api/client/features",
            file.display()
        );
    }
    state_from_json(&document)
        .map_err(|e| anyhow!("{}: {e}; nothing was imported", file.display()))?;
    let mut entries = Vec::new();
    for segment in document["segments"].as_array().into_iter().flatten() {
        let id = match &segment["id"] {
            Value::String(text) => text.clone(),
            other => other.to_string(),
        };
        entries.push((FlagRecordKind::Segment, id, segment.clone()));
    }
    for feature in document["features"].as_array().into_iter().flatten() {
        let name = feature["name"].as_str().unwrap_or_default().to_string();
        entries.push((FlagRecordKind::Flag, name, feature.clone()));
    }
    let (mut created, mut updated, mut unchanged) = (0, 0, 0);
    for (kind, name, definition) in entries {
        let current = store.flag_record(kind, &name).await?;
        let expected = match &current {
            Some(record) if record.definition == definition => {
                unchanged += 1;
                continue;
            }
            Some(record) => {
                updated += 1;
                record.version
            }
            None => {
                created += 1;
                0
            }
        };
        let summary = format!("imported from {}", file.display());
        store
            .put_flag_record(write(kind, &name, expected, definition, now, summary))
            .await
            .map_err(|e| anyhow!("{} {name}: {}", kind.as_str(), conflict_hint(e)))?;
    }
    Ok(format!(
        "imported {}: {created} created, {updated} updated, {unchanged} unchanged",
        file.display()
    ))
}

/// A new API key: 32 random bytes from the operating system, in hex, after a prefix
/// that makes a leaked key easy to recognise.
fn new_key() -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("cannot read random bytes from /dev/urandom")?;
    Ok(format!(
        "rcf_{}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    ))
}

/// `ripcord flags keys create NAME`: stores the key's hash and returns the key, which
/// is shown this once.
pub async fn create_key(
    store: &dyn FlagStore,
    name: &str,
    now: Timestamp,
) -> anyhow::Result<String> {
    if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        bail!("a key name needs at least one character and no spaces, e.g. web-frontend");
    }
    let key = new_key()?;
    store
        .create_api_key(ApiKeyRecord {
            name: name.to_string(),
            sha256: api_key_sha256(&key),
            created_at: now,
            created_by: cli_actor(),
        })
        .await?;
    Ok(key)
}

/// `ripcord flags keys list`: names and creation, never the keys.
pub async fn list_keys(store: &dyn FlagStore, as_json: bool) -> anyhow::Result<String> {
    let keys = store.api_keys().await?;
    if as_json {
        let list: Vec<Value> = keys
            .iter()
            .map(|k| json!({"name": k.name, "created_at": k.created_at, "created_by": k.created_by.describe()}))
            .collect();
        return Ok(serde_json::to_string_pretty(&list)?);
    }
    if keys.is_empty() {
        return Ok("no API keys; create one with `ripcord flags keys create NAME`".into());
    }
    Ok(keys
        .iter()
        .map(|k| {
            format!(
                "{}  created {} by {}",
                k.name,
                k.created_at,
                k.created_by.describe()
            )
        })
        .collect::<Vec<_>>()
        .join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ripcord_core::flags::stored::flag_set;
    use ripcord_core::flags::{Context, SeededRandom};
    use ripcord_core::memory::{MemoryFlagStore, block_on};

    const T0: Timestamp = Timestamp::from_millis(1_795_675_415_000);

    fn temp(name: &str, text: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("ripcord-flag-admin-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn rollout_creates_then_moves_and_every_change_is_kept() {
        let store = MemoryFlagStore::new();
        let out = block_on(set_rollout(&store, "checkout", 10, T0)).unwrap();
        assert_eq!(out, "checkout: created with rollout 10% (version 1)");
        let out = block_on(set_rollout(&store, "checkout", 25, T0)).unwrap();
        assert_eq!(out, "checkout: rollout 10% → 25% (version 2)");
        assert_eq!(
            block_on(set_rollout(&store, "checkout", 25, T0)).unwrap(),
            "checkout is already at rollout 25%"
        );
        assert!(block_on(set_rollout(&store, "checkout", 101, T0)).is_err());
        assert_eq!(
            block_on(switch(&store, "checkout", false, T0)).unwrap(),
            "checkout disabled (version 3)"
        );
        assert!(
            block_on(switch(&store, "checkout", false, T0))
                .unwrap()
                .contains("already")
        );
        let shown: Value =
            serde_json::from_str(&block_on(get(&store, "checkout", true)).unwrap()).unwrap();
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
        let listed = block_on(list(&store, false)).unwrap();
        assert!(listed.starts_with("checkout  off  rollout 25%"), "{listed}");
        assert!(
            block_on(get(&store, "nope", false))
                .unwrap_err()
                .to_string()
                .contains("ripcord flags list")
        );
    }

    #[test]
    fn import_takes_a_whole_state_and_refuses_a_broken_one() {
        let store = MemoryFlagStore::new();
        let state = r#"{"version": 1,
            "features": [
              {"name": "a", "enabled": true, "strategies": [{"name": "default", "segments": [1]}]},
              {"name": "b", "enabled": false, "strategies": []}
            ],
            "segments": [{"id": 1, "constraints": [{"contextName": "plan", "operator": "IN", "values": ["pro"]}]}]}"#;
        let file = temp("state.json", state);
        assert_eq!(
            block_on(import(&store, &file, T0)).unwrap(),
            format!(
                "imported {}: 3 created, 0 updated, 0 unchanged",
                file.display()
            )
        );
        assert!(
            block_on(import(&store, &file, T0))
                .unwrap()
                .contains("0 created, 0 updated, 3 unchanged")
        );
        let set = flag_set(&block_on(store.flag_records()).unwrap()).unwrap();
        let pro = Context {
            properties: [("plan".to_string(), "pro".to_string())].into(),
            ..Context::default()
        };
        assert!(set.is_enabled("a", &pro, &mut SeededRandom::new(1)));
        assert!(!set.is_enabled("a", &Context::default(), &mut SeededRandom::new(1)));

        let broken = temp(
            "broken.json",
            r#"{"features": [{"name": "c", "enabled": "yes"}]}"#,
        );
        let error = block_on(import(&store, &broken, T0))
            .unwrap_err()
            .to_string();
        assert!(error.contains("nothing was imported"), "{error}");
        assert!(
            block_on(store.flag_record(FlagRecordKind::Flag, "c"))
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn set_replaces_a_definition_checked_first() {
        let store = MemoryFlagStore::new();
        let file = temp(
            "one.json",
            r#"{"name": "x", "enabled": true, "strategies": [{"name": "userWithId", "parameters": {"userIds": "1,2"}}]}"#,
        );
        assert_eq!(
            block_on(set(&store, "x", &file, T0)).unwrap(),
            "x stored as version 1"
        );
        let wrong = block_on(set(&store, "y", &file, T0))
            .unwrap_err()
            .to_string();
        assert!(
            wrong.contains("must be \"y\"") && wrong.contains("nothing was changed"),
            "{wrong}"
        );
        let rollout_error = block_on(set_rollout(&store, "x", 5, T0))
            .unwrap_err()
            .to_string();
        assert!(
            rollout_error.contains("no flexibleRollout strategy"),
            "{rollout_error}"
        );
    }

    #[test]
    fn keys_are_shown_once_and_stored_hashed() {
        let store = MemoryFlagStore::new();
        let key = block_on(create_key(&store, "web", T0)).unwrap();
        assert!(key.starts_with("rcf_") && key.len() == 68, "{key}");
        let stored = block_on(store.api_keys()).unwrap();
        assert_eq!(stored[0].sha256, api_key_sha256(&key));
        assert!(!serde_json::to_string(&stored).unwrap().contains(&key[4..]));
        let other = block_on(create_key(&store, "app", T0)).unwrap();
        assert_ne!(key, other);
        assert!(
            block_on(create_key(&store, "web", T0))
                .unwrap_err()
                .to_string()
                .contains("exists already")
        );
        let listed = block_on(list_keys(&store, false)).unwrap();
        assert!(listed.contains("app") && listed.contains("web") && !listed.contains("rcf_"));
        assert!(block_on(create_key(&store, "two words", T0)).is_err());
    }
}
