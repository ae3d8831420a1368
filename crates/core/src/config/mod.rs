//! The checked configuration: what `ripcord.toml` means once it has been parsed.
//!
//! `file` turns the TOML text into these types (with errors that point at a line and
//! column); everything here is already valid, so the engine trusts it. `strategy` turns
//! a service's strategy or preset into the plan of steps the engine runs.

pub(crate) mod file;
pub mod strategy;

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use file::{ConfigError, ConfigProblem, parse_config};
pub use strategy::Strategy;

use crate::domain::{ListenerArn, ListenerRuleArn, ServiceName, Slot, TargetGroupArn, Weight};

/// A whole configuration file: every service, and the map from CI authors to chat users.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Config {
    /// The services, by name.
    pub services: BTreeMap<ServiceName, ServiceSpec>,
    /// CI author login (as the webhook reports it) to chat user id, so that the author
    /// of a deployment can be recognised when they try to approve it.
    pub authors: BTreeMap<String, String>,
    /// Who may change flags from chat (`/flag`) that no `flag` service ramps.
    #[serde(default)]
    pub flags: FlagAccess,
}

/// Who may change a feature flag from chat that no `flag` service ramps: the
/// configuration-wide flag approvers (`[flags]`). A flag that a `flag` service ramps
/// follows that service's approval policy instead.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FlagAccess {
    /// The environment whose approvers apply when `approvers` is empty.
    pub environment: Option<String>,
    /// Chat role ids allowed to change flags (any of them); filled in from the
    /// environment's approvers when empty. Empty even so: anyone who can use `/flag`.
    pub approvers: Vec<String>,
}

impl Config {
    /// The service of that name, if configured.
    pub fn service(&self, name: &ServiceName) -> Option<&ServiceSpec> {
        self.services.get(name)
    }
}

/// Everything Ripcord knows about one service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceSpec {
    /// The service's name.
    pub name: ServiceName,
    /// Where traffic is switched between the two slots. Only a `flag` service, which
    /// ramps a flag rather than traffic, may have none.
    pub traffic: Option<TrafficTarget>,
    /// The slot that is live before Ripcord has recorded any deployment.
    pub initial_live: Slot,
    /// The strategy as configured (kept for display; the engine runs `plan`).
    pub strategy: Strategy,
    /// The steps and the bake window that the strategy compiles to.
    pub plan: Plan,
    /// The health gate on the new slot before any traffic moves.
    pub health: HealthGate,
    /// HTTP checks run against the new slot before any traffic moves, and at `smoke` steps.
    pub smoke: Vec<SmokeCheck>,
    /// CloudWatch (or local) alarms that roll the deployment back when they fire.
    pub alarms: AlarmGate,
    /// Thresholds on the new slot's metrics, checked on every pass while it takes traffic.
    pub metrics: Vec<MetricCheck>,
    /// A statistical comparison of the new slot with the stable one at `analysis` steps.
    pub judge: Option<JudgeSpec>,
    /// Who may approve, and how many must, at `approval` steps.
    pub approval: ApprovalPolicy,
    /// Where progress and alerts go.
    pub notifications: Notifications,
    /// Who may steer deployments of the service from chat.
    #[serde(default)]
    pub chat: ChatAccess,
}

/// Where traffic is switched: an ALB in AWS, or local mode's built-in proxy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrafficTarget {
    /// An ALB listener or listener rule forwarding to two target groups.
    Aws(AwsTarget),
    /// Local mode's weighted proxy in front of two upstream URLs.
    Local(LocalTarget),
}

/// The ALB side of a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AwsTarget {
    /// The listener (default action) or listener rule whose forward action is weighted.
    pub switch: AwsSwitch,
    /// The target group of the blue slot.
    pub blue: TargetGroupArn,
    /// The target group of the green slot.
    pub green: TargetGroupArn,
    /// A test listener pointed at the new slot before any user traffic moves.
    pub preview_listener: Option<ListenerArn>,
    /// The base URL that smoke checks call (the preview listener's address).
    pub preview_url: Option<String>,
}

