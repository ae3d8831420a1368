//! Changes to the stored flags and OFREP API keys, written once against the core's
//! `FlagStore` port: the command line runs them on the DynamoDB table, and local
//! mode's flags API (`crate::flags_api`) on its SQLite file, so that both check the
//! same things, record the same history and answer the same words.
//!
//! Every change is a conditional write on the version it was based on, recorded with
//! who made it and when; a change that lost a race is reported, not retried blindly,
//! so nobody's edit is overwritten unseen. Every input is checked before anything is
//! written: a broken definition or state writes nothing.

use ripcord_core::domain::Weight;
use ripcord_core::flags::stored::{
    api_key_sha256, check_definition, format_percent, new_rollout_flag, rollout, with_enabled,
    with_rollout,
};
use ripcord_core::flags::unleash::state_from_json;
use ripcord_core::history::Actor;
use ripcord_core::ports::{
    ApiKeyRecord, FlagRecord, FlagRecordKind, FlagStore, FlagStoreError, FlagWrite,
};
use ripcord_core::time::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Why a change was refused or failed. Nothing was written in any case.
#[derive(Debug, thiserror::Error)]
pub enum FlagAdminError {
    /// The flag does not exist.
    #[error("no flag {0:?}; `ripcord flags list` shows the flags")]
    UnknownFlag(String),
    /// The API key does not exist.
    #[error("no API key named {0:?}; `ripcord flags keys list` shows the keys")]
    UnknownKey(String),
    /// An input is not acceptable.
    #[error("{message}")]
    Invalid {
        /// The input to blame, as the flags API names it.
        field: &'static str,
        /// What is wrong and what to do.
        message: String,
    },
    /// The record changed since it was read, or the key name is taken.
    #[error("{0}")]
    Conflict(String),
    /// The store could not be read or written.
    #[error(transparent)]
    Store(FlagStoreError),
}

impl From<FlagStoreError> for FlagAdminError {
    fn from(error: FlagStoreError) -> Self {
        match error {
            FlagStoreError::Conflict { .. } => {
                FlagAdminError::Conflict(format!("{error}; nothing was changed"))
            }
            FlagStoreError::KeyExists(_) => FlagAdminError::Conflict(error.to_string()),
            FlagStoreError::UnknownKey(name) => FlagAdminError::UnknownKey(name),
            other => FlagAdminError::Store(other),
        }
    }
}

/// A store error from writing one of several records, a conflict naming the record.
fn naming_record(error: FlagStoreError, kind: FlagRecordKind, name: &str) -> FlagAdminError {
    match FlagAdminError::from(error) {
        FlagAdminError::Conflict(message) => {
            FlagAdminError::Conflict(format!("{} {name}: {message}", kind.as_str()))
        }
        other => other,
    }
}

fn invalid(field: &'static str, message: impl Into<String>) -> FlagAdminError {
    FlagAdminError::Invalid {
        field,
        message: message.into(),
    }
}

/// An API key as it is listed: never the key, nor its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeySummary {
    /// The key's name.
    pub name: String,
    /// When it was created.
    pub created_at: Timestamp,
    /// Who created it.
    pub created_by: Actor,
}

impl From<&ApiKeyRecord> for KeySummary {
    fn from(record: &ApiKeyRecord) -> Self {
        Self {
            name: record.name.clone(),
            created_at: record.created_at,
            created_by: record.created_by.clone(),
        }
    }
}

/// Who makes a change and when.
#[derive(Debug, Clone)]
pub struct Change {
    /// Recorded in the flag's history.
    pub actor: Actor,
    /// Recorded in the flag's history.
    pub at: Timestamp,
}

impl Change {
    fn write(
        &self,
        kind: FlagRecordKind,
        name: &str,
        expected: u64,
        definition: Value,
        summary: String,
    ) -> FlagWrite {
        FlagWrite {
            kind,
            name: name.to_string(),
            expected_version: expected,
            definition,
            at: self.at,
            actor: self.actor.clone(),
            summary,
        }
    }
}

/// The flag named `name`, or `UnknownFlag`.
pub async fn existing(store: &dyn FlagStore, name: &str) -> Result<FlagRecord, FlagAdminError> {
    store
        .flag_record(FlagRecordKind::Flag, name)
        .await
        .map_err(FlagAdminError::Store)?
        .ok_or_else(|| FlagAdminError::UnknownFlag(name.to_string()))
}

