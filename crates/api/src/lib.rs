//! Ripcord's HTTP entry points, written once against the `http` crate's `Request` and
//! `Response` types and the core's ports. The Lambda functions and local mode's server
//! host them; nothing about a request's meaning lives in either host.

pub mod control;
pub mod error;
pub mod flag_admin;
pub mod flags_api;
pub mod ofrep;
pub mod webhook;
