//! Ripcord's local mode: what stands in for AWS when the engine runs whole on one
//! machine.
//!
//! `proxy` is the weighted HTTP reverse proxy that takes the ALB's place: it splits
//! each service's traffic between its two upstream slots, serves the engine's
//! `TrafficRouter` port, and measures every request so that it also serves the
//! `MetricSource` port. `store` keeps the durable state in one SQLite file in place of
//! DynamoDB.

pub mod proxy;
pub mod store;
