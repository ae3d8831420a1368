//! Strategies and CodeDeploy-named presets, and how each compiles to a plan of steps.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::domain::Weight;

/// A service's deployment strategy as configured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Strategy {
    /// Checks on the preview listener, optional approval, a switch from 0 to 100, a bake.
    BlueGreen,
    /// Explicit steps.
    Canary,
    /// `step` percent more every `interval`.
    Linear {
        /// The increment.
        step: Weight,
        /// The time between increments.
        interval: Duration,
    },
    /// Everything at once, then the bake.
    AllAtOnce,
    /// Ramp the named feature flag's rollout percentage with explicit steps.
    Flag {
        /// The flag's key.
        flag: String,
    },
}
