//! `DynamoStore`: the core's `Store` on one DynamoDB table.
//!
//! # DynamoDB key design
//!
//! Everything lives in one table with string keys `pk` (partition) and `sk` (sort).
//! Numbers in sort keys are zero-padded so that text order is numeric order.
//!
//! | What | `pk` | `sk` | Other attributes |
//! |---|---|---|---|
//! | configuration version | `CONFIG` | `V#<version, 10 digits>` | `version` (N), `text`, `applied_at` (N, ms) |
//! | newest configuration | `CONFIG` | `HEAD` | `version` (N) |
//! | deployment | `DEP#<id>` | `META` | `doc` (JSON), `revision` (N), `commit_id` (the last commit's), `service`, `created_at` (N, ms), `gsi1pk`/`gsi1sk` while active, `gsi2pk`/`gsi2sk` |
//! | event | `DEP#<id>` | `EV#<seq, 10 digits>` | `doc` (JSON), `seq` (N) |
//! | queued command | `DEP#<id>` | `CMD#<seq, 10 digits>` | `doc` (JSON), `seq` (N) |
//! | active deployment of a service | `SVC#<service>` | `ACTIVE` | `deployment_id` |
//! | live slot of a service | `SVC#<service>` | `STATUS` | `doc` (JSON), `service` |
//! | idempotency key | `IDEM#<key>` | `IDEM` | `value`, `expires_at` (N, epoch seconds: the table's TTL attribute) |
//!
//! Two global secondary indexes, both projecting every attribute:
//! - `active` (`gsi1pk` = `ACTIVE`, `gsi1sk` = `<service>#<id>`) is sparse: a
//!   deployment carries `gsi1pk` only while it is not terminal, so listing the active
//!   deployments is one Query, never a Scan.
//! - `by_created` (`gsi2pk` = `DEPLOYMENTS`, `gsi2sk` = `<created_at ms, 15 digits>#<id>`)
//!   lists deployments by creation time for history and DORA; a service is picked with
//!   a filter expression.
//!
//! # Writes that must hold together
//!
//! - Creating a deployment is one transaction: the deployment (if absent), the
//!   service's `ACTIVE` lock (if absent), its first events (if absent) and its
//!   idempotency key (if absent). When it is cancelled, the cancellation reasons say
//!   which condition failed; a claimed key wins over an active service, as in the
//!   in-memory store, and nothing is written.
//! - A commit is one transaction: the deployment, conditioned on the revision it was
//!   decided from, its events, the release of the lock when the deployment becomes
//!   terminal and the service's live slot when it succeeded. A failed revision check
//!   is `StoreError::Conflict`: the driver re-reads and decides again. Each commit
//!   writes a fresh `commit_id`: when the SDK sends a transaction again because the
//!   first attempt's answer timed out, and that attempt had landed, the retry fails
//!   its revision check against the commit's own write; finding its own `commit_id`
//!   stored, the commit knows it succeeded. Creation does the same with the whole
//!   document, since a deployment id is never reused.
//! - Applying a configuration moves `HEAD` from the previous version to the next in
//!   the same transaction that writes the version.
//!
//! A transaction holds at most 100 items, so a write carries at most
//! [`MAX_EVENTS_PER_WRITE`] events; a decision records a handful.
//!
//! A command takes the number after the newest queued one with a conditional put, and
//! the next number again when another command got there first. An idempotency key
//! stays claimed until DynamoDB's time to live deletes it (which can lag its
//! `expires_at` by a day or two); like the in-memory store, the store itself never
//! treats a key as expired.
//!
//! Reads that decide anything are strongly consistent. The indexes are not (DynamoDB
//! keeps them eventually consistent), so `active_deployments` reads the documents it
//! finds there again with a consistent batch read, and `deployments_since`, which
//! feeds reports only, answers from the index.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::BuildError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, ConditionCheck, Delete, GlobalSecondaryIndex,
    IndexStatus, KeySchemaElement, KeyType, KeysAndAttributes, Projection, ProjectionType, Put,
    ScalarAttributeType, TableStatus, TimeToLiveSpecification, TransactWriteItem, Update,
};
use ripcord_core::deployment::{Command, CommandKind, Deployment};
use ripcord_core::domain::{DeploymentId, ServiceName};
use ripcord_core::history::{Actor, Event};
use ripcord_core::ports::{
    BoxFuture, Commit, ErrorKind, NewDeployment, PortError, ServiceStatus, Store, StoreError,
    StoredConfig,
};
use ripcord_core::time::Timestamp;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::errors::port_error;

/// The name of the sparse index of active deployments.
pub const ACTIVE_INDEX: &str = "active";

/// The name of the index of deployments by creation time.
pub const CREATED_INDEX: &str = "by_created";

/// The attribute DynamoDB's time to live reads (epoch seconds).
pub const TTL_ATTRIBUTE: &str = "expires_at";

/// The most events one write may carry. A transaction holds at most 100 items, and
/// a commit needs up to three besides its events (deployment, lock, live slot); a
/// decision records a handful of events, so this is never reached in practice.
pub const MAX_EVENTS_PER_WRITE: usize = 90;

