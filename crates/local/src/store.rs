//! `SqliteStore`: local mode's durable state in one SQLite file, in place of the
//! DynamoDB table, keeping the same contract as every other store
//! (`ripcord_core::store_contract`).
//!
//! Each record is stored whole as JSON, in the serde form the core defines, next to
//! the few columns that lookups and constraints need: a deployment's service,
//! revision, active flag and creation time; an event's or a command's sequence number.
//! The same file keeps feature flags (module `flags`: `FlagStore` on tables of its
//! own). Every write whose parts must land together runs in one `BEGIN IMMEDIATE`
//! transaction. It takes the file's write lock before it reads anything, so a revision
//! check and the write that depends on it cannot be split by another writer, whether
//! that writer is a connection in this process or in another one.
//!
//! The `Store` methods return futures, but the SQLite calls inside them are synchronous
//! and finish on the first poll. That is acceptable because the file is local and in
//! WAL mode: readers never wait for the writer, a write holds the lock for a handful of
//! page writes, and a call that finds the lock taken waits at most `BUSY_TIMEOUT`
//! before it fails as transient. Moving each call to a thread pool would tie the store
//! to an async runtime for no gain at this scale.

use std::fmt;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{
    Connection, ErrorCode, OptionalExtension, Params, Transaction, TransactionBehavior, params,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use ripcord_core::deployment::{Command, CommandKind, Deployment};
use ripcord_core::domain::{DeploymentId, ServiceName};
use ripcord_core::history::{Actor, Event};
use ripcord_core::ports::{
    BoxFuture, Commit, NewDeployment, PortError, ServiceStatus, Store, StoreError, StoredConfig,
};
use ripcord_core::time::Timestamp;

mod flags;

/// How long a call waits for another connection to release the file's write lock
/// before it fails with a transient error.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The schema, one script per version: entry `n` moves a file from version `n` to
/// `n + 1`. A new version is a new entry; published entries never change, so that every
/// file, however old, reaches the same schema.
const MIGRATIONS: &[&str] = &[
    // Version 1. STRICT tables refuse a value of the wrong type instead of storing it.
    "
    CREATE TABLE configs (
        version    INTEGER PRIMARY KEY,
        text       TEXT    NOT NULL,
        applied_at INTEGER NOT NULL
    ) STRICT;

    CREATE TABLE deployments (
        id         TEXT    PRIMARY KEY,
        service    TEXT    NOT NULL,
        doc        TEXT    NOT NULL,
        revision   INTEGER NOT NULL,
        active     INTEGER NOT NULL CHECK (active IN (0, 1)),
        created_at INTEGER NOT NULL
    ) STRICT;
    CREATE INDEX deployments_by_active ON deployments (active);
    CREATE INDEX deployments_by_created_at ON deployments (created_at);
    -- The rule of one active deployment per service, held by the file itself.
    CREATE UNIQUE INDEX deployments_one_active_per_service
        ON deployments (service) WHERE active = 1;

    CREATE TABLE events (
        deployment_id TEXT    NOT NULL REFERENCES deployments (id),
        seq           INTEGER NOT NULL,
        doc           TEXT    NOT NULL,
        PRIMARY KEY (deployment_id, seq)
    ) STRICT, WITHOUT ROWID;

    CREATE TABLE commands (
        deployment_id TEXT    NOT NULL REFERENCES deployments (id),
        seq           INTEGER NOT NULL,
        doc           TEXT    NOT NULL,
        PRIMARY KEY (deployment_id, seq)
    ) STRICT, WITHOUT ROWID;

    CREATE TABLE service_status (
        service TEXT PRIMARY KEY,
        doc     TEXT NOT NULL
    ) STRICT;

    CREATE TABLE idempotency (
        key        TEXT    PRIMARY KEY,
        value      TEXT    NOT NULL,
        expires_at INTEGER NOT NULL
    ) STRICT;
    CREATE INDEX idempotency_by_expires_at ON idempotency (expires_at);
    ",
    // Version 2: feature flags and segments, their changes, and hashed API keys.
    "
    CREATE TABLE flag_records (
        kind    TEXT    NOT NULL CHECK (kind IN ('flag', 'segment')),
        name    TEXT    NOT NULL,
        version INTEGER NOT NULL,
        doc     TEXT    NOT NULL,
        PRIMARY KEY (kind, name)
    ) STRICT, WITHOUT ROWID;

    CREATE TABLE flag_changes (
        kind    TEXT    NOT NULL,
        name    TEXT    NOT NULL,
        version INTEGER NOT NULL,
        doc     TEXT    NOT NULL,
        PRIMARY KEY (kind, name, version)
    ) STRICT, WITHOUT ROWID;

    CREATE TABLE api_keys (
        name TEXT PRIMARY KEY,
        doc  TEXT NOT NULL
    ) STRICT;
    ",
];

/// The schema version this build writes, kept in the file's `user_version`.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// The `Store` in one SQLite file, or in memory, over one connection.
///
/// Several `SqliteStore`s may open the same file, in one process or several: the
/// file's write lock orders their writes, and the revision check in `commit` turns a
/// lost race into `StoreError::Conflict`, as with any other store.
pub struct SqliteStore {
    conn: Mutex<Connection>,
    /// The file's path, or `:memory:`, to name the file in error messages.
    location: String,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens the store in the file at `path`, creating the file and its schema if they
    /// are missing. Everything stored by an earlier open of the same file is there, so
    /// a restarted process resumes its in-flight deployments.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, PortError> {
        let location = path.as_ref().display().to_string();
        let conn = Connection::open(path.as_ref())
            .or_port("opening the file")
            .map_err(|e| at_location(&location, e))?;
        Self::set_up(conn, location)
    }

    /// A store that lives in memory and is gone when dropped, with the same schema and
    /// rules as a file.
    pub fn in_memory() -> Result<Self, PortError> {
        let location = ":memory:".to_string();
        let conn = Connection::open_in_memory()
            .or_port("opening an in-memory database")
            .map_err(|e| at_location(&location, e))?;
        Self::set_up(conn, location)
    }

    fn set_up(mut conn: Connection, location: String) -> Result<Self, PortError> {
        let prepared = (|| {
            // The busy timeout comes first, so that every later statement, the schema
            // migration included, waits for a writer in another process.
            conn.busy_timeout(BUSY_TIMEOUT)
                .or_port("setting the busy timeout")?;
            // WAL lets readers (status, history, a dashboard) go on while a pass
            // writes. A file system without shared memory keeps the rollback journal;
            // the rules hold either way, only readers then wait for writers, so the
            // mode granted is not checked.
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| {
                row.get::<_, String>(0)
            })
            .or_port("switching to WAL mode")?;
            // A commit is recorded before traffic moves, so it must survive a power
            // cut: FULL syncs the WAL at every commit.
            conn.pragma_update(None, "synchronous", "FULL")
                .or_port("setting synchronous mode")?;
            conn.pragma_update(None, "foreign_keys", "ON")
                .or_port("enabling foreign keys")?;
            migrate(&mut conn)
        })();
        prepared.map_err(|e| at_location(&location, e))?;
        Ok(Self {
            conn: Mutex::new(conn),
            location,
        })
    }

    /// Runs `work` on the connection. Errors name the file.
    fn call<T>(
        &self,
        work: impl FnOnce(&mut Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.lock();
        work(&mut conn).map_err(|e| match e {
            StoreError::Unavailable(e) => StoreError::Unavailable(at_location(&self.location, e)),
            other => other,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while the lock was held cannot leave a transaction open: rusqlite
        // rolls an unfinished transaction back when it is dropped during the unwind.
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Brings the file's schema up to `SCHEMA_VERSION`, in one transaction so that two
/// processes opening a new file at once do not both create it.
fn migrate(conn: &mut Connection) -> Result<(), PortError> {
    let tx = write(conn)?;
    let found: u32 = tx
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .or_port("reading the schema version")?;
    if found > SCHEMA_VERSION {
        return Err(PortError::permanent(format!(
            "the file has schema version {found}, newer than version {SCHEMA_VERSION} that \
             this build knows: open it with a newer ripcord, or start from a new file"
        )));
    }
    if found == SCHEMA_VERSION {
        // Up to date: nothing to write, and the transaction ends without a sync.
        return Ok(());
    }
    for (from, script) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        tx.execute_batch(script)
            .or_port(&format!("creating schema version {}", from + 1))?;
    }
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)
        .or_port("recording the schema version")?;
    tx.commit().or_port("committing the schema")
}

/// Starts a write transaction holding the file's write lock from its first statement.
fn write(conn: &mut Connection) -> Result<Transaction<'_>, PortError> {
    conn.transaction_with_behavior(TransactionBehavior::Immediate)
        .or_port("taking the write lock")
}

/// Turns SQLite's errors into the port's: a lock that stayed taken is worth retrying,
/// anything else (a full disk, a broken file, a violated constraint) is not.
fn sqlite_error(what: &str, error: rusqlite::Error) -> PortError {
    match error.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => PortError::transient(format!(
            "{what}: {error}; another connection holds the file's write lock (a call \
             waits up to {BUSY_TIMEOUT:?} for it): try again"
        )),
        _ => PortError::permanent(format!("{what}: {error}")),
    }
}

