//! `MemoryFlagStore`: the flag store in memory, with the same rules as the durable ones.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::locked;
use crate::ports::{
    ApiKeyRecord, BoxFuture, FlagChange, FlagRecord, FlagRecordKind, FlagStore, FlagStoreError,
    FlagWrite,
};

#[derive(Debug, Default)]
struct Inner {
    records: BTreeMap<(FlagRecordKind, String), FlagRecord>,
    changes: BTreeMap<(FlagRecordKind, String), Vec<FlagChange>>,
    keys: BTreeMap<String, ApiKeyRecord>,
}

/// Flags, segments and API keys in memory.
#[derive(Debug, Default)]
pub struct MemoryFlagStore {
    inner: Mutex<Inner>,
}

impl MemoryFlagStore {
    /// An empty flag store.
    pub fn new() -> Self {
        Self::default()
    }
}

fn sorted(records: impl Iterator<Item = FlagRecord>) -> Vec<FlagRecord> {
    let mut records: Vec<FlagRecord> = records.collect();
    records.sort_by(|a, b| (segment_first(a.kind), &a.name).cmp(&(segment_first(b.kind), &b.name)));
    records
}

/// Segments sort before flags, as every store lists them.
fn segment_first(kind: FlagRecordKind) -> u8 {
    match kind {
        FlagRecordKind::Segment => 0,
        FlagRecordKind::Flag => 1,
    }
}

impl FlagStore for MemoryFlagStore {
    fn flag_records(&self) -> BoxFuture<'_, Result<Vec<FlagRecord>, FlagStoreError>> {
        Box::pin(async move { Ok(sorted(locked(&self.inner).records.values().cloned())) })
    }

    fn flag_record<'a>(
        &'a self,
        kind: FlagRecordKind,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<FlagRecord>, FlagStoreError>> {
        Box::pin(async move {
            Ok(locked(&self.inner)
                .records
                .get(&(kind, name.to_string()))
                .cloned())
        })
    }

    fn put_flag_record(
        &self,
        write: FlagWrite,
    ) -> BoxFuture<'_, Result<FlagRecord, FlagStoreError>> {
        Box::pin(async move {
            let mut inner = locked(&self.inner);
            let key = (write.kind, write.name.clone());
            let current = inner.records.get(&key).map_or(0, |r| r.version);
            if current != write.expected_version {
                return Err(FlagStoreError::Conflict {
                    kind: write.kind,
                    name: write.name,
                    expected: write.expected_version,
                });
            }
            let record = FlagRecord {
                kind: write.kind,
                name: write.name,
                version: current + 1,
                definition: write.definition,
                updated_at: write.at,
                updated_by: write.actor,
            };
            inner.records.insert(key.clone(), record.clone());
            inner.changes.entry(key).or_default().push(FlagChange {
                record: record.clone(),
                summary: write.summary,
            });
            Ok(record)
        })
    }

    fn flag_changes<'a>(
        &'a self,
        kind: FlagRecordKind,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Vec<FlagChange>, FlagStoreError>> {
        Box::pin(async move {
            Ok(locked(&self.inner)
                .changes
                .get(&(kind, name.to_string()))
                .cloned()
                .unwrap_or_default())
        })
    }

    fn create_api_key(&self, key: ApiKeyRecord) -> BoxFuture<'_, Result<(), FlagStoreError>> {
        Box::pin(async move {
            let mut inner = locked(&self.inner);
            if inner.keys.contains_key(&key.name) {
                return Err(FlagStoreError::KeyExists(key.name));
            }
            inner.keys.insert(key.name.clone(), key);
            Ok(())
        })
    }

    fn api_keys(&self) -> BoxFuture<'_, Result<Vec<ApiKeyRecord>, FlagStoreError>> {
        Box::pin(async move { Ok(locked(&self.inner).keys.values().cloned().collect()) })
    }

    fn revoke_api_key<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<ApiKeyRecord, FlagStoreError>> {
        Box::pin(async move {
            locked(&self.inner)
                .keys
                .remove(name)
                .ok_or_else(|| FlagStoreError::UnknownKey(name.to_string()))
        })
    }
}