/// How many times a write is tried again when DynamoDB reports a passing conflict
/// (another transaction on the same item, throttling, or a blocking item that has
/// disappeared by the time it is read).
const WRITE_ATTEMPTS: u32 = 4;

/// How many sequence numbers `enqueue_command` tries when other commands are being
/// queued for the same deployment at the same moment.
const COMMAND_ATTEMPTS: u32 = 16;

/// Sequence numbers are written with this many digits; larger ones would sort wrongly.
const MAX_SEQ: u64 = 9_999_999_999;

/// The condition that makes a put create an item and never overwrite one.
const IF_ABSENT: &str = "attribute_not_exists(pk)";

const CONFIG_PK: &str = "CONFIG";
const HEAD_SK: &str = "HEAD";
const META_SK: &str = "META";
const ACTIVE_SK: &str = "ACTIVE";
const STATUS_SK: &str = "STATUS";
const IDEMPOTENCY_SK: &str = "IDEM";
const ACTIVE_PARTITION: &str = "ACTIVE";
const DEPLOYMENTS_PARTITION: &str = "DEPLOYMENTS";

type Item = HashMap<String, AttributeValue>;

fn deployment_pk(id: &DeploymentId) -> String {
    format!("DEP#{id}")
}

fn service_pk(service: &ServiceName) -> String {
    format!("SVC#{service}")
}

fn idempotency_pk(key: &str) -> String {
    format!("IDEM#{key}")
}

fn config_sk(version: u64) -> String {
    format!("V#{version:010}")
}

fn event_sk(seq: u64) -> String {
    format!("EV#{seq:010}")
}

fn command_sk(seq: u64) -> String {
    format!("CMD#{seq:010}")
}

fn created_sk(created_at: Timestamp) -> String {
    format!("{:015}", created_at.as_millis())
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: impl std::fmt::Display) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn key(pk: String, sk: &str) -> Item {
    HashMap::from([("pk".to_string(), s(pk)), ("sk".to_string(), s(sk))])
}

fn attrs<const N: usize>(pairs: [(&str, AttributeValue); N]) -> Item {
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

fn names<const N: usize>(pairs: [(&str, &str); N]) -> HashMap<String, String> {
    pairs
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn string_attr<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

fn number_attr(item: &Item, name: &str) -> Option<u64> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
}

/// Where an item is, for messages: `DEP#web-1/META`.
fn describe(item: &Item) -> String {
    format!(
        "{}/{}",
        string_attr(item, "pk").unwrap_or("?"),
        string_attr(item, "sk").unwrap_or("?")
    )
}

fn to_json<T: Serialize>(value: &T, what: &str) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| {
        StoreError::Unavailable(PortError::permanent(format!(
            "could not encode the {what} as JSON ({e}); this is a bug in Ripcord"
        )))
    })
}

fn built<T>(result: Result<T, BuildError>) -> Result<T, StoreError> {
    build(result).map_err(StoreError::Unavailable)
}

/// The items of one transaction, each with the part of the write it stands for, so
/// that the cancellation reasons (one per item, in order) can be read by part.
#[derive(Default)]
struct Transaction {
    items: Vec<TransactWriteItem>,
    parts: Vec<Part>,
}

/// What an item of a transaction is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Meta,
    Lock,
    Event,
    Idempotency,
    Status,
    ConfigHead,
    ConfigVersion,
}

impl Transaction {
    fn push(&mut self, part: Part, item: TransactWriteItem) {
        self.parts.push(part);
        self.items.push(item);
    }

    /// Whether a condition of an item of this part failed.
    fn failed(&self, reasons: &[Option<String>], part: Part) -> bool {
        self.parts
            .iter()
            .zip(reasons)
            .any(|(p, r)| *p == part && r.as_deref() == Some("ConditionalCheckFailed"))
    }
}

/// A fresh id for one commit, written with it so that a retried commit can recognise
/// its own first attempt: the process, the time and a counter make it unique here, and
/// a randomly seeded hash of them makes it unique across processes and containers.
fn new_commit_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(count);
    hasher.write_u128(nanos);
    hasher.write_u32(std::process::id());
    format!("{:x}-{nanos:x}-{count:x}", hasher.finish())
}

/// Cancellation reasons that say the same transaction may succeed a moment later.
fn worth_retrying(reasons: &[Option<String>]) -> bool {
    reasons.iter().flatten().any(|r| {
        matches!(
            r.as_str(),
            "TransactionConflict" | "ThrottlingError" | "ProvisionedThroughputExceeded"
        )
    })
}

/// Why a transaction did not go through.
enum TxError {
    /// DynamoDB cancelled it: one reason code per item, in order, `None` where the
    /// item was not the problem; `error` carries the request id for messages.
    Cancelled {
        reasons: Vec<Option<String>>,
        error: PortError,
    },
    /// Anything else (unreachable, throttled, refused).
    Failed(PortError),
}