/// The flag's rollout as the listings show it: `25%`, or `-` without any.
pub fn rollout_text(definition: &Value) -> String {
    rollout(definition).map_or_else(|| "-".to_string(), format_percent)
}

/// Turns a flag on or off for everyone at once. Returns what to tell the user.
pub async fn switch(
    store: &dyn FlagStore,
    name: &str,
    enabled: bool,
    change: &Change,
) -> Result<String, FlagAdminError> {
    let record = existing(store, name).await?;
    let word = if enabled { "enabled" } else { "disabled" };
    if ripcord_core::flags::stored::is_enabled(&record.definition) == enabled {
        return Ok(format!(
            "{name} is already {word} (version {})",
            record.version
        ));
    }
    let definition = with_enabled(name, &record.definition, enabled)
        .map_err(|e| invalid("flag", e.to_string()))?;
    let stored = store
        .put_flag_record(change.write(
            FlagRecordKind::Flag,
            name,
            record.version,
            definition,
            word.to_string(),
        ))
        .await?;
    Ok(format!("{name} {word} (version {})", stored.version))
}

/// Sets every flexibleRollout strategy of the flag at `percent`; a flag that does not
/// exist is created, on, with one such strategy. Returns what to tell the user.
pub async fn set_rollout(
    store: &dyn FlagStore,
    name: &str,
    percent: u32,
    change: &Change,
) -> Result<String, FlagAdminError> {
    let weight = Weight::new(percent).map_err(|e| invalid("percent", format!("PERCENT: {e}")))?;
    let current = store
        .flag_record(FlagRecordKind::Flag, name)
        .await
        .map_err(FlagAdminError::Store)?;
    let (expected, definition, summary) = match &current {
        Some(record) => (
            record.version,
            with_rollout(name, &record.definition, weight)
                .map_err(|e| invalid("flag", e.to_string()))?,
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
        .put_flag_record(change.write(
            FlagRecordKind::Flag,
            name,
            expected,
            definition,
            summary.clone(),
        ))
        .await?;
    Ok(format!("{name}: {summary} (version {})", stored.version))
}

/// Replaces the flag's definition with `document`: an Unleash feature (a JSON object),
/// or an Unleash state holding a feature of that name, whose segments that the feature
/// uses are stored too (created, or replaced when they differ), before the flag, so
/// that the flag never refers to a segment the store lacks. `source` names where it
/// came from (a file name), in messages and in the history. Everything is checked
/// before anything is written.
pub async fn set_definition(
    store: &dyn FlagStore,
    name: &str,
    document: Value,
    source: &str,
    change: &Change,
) -> Result<String, FlagAdminError> {
    let (definition, segments) = match document.get("features").and_then(Value::as_array) {
        Some(features) => {
            let feature = features
                .iter()
                .find(|f| f.get("name").and_then(Value::as_str) == Some(name))
                .cloned()
                .ok_or_else(|| {
                    invalid(
                        "definition",
                        format!("{source} has no feature named {name:?}"),
                    )
                })?;
            let segments = used_segments(&feature, &document);
            (feature, segments)
        }
        None => (document, Vec::new()),
    };
    check_definition(FlagRecordKind::Flag, name, &definition)
        .map_err(|e| invalid("definition", format!("{source}: {e}; nothing was changed")))?;
    for (id, segment) in &segments {
        check_definition(FlagRecordKind::Segment, id, segment).map_err(|e| {
            invalid(
                "definition",
                format!("{source}: segment {id}: {e}; nothing was changed"),
            )
        })?;
    }
    let mut notes = Vec::new();
    for (id, segment) in segments {
        if let Some(note) =
            put_if_changed(store, FlagRecordKind::Segment, &id, segment, source, change).await?
        {
            notes.push(format!("segment {id} {note}"));
        }
    }
    let current = store
        .flag_record(FlagRecordKind::Flag, name)
        .await
        .map_err(FlagAdminError::Store)?;
    let flag = if current.as_ref().is_some_and(|r| r.definition == definition) {
        format!(
            "{name} is already this definition (version {})",
            current.map_or(0, |r| r.version)
        )
    } else {
        let expected = current.map_or(0, |r| r.version);
        let stored = store
            .put_flag_record(change.write(
                FlagRecordKind::Flag,
                name,
                expected,
                definition,
                format!("set from {source}"),
            ))
            .await?;
        format!("{name} stored as version {}", stored.version)
    };
    Ok(if notes.is_empty() {
        flag
    } else {
        format!("{flag}; {}", notes.join(", "))
    })
}

/// The segments of an Unleash state that `feature`'s strategies use, by id.
fn used_segments(feature: &Value, document: &Value) -> Vec<(String, Value)> {
    let text = |id: &Value| match id {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    };
    let used: std::collections::BTreeSet<String> = feature["strategies"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|strategy| strategy["segments"].as_array().into_iter().flatten())
        .map(text)
        .collect();
    document["segments"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|segment| {
            let id = text(&segment["id"]);
            used.contains(&id).then(|| (id, segment.clone()))
        })
        .collect()
}

/// Writes `definition` as the next version of the record unless it is already that;
/// returns `created (version N)` or `updated (version N)` when it wrote.
async fn put_if_changed(
    store: &dyn FlagStore,
    kind: FlagRecordKind,
    name: &str,
    definition: Value,
    source: &str,
    change: &Change,
) -> Result<Option<String>, FlagAdminError> {
    let current = store
        .flag_record(kind, name)
        .await
        .map_err(FlagAdminError::Store)?;
    if current.as_ref().is_some_and(|r| r.definition == definition) {
        return Ok(None);
    }
    let expected = current.as_ref().map_or(0, |r| r.version);
    let stored = store
        .put_flag_record(change.write(
            kind,
            name,
            expected,
            definition,
            format!("set from {source}"),
        ))
        .await
        .map_err(|e| naming_record(e, kind, name))?;
    let word = if expected == 0 { "created" } else { "updated" };
    Ok(Some(format!("{word} (version {})", stored.version)))
}

/// Imports every feature and segment of an Unleash feature state (as served by
/// `GET /api/client/features`). The whole state is checked first, so a broken one
/// imports nothing; then each record that differs is written.
pub async fn import_state(
    store: &dyn FlagStore,
    document: &Value,
    source: &str,
    change: &Change,
) -> Result<String, FlagAdminError> {
    if document.get("features").is_none() {
        return Err(invalid(
            "state",
            format!(
                "{source} has no \"features\" array: export the state with GET /api/client/features"
            ),
        ));
    }
    state_from_json(document)
        .map_err(|e| invalid("state", format!("{source}: {e}; nothing was imported")))?;
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
        let current = store
            .flag_record(kind, &name)
            .await
            .map_err(FlagAdminError::Store)?;
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
        let summary = format!("imported from {source}");
        store
            .put_flag_record(change.write(kind, &name, expected, definition, summary))
            .await
            .map_err(|e| naming_record(e, kind, &name))?;
    }
    Ok(format!(
        "imported {source}: {created} created, {updated} updated, {unchanged} unchanged"
    ))
}

/// Checks a key's name: at least one character, no spaces.
pub fn check_key_name(name: &str) -> Result<(), FlagAdminError> {
    if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid(
            "name",
            "a key name needs at least one character and no spaces, e.g. web-frontend",
        ));
    }
    Ok(())
}

