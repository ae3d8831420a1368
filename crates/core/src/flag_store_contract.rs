//! The `FlagStore` contract as a test suite that every flag store runs against
//! itself: the in-memory one here, DynamoDB against the local emulator, SQLite in
//! local mode.
//!
//! Each check takes a store and a prefix that makes its names unique, so that checks
//! can share one store. A check panics with a message naming the broken rule.

use std::time::Duration;

use serde_json::{Value, json};

use crate::history::Actor;
use crate::ports::{ApiKeyRecord, FlagRecordKind, FlagStore, FlagStoreError, FlagWrite};
use crate::time::Timestamp;

const T0: Timestamp = Timestamp::from_millis(1_795_675_415_000);

fn write(
    kind: FlagRecordKind,
    name: &str,
    expected_version: u64,
    definition: Value,
    secs: u64,
    summary: &str,
) -> FlagWrite {
    FlagWrite {
        kind,
        name: name.to_string(),
        expected_version,
        definition,
        at: T0.plus(Duration::from_secs(secs)),
        actor: Actor::Cli { user: "ops".into() },
        summary: summary.to_string(),
    }
}

fn flag(name: &str, rollout: &str) -> Value {
    json!({"name": name, "enabled": true, "strategies": [
        {"name": "flexibleRollout", "parameters": {"rollout": rollout, "groupId": name}}
    ]})
}

/// Versions start at 1 and rise by one; a write on a stale version, or a create of a
/// record that exists, is refused and writes nothing; every change is kept in order.
pub async fn writes_are_versioned_and_conditional(store: &dyn FlagStore, prefix: &str) {
    let name = format!("{prefix}-versioned");
    let first = store
        .put_flag_record(write(
            FlagRecordKind::Flag,
            &name,
            0,
            flag(&name, "0"),
            0,
            "created",
        ))
        .await
        .expect("a new flag is stored");
    assert_eq!(first.version, 1);
    assert_eq!(first.definition, flag(&name, "0"));
    let second = store
        .put_flag_record(write(
            FlagRecordKind::Flag,
            &name,
            1,
            flag(&name, "10"),
            1,
            "rollout 0% → 10%",
        ))
        .await
        .expect("the next version is stored");
    assert_eq!(second.version, 2);
    for stale in [0, 1, 3] {
        let refused = store
            .put_flag_record(write(
                FlagRecordKind::Flag,
                &name,
                stale,
                flag(&name, "99"),
                2,
                "stale",
            ))
            .await;
        assert!(
            matches!(refused, Err(FlagStoreError::Conflict { expected, .. }) if expected == stale),
            "a write based on version {stale} of a flag at version 2 is refused, got {refused:?}"
        );
    }
    let stored = store
        .flag_record(FlagRecordKind::Flag, &name)
        .await
        .expect("readable")
        .expect("present");
    assert_eq!(stored, second, "refused writes change nothing");
    let changes = store
        .flag_changes(FlagRecordKind::Flag, &name)
        .await
        .expect("readable");
    let seen: Vec<(u64, &str, Timestamp)> = changes
        .iter()
        .map(|c| (c.record.version, c.summary.as_str(), c.record.updated_at))
        .collect();
    assert_eq!(
        seen,
        vec![
            (1, "created", T0),
            (2, "rollout 0% → 10%", T0.plus(Duration::from_secs(1)))
        ],
        "each accepted change is kept, oldest first, and no refused one"
    );
    assert_eq!(changes[1].record, second);
    assert_eq!(
        changes[0].record.updated_by,
        Actor::Cli { user: "ops".into() }
    );
    assert!(
        store
            .flag_record(FlagRecordKind::Flag, &format!("{prefix}-absent"))
            .await
            .expect("readable")
            .is_none()
    );
    assert!(
        store
            .flag_changes(FlagRecordKind::Flag, &format!("{prefix}-absent"))
            .await
            .expect("readable")
            .is_empty()
    );
}

/// Flags and segments are separate name spaces, listed segments first, then by name;
/// definitions come back exactly as written.
pub async fn records_are_listed_and_round_trip(store: &dyn FlagStore, prefix: &str) {
    let prefix = &format!("{prefix}-list");
    let odd = json!({
        "name": format!("{prefix}-b"),
        "enabled": false,
        "description": "naïve — ünïcode \"quoted\"",
        "strategies": [{"name": "flexibleRollout", "parameters": {"rollout": "12.5"}}],
        "variants": [{"name": "v", "weight": 1000, "payload": {"type": "number", "value": "0.1"}}],
        "extra": {"f": 0.30000000000000004, "big": 12345678901234567u64, "list": [null, true]},
    });
    let same_name = format!("{prefix}-1");
    let writes = [
        write(
            FlagRecordKind::Flag,
            &format!("{prefix}-b"),
            0,
            odd.clone(),
            0,
            "b",
        ),
        write(
            FlagRecordKind::Flag,
            &format!("{prefix}-a"),
            0,
            flag(&format!("{prefix}-a"), "5"),
            0,
            "a",
        ),
        write(
            FlagRecordKind::Flag,
            &same_name,
            0,
            flag(&same_name, "1"),
            0,
            "flag",
        ),
        write(
            FlagRecordKind::Segment,
            &same_name,
            0,
            json!({"id": same_name, "constraints": []}),
            0,
            "segment",
        ),
    ];
    for w in writes {
        store.put_flag_record(w).await.expect("stored");
    }
    let listed: Vec<(FlagRecordKind, String)> = store
        .flag_records()
        .await
        .expect("readable")
        .into_iter()
        .filter(|r| r.name.starts_with(&format!("{prefix}-")))
        .map(|r| (r.kind, r.name))
        .collect();
    assert_eq!(
        listed,
        vec![
            (FlagRecordKind::Segment, format!("{prefix}-1")),
            (FlagRecordKind::Flag, format!("{prefix}-1")),
            (FlagRecordKind::Flag, format!("{prefix}-a")),
            (FlagRecordKind::Flag, format!("{prefix}-b")),
        ],
        "segments first, then flags, each by name; a flag and a segment may share a name"
    );
    let b = store
        .flag_record(FlagRecordKind::Flag, &format!("{prefix}-b"))
        .await
        .expect("readable")
        .expect("present");
    assert_eq!(b.definition, odd, "the definition comes back exactly");
}