async fn backoff(attempt: u32) {
    tokio::time::sleep(Duration::from_millis(25 * u64::from(attempt))).await;
}

fn transient(error: PortError) -> StoreError {
    StoreError::Unavailable(PortError {
        kind: ErrorKind::Transient,
        ..error
    })
}

/// The store on one DynamoDB table laid out as the module documentation describes.
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
}

impl DynamoStore {
    /// A store on `table`, which must exist with the layout [`create_table`] makes.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// The table's name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// The DynamoDB client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    fn operation(&self, name: &str) -> String {
        format!("DynamoDB {name} on table {}", self.table)
    }

    fn unreadable(&self, item: &Item, what: &str, why: impl std::fmt::Display) -> StoreError {
        StoreError::Unavailable(PortError::permanent(format!(
            "item {} in table {} is not a {what} this version of Ripcord can read ({why}); it was written by another version or edited by hand",
            describe(item),
            self.table
        )))
    }

    /// The JSON document an item carries in `doc`.
    fn doc<T: DeserializeOwned>(&self, item: &Item, what: &str) -> Result<T, StoreError> {
        let text = string_attr(item, "doc")
            .ok_or_else(|| self.unreadable(item, what, "it has no doc attribute"))?;
        serde_json::from_str(text).map_err(|e| self.unreadable(item, what, e))
    }

    fn config_from(&self, item: &Item) -> Result<StoredConfig, StoreError> {
        let what = "configuration version";
        let version = number_attr(item, "version")
            .ok_or_else(|| self.unreadable(item, what, "it has no version"))?;
        let text = string_attr(item, "text")
            .ok_or_else(|| self.unreadable(item, what, "it has no text"))?;
        let applied_at = item
            .get("applied_at")
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse::<i64>().ok())
            .ok_or_else(|| self.unreadable(item, what, "it has no applied_at"))?;
        Ok(StoredConfig {
            version,
            text: text.to_string(),
            applied_at: Timestamp::from_millis(applied_at),
        })
    }

    /// The id of the commit that wrote the deployment last, if any commit did.
    async fn stored_commit_id(&self, id: &DeploymentId) -> Result<Option<String>, StoreError> {
        let item = self.get(deployment_pk(id), META_SK).await?;
        Ok(item
            .and_then(|mut item| item.remove("commit_id"))
            .and_then(|v| v.as_s().ok().cloned()))
    }

    /// Whether the deployment's stored document is exactly `d`.
    async fn stored_as(&self, d: &Deployment) -> Result<bool, StoreError> {
        let ours = to_json(d, "deployment")?;
        let item = self.get(deployment_pk(&d.id), META_SK).await?;
        Ok(item
            .as_ref()
            .and_then(|item| item.get("doc"))
            .and_then(|v| v.as_s().ok())
            .is_some_and(|doc| *doc == ours))
    }

    /// A strongly consistent read of one item.
    async fn get(&self, pk: String, sk: &str) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(pk, sk)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| port_error(&self.operation("GetItem"), &e))?;
        Ok(out.item)
    }

    /// Every item a query matches, following its pages.
    async fn query_all(
        &self,
        query: aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder,
    ) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let out = query
                .clone()
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| port_error(&self.operation("Query"), &e))?;
            items.extend(out.items.unwrap_or_default());
            start = out.last_evaluated_key;
            if start.is_none() {
                return Ok(items);
            }
        }
    }

    /// Strongly consistent reads of many items (in no particular order), retrying the
    /// keys DynamoDB leaves unprocessed.
    async fn batch_get(&self, keys: Vec<Item>) -> Result<Vec<Item>, StoreError> {
        let mut found = Vec::with_capacity(keys.len());
        // BatchGetItem takes at most 100 keys per call.
        for chunk in keys.chunks(100) {
            let mut pending = chunk.to_vec();
            let mut attempt = 0;
            while !pending.is_empty() {
                let request = built(
                    KeysAndAttributes::builder()
                        .set_keys(Some(pending))
                        .consistent_read(true)
                        .build(),
                )?;
                let out = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, request)
                    .send()
                    .await
                    .map_err(|e| port_error(&self.operation("BatchGetItem"), &e))?;
                if let Some(mut responses) = out.responses {
                    found.extend(responses.remove(&self.table).unwrap_or_default());
                }
                pending = out
                    .unprocessed_keys
                    .and_then(|mut u| u.remove(&self.table))
                    .map(|k| k.keys)
                    .unwrap_or_default();
                if !pending.is_empty() {
                    attempt += 1;
                    if attempt >= WRITE_ATTEMPTS * 2 {
                        return Err(StoreError::Unavailable(PortError::transient(format!(
                            "{} left {} keys unprocessed after {attempt} tries; the table is throttled, try again",
                            self.operation("BatchGetItem"),
                            pending.len()
                        ))));
                    }
                    backoff(attempt).await;
                }
            }
        }
        Ok(found)
    }

    async fn transact(&self, transaction: &Transaction) -> Result<(), TxError> {
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(transaction.items.clone()))
            .send()
            .await;
        let Err(e) = result else { return Ok(()) };
        let error = port_error(&self.operation("TransactWriteItems"), &e);
        match e.as_service_error() {
            Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) => {
                Err(TxError::Cancelled {
                    reasons: cancelled
                        .cancellation_reasons()
                        .iter()
                        .map(|r| r.code().filter(|c| *c != "None").map(str::to_string))
                        .collect(),
                    error,
                })
            }
            _ => Err(TxError::Failed(error)),
        }
    }

    fn put(&self, item: Item, condition: Option<&str>) -> Result<TransactWriteItem, StoreError> {
        let put = built(
            Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                .set_condition_expression(condition.map(str::to_string))
                .build(),
        )?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    fn lock_key(service: &ServiceName) -> Item {
        key(service_pk(service), ACTIVE_SK)
    }

    fn meta_item(&self, d: &Deployment) -> Result<Item, StoreError> {
        let mut item = key(deployment_pk(&d.id), META_SK);
        item.extend(attrs([
            ("doc", s(to_json(d, "deployment")?)),
            ("revision", n(d.revision)),
            ("service", s(d.service.as_str())),
            ("created_at", n(d.created_at.as_millis())),
            ("gsi2pk", s(DEPLOYMENTS_PARTITION)),
            (
                "gsi2sk",
                s(format!("{}#{}", created_sk(d.created_at), d.id)),
            ),
        ]));
        if d.is_active() {
            item.extend(attrs([
                ("gsi1pk", s(ACTIVE_PARTITION)),
                ("gsi1sk", s(format!("{}#{}", d.service, d.id))),
            ]));
        }
        Ok(item)
    }

    fn event_put(&self, event: &Event) -> Result<TransactWriteItem, StoreError> {
        let mut item = key(deployment_pk(&event.deployment_id), &event_sk(event.seq));
        item.extend(attrs([
            ("doc", s(to_json(event, "event")?)),
            ("seq", n(event.seq)),
        ]));
        self.put(item, Some(IF_ABSENT))
    }

    fn idempotency_item(key_text: &str, value: &str, expires_at: Timestamp) -> Item {
        let mut item = key(idempotency_pk(key_text), IDEMPOTENCY_SK);
        item.extend(attrs([
            ("value", s(value)),
            (TTL_ATTRIBUTE, n(expires_at.as_millis().div_euclid(1000))),
        ]));
        item
    }

    async fn idempotency_value(&self, key_text: &str) -> Result<Option<String>, StoreError> {
        let item = self.get(idempotency_pk(key_text), IDEMPOTENCY_SK).await?;
        Ok(item.and_then(|i| string_attr(&i, "value").map(str::to_string)))
    }

    async fn lock_holder(&self, service: &ServiceName) -> Result<Option<DeploymentId>, StoreError> {
        let Some(item) = self.get(service_pk(service), ACTIVE_SK).await? else {
            return Ok(None);
        };
        let id = string_attr(&item, "deployment_id")
            .and_then(|id| DeploymentId::new(id).ok())
            .ok_or_else(|| {
                self.unreadable(&item, "service lock", "it has no valid deployment_id")
            })?;
        Ok(Some(id))
    }

    fn check_event_count(&self, id: &DeploymentId, count: usize) -> Result<(), StoreError> {
        if count > MAX_EVENTS_PER_WRITE {
            return Err(StoreError::Unavailable(PortError::permanent(format!(
                "a write to deployment {id} carries {count} events, more than the {MAX_EVENTS_PER_WRITE} one DynamoDB transaction can hold with its other items; a decision should record a handful, so this is a bug in Ripcord"
            ))));
        }
        Ok(())
    }

    async fn put_config_now(
        &self,
        text: &str,
        previous: u64,
        at: Timestamp,
    ) -> Result<StoredConfig, StoreError> {
        let stored = StoredConfig {
            version: previous + 1,
            text: text.to_string(),
            applied_at: at,
        };
        let mut values = attrs([(":next", n(stored.version))]);
        let condition = if previous == 0 {
            IF_ABSENT.to_string()
        } else {
            values.insert(":previous".into(), n(previous));
            "#version = :previous".to_string()
        };
        let head = built(
            Update::builder()
                .table_name(&self.table)
                .set_key(Some(key(CONFIG_PK.into(), HEAD_SK)))
                .update_expression("SET #version = :next")
                .condition_expression(condition)
                .set_expression_attribute_names(Some(names([("#version", "version")])))
                .set_expression_attribute_values(Some(values))
                .build(),
        )?;
        let mut version = key(CONFIG_PK.into(), &config_sk(stored.version));
        version.extend(attrs([
            ("version", n(stored.version)),
            ("text", s(text)),
            ("applied_at", n(at.as_millis())),
        ]));
        let mut tx = Transaction::default();
        tx.push(
            Part::ConfigHead,
            TransactWriteItem::builder().update(head).build(),
        );
        tx.push(Part::ConfigVersion, self.put(version, Some(IF_ABSENT))?);
        match self.transact(&tx).await {
            Ok(()) => Ok(stored),
            Err(TxError::Failed(e)) => Err(e.into()),
            Err(TxError::Cancelled { reasons, error }) => {
                // Another apply touching HEAD at the same moment is a conflict too:
                // re-reading and applying again is what the caller must do either way.
                if tx.failed(&reasons, Part::ConfigHead)
                    || tx.failed(&reasons, Part::ConfigVersion)
                    || reasons
                        .iter()
                        .any(|r| r.as_deref() == Some("TransactionConflict"))
                {
                    Err(StoreError::ConfigConflict { expected: previous })
                } else if worth_retrying(&reasons) {
                    Err(transient(error))
                } else {
                    Err(error.into())
                }
            }
        }
    }

    async fn create_now(&self, new: NewDeployment) -> Result<(), StoreError> {
        let d = &new.deployment;
        self.check_event_count(&d.id, new.events.len())?;
        let mut tx = Transaction::default();
        tx.push(Part::Meta, self.put(self.meta_item(d)?, Some(IF_ABSENT))?);
        if d.is_active() {
            let mut lock = Self::lock_key(&d.service);
            lock.insert("deployment_id".into(), s(d.id.as_str()));
            tx.push(Part::Lock, self.put(lock, Some(IF_ABSENT))?);
        } else {
            // A deployment created already finished takes no lock, but is refused all
            // the same while another deployment of its service is active.
            let check = built(
                ConditionCheck::builder()
                    .table_name(&self.table)
                    .set_key(Some(Self::lock_key(&d.service)))
                    .condition_expression(IF_ABSENT)
                    .build(),
            )?;
            tx.push(
                Part::Lock,
                TransactWriteItem::builder().condition_check(check).build(),
            );
        }
        for event in &new.events {
            tx.push(Part::Event, self.event_put(event)?);
        }
        if let Some((key_text, expires_at)) = &new.idempotency {
            let item = Self::idempotency_item(key_text, d.id.as_str(), *expires_at);
            tx.push(Part::Idempotency, self.put(item, Some(IF_ABSENT))?);
        }
        let mut last = None;
        for attempt in 1..=WRITE_ATTEMPTS {
            let (reasons, error) = match self.transact(&tx).await {
                Ok(()) => return Ok(()),
                Err(TxError::Failed(e)) => return Err(e.into()),
                Err(TxError::Cancelled { reasons, error }) => (reasons, error),
            };
            // A retried attempt that finds this very deployment stored: the first
            // attempt landed and its answer was lost.
            if tx.failed(&reasons, Part::Meta) && self.stored_as(d).await? {
                return Ok(());
            }
            if let Some((key_text, _)) = &new.idempotency
                && tx.failed(&reasons, Part::Idempotency)
            {
                if let Some(existing) = self.idempotency_value(key_text).await? {
                    return Err(StoreError::Duplicate { existing });
                }
                // The key expired and was deleted in between: claim it again.
            } else if tx.failed(&reasons, Part::Lock) {
                if let Some(active) = self.lock_holder(&d.service).await? {
                    return Err(StoreError::AlreadyActive {
                        service: d.service.clone(),
                        active,
                    });
                }
                // The active deployment finished in between: try again.
            } else if tx.failed(&reasons, Part::Meta) || tx.failed(&reasons, Part::Event) {
                return Err(StoreError::Conflict {
                    id: d.id.clone(),
                    expected: 0,
                });
            } else if !worth_retrying(&reasons) {
                return Err(error.into());
            }
            last = Some(error);
            backoff(attempt).await;
        }
        Err(transient(last.unwrap_or_else(|| {
            PortError::transient(self.operation("TransactWriteItems"))
        })))
    }

    fn commit_transaction(
        &self,
        commit: &Commit,
        commit_id: &str,
        release_lock: bool,
    ) -> Result<Transaction, StoreError> {
        let d = &commit.deployment;
        let mut values = attrs([
            (":doc", s(to_json(d, "deployment")?)),
            (":next", n(d.revision)),
            (":expected", n(commit.expected_revision)),
            (":commit", s(commit_id)),
        ]);
        // The deployment leaves the sparse `active` index in the same write that makes
        // it terminal.
        let update = if d.is_active() {
            values.extend(attrs([
                (":active", s(ACTIVE_PARTITION)),
                (":gsi1sk", s(format!("{}#{}", d.service, d.id))),
            ]));
            "SET #doc = :doc, #revision = :next, #commit = :commit, gsi1pk = :active, gsi1sk = :gsi1sk"
        } else {
            "SET #doc = :doc, #revision = :next, #commit = :commit REMOVE gsi1pk, gsi1sk"
        };
        let meta = built(
            Update::builder()
                .table_name(&self.table)
                .set_key(Some(key(deployment_pk(&d.id), META_SK)))
                .update_expression(update)
                .condition_expression("#revision = :expected")
                .set_expression_attribute_names(Some(names([
                    ("#doc", "doc"),
                    ("#revision", "revision"),
                    ("#commit", "commit_id"),
                ])))
                .set_expression_attribute_values(Some(values))
                .build(),
        )?;
        let mut tx = Transaction::default();
        tx.push(
            Part::Meta,
            TransactWriteItem::builder().update(meta).build(),
        );
        for event in &commit.events {
            tx.push(Part::Event, self.event_put(event)?);
        }
        if release_lock {
            // Only this deployment's own lock is released; an absent lock (removed by
            // hand) must not keep a deployment from finishing.
            let delete = built(
                Delete::builder()
                    .table_name(&self.table)
                    .set_key(Some(Self::lock_key(&d.service)))
                    .condition_expression("attribute_not_exists(pk) OR #holder = :id")
                    .set_expression_attribute_names(Some(names([("#holder", "deployment_id")])))
                    .set_expression_attribute_values(Some(attrs([(":id", s(d.id.as_str()))])))
                    .build(),
            )?;
            tx.push(
                Part::Lock,
                TransactWriteItem::builder().delete(delete).build(),
            );
        }
        if let Some(status) = &commit.service {
            let mut item = key(service_pk(&status.service), STATUS_SK);
            item.extend(attrs([
                ("doc", s(to_json(status, "service status")?)),
                ("service", s(status.service.as_str())),
            ]));
            tx.push(Part::Status, self.put(item, None)?);
        }
        Ok(tx)
    }

    async fn commit_now(&self, commit: Commit) -> Result<(), StoreError> {
        let d = &commit.deployment;
        let conflict = || StoreError::Conflict {
            id: d.id.clone(),
            expected: commit.expected_revision,
        };
        if d.revision != commit.expected_revision + 1 {
            return Err(conflict());
        }
        self.check_event_count(&d.id, commit.events.len())?;
        let mut release_lock = d.state.is_terminal();
        let commit_id = new_commit_id();
        let mut last = None;
        for attempt in 1..=WRITE_ATTEMPTS {
            let tx = self.commit_transaction(&commit, &commit_id, release_lock)?;
            let (reasons, error) = match self.transact(&tx).await {
                Ok(()) => return Ok(()),
                Err(TxError::Failed(e)) => return Err(e.into()),
                Err(TxError::Cancelled { reasons, error }) => (reasons, error),
            };
            if tx.failed(&reasons, Part::Meta)
                || reasons
                    .iter()
                    .any(|r| r.as_deref() == Some("TransactionConflict"))
            {
                // The SDK sends an attempt again when its answer timed out; when the
                // first one landed, this one fails its revision check against our own
                // write. The commit id tells that apart from a lost race.
                if self.stored_commit_id(&d.id).await?.as_deref() == Some(commit_id.as_str()) {
                    return Ok(());
                }
                // Another transaction on the same items at the same moment is treated
                // as a lost race: re-reading and deciding again is always safe.
                return Err(conflict());
            }
            if tx.failed(&reasons, Part::Lock) {
                // Another deployment holds the service's lock (this one finished
                // earlier, and this commit comes after); leave that lock alone.
                release_lock = false;
                continue;
            }
            if tx.failed(&reasons, Part::Event) {
                return Err(StoreError::Unavailable(PortError::permanent(format!(
                    "deployment {} is at revision {} but events from {} on are already stored; its history was written outside Ripcord ({})",
                    d.id,
                    commit.expected_revision,
                    commit.events.first().map_or(0, |e| e.seq),
                    error.message
                ))));
            }
            if !worth_retrying(&reasons) {
                return Err(error.into());
            }
            last = Some(error);
            backoff(attempt).await;
        }
        Err(transient(last.unwrap_or_else(|| {
            PortError::transient(self.operation("TransactWriteItems"))
        })))
    }

    async fn enqueue_now(
        &self,
        id: &DeploymentId,
        actor: Actor,
        kind: CommandKind,
        reason: Option<String>,
        at: Timestamp,
    ) -> Result<Command, StoreError> {
        if self.get(deployment_pk(id), META_SK).await?.is_none() {
            return Err(StoreError::Unavailable(PortError::permanent(format!(
                "no deployment {id} in table {}; check the id with `ripcord status`",
                self.table
            ))));
        }
        let latest = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :cmd)")
            .expression_attribute_values(":pk", s(deployment_pk(id)))
            .expression_attribute_values(":cmd", s("CMD#"))
            .scan_index_forward(false)
            .limit(1)
            .consistent_read(true);
        for _ in 0..COMMAND_ATTEMPTS {
            let out = latest
                .clone()
                .send()
                .await
                .map_err(|e| port_error(&self.operation("Query"), &e))?;
            let last = match out.items().first() {
                Some(item) => number_attr(item, "seq")
                    .ok_or_else(|| self.unreadable(item, "command", "it has no seq"))?,
                None => 0,
            };
            let command = Command {
                seq: last + 1,
                at,
                actor: actor.clone(),
                kind: kind.clone(),
                reason: reason.clone(),
            };
            let mut item = key(deployment_pk(id), &command_sk(command.seq));
            item.extend(attrs([
                ("doc", s(to_json(&command, "command")?)),
                ("seq", n(command.seq)),
            ]));
            let put = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression(IF_ABSENT)
                .send()
                .await;
            match put {
                Ok(_) => return Ok(command),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
                {
                    // Someone queued a command with this number first: take the next.
                }
                Err(e) => return Err(port_error(&self.operation("PutItem"), &e).into()),
            }
        }
        Err(StoreError::Unavailable(PortError::transient(format!(
            "{COMMAND_ATTEMPTS} commands were queued for deployment {id} while this one was; send it again"
        ))))
    }

    async fn claim_now(
        &self,
        key_text: &str,
        value: &str,
        expires_at: Timestamp,
    ) -> Result<Option<String>, StoreError> {
        for _ in 0..WRITE_ATTEMPTS {
            let put = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(Self::idempotency_item(key_text, value, expires_at)))
                .condition_expression(IF_ABSENT)
                .send()
                .await;
            match put {
                Ok(_) => return Ok(None),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
                {
                    if let Some(existing) = self.idempotency_value(key_text).await? {
                        return Ok(Some(existing));
                    }
                    // It expired and was deleted in between: claim it again.
                }
                Err(e) => return Err(port_error(&self.operation("PutItem"), &e).into()),
            }
        }
        Err(StoreError::Unavailable(PortError::transient(format!(
            "idempotency key {key_text:?} kept appearing and disappearing; try again"
        ))))
    }
}