impl AwsTarget {
    /// The target group of a slot.
    pub fn target_group(&self, slot: Slot) -> &TargetGroupArn {
        match slot {
            Slot::Blue => &self.blue,
            Slot::Green => &self.green,
        }
    }
}

/// Which ALB resource holds the weighted forward action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AwsSwitch {
    /// The listener's default action.
    Listener(ListenerArn),
    /// One listener rule.
    Rule(ListenerRuleArn),
}

/// The local-mode side of a service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LocalTarget {
    /// The address the proxy listens on, e.g. `127.0.0.1:8080`.
    pub listen: String,
    /// The blue slot's upstream base URL.
    pub blue: String,
    /// The green slot's upstream base URL.
    pub green: String,
    /// How local mode probes each upstream for the health gate, as an ALB probes its
    /// targets.
    pub health_check: LocalHealthCheck,
    /// Local mode's alarms: thresholds on the proxy's own metrics, named so that
    /// `[services.x.alarms]` can watch them as it would watch CloudWatch alarms.
    pub alarms: Vec<LocalAlarm>,
}

/// Local mode's HTTP health check of one upstream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalHealthCheck {
    /// The path probed with GET; any 2xx or 3xx answer counts as a success.
    pub path: String,
    /// Time between probes.
    pub interval: Duration,
    /// How long a probe may take before it counts as a failure.
    pub timeout: Duration,
    /// Consecutive successes that make an unhealthy upstream healthy.
    pub healthy_threshold: u32,
    /// Consecutive failures that make a healthy upstream unhealthy.
    pub unhealthy_threshold: u32,
}

impl Default for LocalHealthCheck {
    fn default() -> Self {
        Self {
            path: "/".to_string(),
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(2),
            healthy_threshold: 2,
            unhealthy_threshold: 2,
        }
    }
}

/// One local alarm: it is in ALARM while either slot's metric over the window ending
/// now is beyond the threshold (with at least `min_requests` requests), as a
/// CloudWatch alarm on a target group's metric would be.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LocalAlarm {
    /// The alarm's name, unique in the whole configuration.
    pub name: String,
    /// The metric, threshold, window and request floor.
    pub check: MetricCheck,
}

impl LocalTarget {
    /// The upstream URL of a slot.
    pub fn upstream(&self, slot: Slot) -> &str {
        match slot {
            Slot::Blue => &self.blue,
            Slot::Green => &self.green,
        }
    }
}

/// What a deployment ramps: traffic between the slots, or a feature flag's rollout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ramp {
    /// The weights of the two slots.
    Traffic,
    /// The rollout percentage of the named flag; rolling back turns the flag off.
    Flag(String),
}

/// The ordered steps of a deployment and the bake window after the last one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// What the weights of `set_weight` steps apply to.
    pub ramp: Ramp,
    /// The steps, in order. The last `set_weight` of a valid plan is 100.
    pub steps: Vec<Step>,
    /// How long to stay at 100% with every gate still armed before declaring success.
    pub bake: Duration,
}

/// One step of a plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// Send this share of traffic to the new slot (or of users to the flag).
    SetWeight(Weight),
    /// Wait this long, with every gate armed.
    Pause(Duration),
    /// Wait until someone resumes or promotes.
    PauseUntilResumed,
    /// Wait for approvals under the service's approval policy.
    Approval,
    /// Collect metrics for this long, then run the metric checks and the judge.
    Analysis(Duration),
    /// Run the smoke checks against the new slot.
    Smoke,
}

/// The health gate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthGate {
    /// At least this many targets must be healthy in the new slot (and all must be).
    pub min_healthy: u32,
    /// How long to wait for the targets to become healthy before failing.
    pub timeout: Duration,
}

impl Default for HealthGate {
    fn default() -> Self {
        Self {
            min_healthy: 1,
            timeout: Duration::from_secs(300),
        }
    }
}

/// One HTTP smoke check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmokeCheck {
    /// A short name for output.
    pub name: String,
    /// The HTTP method, upper case.
    pub method: String,
    /// The path (and query) to request, starting with `/`.
    pub path: String,
    /// The status the check expects.
    pub expect_status: u16,
    /// Text the body must contain, if set.
    pub body_contains: Option<String>,
    /// A header the answer must carry with this exact value, if set.
    pub header: Option<(String, String)>,
    /// How long to wait for the answer.
    pub timeout: Duration,
}