/// A new API key: 32 random bytes from the operating system, in hex, after a prefix
/// that makes a leaked key easy to recognise.
///
/// # Errors
///
/// When the operating system's randomness cannot be read.
pub fn new_key() -> std::io::Result<String> {
    use std::io::Read as _;
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes))?;
    Ok(format!("rcf_{}", hex::encode(bytes)))
}

/// Stores `key`'s hash under `name`. The key itself is never stored: the caller shows
/// it this once.
pub async fn create_key(
    store: &dyn FlagStore,
    name: &str,
    key: &str,
    change: &Change,
) -> Result<(), FlagAdminError> {
    check_key_name(name)?;
    store
        .create_api_key(ApiKeyRecord {
            name: name.to_string(),
            sha256: api_key_sha256(key),
            created_at: change.at,
            created_by: change.actor.clone(),
        })
        .await?;
    Ok(())
}

/// Revokes the API key named `name`: its record is deleted, so OFREP refuses the key
/// from its next read of the keys (at once in local mode, which reads again after
/// every change; within one refresh interval on AWS). The name may then be given to
/// a new key. Returns what to tell the user.
pub async fn revoke_key(store: &dyn FlagStore, name: &str) -> Result<String, FlagAdminError> {
    let revoked = store.revoke_api_key(name).await?;
    Ok(format!(
        "API key {name} revoked (created {} by {}); OFREP refuses it within {} seconds, at once in local mode",
        revoked.created_at,
        revoked.created_by.describe(),
        crate::ofrep::DEFAULT_REFRESH.as_secs()
    ))
}
