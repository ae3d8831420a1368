//! Ripcord's local mode: what stands in for AWS when the engine runs whole on one
//! machine.
//!
//! `proxy` is the weighted HTTP reverse proxy that takes the ALB's place: it splits
//! each service's traffic between its two upstream slots, serves the engine's
//! `TrafficRouter` port, and measures every request so that it also serves the
//! `MetricSource` port. `store` keeps the durable state in one SQLite file in place of
//! DynamoDB. `health` probes the upstreams (`TargetHealth`), `smoke` runs the smoke
//! checks against them (`SmokeRunner`), and `alarms` turns thresholds on the proxy's
//! metrics into alarms (`AlarmSource`); `providers` assembles them. `sample_app` is
//! the small app that the demo deploys and tests use as a real upstream.
//! `runtime` runs it all, as `ripcord up` does: the controller loop, the alarm watch
//! and the control port (`server`: the webhook, the JSON API, the `dashboard` and
//! Discord's interactions, `discord`). `testing` (feature `testing`) sets local mode
//! up for a test: sample apps, a temporary store, a runtime on loopback ports.

pub mod alarms;
mod dashboard;
pub mod discord;
pub mod health;
pub mod probe;
pub mod providers;
pub mod proxy;
pub mod runtime;
pub mod sample_app;
mod server;
pub mod smoke;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;