impl Store for DynamoStore {
    fn latest_config(&self) -> BoxFuture<'_, Result<Option<StoredConfig>, StoreError>> {
        Box::pin(async move {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND begins_with(sk, :version)")
                .expression_attribute_values(":pk", s(CONFIG_PK))
                .expression_attribute_values(":version", s("V#"))
                .scan_index_forward(false)
                .limit(1)
                .consistent_read(true)
                .send()
                .await
                .map_err(|e| port_error(&self.operation("Query"), &e))?;
            out.items().first().map(|i| self.config_from(i)).transpose()
        })
    }

    fn put_config<'a>(
        &'a self,
        text: &'a str,
        previous: u64,
        at: Timestamp,
    ) -> BoxFuture<'a, Result<StoredConfig, StoreError>> {
        Box::pin(self.put_config_now(text, previous, at))
    }

    fn deployment<'a>(
        &'a self,
        id: &'a DeploymentId,
    ) -> BoxFuture<'a, Result<Option<Deployment>, StoreError>> {
        Box::pin(async move {
            let item = self.get(deployment_pk(id), META_SK).await?;
            item.map(|i| self.doc(&i, "deployment")).transpose()
        })
    }

    fn active_deployments(&self) -> BoxFuture<'_, Result<Vec<Deployment>, StoreError>> {
        Box::pin(async move {
            let query = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(ACTIVE_INDEX)
                .key_condition_expression("gsi1pk = :active")
                .expression_attribute_values(":active", s(ACTIVE_PARTITION))
                .projection_expression("pk, sk");
            let keys = self.query_all(query).await?;
            // The index may lag behind the table: read the documents themselves, and
            // keep those still active.
            let mut active = Vec::with_capacity(keys.len());
            for item in self.batch_get(keys).await? {
                let deployment: Deployment = self.doc(&item, "deployment")?;
                if deployment.is_active() {
                    active.push(deployment);
                }
            }
            active.sort_by(|a, b| a.id.cmp(&b.id));
            Ok(active)
        })
    }

    fn deployments_since<'a>(
        &'a self,
        service: Option<&'a ServiceName>,
        since: Timestamp,
    ) -> BoxFuture<'a, Result<Vec<Deployment>, StoreError>> {
        Box::pin(async move {
            let mut query = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(CREATED_INDEX)
                .key_condition_expression("gsi2pk = :all AND gsi2sk >= :since")
                .expression_attribute_values(":all", s(DEPLOYMENTS_PARTITION))
                .expression_attribute_values(":since", s(created_sk(since)));
            if let Some(service) = service {
                query = query
                    .filter_expression("#service = :service")
                    .expression_attribute_names("#service", "service")
                    .expression_attribute_values(":service", s(service.as_str()));
            }
            let mut list = self
                .query_all(query)
                .await?
                .iter()
                .map(|i| self.doc::<Deployment>(i, "deployment"))
                .collect::<Result<Vec<_>, _>>()?;
            // The index is already in this order; sorting keeps the contract even for
            // times the padded key cannot order (before 1970).
            list.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
            Ok(list)
        })
    }

    fn create_deployment(&self, new: NewDeployment) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(self.create_now(new))
    }

    fn commit(&self, commit: Commit) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(self.commit_now(commit))
    }

    fn events<'a>(&'a self, id: &'a DeploymentId) -> BoxFuture<'a, Result<Vec<Event>, StoreError>> {
        Box::pin(async move {
            let query = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND begins_with(sk, :event)")
                .expression_attribute_values(":pk", s(deployment_pk(id)))
                .expression_attribute_values(":event", s("EV#"))
                .consistent_read(true);
            self.query_all(query)
                .await?
                .iter()
                .map(|i| self.doc(i, "event"))
                .collect()
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
        Box::pin(self.enqueue_now(id, actor, kind, reason, at))
    }

    fn commands_after<'a>(
        &'a self,
        id: &'a DeploymentId,
        after_seq: u64,
    ) -> BoxFuture<'a, Result<Vec<Command>, StoreError>> {
        Box::pin(async move {
            if after_seq >= MAX_SEQ {
                return Ok(Vec::new());
            }
            let query = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND sk BETWEEN :from AND :to")
                .expression_attribute_values(":pk", s(deployment_pk(id)))
                .expression_attribute_values(":from", s(command_sk(after_seq + 1)))
                .expression_attribute_values(":to", s(command_sk(MAX_SEQ)))
                .consistent_read(true);
            self.query_all(query)
                .await?
                .iter()
                .map(|i| self.doc(i, "command"))
                .collect()
        })
    }

    fn service_status<'a>(
        &'a self,
        service: &'a ServiceName,
    ) -> BoxFuture<'a, Result<Option<ServiceStatus>, StoreError>> {
        Box::pin(async move {
            let item = self.get(service_pk(service), STATUS_SK).await?;
            item.map(|i| self.doc(&i, "service status")).transpose()
        })
    }

    fn claim_idempotency<'a>(
        &'a self,
        key: &'a str,
        value: &'a str,
        expires_at: Timestamp,
    ) -> BoxFuture<'a, Result<Option<String>, StoreError>> {
        Box::pin(self.claim_now(key, value, expires_at))
    }
}

