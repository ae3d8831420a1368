//! `FlagStore` on the same SQLite file: flags and segments in `flag_records`, each
//! change in `flag_changes`, API keys (only their hashes) in `api_keys`. A change and
//! its record land in one `BEGIN IMMEDIATE` transaction, after the version check.

use rusqlite::{OptionalExtension, params};

use super::{OrPort, SqliteStore, at_location, read_doc, read_docs, to_json, write};
use ripcord_core::ports::{
    ApiKeyRecord, BoxFuture, FlagChange, FlagRecord, FlagRecordKind, FlagStore, FlagStoreError,
    FlagWrite,
};

impl SqliteStore {
    /// Runs `work` on the connection, naming the file in errors.
    fn flag_call<T>(
        &self,
        work: impl FnOnce(&mut rusqlite::Connection) -> Result<T, FlagStoreError>,
    ) -> Result<T, FlagStoreError> {
        let mut conn = self.lock();
        work(&mut conn).map_err(|e| match e {
            FlagStoreError::Unavailable(e) => {
                FlagStoreError::Unavailable(at_location(&self.location, e))
            }
            other => other,
        })
    }
}

fn put(conn: &mut rusqlite::Connection, write_: FlagWrite) -> Result<FlagRecord, FlagStoreError> {
    let what = "writing a flag";
    let tx = write(conn)?;
    let current: Option<u64> = tx
        .query_row(
            "SELECT version FROM flag_records WHERE kind = ?1 AND name = ?2",
            params![write_.kind.as_str(), write_.name],
            |row| row.get(0),
        )
        .optional()
        .or_port(what)?;
    if current.unwrap_or(0) != write_.expected_version {
        return Err(FlagStoreError::Conflict {
            kind: write_.kind,
            name: write_.name,
            expected: write_.expected_version,
        });
    }
    let record = FlagRecord {
        kind: write_.kind,
        name: write_.name,
        version: write_.expected_version + 1,
        definition: write_.definition,
        updated_at: write_.at,
        updated_by: write_.actor,
    };
    let change = FlagChange {
        record: record.clone(),
        summary: write_.summary,
    };
    tx.execute(
        "INSERT INTO flag_records (kind, name, version, doc) VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT (kind, name) DO UPDATE SET version = excluded.version, doc = excluded.doc",
        params![
            record.kind.as_str(),
            record.name,
            record.version,
            to_json(&record, what)?
        ],
    )
    .or_port(what)?;
    tx.execute(
        "INSERT INTO flag_changes (kind, name, version, doc) VALUES (?1, ?2, ?3, ?4)",
        params![
            record.kind.as_str(),
            record.name,
            record.version,
            to_json(&change, what)?
        ],
    )
    .or_port(what)?;
    tx.commit().or_port(what)?;
    Ok(record)
}

impl FlagStore for SqliteStore {
    fn flag_records(&self) -> BoxFuture<'_, Result<Vec<FlagRecord>, FlagStoreError>> {
        Box::pin(async move {
            self.flag_call(|conn| {
                // 'segment' > 'flag' as text, so segments come first in descending order.
                Ok(read_docs(
                    conn,
                    "SELECT doc FROM flag_records ORDER BY kind DESC, name",
                    [],
                    "listing flags",
                )?)
            })
        })
    }

    fn flag_record<'a>(
        &'a self,
        kind: FlagRecordKind,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<FlagRecord>, FlagStoreError>> {
        Box::pin(async move {
            self.flag_call(|conn| {
                Ok(read_doc(
                    conn,
                    "SELECT doc FROM flag_records WHERE kind = ?1 AND name = ?2",
                    params![kind.as_str(), name],
                    "reading a flag",
                )?)
            })
        })
    }

    fn put_flag_record(
        &self,
        write: FlagWrite,
    ) -> BoxFuture<'_, Result<FlagRecord, FlagStoreError>> {
        Box::pin(async move { self.flag_call(|conn| put(conn, write)) })
    }

    fn flag_changes<'a>(
        &'a self,
        kind: FlagRecordKind,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Vec<FlagChange>, FlagStoreError>> {
        Box::pin(async move {
            self.flag_call(|conn| {
                Ok(read_docs(
                    conn,
                    "SELECT doc FROM flag_changes WHERE kind = ?1 AND name = ?2 ORDER BY version",
                    params![kind.as_str(), name],
                    "reading a flag's changes",
                )?)
            })
        })
    }

    fn create_api_key(&self, key: ApiKeyRecord) -> BoxFuture<'_, Result<(), FlagStoreError>> {
        Box::pin(async move {
            self.flag_call(|conn| {
                let what = "storing an API key";
                let inserted = conn
                    .execute(
                        "INSERT INTO api_keys (name, doc) VALUES (?1, ?2) ON CONFLICT (name) DO NOTHING",
                        params![key.name, to_json(&key, what)?],
                    )
                    .or_port(what)?;
                if inserted == 0 {
                    return Err(FlagStoreError::KeyExists(key.name));
                }
                Ok(())
            })
        })
    }

    fn api_keys(&self) -> BoxFuture<'_, Result<Vec<ApiKeyRecord>, FlagStoreError>> {
        Box::pin(async move {
            self.flag_call(|conn| {
                Ok(read_docs(
                    conn,
                    "SELECT doc FROM api_keys ORDER BY name",
                    [],
                    "listing API keys",
                )?)
            })
        })
    }

    fn revoke_api_key<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<ApiKeyRecord, FlagStoreError>> {
        Box::pin(async move {
            self.flag_call(|conn| {
                let removed: Option<ApiKeyRecord> = read_doc(
                    conn,
                    "DELETE FROM api_keys WHERE name = ?1 RETURNING doc",
                    params![name],
                    "revoking an API key",
                )?;
                removed.ok_or_else(|| FlagStoreError::UnknownKey(name.to_string()))
            })
        })
    }
}
