//! `ripcord flags list | get | set | enable | disable | rollout | import` and
//! `ripcord flags keys create | list | revoke`: the flags in the flag store. The changes are
//! `ripcord_api::flag_admin`'s, shared with local mode's flags API; this module reads
//! the files they take and renders what the store holds, so that the table and
//! `--local` print the same thing.

use std::io::Read as _;
use std::path::Path;

use anyhow::{Context as _, bail};
use ripcord_api::flag_admin::{self as shared, Change, KeySummary, rollout_text};
use ripcord_core::flags::FlagFormat;
use ripcord_core::flags::stored::{is_enabled, rollout};
use ripcord_core::flags::to_unleash::state_of_flag;
use ripcord_core::ports::{FlagChange, FlagRecord, FlagRecordKind, FlagStore};
use ripcord_core::time::Timestamp;
use serde_json::{Value, json};

use crate::ops::cli_actor;

/// Who the command line's changes are recorded as, and when.
fn change(now: Timestamp) -> Change {
    Change {
        actor: cli_actor(),
        at: now,
    }
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
    render_list(&store.flag_records().await?, as_json)
}

/// What `ripcord flags list` prints for these records (segments are left out).
pub fn render_list(records: &[FlagRecord], as_json: bool) -> anyhow::Result<String> {
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
    let record = shared::existing(store, name).await?;
    let changes = store.flag_changes(FlagRecordKind::Flag, name).await?;
    render_get(&record, &changes, as_json)
}

/// What `ripcord flags get` prints for a flag and its changes.
pub fn render_get(
    record: &FlagRecord,
    changes: &[FlagChange],
    as_json: bool,
) -> anyhow::Result<String> {
    if as_json {
        let mut out = summary_json(record);
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
    for change in changes {
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
    Ok(shared::switch(store, name, enabled, &change(now)).await?)
}

/// `ripcord flags rollout FLAG PERCENT`: every flexibleRollout strategy of the flag at
/// `percent`; a flag that does not exist is created, on, with one such strategy.
pub async fn set_rollout(
    store: &dyn FlagStore,
    name: &str,
    percent: u32,
    now: Timestamp,
) -> anyhow::Result<String> {
    Ok(shared::set_rollout(store, name, percent, &change(now)).await?)
}

/// Reads a file, or standard input for `-`.
fn read_text(file: &Path) -> anyhow::Result<String> {
    if file == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read standard input")?;
        Ok(text)
    } else {
        std::fs::read_to_string(file)
            .with_context(|| format!("cannot read {}: check the path", file.display()))
    }
}

/// Reads a JSON file, or standard input for `-`.
pub fn read_json(file: &Path) -> anyhow::Result<Value> {
    let text = read_text(file)?;
    serde_json::from_str(text.trim_start_matches('\u{feff}'))
        .with_context(|| format!("{} is not JSON", file.display()))
}

/// What `ripcord flags set FLAG --from FILE` sends to the store: the JSON as written
/// (an Unleash feature, or a state holding the flag), or, from a Ripcord flag file,
/// an Unleash state holding the flag and the segments it uses, converted by
/// `ripcord_core::flags::to_unleash`. A flag the file does not define is refused,
/// naming those it does, before anything is sent.
pub fn read_definition(file: &Path, name: &str) -> anyhow::Result<Value> {
    let text = read_text(file)?;
    if FlagFormat::detect(&text) == FlagFormat::Unleash {
        return serde_json::from_str(text.trim_start_matches('\u{feff}'))
            .with_context(|| format!("{} is not JSON", file.display()));
    }
    let path = file.display().to_string();
    let flags = crate::flags::parse(&path, &text)?;
    if flags.flag(name).is_none() {
        let known: Vec<&str> = flags.names().collect();
        bail!(
            "{path} defines no flag {name:?}; it defines {}; nothing was changed",
            known.join(", ")
        );
    }
    state_of_flag(&flags, name).map_err(|e| anyhow::anyhow!("{path}: {e}; nothing was changed"))
}

/// `ripcord flags set FLAG --from FILE`: replaces the flag's definition with the flag
/// of that name in a Ripcord flag file or an Unleash state (with the segments it
/// uses), or with an Unleash feature (a JSON object).
pub async fn set(
    store: &dyn FlagStore,
    name: &str,
    file: &Path,
    now: Timestamp,
) -> anyhow::Result<String> {
    let document = read_definition(file, name)?;
    let source = file.display().to_string();
    Ok(shared::set_definition(store, name, document, &source, &change(now)).await?)
}

/// `ripcord flags import --unleash FILE`: every feature and segment of an Unleash
/// feature state (GET /api/client/features). The whole state is checked first, so a
/// broken file imports nothing; then each record that differs is written.
pub async fn import(store: &dyn FlagStore, file: &Path, now: Timestamp) -> anyhow::Result<String> {
    let document = read_json(file)?;
    let source = file.display().to_string();
    Ok(shared::import_state(store, &document, &source, &change(now)).await?)
}

/// `ripcord flags keys create NAME`: stores the key's hash and returns the key, which
/// is shown this once.
pub async fn create_key(
    store: &dyn FlagStore,
    name: &str,
    now: Timestamp,
) -> anyhow::Result<String> {
    shared::check_key_name(name)?;
    let key = shared::new_key().context("cannot read random bytes from /dev/urandom")?;
    shared::create_key(store, name, &key, &change(now)).await?;
    Ok(key)
}

/// `ripcord flags keys list`: names and creation, never the keys.
pub async fn list_keys(store: &dyn FlagStore, as_json: bool) -> anyhow::Result<String> {
    let keys: Vec<KeySummary> = store
        .api_keys()
        .await?
        .iter()
        .map(KeySummary::from)
        .collect();
    render_keys(&keys, as_json)
}

/// `ripcord flags keys revoke NAME`: deletes the key, so that OFREP refuses it.
pub async fn revoke_key(store: &dyn FlagStore, name: &str) -> anyhow::Result<String> {
    Ok(shared::revoke_key(store, name).await?)
}

/// What `ripcord flags keys list` prints.
pub fn render_keys(keys: &[KeySummary], as_json: bool) -> anyhow::Result<String> {
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
    use ripcord_core::flags::stored::{api_key_sha256, flag_set};
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

        let revoked = block_on(revoke_key(&store, "web")).unwrap();
        assert!(
            revoked.starts_with("API key web revoked (created ") && !revoked.contains("rcf_"),
            "{revoked}"
        );
        let names: Vec<String> = block_on(store.api_keys())
            .unwrap()
            .into_iter()
            .map(|k| k.name)
            .collect();
        assert_eq!(names, ["app"]);
        let unknown = block_on(revoke_key(&store, "web")).unwrap_err().to_string();
        assert!(unknown.contains("no API key named \"web\""), "{unknown}");
        assert_eq!(block_on(store.api_keys()).unwrap().len(), 1);
    }
}