/// API keys are kept by name, only as hashes; a name is taken once.
pub async fn api_keys_are_unique_by_name(store: &dyn FlagStore, prefix: &str) {
    let key = |name: &str, hash: &str| ApiKeyRecord {
        name: format!("{prefix}-{name}"),
        sha256: hash.to_string(),
        created_at: T0,
        created_by: Actor::Cli { user: "ops".into() },
    };
    let web = key("web", &"ab".repeat(32));
    let app = key("app", &"cd".repeat(32));
    store.create_api_key(web.clone()).await.expect("stored");
    store.create_api_key(app.clone()).await.expect("stored");
    let again = store.create_api_key(key("web", &"ef".repeat(32))).await;
    assert_eq!(
        again,
        Err(FlagStoreError::KeyExists(web.name.clone())),
        "a second key with a taken name is refused"
    );
    let keys: Vec<ApiKeyRecord> = store
        .api_keys()
        .await
        .expect("readable")
        .into_iter()
        .filter(|k| k.name.starts_with(&format!("{prefix}-")))
        .collect();
    assert_eq!(
        keys,
        vec![app, web],
        "by name, and the first key kept its hash"
    );
}

/// Revoking a key deletes it and returns it as it was; an unknown name is an error
/// and changes nothing; the name may then be taken again by a new key.
pub async fn api_keys_are_revoked_by_name(store: &dyn FlagStore, prefix: &str) {
    let prefix = &format!("{prefix}-revoke");
    let mine = |keys: Vec<ApiKeyRecord>| -> Vec<ApiKeyRecord> {
        keys.into_iter()
            .filter(|k| k.name.starts_with(&format!("{prefix}-")))
            .collect()
    };
    let key = |name: &str, hash: &str| ApiKeyRecord {
        name: format!("{prefix}-{name}"),
        sha256: hash.to_string(),
        created_at: T0,
        created_by: Actor::Cli { user: "ops".into() },
    };
    let leaked = key("leaked", &"ab".repeat(32));
    let kept = key("kept", &"cd".repeat(32));
    store.create_api_key(leaked.clone()).await.expect("stored");
    store.create_api_key(kept.clone()).await.expect("stored");

    let unknown = format!("{prefix}-unknown");
    let refused = store.revoke_api_key(&unknown).await;
    assert_eq!(
        refused,
        Err(FlagStoreError::UnknownKey(unknown)),
        "revoking a name no key has is refused"
    );
    assert_eq!(
        mine(store.api_keys().await.expect("readable")),
        vec![kept.clone(), leaked.clone()],
        "a refused revocation changes nothing"
    );

    let revoked = store
        .revoke_api_key(&leaked.name)
        .await
        .expect("a stored key is revoked");
    assert_eq!(revoked, leaked, "the revoked key's record comes back");
    assert_eq!(
        mine(store.api_keys().await.expect("readable")),
        vec![kept.clone()],
        "a revoked key is no longer listed; the others stay"
    );
    assert_eq!(
        store.revoke_api_key(&leaked.name).await,
        Err(FlagStoreError::UnknownKey(leaked.name.clone())),
        "a key is revoked once"
    );

    let renewed = key("leaked", &"ef".repeat(32));
    store
        .create_api_key(renewed.clone())
        .await
        .expect("a revoked key's name may be taken by a new key");
    let listed = mine(store.api_keys().await.expect("readable"));
    assert_eq!(listed, vec![kept, renewed], "only the new hash is listed");
    assert!(
        listed.iter().all(|k| k.sha256 != leaked.sha256),
        "the revoked hash never comes back"
    );
}

/// Runs every check of the contract.
pub async fn check_all(store: &dyn FlagStore, prefix: &str) {
    writes_are_versioned_and_conditional(store, prefix).await;
    records_are_listed_and_round_trip(store, prefix).await;
    api_keys_are_unique_by_name(store, prefix).await;
    api_keys_are_revoked_by_name(store, prefix).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::{MemoryFlagStore, block_on};

    #[test]
    fn the_memory_flag_store_keeps_the_contract() {
        block_on(check_all(&MemoryFlagStore::new(), "memory"));
    }
}
