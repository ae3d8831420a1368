//! `DynamoFlagStore`: the core's `FlagStore` on the same DynamoDB table as the
//! deployments, under keys of its own.
//!
//! | What | `pk` | `sk` | Other attributes |
//! |---|---|---|---|
//! | flag | `FLAGS` | `FLAG#<name>` | `doc` (the `FlagRecord` as JSON), `version` (N) |
//! | segment | `FLAGS` | `SEG#<id>` | `doc`, `version` (N) |
//! | change of a flag or segment | `FLAGLOG#<flag or segment>#<name>` | `V#<version, 10 digits>` | `doc` (the `FlagChange` as JSON) |
//! | API key | `APIKEYS` | `KEY#<name>` | `doc` (the `ApiKeyRecord`: name and SHA-256, never the key) |
//!
//! Revoking a key is one DeleteItem conditional on the item existing, so that an
//! unknown name is reported rather than silently accepted, and the listing that
//! evaluation caches never has to tell revoked keys from live ones.
//!
//! Every flag and segment sits in the one `FLAGS` partition, so that loading them all
//! (what evaluation caches) is one strongly consistent Query and never a Scan (the
//! listing puts segments first after reading). A change is one `TransactWriteItems`: the record, only if its `version` is still the
//! expected one (or it is absent, for a new record), and its change, only if absent.

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, ReturnValue, TransactWriteItem};
use ripcord_core::ports::{
    ApiKeyRecord, BoxFuture, FlagChange, FlagRecord, FlagRecordKind, FlagStore, FlagStoreError,
    FlagWrite, PortError,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::errors::port_error;

const FLAGS_PK: &str = "FLAGS";
const KEYS_PK: &str = "APIKEYS";

type Item = HashMap<String, AttributeValue>;

fn record_sk(kind: FlagRecordKind, name: &str) -> String {
    match kind {
        FlagRecordKind::Flag => format!("FLAG#{name}"),
        FlagRecordKind::Segment => format!("SEG#{name}"),
    }
}

fn key_sk(name: &str) -> String {
    format!("KEY#{name}")
}

fn log_pk(kind: FlagRecordKind, name: &str) -> String {
    format!("FLAGLOG#{}#{name}", kind.as_str())
}

fn version_sk(version: u64) -> String {
    format!("V#{version:010}")
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn item(pk: String, sk: String, doc: String) -> Item {
    HashMap::from([
        ("pk".to_string(), s(pk)),
        ("sk".to_string(), s(sk)),
        ("doc".to_string(), s(doc)),
    ])
}

fn encode<T: Serialize>(value: &T, what: &str) -> Result<String, FlagStoreError> {
    serde_json::to_string(value).map_err(|e| {
        PortError::permanent(format!(
            "could not encode the {what} as JSON ({e}); this is a bug in Ripcord"
        ))
        .into()
    })
}

/// Flags, segments and API keys on the deployments' DynamoDB table.
#[derive(Debug, Clone)]
pub struct DynamoFlagStore {
    client: Client,
    table: String,
}

impl DynamoFlagStore {
    /// A flag store on `table`, which must exist with the layout
    /// `dynamo::create_table` makes.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    fn operation(&self, name: &str) -> String {
        format!("DynamoDB {name} on table {}", self.table)
    }

    fn decode<T: DeserializeOwned>(&self, item: &Item, what: &str) -> Result<T, FlagStoreError> {
        let place = || {
            format!(
                "{}/{}",
                item.get("pk")
                    .and_then(|v| v.as_s().ok())
                    .map_or("?", |v| v),
                item.get("sk")
                    .and_then(|v| v.as_s().ok())
                    .map_or("?", |v| v)
            )
        };
        let doc = item.get("doc").and_then(|v| v.as_s().ok()).ok_or_else(|| {
            PortError::permanent(format!(
                "the {what} at {} in table {} has no doc attribute; was it written by hand?",
                place(),
                self.table
            ))
        })?;
        serde_json::from_str(doc).map_err(|e| {
            PortError::permanent(format!(
                "the {what} at {} in table {} cannot be read ({e}); was it written by hand or by a newer Ripcord?",
                place(),
                self.table
            ))
            .into()
        })
    }

    async fn query_partition(&self, pk: &str) -> Result<Vec<Item>, FlagStoreError> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", s(pk))
                .consistent_read(true)
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

    fn put(
        &self,
        item: Item,
        condition: &str,
        values: Item,
    ) -> Result<TransactWriteItem, FlagStoreError> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(condition)
            .set_expression_attribute_values((!values.is_empty()).then_some(values))
            .build()
            .map_err(|e| {
                PortError::permanent(format!(
                    "could not build a DynamoDB request ({e}); this is a bug in Ripcord"
                ))
            })?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    async fn put_now(&self, write: FlagWrite) -> Result<FlagRecord, FlagStoreError> {
        let record = FlagRecord {
            kind: write.kind,
            name: write.name.clone(),
            version: write.expected_version + 1,
            definition: write.definition,
            updated_at: write.at,
            updated_by: write.actor,
        };
        let change = FlagChange {
            record: record.clone(),
            summary: write.summary,
        };
        let mut current = item(
            FLAGS_PK.into(),
            record_sk(record.kind, &record.name),
            encode(&record, "flag record")?,
        );
        current.insert(
            "version".into(),
            AttributeValue::N(record.version.to_string()),
        );
        let (condition, values) = if write.expected_version == 0 {
            ("attribute_not_exists(pk)", Item::new())
        } else {
            (
                "version = :expected",
                HashMap::from([(
                    ":expected".to_string(),
                    AttributeValue::N(write.expected_version.to_string()),
                )]),
            )
        };
        let logged = item(
            log_pk(record.kind, &record.name),
            version_sk(record.version),
            encode(&change, "flag change")?,
        );
        let items = vec![
            self.put(current, condition, values)?,
            self.put(logged, "attribute_not_exists(pk)", Item::new())?,
        ];
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await;
        match result {
            Ok(_) => Ok(record),
            Err(e) => {
                let conflict = matches!(
                    e.as_service_error(),
                    Some(TransactWriteItemsError::TransactionCanceledException(cancelled))
                        if cancelled
                            .cancellation_reasons()
                            .iter()
                            .any(|r| r.code() == Some("ConditionalCheckFailed"))
                );
                if conflict {
                    Err(FlagStoreError::Conflict {
                        kind: write.kind,
                        name: write.name,
                        expected: write.expected_version,
                    })
                } else {
                    Err(port_error(&self.operation("TransactWriteItems"), &e).into())
                }
            }
        }
    }
}

impl FlagStore for DynamoFlagStore {
    fn flag_records(&self) -> BoxFuture<'_, Result<Vec<FlagRecord>, FlagStoreError>> {
        Box::pin(async move {
            let mut records = self
                .query_partition(FLAGS_PK)
                .await?
                .iter()
                .map(|item| self.decode::<FlagRecord>(item, "flag record"))
                .collect::<Result<Vec<_>, _>>()?;
            records.sort_by(|a, b| {
                (a.kind == FlagRecordKind::Flag, &a.name)
                    .cmp(&(b.kind == FlagRecordKind::Flag, &b.name))
            });
            Ok(records)
        })
    }

    fn flag_record<'a>(
        &'a self,
        kind: FlagRecordKind,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<FlagRecord>, FlagStoreError>> {
        Box::pin(async move {
            let out = self
                .client
                .get_item()
                .table_name(&self.table)
                .key("pk", s(FLAGS_PK))
                .key("sk", s(record_sk(kind, name)))
                .consistent_read(true)
                .send()
                .await
                .map_err(|e| port_error(&self.operation("GetItem"), &e))?;
            out.item
                .map(|item| self.decode(&item, "flag record"))
                .transpose()
        })
    }

    fn put_flag_record(
        &self,
        write: FlagWrite,
    ) -> BoxFuture<'_, Result<FlagRecord, FlagStoreError>> {
        Box::pin(self.put_now(write))
    }

    fn flag_changes<'a>(
        &'a self,
        kind: FlagRecordKind,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Vec<FlagChange>, FlagStoreError>> {
        Box::pin(async move {
            self.query_partition(&log_pk(kind, name))
                .await?
                .iter()
                .map(|item| self.decode(item, "flag change"))
                .collect()
        })
    }

    fn create_api_key(&self, key: ApiKeyRecord) -> BoxFuture<'_, Result<(), FlagStoreError>> {
        Box::pin(async move {
            let stored = item(KEYS_PK.into(), key_sk(&key.name), encode(&key, "API key")?);
            let result = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(stored))
                .condition_expression("attribute_not_exists(pk)")
                .send()
                .await;
            match result {
                Ok(_) => Ok(()),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
                {
                    Err(FlagStoreError::KeyExists(key.name))
                }
                Err(e) => Err(port_error(&self.operation("PutItem"), &e).into()),
            }
        })
    }

    fn api_keys(&self) -> BoxFuture<'_, Result<Vec<ApiKeyRecord>, FlagStoreError>> {
        Box::pin(async move {
            self.query_partition(KEYS_PK)
                .await?
                .iter()
                .map(|item| self.decode(item, "API key"))
                .collect()
        })
    }

    fn revoke_api_key<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<ApiKeyRecord, FlagStoreError>> {
        Box::pin(async move {
            let result = self
                .client
                .delete_item()
                .table_name(&self.table)
                .key("pk", s(KEYS_PK))
                .key("sk", s(key_sk(name)))
                .condition_expression("attribute_exists(pk)")
                .return_values(ReturnValue::AllOld)
                .send()
                .await;
            match result {
                Ok(out) => {
                    let old = out.attributes.ok_or_else(|| {
                        PortError::permanent(format!(
                            "{} revoked API key {name} but returned no copy of it; `ripcord flags keys list` shows the keys left",
                            self.operation("DeleteItem")
                        ))
                    })?;
                    self.decode(&old, "API key")
                }
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
                {
                    Err(FlagStoreError::UnknownKey(name.to_string()))
                }
                Err(e) => Err(port_error(&self.operation("DeleteItem"), &e).into()),
            }
        })
    }
}