/// The alarm gate.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AlarmGate {
    /// Alarm names to watch.
    pub names: Vec<String>,
    /// When true, an alarm already firing when the deployment starts stops it before
    /// any traffic moves. When false (the default), such alarms are the baseline and
    /// are ignored until they have cleared once.
    pub block_on_baseline: bool,
}

/// A metric the engine can check and compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricKind {
    /// Share of requests answered with a 5xx, in percent.
    ErrorRate,
    /// 95th percentile of the target response time, in milliseconds.
    LatencyP95,
    /// 99th percentile of the target response time, in milliseconds.
    LatencyP99,
    /// Number of requests in the window.
    RequestCount,
}

impl MetricKind {
    /// The name used in configuration and output.
    pub fn as_str(self) -> &'static str {
        match self {
            MetricKind::ErrorRate => "error_rate",
            MetricKind::LatencyP95 => "latency_p95",
            MetricKind::LatencyP99 => "latency_p99",
            MetricKind::RequestCount => "request_count",
        }
    }
}

/// A threshold on one metric of the new slot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricCheck {
    /// The metric.
    pub metric: MetricKind,
    /// The value must not be above this.
    pub max: Option<f64>,
    /// The value must not be below this. For `request_count` this is a floor: too few
    /// requests make the check inconclusive rather than failed.
    pub min: Option<f64>,
    /// The window the metric is taken over, ending now.
    pub window: Duration,
    /// Below this many requests in the window, the check is inconclusive, not failed.
    pub min_requests: u64,
}

/// The judge's settings: a Mann-Whitney U test of the new slot against the stable one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JudgeSpec {
    /// The metric compared.
    pub metric: MetricKind,
    /// The confidence needed to call a difference real, e.g. 0.95.
    pub confidence: f64,
    /// Relative difference of medians tolerated even when significant, e.g. 0.1 for 10%.
    pub effect_tolerance: f64,
    /// Fewer samples than this on either side makes the verdict marginal.
    pub min_samples: usize,
}

/// What happens when an approval step times out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeoutAction {
    /// Roll back to the stable slot.
    Rollback,
    /// Carry on as if approved.
    Promote,
}

/// Who may approve, and how many must.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalPolicy {
    /// Chat role ids allowed to approve (any of them). Empty with `users` empty: anyone.
    pub roles: Vec<String>,
    /// Chat user ids allowed to approve, whatever their roles.
    pub users: Vec<String>,
    /// How many distinct approvers are needed.
    pub quorum: u32,
    /// Whether the author of a deployment may approve it.
    pub allow_author: bool,
    /// How long to wait for the quorum; `None` waits for ever.
    pub timeout: Option<Duration>,
    /// What to do at the timeout.
    pub on_timeout: TimeoutAction,
}

impl Default for ApprovalPolicy {
    fn default() -> Self {
        Self {
            roles: Vec::new(),
            users: Vec::new(),
            quorum: 1,
            allow_author: false,
            timeout: None,
            on_timeout: TimeoutAction::Rollback,
        }
    }
}

/// Who may steer a service's deployments from chat, besides the approval policy.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ChatAccess {
    /// The environment the service belongs to (`[environments.<name>]`), whose roles
    /// apply where the service lists none of its own.
    pub environment: Option<String>,
    /// Chat role ids allowed to roll back, promote, pause, resume and abort (any of
    /// them). Empty: anyone who can use the commands in the channel.
    pub deployers: Vec<String>,
}

/// Where a service's progress messages and alerts go.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Notifications {
    /// Discord channel id for the per-deployment message.
    pub discord_channel: Option<String>,
    /// Discord role id mentioned in rollback and failure alerts.
    pub on_call_role: Option<String>,
    /// Name of the SSM parameter holding a Slack incoming-webhook URL.
    pub slack_webhook_param: Option<String>,
    /// A URL that receives every notification as JSON.
    pub webhook_url: Option<String>,
}