fn build<T>(result: Result<T, BuildError>) -> Result<T, PortError> {
    result.map_err(|e| {
        PortError::permanent(format!(
            "could not build a DynamoDB request ({e}); this is a bug in Ripcord"
        ))
    })
}

/// Creates the table `DynamoStore` expects, as the module documentation lays it out:
/// keys `pk` and `sk` (strings), on-demand capacity, the `active` and `by_created`
/// indexes projecting every attribute, and time to live on `expires_at`. It waits
/// until the table is active, because DynamoDB refuses the time-to-live setting (and
/// every write) before then.
///
/// Tests and local development use it. The SAM template in `infra/` must declare
/// exactly this table; change both together.
pub async fn create_table(client: &Client, name: &str) -> Result<(), PortError> {
    let operation = |op: &str| format!("DynamoDB {op} on table {name}");
    let string_attribute = |attr: &str| {
        build(
            AttributeDefinition::builder()
                .attribute_name(attr)
                .attribute_type(ScalarAttributeType::S)
                .build(),
        )
    };
    let key_element = |attr: &str, key_type: KeyType| {
        build(
            KeySchemaElement::builder()
                .attribute_name(attr)
                .key_type(key_type)
                .build(),
        )
    };
    let index = |index: &str, pk: &str, sk: &str| -> Result<GlobalSecondaryIndex, PortError> {
        build(
            GlobalSecondaryIndex::builder()
                .index_name(index)
                .key_schema(key_element(pk, KeyType::Hash)?)
                .key_schema(key_element(sk, KeyType::Range)?)
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::All)
                        .build(),
                )
                .build(),
        )
    };
    let mut request = client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key_element("pk", KeyType::Hash)?)
        .key_schema(key_element("sk", KeyType::Range)?)
        .global_secondary_indexes(index(ACTIVE_INDEX, "gsi1pk", "gsi1sk")?)
        .global_secondary_indexes(index(CREATED_INDEX, "gsi2pk", "gsi2sk")?);
    for attr in ["pk", "sk", "gsi1pk", "gsi1sk", "gsi2pk", "gsi2sk"] {
        request = request.attribute_definitions(string_attribute(attr)?);
    }
    request
        .send()
        .await
        .map_err(|e| port_error(&operation("CreateTable"), &e))?;

    // A new table takes seconds to a minute to become active on AWS.
    let mut waited = Duration::ZERO;
    loop {
        let out = client
            .describe_table()
            .table_name(name)
            .send()
            .await
            .map_err(|e| port_error(&operation("DescribeTable"), &e))?;
        let table = out.table();
        let active = table.and_then(|t| t.table_status()) == Some(&TableStatus::Active)
            && table.is_some_and(|t| {
                t.global_secondary_indexes()
                    .iter()
                    .all(|i| i.index_status().is_none_or(|s| *s == IndexStatus::Active))
            });
        if active {
            break;
        }
        if waited >= Duration::from_secs(300) {
            return Err(PortError::transient(format!(
                "table {name} was created but is not active after {} seconds; run again later",
                waited.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        waited += Duration::from_secs(1);
    }

    let ttl = build(
        TimeToLiveSpecification::builder()
            .enabled(true)
            .attribute_name(TTL_ATTRIBUTE)
            .build(),
    )?;
    client
        .update_time_to_live()
        .table_name(name)
        .time_to_live_specification(ttl)
        .send()
        .await
        .map_err(|e| port_error(&operation("UpdateTimeToLive"), &e))?;
    Ok(())
}