fn at_location(location: &str, error: PortError) -> PortError {
    PortError {
        kind: error.kind,
        message: format!("SQLite store {location}: {}", error.message),
    }
}

/// Names what a SQLite call was doing when it failed.
trait OrPort<T> {
    fn or_port(self, what: &str) -> Result<T, PortError>;
}

impl<T> OrPort<T> for rusqlite::Result<T> {
    fn or_port(self, what: &str) -> Result<T, PortError> {
        self.map_err(|e| sqlite_error(what, e))
    }
}

fn to_json<T: Serialize>(value: &T, what: &str) -> Result<String, PortError> {
    serde_json::to_string(value)
        .map_err(|e| PortError::permanent(format!("{what}: cannot encode the record: {e}")))
}

fn from_json<T: DeserializeOwned>(text: &str, what: &str) -> Result<T, PortError> {
    serde_json::from_str(text).map_err(|e| {
        PortError::permanent(format!(
            "{what}: a stored record does not decode ({e}); the file was written by another \
             version of ripcord or changed by hand"
        ))
    })
}

/// Reads the JSON documents in the first column of a query's rows.
fn read_docs<T: DeserializeOwned>(
    conn: &Connection,
    sql: &str,
    params: impl Params,
    what: &str,
) -> Result<Vec<T>, PortError> {
    let mut statement = conn.prepare_cached(sql).or_port(what)?;
    let texts = statement
        .query_map(params, |row| row.get::<_, String>(0))
        .or_port(what)?
        .collect::<Result<Vec<String>, _>>()
        .or_port(what)?;
    texts.iter().map(|text| from_json(text, what)).collect()
}

