//! Ripcord's engine: configuration, strategies, the deployment state machine, the
//! judge, the hash-chained history and DORA metrics, and the ports adapters implement.
//!
//! The core does no I/O. It reads no clock, opens no socket and starts no runtime:
//! `engine::decide` is a function of a deployment, an observation and the time, and
//! `driver` carries its decisions out through the traits in `ports`.

pub mod config;
pub mod deployment;
pub mod domain;
pub mod dora;
pub mod driver;
pub mod engine;
pub mod flag_ramp;
pub mod flags;
pub mod history;
pub mod judge;
pub mod observation;
pub mod ports;
pub mod replay;
pub mod time;

#[cfg(feature = "testing")]
pub mod flag_store_contract;
#[cfg(feature = "testing")]
pub mod memory;
#[cfg(feature = "testing")]
pub mod store_contract;
