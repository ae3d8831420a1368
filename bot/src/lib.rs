//! Ripcord in chat: the Discord interactions endpoint (slash commands and buttons,
//! verified with Ed25519) and the notifiers that keep one message per deployment up to
//! date in Discord, raise alerts, and post to Slack or any JSON webhook.
//!
//! - `verify`: the signature and timestamp check every request passes first.
//! - `interactions`: the handler over `http::Request`/`http::Response`, with the
//!   three-second budget and deferral.
//! - `commands`: the slash commands, their definitions for registration and handlers.
//! - `flag`: `/flag`, a feature flag's switch or rollout changed from chat.
//! - `components`: the button dispatcher; `custom_id`: the namespaced, versioned ids.
//! - `steer`: queueing a command and applying it with one pass, and its verdict.
//! - `render`: a deployment's message (weights bar, step, gates, approvals, buttons).
//! - `rest`: Discord's REST API with rate limits honoured.
//! - `notify`: the Discord, Slack and JSON webhook notifiers.

pub mod commands;
pub mod components;
pub mod custom_id;
pub mod flag;
pub mod interactions;
pub mod notify;
pub mod render;
pub mod rest;
pub mod steer;
pub mod verify;

pub use interactions::{InteractionOutcome, Interactions, handle};
pub use rest::DiscordRest;
pub use verify::RequestVerifier;