/// Reads the JSON document in the first column of a query's only row, if any.
fn read_doc<T: DeserializeOwned>(
    conn: &Connection,
    sql: &str,
    params: impl Params,
    what: &str,
) -> Result<Option<T>, PortError> {
    let text: Option<String> = conn
        .prepare_cached(sql)
        .and_then(|mut s| s.query_row(params, |row| row.get(0)).optional())
        .or_port(what)?;
    text.map(|t| from_json(&t, what)).transpose()
}

/// Appends events to a deployment's history. They are filed under `id`, the
/// deployment being written, as the in-memory store files them.
fn insert_events(
    conn: &Connection,
    id: &DeploymentId,
    events: &[Event],
    what: &str,
) -> Result<(), PortError> {
    let mut statement = conn
        .prepare_cached("INSERT INTO events (deployment_id, seq, doc) VALUES (?1, ?2, ?3)")
        .or_port(what)?;
    for event in events {
        statement
            .execute(params![id.as_str(), event.seq, to_json(event, what)?])
            .or_port(what)?;
    }
    Ok(())
}

impl Store for SqliteStore {
    fn latest_config(&self) -> BoxFuture<'_, Result<Option<StoredConfig>, StoreError>> {
        Box::pin(async move {
            self.call(|conn| {
                Ok(conn
                    .query_row(
                        "SELECT version, text, applied_at FROM configs \
                         ORDER BY version DESC LIMIT 1",
                        [],
                        |row| {
                            Ok(StoredConfig {
                                version: row.get(0)?,
                                text: row.get(1)?,
                                applied_at: Timestamp::from_millis(row.get(2)?),
                            })
                        },
                    )
                    .optional()
                    .or_port("reading the latest configuration")?)
            })
        })
    }

    fn put_config<'a>(
        &'a self,
        text: &'a str,
        previous: u64,
        at: Timestamp,
    ) -> BoxFuture<'a, Result<StoredConfig, StoreError>> {
        Box::pin(async move {
            self.call(|conn| {
                let what = "storing a configuration";
                let tx = write(conn)?;
                let latest: u64 = tx
                    .query_row("SELECT COALESCE(MAX(version), 0) FROM configs", [], |row| {
                        row.get(0)
                    })
                    .or_port(what)?;
                if latest != previous {
                    return Err(StoreError::ConfigConflict { expected: previous });
                }
                let stored = StoredConfig {
                    version: previous + 1,
                    text: text.to_string(),
                    applied_at: at,
                };
                tx.execute(
                    "INSERT INTO configs (version, text, applied_at) VALUES (?1, ?2, ?3)",
                    params![stored.version, stored.text, at.as_millis()],
                )
                .or_port(what)?;
                tx.commit().or_port(what)?;
                Ok(stored)
            })
        })
    }

    fn deployment<'a>(
        &'a self,
        id: &'a DeploymentId,
    ) -> BoxFuture<'a, Result<Option<Deployment>, StoreError>> {
        Box::pin(async move {
            self.call(|conn| {
                Ok(read_doc(
                    conn,
                    "SELECT doc FROM deployments WHERE id = ?1",
                    [id.as_str()],
                    &format!("reading deployment {id}"),
                )?)
            })
        })
    }

    fn active_deployments(&self) -> BoxFuture<'_, Result<Vec<Deployment>, StoreError>> {
        Box::pin(async move {
            self.call(|conn| {
                Ok(read_docs(
                    conn,
                    "SELECT doc FROM deployments WHERE active = 1 ORDER BY id",
                    [],
                    "listing active deployments",
                )?)
            })
        })
    }

    fn deployments_since<'a>(
        &'a self,
        service: Option<&'a ServiceName>,
        since: Timestamp,
    ) -> BoxFuture<'a, Result<Vec<Deployment>, StoreError>> {
        Box::pin(async move {
            self.call(|conn| {
                Ok(read_docs(
                    conn,
                    "SELECT doc FROM deployments \
                     WHERE created_at >= ?1 AND (?2 IS NULL OR service = ?2) \
                     ORDER BY created_at, id",
                    params![since.as_millis(), service.map(ServiceName::as_str)],
                    "listing deployments",
                )?)
            })
        })
    }

    fn create_deployment(&self, new: NewDeployment) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            self.call(|conn| {
                let d = &new.deployment;
                let what = &format!("creating deployment {}", d.id);
                let tx = write(conn)?;
                // The deployment's creation time is the store's only clock: a delivery
                // id whose claim ran out before it is forgotten, as DynamoDB's TTL
                // forgets it. On a refusal this is rolled back with everything else.
                tx.execute(
                    "DELETE FROM idempotency WHERE expires_at < ?1",
                    [d.created_at.as_millis()],
                )
                .or_port(what)?;
                if let Some((key, _)) = &new.idempotency {
                    let existing: Option<String> = tx
                        .query_row(
                            "SELECT value FROM idempotency WHERE key = ?1",
                            [key],
                            |row| row.get(0),
                        )
                        .optional()
                        .or_port(what)?;
                    if let Some(existing) = existing {
                        return Err(StoreError::Duplicate { existing });
                    }
                }
                let active: Option<String> = tx
                    .query_row(
                        "SELECT id FROM deployments WHERE service = ?1 AND active = 1",
                        [d.service.as_str()],
                        |row| row.get(0),
                    )
                    .optional()
                    .or_port(what)?;
                if let Some(active) = active {
                    let active = DeploymentId::new(active).map_err(|e| {
                        PortError::permanent(format!("{what}: the active deployment's id: {e}"))
                    })?;
                    return Err(StoreError::AlreadyActive {
                        service: d.service.clone(),
                        active,
                    });
                }
                let exists = tx
                    .query_row(
                        "SELECT 1 FROM deployments WHERE id = ?1",
                        [d.id.as_str()],
                        |_| Ok(()),
                    )
                    .optional()
                    .or_port(what)?
                    .is_some();
                if exists {
                    return Err(StoreError::Conflict {
                        id: d.id.clone(),
                        expected: 0,
                    });
                }
                tx.execute(
                    "INSERT INTO deployments (id, service, doc, revision, active, created_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![
                        d.id.as_str(),
                        d.service.as_str(),
                        to_json(d, what)?,
                        d.revision,
                        d.is_active(),
                        d.created_at.as_millis(),
                    ],
                )
                .or_port(what)?;
                insert_events(&tx, &d.id, &new.events, what)?;
                if let Some((key, expires_at)) = &new.idempotency {
                    tx.execute(
                        "INSERT INTO idempotency (key, value, expires_at) VALUES (?1, ?2, ?3)",
                        params![key, d.id.as_str(), expires_at.as_millis()],
                    )
                    .or_port(what)?;
                }
                tx.commit().or_port(what)?;
                Ok(())
            })
        })
    }

    fn commit(&self, commit: Commit) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            self.call(|conn| {
                let d = &commit.deployment;
                let what = &format!("committing deployment {}", d.id);
                let tx = write(conn)?;
                let current: Option<u64> = tx
                    .query_row(
                        "SELECT revision FROM deployments WHERE id = ?1",
                        [d.id.as_str()],
                        |row| row.get(0),
                    )
                    .optional()
                    .or_port(what)?;
                if current != Some(commit.expected_revision)
                    || d.revision != commit.expected_revision + 1
                {
                    return Err(StoreError::Conflict {
                        id: d.id.clone(),
                        expected: commit.expected_revision,
                    });
                }
                tx.execute(
                    "UPDATE deployments SET doc = ?2, revision = ?3, active = ?4 WHERE id = ?1",
                    params![d.id.as_str(), to_json(d, what)?, d.revision, d.is_active()],
                )
                .or_port(what)?;
                insert_events(&tx, &d.id, &commit.events, what)?;
                if let Some(status) = &commit.service {
                    tx.execute(
                        "INSERT INTO service_status (service, doc) VALUES (?1, ?2) \
                         ON CONFLICT (service) DO UPDATE SET doc = excluded.doc",
                        params![status.service.as_str(), to_json(status, what)?],
                    )
                    .or_port(what)?;
                }
                tx.commit().or_port(what)?;
                Ok(())
            })
        })
    }

    fn events<'a>(&'a self, id: &'a DeploymentId) -> BoxFuture<'a, Result<Vec<Event>, StoreError>> {
        Box::pin(async move {
            self.call(|conn| {
                Ok(read_docs(
                    conn,
                    "SELECT doc FROM events WHERE deployment_id = ?1 ORDER BY seq",
                    [id.as_str()],
                    &format!("reading the history of {id}"),
                )?)
            })
        })
    }

    fn enqueue_command<'a>(
        &'a self,
        id: &'a DeploymentId,
        actor: Actor,
        kind: CommandKind,
        reason: Option<String>,
        at: Timestamp,
    ) -> BoxFuture<'a, Result<Command, StoreError>> {
        Box::pin(async move {
            self.call(|conn| {
                let what = &format!("queueing a command for {id}");
                let tx = write(conn)?;
                let exists = tx
                    .query_row(
                        "SELECT 1 FROM deployments WHERE id = ?1",
                        [id.as_str()],
                        |_| Ok(()),
                    )
                    .optional()
                    .or_port(what)?
                    .is_some();
                if !exists {
                    return Err(PortError::permanent(format!("no deployment {id}")).into());
                }
                let seq: u64 = tx
                    .query_row(
                        "SELECT COALESCE(MAX(seq), 0) + 1 FROM commands WHERE deployment_id = ?1",
                        [id.as_str()],
                        |row| row.get(0),
                    )
                    .or_port(what)?;
                let command = Command {
                    seq,
                    at,
                    actor,
                    kind,
                    reason,
                };
                tx.execute(
                    "INSERT INTO commands (deployment_id, seq, doc) VALUES (?1, ?2, ?3)",
                    params![id.as_str(), seq, to_json(&command, what)?],
                )
                .or_port(what)?;
                tx.commit().or_port(what)?;
                Ok(command)
            })
        })
    }

    fn commands_after<'a>(
        &'a self,
        id: &'a DeploymentId,
        after_seq: u64,
    ) -> BoxFuture<'a, Result<Vec<Command>, StoreError>> {
        Box::pin(async move {
            self.call(|conn| {
                Ok(read_docs(
                    conn,
                    "SELECT doc FROM commands WHERE deployment_id = ?1 AND seq > ?2 \
                     ORDER BY seq",
                    params![id.as_str(), after_seq],
                    &format!("reading the commands of {id}"),
                )?)
            })
        })
    }

    fn service_status<'a>(
        &'a self,
        service: &'a ServiceName,
    ) -> BoxFuture<'a, Result<Option<ServiceStatus>, StoreError>> {
        Box::pin(async move {
            self.call(|conn| {
                Ok(read_doc(
                    conn,
                    "SELECT doc FROM service_status WHERE service = ?1",
                    [service.as_str()],
                    &format!("reading the status of {service}"),
                )?)
            })
        })
    }

    fn claim_idempotency<'a>(
        &'a self,
        key: &'a str,
        value: &'a str,
        expires_at: Timestamp,
    ) -> BoxFuture<'a, Result<Option<String>, StoreError>> {
        Box::pin(async move {
            self.call(|conn| {
                // Only an expiry comes with the claim, not the time now, so nothing is
                // purged here: keys run out when a later deployment is created.
                let what = "claiming an idempotency key";
                let tx = write(conn)?;
                let existing: Option<String> = tx
                    .query_row(
                        "SELECT value FROM idempotency WHERE key = ?1",
                        [key],
                        |row| row.get(0),
                    )
                    .optional()
                    .or_port(what)?;
                if existing.is_some() {
                    return Ok(existing);
                }
                tx.execute(
                    "INSERT INTO idempotency (key, value, expires_at) VALUES (?1, ?2, ?3)",
                    params![key, value, expires_at.as_millis()],
                )
                .or_port(what)?;
                tx.commit().or_port(what)?;
                Ok(None)
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ripcord_core::ports::ErrorKind;

    fn failure(code: std::ffi::c_int, message: &str) -> rusqlite::Error {
        rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), Some(message.into()))
    }

    #[test]
    fn a_lock_that_stays_taken_is_transient_and_anything_else_permanent() {
        let cases = [
            (
                rusqlite::ffi::SQLITE_BUSY,
                "database is locked",
                ErrorKind::Transient,
            ),
            (
                rusqlite::ffi::SQLITE_LOCKED,
                "database table is locked",
                ErrorKind::Transient,
            ),
            (
                rusqlite::ffi::SQLITE_FULL,
                "database or disk is full",
                ErrorKind::Permanent,
            ),
            (
                rusqlite::ffi::SQLITE_CONSTRAINT,
                "UNIQUE constraint failed: events.deployment_id, events.seq",
                ErrorKind::Permanent,
            ),
            (
                rusqlite::ffi::SQLITE_NOTADB,
                "file is not a database",
                ErrorKind::Permanent,
            ),
        ];
        for (code, message, kind) in cases {
            let error = sqlite_error("committing deployment d-1", failure(code, message));
            assert_eq!(error.kind, kind, "{message}");
            assert!(
                error.message.starts_with("committing deployment d-1: ")
                    && error.message.contains(message),
                "the message keeps what was done and SQLite's words: {}",
                error.message
            );
        }
    }
}
