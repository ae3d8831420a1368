//! Ripcord's local mode: the engine's adapters for running whole on one machine, with
//! no AWS. `store` keeps the durable state in one SQLite file in place of DynamoDB.

pub mod store;
