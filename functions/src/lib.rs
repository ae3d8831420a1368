//! Ripcord's Lambda functions. The handlers are plain async functions over the core's
//! driver and ports, so that tests call them directly with real event JSON; the
//! binaries in `src/bin` only build clients (`host`) and hand events to them.

pub mod alarm;
pub mod controller;
pub mod host;
pub mod interactions;
pub mod webhook;
