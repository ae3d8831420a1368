//! Ripcord's Lambda handlers, written as plain async functions over the core's driver so
//! that tests call them directly with real event JSON. The binaries only build clients
//! and hand events to these.

pub mod alarm;
pub mod controller;
