//! Reading `ripcord.toml`: the TOML wire format, and its conversion into the checked
//! configuration types with errors that point at a line and column.
//!
//! The wire structs below mirror the file one to one and refuse unknown keys; every
//! value that needs checking is wrapped in `Spanned` so that a problem can name the
//! exact place it comes from. Conversion into the domain types is written by hand and
//! keeps going after a problem, so that one run reports every problem it can find.
//! The format itself is documented on [`parse_config`].

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::strategy::{self, PlanInputs, Preset, Strategy};
use super::{
    AlarmGate, ApprovalPolicy, AwsSwitch, AwsTarget, ChatAccess, Config, FlagAccess, HealthGate,
    JudgeSpec, LocalAlarm, LocalHealthCheck, LocalTarget, MetricCheck, MetricKind, Notifications,
    ServiceSpec, SmokeCheck, Step, TimeoutAction, TrafficTarget,
};
use crate::domain::{
    InvalidValue, ListenerArn, ListenerRuleArn, Percent, ServiceName, Slot, TargetGroupArn, Weight,
};
use crate::time::parse_duration;

/// One problem in a configuration file: where it is, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// The file's path, as given to [`parse_config`].
    pub path: String,
    /// The line of the offending value, counting from 1.
    pub line: usize,
    /// The column of the offending value, counting characters from 1.
    pub column: usize,
    /// What is wrong, and how to fix it.
    pub message: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.path, self.line, self.column, self.message
        )
    }
}

/// Why a configuration file was refused: every problem found, in file order.
///
/// It displays as one problem per line, in the `path:line:column: message` form that
/// editors and CI logs turn into links.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    // Never empty: a file without problems parses.
    problems: Vec<ConfigProblem>,
}

impl ConfigError {
    /// Gathers problems found in another file of the same kind (a flag file), sorted
    /// by line and column; `None` when there are none, since an error is never empty.
    pub(crate) fn from_problems(mut problems: Vec<ConfigProblem>) -> Option<Self> {
        problems.sort_by_key(|problem| (problem.line, problem.column));
        problems.dedup();
        (!problems.is_empty()).then_some(Self { problems })
    }

    /// The problems, sorted by line and column. There is at least one.
    pub fn problems(&self) -> &[ConfigProblem] {
        &self.problems
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, problem) in self.problems.iter().enumerate() {
            if index > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// Parses and checks a configuration file. `path` is only used in error messages.
///
/// On failure, the error lists every problem that could be found in one pass: TOML
/// syntax errors, unknown keys and values of the wrong type stop the reading at the
/// first one, while every rule below is checked across the whole file.
///
/// # Format
///
/// ```toml
/// [authors]                      # optional: CI author login -> chat user id
/// octocat = "123456789012345678"
///
/// [environments.production]      # optional: roles shared by the services of an environment
/// deployers = ["333"]            # chat role ids for services that list no deployers
/// approvers = ["111"]            # chat role ids for services whose approval lists no roles or users
///
/// [flags]                        # optional: who may change flags with /flag in chat, for
/// environment = "production"     # flags no `flag` service ramps; the environment's approvers
/// approvers = ["111"]            # apply where none are listed; none at all: anyone
///
/// [services.web]                 # one table per service; the name is 1 to 63 of a-z 0-9 - _
/// strategy = "canary"            # blue_green | canary | linear | all_at_once | flag
/// # or, instead of strategy: preset = "Canary10Percent5Minutes"
/// steps = [                      # canary and flag only, required
///   { set_weight = 10 },         # 0 to 100, strictly rising; the last one must be 100
///   { pause = "5m" },            # a duration above 0, or "until_resumed"
///   { approval = true },         # waits for approvals under [services.web.approval]
///   { analysis = "5m" },         # needs [[services.web.metrics]] or [services.web.judge]
///   { smoke = true },            # needs [[services.web.smoke]]
///   { set_weight = 100 },
/// ]
/// step_percent = 10              # linear only, required, 1 to 100
/// interval = "1m"                # linear only, required, above 0
/// approve_before_switch = false  # blue_green only
/// flag = "new-checkout"          # flag only, required
/// bake = "5m"                    # default 5m; time at 100% with gates armed
/// live = "blue"                  # blue | green; the slot live before any deployment
///
/// [services.web.aws]             # exactly one of aws / local (a flag service may have none)
/// listener_arn = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:listener/app/web/0123456789abcdef/fedcba9876543210"
/// # or, instead of listener_arn: rule_arn = "arn:aws:elasticloadbalancing:...:listener-rule/app/..."
/// target_groups = ["<blue target group ARN>", "<green target group ARN>"]  # two, different
/// preview_listener_arn = "..."   # optional: the test listener pointed at the new slot for smoke checks
/// preview_url = "https://preview.internal:8443"  # http:// or https://; required with smoke checks
///
/// [services.web.local]
/// listen = "127.0.0.1:8080"      # an IP address and a port
/// upstreams = ["http://127.0.0.1:9001", "http://127.0.0.1:9002"]  # blue then green, http://, different
/// health_check = { path = "/healthz", interval = "5s", timeout = "2s", healthy_threshold = 2, unhealthy_threshold = 2 }
///                                # optional; these are the defaults but for path ("/")
///
/// [[services.web.local.alarms]]  # optional, repeated: local mode's alarms
/// name = "web-5xx"               # required, unique; watch it in [services.web.alarms]
/// metric = "error_rate"          # then as [[services.web.metrics]]: max / min, window,
/// max = 5.0                      # min_requests; in ALARM while either slot is beyond it
/// window = "30s"
/// min_requests = 20
///
/// [services.web.health]          # optional
/// min_healthy = 1                # default 1, at least 1
/// timeout = "5m"                 # default 5m, above 0
///
/// [[services.web.smoke]]         # optional, repeated
/// name = "home"                  # required, unique within the service
/// method = "GET"                 # default GET; GET HEAD POST PUT DELETE PATCH OPTIONS, any case
/// path = "/healthz"              # required, starts with /
/// expect_status = 200            # default 200, 100 to 599
/// body_contains = "ok"           # optional
/// header = { name = "x-version", value = "v43" }  # optional
/// timeout = "5s"                 # default 5s, above 0
///
/// [services.web.alarms]          # optional
/// names = ["web-5xx"]            # non-empty, unique
/// block_on_baseline = false      # default false
///
/// [[services.web.metrics]]       # optional, repeated
/// metric = "error_rate"          # error_rate | latency_p95 | latency_p99 | request_count
/// max = 1.0                      # at least one of max / min, 0 or more, min at most max;
/// min = 0.5                      # error_rate is a percentage, 0 to 100
/// window = "1m"                  # default 1m, above 0
/// min_requests = 50              # default 0
///
/// [services.web.judge]           # optional
/// metric = "latency_p99"         # required
/// confidence = 0.95              # required, strictly between 0.5 and 1
/// effect_tolerance = 0.1         # required, 0 or more
/// min_samples = 10               # default 10, at least 3
///
/// [services.web.approval]        # optional
/// roles = ["111"]                # chat role ids
/// users = ["222"]                # chat user ids
/// quorum = 1                     # default 1, at least 1; with users but no roles, at most len(users)
/// allow_author = false           # default false
/// timeout = "1h"                 # optional, above 0; without it, approvals wait for ever
/// on_timeout = "rollback"        # rollback | promote, default rollback
///
/// [services.web.chat]            # optional
/// environment = "production"     # one of [environments]; its roles fill in what is not set here
/// deployers = ["333"]            # chat role ids that may roll back, promote, pause, resume and
///                                # abort from chat; empty (and no environment's): anyone
///
/// [services.web.notifications]   # optional
/// discord_channel = "..."
/// on_call_role = "..."
/// slack_webhook_param = "/ripcord/slack-webhook"
/// webhook_url = "https://..."    # http:// or https://
/// ```
///
/// Durations are written as in `5m`, `30s` or `1h30m` (see `time::parse_duration`).
/// Presets take CodeDeploy's names, bare or prefixed with `CodeDeployDefault.ECS` or
/// `CodeDeployDefault.Lambda` (see `strategy::Preset`).
///
/// # Errors
///
/// A [`ConfigError`] listing every problem found, each with its line and column.
pub fn parse_config(path: &str, text: &str) -> Result<Config, ConfigError> {
    let mut checker = Checker {
        path,
        text,
        problems: Vec::new(),
    };
    let config = match toml::from_str::<FileWire>(text) {
        Ok(wire) => checker.file(wire),
        Err(error) => {
            let span = error.span().unwrap_or(0..0);
            checker.report(span, readable_toml_message(error.message()));
            None
        }
    };
    checker.finish(config)
}

// ---------------------------------------------------------------------------------
// The wire format. Integers are read as `i64` and durations as strings so that range
// and format problems are reported by the checks below, with a helpful message,
// rather than by serde with a generic one.
// ---------------------------------------------------------------------------------

type Text = Spanned<String>;
type TextList = Spanned<Vec<Text>>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
struct FileWire {
    #[serde(default)]
    authors: BTreeMap<String, String>,
    #[serde(default)]
    environments: BTreeMap<String, EnvironmentWire>,
    flags: Option<FlagsWire>,
    services: Option<Spanned<BTreeMap<Text, Spanned<ServiceWire>>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
struct ServiceWire {
    strategy: Option<Text>,
    preset: Option<Text>,
    steps: Option<Spanned<Vec<Spanned<StepWire>>>>,
    step_percent: Option<Spanned<i64>>,
    interval: Option<Text>,
    approve_before_switch: Option<Spanned<bool>>,
    flag: Option<Text>,
    bake: Option<Text>,
    live: Option<Text>,
    aws: Option<Spanned<AwsWire>>,
    local: Option<Spanned<LocalWire>>,
    health: Option<HealthWire>,
    #[serde(default)]
    smoke: Vec<Spanned<SmokeWire>>,
    alarms: Option<AlarmsWire>,
    #[serde(default)]
    metrics: Vec<Spanned<MetricWire>>,
    judge: Option<Spanned<JudgeWire>>,
    approval: Option<ApprovalWire>,
    notifications: Option<NotificationsWire>,
    chat: Option<ChatWire>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
struct EnvironmentWire {
    #[serde(default)]
    deployers: Vec<Text>,
    #[serde(default)]
    approvers: Vec<Text>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
struct FlagsWire {
    environment: Option<Text>,
    #[serde(default)]
    approvers: Vec<Text>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
struct ChatWire {
    environment: Option<Text>,
    #[serde(default)]
    deployers: Vec<Text>,
}

/// An environment's roles, once checked.
#[derive(Default)]
struct EnvironmentRoles {
    deployers: Vec<String>,
    approvers: Vec<String>,
}

/// One step table. Every key is optional here so that "exactly one key" is checked
/// (and explained) by hand.
#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a step table such as { set_weight = 10 } or { pause = \"5m\" }"
)]
struct StepWire {
    set_weight: Option<Spanned<i64>>,
    pause: Option<Text>,
    approval: Option<Spanned<bool>>,
    analysis: Option<Text>,
    smoke: Option<Spanned<bool>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
struct AwsWire {
    listener_arn: Option<Text>,
    rule_arn: Option<Text>,
    target_groups: Option<TextList>,
    preview_listener_arn: Option<Text>,
    preview_url: Option<Text>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
struct LocalWire {
    listen: Option<Text>,
    upstreams: Option<TextList>,
    health_check: Option<LocalHealthCheckWire>,
    #[serde(default)]
    alarms: Vec<Spanned<LocalAlarmWire>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
struct LocalHealthCheckWire {
    path: Option<Text>,
    interval: Option<Text>,
    timeout: Option<Text>,
    healthy_threshold: Option<Spanned<i64>>,
    unhealthy_threshold: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
struct LocalAlarmWire {
    name: Option<Text>,
    metric: Option<Text>,
    max: Option<Spanned<f64>>,
    min: Option<Spanned<f64>>,
    window: Option<Text>,
    min_requests: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
struct HealthWire {
    min_healthy: Option<Spanned<i64>>,
    timeout: Option<Text>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
struct SmokeWire {
    name: Option<Text>,
    method: Option<Text>,
    path: Option<Text>,
    expect_status: Option<Spanned<i64>>,
    body_contains: Option<String>,
    header: Option<Spanned<HeaderWire>>,
    timeout: Option<Text>,
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a table such as { name = \"x-version\", value = \"v43\" }"
)]
struct HeaderWire {
    name: Text,
    value: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
struct AlarmsWire {
    #[serde(default)]
    names: Vec<Text>,
    #[serde(default)]
    block_on_baseline: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
struct MetricWire {
    metric: Option<Text>,
    max: Option<Spanned<f64>>,
    min: Option<Spanned<f64>>,
    window: Option<Text>,
    min_requests: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
struct JudgeWire {
    metric: Option<Text>,
    confidence: Option<Spanned<f64>>,
    effect_tolerance: Option<Spanned<f64>>,
    min_samples: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
struct ApprovalWire {
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    users: Vec<String>,
    quorum: Option<Spanned<i64>>,
    #[serde(default)]
    allow_author: bool,
    timeout: Option<Text>,
    on_timeout: Option<Text>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
struct NotificationsWire {
    discord_channel: Option<String>,
    on_call_role: Option<String>,
    slack_webhook_param: Option<String>,
    webhook_url: Option<Text>,
}

// ---------------------------------------------------------------------------------
// Strategies as named in the file, before their parameters are checked.
// ---------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    BlueGreen,
    Canary,
    Linear,
    AllAtOnce,
    Flag,
}

impl Kind {
    const ALL: [Kind; 5] = [
        Kind::BlueGreen,
        Kind::Canary,
        Kind::Linear,
        Kind::AllAtOnce,
        Kind::Flag,
    ];

    fn name(self) -> &'static str {
        match self {
            Kind::BlueGreen => "blue_green",
            Kind::Canary => "canary",
            Kind::Linear => "linear",
            Kind::AllAtOnce => "all_at_once",
            Kind::Flag => "flag",
        }
    }
}

/// How a service says what its plan is.
enum Recipe {
    /// `strategy = "..."`, with the span of the value for "needs `steps`"-style problems.
    Strategy(Kind, Range<usize>),
    /// `preset = "..."`.
    Preset(Preset),
}

/// The keys that belong to some strategies only.
struct StrategyKey {
    key: &'static str,
    span: Option<Range<usize>>,
    owners: &'static [Kind],
}

const METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"];
const METRICS: [MetricKind; 4] = [
    MetricKind::ErrorRate,
    MetricKind::LatencyP95,
    MetricKind::LatencyP99,
    MetricKind::RequestCount,
];
const DEFAULT_BAKE: Duration = Duration::from_secs(300);
const DEFAULT_SMOKE_TIMEOUT: Duration = Duration::from_secs(5);
const DEFAULT_METRIC_WINDOW: Duration = Duration::from_secs(60);
const DEFAULT_MIN_SAMPLES: i64 = 10;

// ---------------------------------------------------------------------------------
// The checker: converts the wire structs and collects every problem on the way.
// Converters return `None` when their part is unusable; the problem has then been
// reported already, so callers only need to pass the `None` on.
// ---------------------------------------------------------------------------------

struct Checker<'a> {
    path: &'a str,
    text: &'a str,
    problems: Vec<ConfigProblem>,
}

impl Checker<'_> {
    fn report(&mut self, span: Range<usize>, message: impl Into<String>) {
        let (line, column) = line_and_column(self.text, span.start);
        self.problems.push(ConfigProblem {
            path: self.path.to_string(),
            line,
            column,
            message: message.into(),
        });
    }

    fn finish(mut self, config: Option<Config>) -> Result<Config, ConfigError> {
        self.problems
            .sort_by_key(|problem| (problem.line, problem.column));
        self.problems.dedup();
        match config {
            Some(config) if self.problems.is_empty() => Ok(config),
            _ => {
                if self.problems.is_empty() {
                    // Every `None` comes with a reported problem; this only guards the
                    // invariant that an error is never empty.
                    self.report(0..0, "the configuration could not be read");
                }
                Err(ConfigError {
                    problems: self.problems,
                })
            }
        }
    }

    fn file(&mut self, wire: FileWire) -> Option<Config> {
        let Some(services_wire) = wire.services else {
            self.report(
                0..0,
                "no services are configured: add a [services.<name>] table, e.g. [services.web] with a strategy and a traffic target",
            );
            return None;
        };
        if services_wire.get_ref().is_empty() {
            self.report(
                services_wire.span(),
                "no services are configured: add a [services.<name>] table, e.g. [services.web] with a strategy and a traffic target",
            );
            return None;
        }
        let mut environments = BTreeMap::new();
        let mut complete = true;
        for (name, wire) in wire.environments {
            let deployers = self.role_ids(wire.deployers, "deployers");
            let approvers = self.role_ids(wire.approvers, "approvers");
            // A broken environment is still known by name, so that the services in it
            // are not also reported as naming an unknown environment.
            complete &= deployers.is_some() && approvers.is_some();
            environments.insert(
                name,
                EnvironmentRoles {
                    deployers: deployers.unwrap_or_default(),
                    approvers: approvers.unwrap_or_default(),
                },
            );
        }
        let mut services = BTreeMap::new();
        for (key, service) in services_wire.into_inner() {
            let name = match ServiceName::new(key.get_ref().as_str()) {
                Ok(name) => Some(name),
                Err(error) => {
                    self.report(key.span(), error.0);
                    None
                }
            };
            match self.service(key.get_ref(), name, service, &environments) {
                Some(spec) => {
                    services.insert(spec.name.clone(), spec);
                }
                None => complete = false,
            }
        }
        let flags = self.flag_access(wire.flags, &environments);
        complete &= flags.is_some();
        complete.then(|| Config {
            services,
            authors: wire.authors,
            flags: flags.unwrap_or_default(),
        })
    }

    fn service(
        &mut self,
        key: &str,
        name: Option<ServiceName>,
        wire: Spanned<ServiceWire>,
        environments: &BTreeMap<String, EnvironmentRoles>,
    ) -> Option<ServiceSpec> {
        let table = wire.span();
        let wire = wire.into_inner();
        let recipe = self.recipe(key, table.clone(), &wire);
        if let Some(recipe) = &recipe {
            self.strategy_keys(recipe, &wire);
        }

        let ServiceWire {
            strategy: _,
            preset: _,
            steps,
            step_percent,
            interval,
            approve_before_switch,
            flag,
            bake,
            live,
            aws,
            local,
            health,
            smoke,
            alarms,
            metrics,
            judge,
            approval,
            notifications,
            chat,
        } = wire;

        // Whether analysis and smoke steps have something to run depends only on the
        // tables being there: a broken check is reported once, by its own table.
        let can_analyse = !metrics.is_empty() || judge.is_some();
        let can_smoke = !smoke.is_empty();

        let bake = self.duration_or(bake.as_ref(), "bake", DEFAULT_BAKE, Zero::Allowed);
        let live = self.live(live.as_ref());
        let needs_traffic = !matches!(recipe, None | Some(Recipe::Strategy(Kind::Flag, _)));
        // On AWS the checks reach the new slot through the preview listener, at
        // `preview_url`; without that URL they cannot run, and every deployment would stop
        // before any traffic moved, so the file is refused here instead.
        if can_smoke
            && local.is_none()
            && let Some(aws) = &aws
            && aws.get_ref().preview_url.is_none()
        {
            self.report(
                aws.span(),
                format!(
                    "service `{key}` has smoke checks but [services.{key}.aws] has no `preview_url`: add preview_url (the preview listener's address, e.g. \"https://preview.internal:8443\") and preview_listener_arn (the test listener that Ripcord points at the new slot), or remove the [[services.{key}.smoke]] checks"
                ),
            );
        }
        let traffic = self.traffic(key, table, aws, local, needs_traffic);
        let health = self.health(health);
        let smoke = self.smoke_checks(smoke);
        let alarms = self.alarms(alarms);
        let metrics = self.metric_checks(metrics);
        let judge = self.judge(judge);
        let chat = self.chat(chat, environments);
        let approval = self.approval(approval).map(|mut policy| {
            // An environment's approvers stand in for a policy that names nobody.
            if policy.roles.is_empty() && policy.users.is_empty() {
                let environment = chat.as_ref().and_then(|(_, roles)| *roles);
                if let Some(roles) = environment {
                    policy.roles = roles.approvers.clone();
                }
            }
            policy
        });
        let notifications = self.notifications(notifications);

        let (strategy, plan) = match recipe? {
            Recipe::Preset(preset) => (preset.strategy(), preset.plan(bake?)),
            Recipe::Strategy(kind, kind_span) => {
                let strategy = match kind {
                    Kind::BlueGreen => Some(Strategy::BlueGreen),
                    Kind::Canary => Some(Strategy::Canary),
                    Kind::AllAtOnce => Some(Strategy::AllAtOnce),
                    Kind::Linear => {
                        self.linear(kind_span.clone(), step_percent.as_ref(), interval.as_ref())
                    }
                    Kind::Flag => self.flag(kind_span.clone(), flag),
                };
                let steps = match (kind, steps) {
                    (Kind::Canary | Kind::Flag, Some(steps)) => {
                        self.steps(key, steps, can_analyse, can_smoke)
                    }
                    (Kind::Canary | Kind::Flag, None) => {
                        self.report(
                            kind_span,
                            format!(
                                "strategy \"{}\" needs `steps`: add e.g. steps = [{{ set_weight = 10 }}, {{ pause = \"5m\" }}, {{ set_weight = 100 }}]",
                                kind.name()
                            ),
                        );
                        None
                    }
                    // Steps given to another strategy were refused by `strategy_keys`.
                    _ => Some(Vec::new()),
                };
                let strategy = strategy?;
                let inputs = PlanInputs {
                    steps: steps?,
                    approve_before_switch: approve_before_switch
                        .is_some_and(|value| *value.get_ref()),
                    bake: bake?,
                };
                let plan = strategy::compile(&strategy, inputs);
                (strategy, plan)
            }
        };

        Some(ServiceSpec {
            name: name?,
            traffic: traffic?,
            initial_live: live?,
            strategy,
            plan,
            health: health?,
            smoke: smoke?,
            alarms: alarms?,
            metrics: metrics?,
            judge: judge?,
            approval: approval?,
            notifications: notifications?,
            chat: chat?.0,
        })
    }

    /// Works out whether the service names a strategy or a preset, and which.
    fn recipe(&mut self, key: &str, table: Range<usize>, wire: &ServiceWire) -> Option<Recipe> {
        match (&wire.strategy, &wire.preset) {
            (Some(_), Some(preset)) => {
                self.report(
                    preset.span(),
                    "`preset` and `strategy` cannot both be set: keep the preset alone, or remove it and keep `strategy` with its own settings",
                );
                None
            }
            (Some(strategy), None) => {
                let name = strategy.get_ref().as_str();
                match Kind::ALL.into_iter().find(|kind| kind.name() == name) {
                    Some(kind) => Some(Recipe::Strategy(kind, strategy.span())),
                    None => {
                        let known: Vec<&str> = Kind::ALL.iter().map(|k| k.name()).collect();
                        self.report(
                            strategy.span(),
                            format!(
                                "unknown strategy {name:?}: use one of {}, or a CodeDeploy preset with `preset`",
                                known.join(", ")
                            ),
                        );
                        None
                    }
                }
            }
            (None, Some(preset)) => match Preset::from_name(preset.get_ref()) {
                Ok(preset) => Some(Recipe::Preset(preset)),
                Err(error) => {
                    self.report(preset.span(), error.0);
                    None
                }
            },
            (None, None) => {
                self.report(
                    table,
                    format!(
                        "service `{key}` has no strategy: add strategy = \"canary\" (or blue_green, linear, all_at_once, flag), or a preset such as preset = \"Canary10Percent5Minutes\""
                    ),
                );
                None
            }
        }
    }

    /// Refuses keys that the chosen strategy does not use, so that a setting is never
    /// silently ignored.
    fn strategy_keys(&mut self, recipe: &Recipe, wire: &ServiceWire) {
        let keys = [
            StrategyKey {
                key: "steps",
                span: wire.steps.as_ref().map(Spanned::span),
                owners: &[Kind::Canary, Kind::Flag],
            },
            StrategyKey {
                key: "step_percent",
                span: wire.step_percent.as_ref().map(Spanned::span),
                owners: &[Kind::Linear],
            },
            StrategyKey {
                key: "interval",
                span: wire.interval.as_ref().map(Spanned::span),
                owners: &[Kind::Linear],
            },
            StrategyKey {
                key: "approve_before_switch",
                span: wire.approve_before_switch.as_ref().map(Spanned::span),
                owners: &[Kind::BlueGreen],
            },
            StrategyKey {
                key: "flag",
                span: wire.flag.as_ref().map(Spanned::span),
                owners: &[Kind::Flag],
            },
        ];
        for StrategyKey { key, span, owners } in keys {
            let Some(span) = span else { continue };
            match recipe {
                Recipe::Strategy(kind, _) if owners.contains(kind) => {}
                Recipe::Strategy(kind, _) => {
                    let owners: Vec<String> =
                        owners.iter().map(|k| format!("\"{}\"", k.name())).collect();
                    self.report(
                        span,
                        format!(
                            "`{key}` only applies to strategy = {}, not \"{}\": remove it",
                            owners.join(" or "),
                            kind.name()
                        ),
                    );
                }
                Recipe::Preset(preset) => self.report(
                    span,
                    format!(
                        "`{key}` cannot be combined with preset \"{preset}\", which fixes its own steps: remove `{key}`, or replace the preset with a strategy"
                    ),
                ),
            }
        }
    }

    fn linear(
        &mut self,
        strategy_span: Range<usize>,
        step_percent: Option<&Spanned<i64>>,
        interval: Option<&Text>,
    ) -> Option<Strategy> {
        let step = match step_percent {
            None => {
                self.report(
                    strategy_span.clone(),
                    "strategy \"linear\" needs `step_percent`: add e.g. step_percent = 10",
                );
                None
            }
            Some(percent) => {
                let value = *percent.get_ref();
                match u32::try_from(value).ok().filter(|v| (1..=100).contains(v)) {
                    Some(value) => Weight::new(value).ok(),
                    None => {
                        self.report(
                            percent.span(),
                            format!(
                                "step_percent {value} is out of range: use a whole percentage from 1 to 100"
                            ),
                        );
                        None
                    }
                }
            }
        };
        let interval = match interval {
            None => {
                self.report(
                    strategy_span,
                    "strategy \"linear\" needs `interval`: add e.g. interval = \"1m\"",
                );
                None
            }
            Some(interval) => self.duration(interval, "interval", Zero::Refused),
        };
        Some(Strategy::Linear {
            step: step?,
            interval: interval?,
        })
    }

    fn flag(&mut self, strategy_span: Range<usize>, flag: Option<Text>) -> Option<Strategy> {
        match flag {
            None => {
                self.report(
                    strategy_span,
                    "strategy \"flag\" needs `flag`: add flag = \"<the feature flag's key>\"",
                );
                None
            }
            Some(flag) if flag.get_ref().trim().is_empty() => {
                self.report(
                    flag.span(),
                    "`flag` is empty: use the key of the feature flag to ramp",
                );
                None
            }
            Some(flag) => Some(Strategy::Flag {
                flag: flag.into_inner(),
            }),
        }
    }

    fn steps(
        &mut self,
        key: &str,
        steps: Spanned<Vec<Spanned<StepWire>>>,
        can_analyse: bool,
        can_smoke: bool,
    ) -> Option<Vec<Step>> {
        let list_span = steps.span();
        let mut out = Vec::new();
        let mut complete = true;
        // The last valid weight, for the "strictly rising" rule.
        let mut previous: Option<Weight> = None;
        // The last `set_weight` seen, valid or not, for the "ends at 100" rule.
        let mut last_set: Option<(Range<usize>, Option<Weight>)> = None;

        for step in steps.into_inner() {
            let step_span = step.span();
            let wire = step.into_inner();
            let present: Vec<&str> = [
                ("set_weight", wire.set_weight.is_some()),
                ("pause", wire.pause.is_some()),
                ("approval", wire.approval.is_some()),
                ("analysis", wire.analysis.is_some()),
                ("smoke", wire.smoke.is_some()),
            ]
            .into_iter()
            .filter_map(|(name, here)| here.then_some(name))
            .collect();
            if present.len() != 1 {
                let message = if present.is_empty() {
                    "this step is empty: write one of { set_weight = 10 }, { pause = \"5m\" }, { approval = true }, { analysis = \"5m\" }, { smoke = true }".to_string()
                } else {
                    format!(
                        "this step has {} keys ({}): give each its own table, e.g. {{ set_weight = 10 }}, {{ pause = \"5m\" }}",
                        present.len(),
                        present.join(", ")
                    )
                };
                self.report(step_span, message);
                complete = false;
                continue;
            }

            let step = if let Some(value) = wire.set_weight {
                let weight = self.weight(&value);
                if let (Some(weight), Some(before)) = (weight, previous)
                    && weight <= before
                {
                    self.report(
                        value.span(),
                        format!(
                            "weight {} does not rise above the previous set_weight {}: each set_weight must be higher than the one before",
                            weight.get(),
                            before.get()
                        ),
                    );
                }
                if weight.is_some() {
                    previous = weight;
                }
                last_set = Some((value.span(), weight));
                weight.map(Step::SetWeight)
            } else if let Some(value) = wire.pause {
                if value.get_ref() == "until_resumed" {
                    Some(Step::PauseUntilResumed)
                } else {
                    self.pause(&value)
                }
            } else if let Some(value) = wire.approval {
                self.step_flag(&value, "approval", "wait for approvals")
                    .then_some(Step::Approval)
            } else if let Some(value) = wire.analysis {
                if !can_analyse {
                    self.report(
                        value.span(),
                        format!(
                            "an analysis step needs something to analyse: add [[services.{key}.metrics]] checks or a [services.{key}.judge]"
                        ),
                    );
                }
                self.duration(&value, "analysis", Zero::Refused)
                    .filter(|_| can_analyse)
                    .map(Step::Analysis)
            } else if let Some(value) = wire.smoke {
                let on = self.step_flag(&value, "smoke", "run the smoke checks");
                if on && !can_smoke {
                    self.report(
                        value.span(),
                        format!(
                            "a smoke step needs smoke checks: add at least one [[services.{key}.smoke]] table"
                        ),
                    );
                }
                (on && can_smoke).then_some(Step::Smoke)
            } else {
                None
            };
            match step {
                Some(step) => out.push(step),
                None => complete = false,
            }
        }

        match last_set {
            None => {
                self.report(
                    list_span,
                    "the steps never set a weight: add set_weight steps that rise to 100, e.g. { set_weight = 10 }, { pause = \"5m\" }, { set_weight = 100 }",
                );
                complete = false;
            }
            Some((span, Some(weight))) if weight != Weight::FULL => {
                self.report(
                    span,
                    format!(
                        "the last set_weight is {}, so the deployment would never finish: add {{ set_weight = 100 }} as the last weight step",
                        weight.get()
                    ),
                );
                complete = false;
            }
            Some(_) => {}
        }
        complete.then_some(out)
    }

    fn weight(&mut self, value: &Spanned<i64>) -> Option<Weight> {
        let percent = *value.get_ref();
        // Weight's own message covers every out-of-range case; a negative number is
        // given the same wording rather than a conversion error.
        let weight = u32::try_from(percent)
            .map_err(|_| {
                format!("weight {percent} is out of range: use a whole percentage from 0 to 100")
            })
            .and_then(|percent| Weight::new(percent).map_err(|error| error.0));
        match weight {
            Ok(weight) => Some(weight),
            Err(message) => {
                self.report(value.span(), message);
                None
            }
        }
    }

    fn pause(&mut self, value: &Text) -> Option<Step> {
        match parse_duration(value.get_ref()) {
            Ok(duration) if duration.is_zero() => {
                self.report(
                    value.span(),
                    "a pause must be longer than 0s: use e.g. \"30s\", or \"until_resumed\" to wait until someone resumes",
                );
                None
            }
            Ok(duration) => Some(Step::Pause(duration)),
            Err(error) => {
                self.report(
                    value.span(),
                    format!(
                        "pause: {}; or write \"until_resumed\" to wait until someone resumes",
                        error.0
                    ),
                );
                None
            }
        }
    }

    /// `approval` and `smoke` steps are switches that only make sense turned on.
    fn step_flag(&mut self, value: &Spanned<bool>, key: &str, purpose: &str) -> bool {
        if !*value.get_ref() {
            self.report(
                value.span(),
                format!(
                    "`{key} = false` is not a step: write {{ {key} = true }} to {purpose}, or remove the step"
                ),
            );
        }
        *value.get_ref()
    }

    fn live(&mut self, live: Option<&Text>) -> Option<Slot> {
        let Some(live) = live else {
            return Some(Slot::Blue);
        };
        match live.get_ref().as_str() {
            "blue" => Some(Slot::Blue),
            "green" => Some(Slot::Green),
            other => {
                self.report(
                    live.span(),
                    format!("unknown slot {other:?}: live must be \"blue\" or \"green\""),
                );
                None
            }
        }
    }

    /// Checks the traffic target. The outer `Option` is `None` when there is a problem.
    fn traffic(
        &mut self,
        key: &str,
        table: Range<usize>,
        aws: Option<Spanned<AwsWire>>,
        local: Option<Spanned<LocalWire>>,
        required: bool,
    ) -> Option<Option<TrafficTarget>> {
        let both = match (&aws, &local) {
            (Some(_), Some(local)) => {
                self.report(
                    local.span(),
                    format!(
                        "service `{key}` has both [services.{key}.aws] and [services.{key}.local]: keep the one that matches where it runs"
                    ),
                );
                true
            }
            (None, None) if required => {
                self.report(
                    table,
                    format!(
                        "service `{key}` has no traffic target: add [services.{key}.aws] for an ALB or [services.{key}.local] for local mode (only strategy = \"flag\" can do without)"
                    ),
                );
                return None;
            }
            _ => false,
        };
        let aws = aws.map(|aws| self.aws(key, aws));
        let local = local.map(|local| self.local(key, local));
        if both {
            return None;
        }
        match (aws, local) {
            (Some(aws), _) => Some(Some(TrafficTarget::Aws(aws?))),
            (_, Some(local)) => Some(Some(TrafficTarget::Local(local?))),
            (None, None) => Some(None),
        }
    }

    fn aws(&mut self, key: &str, wire: Spanned<AwsWire>) -> Option<AwsTarget> {
        let table = wire.span();
        let wire = wire.into_inner();
        let switch = match (&wire.listener_arn, &wire.rule_arn) {
            (Some(_), Some(rule)) => {
                self.report(
                    rule.span(),
                    "`listener_arn` and `rule_arn` are both set: keep `listener_arn` to weight the listener's default action, or `rule_arn` to weight one listener rule",
                );
                None
            }
            (Some(listener), None) => self
                .arn(listener, ListenerArn::new)
                .map(AwsSwitch::Listener),
            (None, Some(rule)) => self.arn(rule, ListenerRuleArn::new).map(AwsSwitch::Rule),
            (None, None) => {
                self.report(
                    table.clone(),
                    format!(
                        "[services.{key}.aws] needs `listener_arn` or `rule_arn`: add the ARN of the listener or listener rule whose forward action Ripcord weights"
                    ),
                );
                None
            }
        };
        let groups = match &wire.target_groups {
            None => {
                self.report(
                    table,
                    format!(
                        "[services.{key}.aws] needs `target_groups`: add target_groups = [\"<blue target group ARN>\", \"<green target group ARN>\"]"
                    ),
                );
                None
            }
            Some(groups) => self.target_groups(groups),
        };
        let preview_listener = match &wire.preview_listener_arn {
            None => Some(None),
            Some(arn) => self.arn(arn, ListenerArn::new).map(Some),
        };
        let preview_url = match &wire.preview_url {
            None => Some(None),
            Some(url) => self.url(url, "preview_url", Schemes::HttpOrHttps).map(Some),
        };
        let (blue, green) = groups?;
        Some(AwsTarget {
            switch: switch?,
            blue,
            green,
            preview_listener: preview_listener?,
            preview_url: preview_url?,
        })
    }

    fn target_groups(&mut self, groups: &TextList) -> Option<(TargetGroupArn, TargetGroupArn)> {
        let [blue, green] = groups.get_ref().as_slice() else {
            self.report(
                groups.span(),
                format!(
                    "target_groups lists {}: list exactly two ARNs, the blue slot's target group then the green one's",
                    plural(groups.get_ref().len(), "ARN")
                ),
            );
            return None;
        };
        let blue_arn = self.arn(blue, TargetGroupArn::new);
        let green_arn = self.arn(green, TargetGroupArn::new);
        if blue.get_ref() == green.get_ref() {
            self.report(
                green.span(),
                "both target groups are the same: blue and green need different target groups, one per slot",
            );
            return None;
        }
        Some((blue_arn?, green_arn?))
    }

    fn arn<T>(
        &mut self,
        value: &Text,
        new: impl FnOnce(String) -> Result<T, InvalidValue>,
    ) -> Option<T> {
        match new(value.get_ref().clone()) {
            Ok(arn) => Some(arn),
            Err(error) => {
                self.report(value.span(), error.0);
                None
            }
        }
    }

    fn local(&mut self, key: &str, wire: Spanned<LocalWire>) -> Option<LocalTarget> {
        let table = wire.span();
        let wire = wire.into_inner();
        let listen = match &wire.listen {
            None => {
                self.report(
                    table.clone(),
                    format!(
                        "[services.{key}.local] needs `listen`: add the proxy's address, e.g. listen = \"127.0.0.1:8080\""
                    ),
                );
                None
            }
            Some(listen) => match listen.get_ref().parse::<SocketAddr>() {
                Ok(_) => Some(listen.get_ref().clone()),
                Err(_) => {
                    self.report(
                        listen.span(),
                        format!(
                            "listen {:?} is not a socket address: use an IP address and a port, e.g. \"127.0.0.1:8080\"",
                            listen.get_ref()
                        ),
                    );
                    None
                }
            },
        };
        let upstreams = match &wire.upstreams {
            None => {
                self.report(
                    table,
                    format!(
                        "[services.{key}.local] needs `upstreams`: add upstreams = [\"http://127.0.0.1:9001\", \"http://127.0.0.1:9002\"], blue first"
                    ),
                );
                None
            }
            Some(upstreams) => self.upstreams(upstreams),
        };
        let health_check = self.local_health_check(wire.health_check);
        let alarms = self.local_alarms(key, wire.alarms);
        let (blue, green) = upstreams?;
        Some(LocalTarget {
            listen: listen?,
            blue,
            green,
            health_check: health_check?,
            alarms: alarms?,
        })
    }

    fn local_health_check(
        &mut self,
        wire: Option<LocalHealthCheckWire>,
    ) -> Option<LocalHealthCheck> {
        let default = LocalHealthCheck::default();
        let Some(wire) = wire else {
            return Some(default);
        };
        let path = match &wire.path {
            None => Some(default.path),
            Some(path) if path.get_ref().starts_with('/') => Some(path.get_ref().clone()),
            Some(path) => {
                self.report(
                    path.span(),
                    format!(
                        "health check path {:?} does not start with '/': use e.g. \"/healthz\"",
                        path.get_ref()
                    ),
                );
                None
            }
        };
        let interval = self.duration_or(
            wire.interval.as_ref(),
            "interval",
            default.interval,
            Zero::Refused,
        );
        let timeout = self.duration_or(
            wire.timeout.as_ref(),
            "timeout",
            default.timeout,
            Zero::Refused,
        );
        let healthy_threshold = match &wire.healthy_threshold {
            None => Some(default.healthy_threshold),
            Some(value) => self.count(value, "healthy_threshold", 1),
        };
        let unhealthy_threshold = match &wire.unhealthy_threshold {
            None => Some(default.unhealthy_threshold),
            Some(value) => self.count(value, "unhealthy_threshold", 1),
        };
        Some(LocalHealthCheck {
            path: path?,
            interval: interval?,
            timeout: timeout?,
            healthy_threshold: healthy_threshold?,
            unhealthy_threshold: unhealthy_threshold?,
        })
    }

    fn local_alarms(
        &mut self,
        key: &str,
        wires: Vec<Spanned<LocalAlarmWire>>,
    ) -> Option<Vec<LocalAlarm>> {
        let mut alarms: Vec<LocalAlarm> = Vec::new();
        let mut complete = true;
        for wire in wires {
            let table = wire.span();
            let wire = wire.into_inner();
            let name = match wire.name {
                None => {
                    self.report(
                        table.clone(),
                        format!(
                            "a local alarm needs `name`: add the name that [services.{key}.alarms] watches, e.g. name = \"{key}-5xx\""
                        ),
                    );
                    None
                }
                Some(name) if name.get_ref().is_empty() => {
                    self.report(name.span(), "a local alarm's name is empty: give it a name");
                    None
                }
                Some(name) if alarms.iter().any(|a| &a.name == name.get_ref()) => {
                    self.report(
                        name.span(),
                        format!(
                            "local alarm {:?} is defined twice: give each alarm its own name",
                            name.get_ref()
                        ),
                    );
                    None
                }
                Some(name) => Some(name.into_inner()),
            };
            let check = self
                .metric_checks(vec![Spanned::new(
                    table,
                    MetricWire {
                        metric: wire.metric,
                        max: wire.max,
                        min: wire.min,
                        window: wire.window,
                        min_requests: wire.min_requests,
                    },
                )])
                .and_then(|mut checks| checks.pop());
            match (name, check) {
                (Some(name), Some(check)) => alarms.push(LocalAlarm { name, check }),
                _ => complete = false,
            }
        }
        complete.then_some(alarms)
    }

    fn upstreams(&mut self, upstreams: &TextList) -> Option<(String, String)> {
        let [blue, green] = upstreams.get_ref().as_slice() else {
            self.report(
                upstreams.span(),
                format!(
                    "upstreams lists {}: list exactly two URLs, the blue slot's base URL then the green one's",
                    plural(upstreams.get_ref().len(), "URL")
                ),
            );
            return None;
        };
        let blue_url = self.url(blue, "upstream", Schemes::Http);
        let green_url = self.url(green, "upstream", Schemes::Http);
        if blue.get_ref() == green.get_ref() {
            self.report(
                green.span(),
                "both upstreams are the same: blue and green need different upstreams, one per slot",
            );
            return None;
        }
        Some((blue_url?, green_url?))
    }

    fn url(&mut self, value: &Text, what: &str, schemes: Schemes) -> Option<String> {
        let url = value.get_ref();
        let accepted: &[&str] = match schemes {
            Schemes::Http => &["http://"],
            Schemes::HttpOrHttps => &["http://", "https://"],
        };
        let host = accepted.iter().find_map(|scheme| url.strip_prefix(scheme));
        let host_ok = host.is_some_and(|rest| {
            let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
            !authority.is_empty() && !rest.chars().any(char::is_whitespace)
        });
        if host_ok {
            Some(url.clone())
        } else {
            let example = match schemes {
                Schemes::Http => "an http:// URL such as \"http://127.0.0.1:9001\"",
                Schemes::HttpOrHttps => {
                    "an http:// or https:// URL such as \"https://preview.internal:8443\""
                }
            };
            self.report(
                value.span(),
                format!("{what} {url:?} is not a valid URL: use {example}"),
            );
            None
        }
    }

    fn health(&mut self, wire: Option<HealthWire>) -> Option<HealthGate> {
        let Some(wire) = wire else {
            return Some(HealthGate::default());
        };
        let default = HealthGate::default();
        let min_healthy = match &wire.min_healthy {
            None => Some(default.min_healthy),
            Some(value) => self.count(value, "min_healthy", 1),
        };
        let timeout = self.duration_or(
            wire.timeout.as_ref(),
            "timeout",
            default.timeout,
            Zero::Refused,
        );
        Some(HealthGate {
            min_healthy: min_healthy?,
            timeout: timeout?,
        })
    }

    fn smoke_checks(&mut self, wires: Vec<Spanned<SmokeWire>>) -> Option<Vec<SmokeCheck>> {
        let mut names = BTreeSet::new();
        let mut checks = Vec::new();
        let mut complete = true;
        for wire in wires {
            let table = wire.span();
            let wire = wire.into_inner();
            let name = match &wire.name {
                None => {
                    self.report(
                        table.clone(),
                        "a smoke check needs `name`: add a short name for output, e.g. name = \"home\"",
                    );
                    None
                }
                Some(name) if name.get_ref().trim().is_empty() => {
                    self.report(name.span(), "a smoke check's name is empty: give it a short name for output, e.g. \"home\"");
                    None
                }
                Some(name) if !names.insert(name.get_ref().clone()) => {
                    self.report(
                        name.span(),
                        format!(
                            "smoke check name {:?} is used twice: give each check of a service its own name",
                            name.get_ref()
                        ),
                    );
                    None
                }
                Some(name) => Some(name.get_ref().clone()),
            };
            let method = match &wire.method {
                None => Some("GET".to_string()),
                Some(method) => {
                    let upper = method.get_ref().to_ascii_uppercase();
                    if METHODS.contains(&upper.as_str()) {
                        Some(upper)
                    } else {
                        self.report(
                            method.span(),
                            format!(
                                "unknown HTTP method {:?}: use one of {}",
                                method.get_ref(),
                                METHODS.join(", ")
                            ),
                        );
                        None
                    }
                }
            };
            let path = match &wire.path {
                None => {
                    self.report(
                        table,
                        "a smoke check needs `path`: add the path to request, e.g. path = \"/healthz\"",
                    );
                    None
                }
                Some(path) if !path.get_ref().starts_with('/') => {
                    self.report(
                        path.span(),
                        format!(
                            "path {:?} does not start with '/': write it from the root, e.g. \"/{}\"",
                            path.get_ref(),
                            path.get_ref()
                        ),
                    );
                    None
                }
                Some(path) => Some(path.get_ref().clone()),
            };
            let expect_status = match &wire.expect_status {
                None => Some(200),
                Some(status) => {
                    let value = *status.get_ref();
                    match u16::try_from(value)
                        .ok()
                        .filter(|s| (100..=599).contains(s))
                    {
                        Some(status) => Some(status),
                        None => {
                            self.report(
                                status.span(),
                                format!(
                                    "expect_status {value} is not an HTTP status: use a number from 100 to 599, e.g. 200"
                                ),
                            );
                            None
                        }
                    }
                }
            };
            let header = match wire.header {
                None => Some(None),
                Some(header) => {
                    let header = header.into_inner();
                    if header.name.get_ref().trim().is_empty() {
                        self.report(
                            header.name.span(),
                            "the header's name is empty: use the name of the header to check, e.g. \"x-version\"",
                        );
                        None
                    } else {
                        Some(Some((header.name.into_inner(), header.value)))
                    }
                }
            };
            let timeout = self.duration_or(
                wire.timeout.as_ref(),
                "timeout",
                DEFAULT_SMOKE_TIMEOUT,
                Zero::Refused,
            );
            let check = (|| {
                Some(SmokeCheck {
                    name: name?,
                    method: method?,
                    path: path?,
                    expect_status: expect_status?,
                    body_contains: wire.body_contains,
                    header: header?,
                    timeout: timeout?,
                })
            })();
            match check {
                Some(check) => checks.push(check),
                None => complete = false,
            }
        }
        complete.then_some(checks)
    }

    fn alarms(&mut self, wire: Option<AlarmsWire>) -> Option<AlarmGate> {
        let Some(wire) = wire else {
            return Some(AlarmGate::default());
        };
        let mut seen = BTreeSet::new();
        let mut complete = true;
        for name in &wire.names {
            if name.get_ref().trim().is_empty() {
                self.report(
                    name.span(),
                    "an alarm name is empty: use the alarm's name as CloudWatch (or local mode) shows it",
                );
                complete = false;
            } else if !seen.insert(name.get_ref().as_str()) {
                self.report(
                    name.span(),
                    format!(
                        "alarm {:?} is listed twice: list each alarm once",
                        name.get_ref()
                    ),
                );
                complete = false;
            }
        }
        complete.then(|| AlarmGate {
            names: wire.names.into_iter().map(Spanned::into_inner).collect(),
            block_on_baseline: wire.block_on_baseline,
        })
    }

    fn metric_kind(&mut self, value: &Text) -> Option<MetricKind> {
        let found = METRICS
            .into_iter()
            .find(|kind| kind.as_str() == value.get_ref());
        if found.is_none() {
            let known: Vec<&str> = METRICS.iter().map(|kind| kind.as_str()).collect();
            self.report(
                value.span(),
                format!(
                    "unknown metric {:?}: use one of {}",
                    value.get_ref(),
                    known.join(", ")
                ),
            );
        }
        found
    }

    fn metric_checks(&mut self, wires: Vec<Spanned<MetricWire>>) -> Option<Vec<MetricCheck>> {
        let mut checks = Vec::new();
        let mut complete = true;
        for wire in wires {
            let table = wire.span();
            let wire = wire.into_inner();
            let metric = match &wire.metric {
                None => {
                    self.report(
                        table.clone(),
                        "a metric check needs `metric`: add metric = \"error_rate\" (or latency_p95, latency_p99, request_count)",
                    );
                    None
                }
                Some(metric) => self.metric_kind(metric),
            };
            if wire.max.is_none() && wire.min.is_none() {
                self.report(
                    table,
                    "a metric check needs a threshold: add max = ... (the value must not be above it), min = ... (not below it), or both",
                );
                complete = false;
            }
            let max = self.threshold(wire.max.as_ref(), "max", metric);
            let min = self.threshold(wire.min.as_ref(), "min", metric);
            if let (Some(Some(max_value)), Some(Some(min_value)), Some(min_span)) =
                (max, min, wire.min.as_ref().map(Spanned::span))
                && min_value > max_value
            {
                self.report(
                    min_span,
                    format!(
                        "min {min_value} is above max {max_value}, so every value would fail: make min at most max"
                    ),
                );
                complete = false;
            }
            let window = self.duration_or(
                wire.window.as_ref(),
                "window",
                DEFAULT_METRIC_WINDOW,
                Zero::Refused,
            );
            let min_requests = match &wire.min_requests {
                None => Some(0),
                Some(value) => match u64::try_from(*value.get_ref()) {
                    Ok(count) => Some(count),
                    Err(_) => {
                        self.report(
                            value.span(),
                            format!(
                                "min_requests {} is negative: use 0 or more",
                                value.get_ref()
                            ),
                        );
                        None
                    }
                },
            };
            let check = (|| {
                Some(MetricCheck {
                    metric: metric?,
                    max: max?,
                    min: min?,
                    window: window?,
                    min_requests: min_requests?,
                })
            })();
            match check {
                Some(check) => checks.push(check),
                None => complete = false,
            }
        }
        complete.then_some(checks)
    }

    /// Checks a `max` or `min`. The outer `Option` is `None` when there is a problem.
    fn threshold(
        &mut self,
        value: Option<&Spanned<f64>>,
        what: &str,
        metric: Option<MetricKind>,
    ) -> Option<Option<f64>> {
        let Some(value) = value else {
            return Some(None);
        };
        let number = *value.get_ref();
        let problem = if metric == Some(MetricKind::ErrorRate) {
            Percent::new(number)
                .err()
                .map(|error| format!("{what}: {}, as error_rate is a share of requests", error.0))
        } else if !number.is_finite() || number < 0.0 {
            Some(format!(
                "{what} {number} is not a valid threshold: use a number of 0 or more"
            ))
        } else {
            None
        };
        match problem {
            Some(message) => {
                self.report(value.span(), message);
                None
            }
            None => Some(Some(number)),
        }
    }

    fn judge(&mut self, wire: Option<Spanned<JudgeWire>>) -> Option<Option<JudgeSpec>> {
        let Some(wire) = wire else {
            return Some(None);
        };
        let table = wire.span();
        let wire = wire.into_inner();
        let metric = match &wire.metric {
            None => {
                self.report(
                    table.clone(),
                    "the judge needs `metric`: add the metric to compare, e.g. metric = \"latency_p99\"",
                );
                None
            }
            Some(metric) => self.metric_kind(metric),
        };
        let confidence = match &wire.confidence {
            None => {
                self.report(
                    table.clone(),
                    "the judge needs `confidence`: add e.g. confidence = 0.95",
                );
                None
            }
            Some(value) => {
                let number = *value.get_ref();
                if number > 0.5 && number < 1.0 {
                    Some(number)
                } else {
                    self.report(
                        value.span(),
                        format!(
                            "confidence {number} is out of range: use a number strictly between 0.5 and 1, e.g. 0.95"
                        ),
                    );
                    None
                }
            }
        };
        let effect_tolerance = match &wire.effect_tolerance {
            None => {
                self.report(
                    table,
                    "the judge needs `effect_tolerance`: add the relative difference to tolerate, e.g. effect_tolerance = 0.1 for 10%",
                );
                None
            }
            Some(value) => {
                let number = *value.get_ref();
                if number.is_finite() && number >= 0.0 {
                    Some(number)
                } else {
                    self.report(
                        value.span(),
                        format!(
                            "effect_tolerance {number} is out of range: use 0 or more, e.g. 0.1 for 10%"
                        ),
                    );
                    None
                }
            }
        };
        let min_samples = match &wire.min_samples {
            None => Some(DEFAULT_MIN_SAMPLES),
            Some(value) if *value.get_ref() >= 3 => Some(*value.get_ref()),
            Some(value) => {
                self.report(
                    value.span(),
                    format!(
                        "min_samples {} is too small for the test to mean anything: use 3 or more (the default is 10)",
                        value.get_ref()
                    ),
                );
                None
            }
        };
        Some(Some(JudgeSpec {
            metric: metric?,
            confidence: confidence?,
            effect_tolerance: effect_tolerance?,
            min_samples: usize::try_from(min_samples?).ok()?,
        }))
    }

    fn approval(&mut self, wire: Option<ApprovalWire>) -> Option<ApprovalPolicy> {
        let Some(wire) = wire else {
            return Some(ApprovalPolicy::default());
        };
        let quorum = match &wire.quorum {
            None => Some(1),
            Some(value) => {
                let quorum = self.count(value, "quorum", 1);
                let users = wire.users.len();
                if let Some(quorum) = quorum
                    && wire.roles.is_empty()
                    && users > 0
                    && quorum as usize > users
                {
                    self.report(
                        value.span(),
                        format!(
                            "quorum {quorum} is more than the {} listed, so approval could never be reached: lower quorum to at most {users}, or add `roles`",
                            plural(users, "user")
                        ),
                    );
                    None
                } else {
                    quorum
                }
            }
        };
        let timeout = match &wire.timeout {
            None => Some(None),
            Some(timeout) => self.duration(timeout, "timeout", Zero::Refused).map(Some),
        };
        let on_timeout = match &wire.on_timeout {
            None => Some(TimeoutAction::Rollback),
            Some(action) => match action.get_ref().as_str() {
                "rollback" => Some(TimeoutAction::Rollback),
                "promote" => Some(TimeoutAction::Promote),
                other => {
                    self.report(
                        action.span(),
                        format!(
                            "unknown on_timeout action {other:?}: use \"rollback\" or \"promote\""
                        ),
                    );
                    None
                }
            },
        };
        Some(ApprovalPolicy {
            roles: wire.roles,
            users: wire.users,
            quorum: quorum?,
            allow_author: wire.allow_author,
            timeout: timeout?,
            on_timeout: on_timeout?,
        })
    }

    /// A service's chat access, with the roles of its environment filled in, and that
    /// environment's roles for the approval policy.
    fn chat<'e>(
        &mut self,
        wire: Option<ChatWire>,
        environments: &'e BTreeMap<String, EnvironmentRoles>,
    ) -> Option<(ChatAccess, Option<&'e EnvironmentRoles>)> {
        let Some(wire) = wire else {
            return Some((ChatAccess::default(), None));
        };
        let roles = match &wire.environment {
            None => Some(None),
            Some(name) => match environments.get(name.get_ref()) {
                Some(roles) => Some(Some(roles)),
                None => {
                    let known: Vec<&str> = environments.keys().map(String::as_str).collect();
                    let hint = if known.is_empty() {
                        "add an [environments.<name>] table".to_string()
                    } else {
                        format!("use one of: {}", known.join(", "))
                    };
                    self.report(
                        name.span(),
                        format!("unknown environment {:?}: {hint}", name.get_ref()),
                    );
                    None
                }
            },
        };
        let deployers = self.role_ids(wire.deployers, "deployers");
        let roles = roles?;
        let mut deployers = deployers?;
        if deployers.is_empty()
            && let Some(environment) = roles
        {
            deployers = environment.deployers.clone();
        }
        Some((
            ChatAccess {
                environment: wire.environment.map(Spanned::into_inner),
                deployers,
            },
            roles,
        ))
    }

    /// A list of chat role ids: Discord snowflakes, written as strings of digits.
    /// `[flags]`: the flag approvers, from the environment named where none are listed.
    fn flag_access(
        &mut self,
        wire: Option<FlagsWire>,
        environments: &BTreeMap<String, EnvironmentRoles>,
    ) -> Option<FlagAccess> {
        let Some(wire) = wire else {
            return Some(FlagAccess::default());
        };
        let approvers = self.role_ids(wire.approvers, "approvers");
        let environment = match &wire.environment {
            None => Some(None),
            Some(name) => match environments.get(name.get_ref()) {
                Some(roles) => Some(Some(roles)),
                None => {
                    let known: Vec<&str> = environments.keys().map(String::as_str).collect();
                    let hint = if known.is_empty() {
                        "add an [environments.<name>] table".to_string()
                    } else {
                        format!("use one of: {}", known.join(", "))
                    };
                    self.report(
                        name.span(),
                        format!("unknown environment {:?}: {hint}", name.get_ref()),
                    );
                    None
                }
            },
        };
        let mut approvers = approvers?;
        if approvers.is_empty()
            && let Some(roles) = environment?
        {
            approvers = roles.approvers.clone();
        }
        Some(FlagAccess {
            environment: wire.environment.map(Spanned::into_inner),
            approvers,
        })
    }

    fn role_ids(&mut self, list: Vec<Text>, what: &str) -> Option<Vec<String>> {
        let mut ids = Vec::new();
        let mut valid = true;
        for id in list {
            let text = id.get_ref();
            if text.is_empty() || text.len() > 20 || !text.bytes().all(|b| b.is_ascii_digit()) {
                self.report(
                    id.span(),
                    format!(
                        "{text:?} in `{what}` is not a Discord role id: copy the role's id with Developer Mode on, a number such as \"345678901234567890\""
                    ),
                );
                valid = false;
            } else {
                ids.push(id.into_inner());
            }
        }
        valid.then_some(ids)
    }

    fn notifications(&mut self, wire: Option<NotificationsWire>) -> Option<Notifications> {
        let Some(wire) = wire else {
            return Some(Notifications::default());
        };
        let webhook_url = match &wire.webhook_url {
            None => Some(None),
            Some(url) => self.url(url, "webhook_url", Schemes::HttpOrHttps).map(Some),
        };
        Some(Notifications {
            discord_channel: wire.discord_channel,
            on_call_role: wire.on_call_role,
            slack_webhook_param: wire.slack_webhook_param,
            webhook_url: webhook_url?,
        })
    }

    /// A whole number of at least `minimum` that fits a `u32`.
    fn count(&mut self, value: &Spanned<i64>, what: &str, minimum: u32) -> Option<u32> {
        let number = *value.get_ref();
        match u32::try_from(number).ok().filter(|n| *n >= minimum) {
            Some(count) => Some(count),
            None => {
                self.report(
                    value.span(),
                    format!(
                        "{what} {number} is out of range: use a whole number of at least {minimum}"
                    ),
                );
                None
            }
        }
    }

    fn duration(&mut self, value: &Text, what: &str, zero: Zero) -> Option<Duration> {
        match parse_duration(value.get_ref()) {
            Ok(duration) if duration.is_zero() && zero == Zero::Refused => {
                self.report(
                    value.span(),
                    format!("{what} must be longer than 0s: use e.g. \"30s\" or \"5m\""),
                );
                None
            }
            Ok(duration) => Some(duration),
            Err(error) => {
                self.report(value.span(), format!("{what}: {}", error.0));
                None
            }
        }
    }

    fn duration_or(
        &mut self,
        value: Option<&Text>,
        what: &str,
        default: Duration,
        zero: Zero,
    ) -> Option<Duration> {
        match value {
            None => Some(default),
            Some(value) => self.duration(value, what, zero),
        }
    }
}

/// Whether a duration may be zero.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Zero {
    Allowed,
    Refused,
}

/// Which URL schemes a setting accepts.
#[derive(Clone, Copy)]
enum Schemes {
    /// Local mode's proxy speaks plain HTTP to its upstreams.
    Http,
    HttpOrHttps,
}

/// "1 ARN", "2 ARNs": a count with its noun, for messages.
fn plural(number: usize, noun: &str) -> String {
    if number == 1 {
        format!("{number} {noun}")
    } else {
        format!("{number} {noun}s")
    }
}

/// The 1-based line and column (in characters) of a byte offset.
pub(crate) fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    // Spans always fall on character boundaries; this only guards against a library
    // bug turning into a panic while an error is being reported.
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |index| index + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// Rewords serde's and the TOML parser's messages in the file's own terms (keys,
/// tables and arrays rather than fields, maps and sequences), on one line.
pub(crate) fn readable_toml_message(message: &str) -> String {
    let message = message.split_whitespace().collect::<Vec<_>>().join(" ");
    if let Some(rest) = message.strip_prefix("unknown field ") {
        return match rest.split_once(", expected ") {
            Some((key, allowed)) => {
                let allowed = allowed.strip_prefix("one of ").unwrap_or(allowed);
                format!(
                    "unknown key {key}: remove it, or use one of the keys allowed here: {allowed}"
                )
            }
            None => match rest.split_once(", there are no fields") {
                Some((key, _)) => format!("unknown key {key}: this table takes no keys, remove it"),
                None => format!("unknown key {rest}: remove it"),
            },
        };
    }
    if let Some(rest) = message.strip_prefix("missing field ") {
        return format!("missing key {rest}: add it");
    }
    [
        ("expected i64", "expected a whole number"),
        ("expected f64", "expected a number"),
        ("expected a sequence", "expected an array"),
        ("expected a map", "expected a table"),
        ("expected a boolean", "expected true or false"),
    ]
    .into_iter()
    .fold(message, |message, (from, to)| message.replace(from, to))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Ramp;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        parse_config("ripcord.toml", text)
    }

    fn problems(text: &str) -> Vec<ConfigProblem> {
        match parse(text) {
            Ok(_) => panic!("expected problems in:\n{text}"),
            Err(error) => error.problems().to_vec(),
        }
    }

    fn set(percent: u32) -> Step {
        Step::SetWeight(Weight::new(percent).unwrap())
    }

    fn secs(count: u64) -> Duration {
        Duration::from_secs(count)
    }

    const TG_BLUE: &str =
        "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/web-blue/0123456789abcdef";
    const TG_GREEN: &str = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/web-green/fedcba9876543210";
    const LISTENER: &str = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:listener/app/web/0123456789abcdef/fedcba9876543210";

    #[test]
    fn examples_parse() {
        let table = [
            (
                "canary.toml",
                include_str!("../../../../examples/canary.toml"),
                "web",
            ),
            (
                "linear.toml",
                include_str!("../../../../examples/linear.toml"),
                "api",
            ),
            (
                "blue-green.toml",
                include_str!("../../../../examples/blue-green.toml"),
                "checkout",
            ),
        ];
        for (path, text, service) in table {
            let config = match parse_config(path, text) {
                Ok(config) => config,
                Err(error) => panic!("{path} does not parse:\n{error}"),
            };
            let name = ServiceName::new(service).unwrap();
            let spec = config
                .service(&name)
                .unwrap_or_else(|| panic!("{path}: no {service}"));
            assert_eq!(spec.name, name);
            assert_eq!(spec.plan.steps.last(), Some(&set(100)), "{path}");
        }
    }

    #[test]
    fn canary_example_means_what_it_says() {
        let config = parse(include_str!("../../../../examples/canary.toml")).unwrap();
        let web = config.service(&ServiceName::new("web").unwrap()).unwrap();
        assert_eq!(web.strategy, Strategy::Canary);
        assert_eq!(
            web.plan.steps,
            vec![
                set(10),
                Step::Pause(secs(60)),
                Step::Analysis(secs(120)),
                set(50),
                Step::Pause(secs(120)),
                set(100),
            ]
        );
        assert_eq!(web.plan.bake, secs(300));
        assert_eq!(web.plan.ramp, Ramp::Traffic);
        let Some(TrafficTarget::Local(local)) = &web.traffic else {
            panic!("expected a local target, got {:?}", web.traffic);
        };
        assert!(
            local
                .listen
                .parse::<SocketAddr>()
                .unwrap()
                .ip()
                .is_loopback()
        );
        assert_ne!(local.blue, local.green);
        assert!(!web.alarms.names.is_empty());
        let error_rate = &web.metrics[0];
        assert_eq!(error_rate.metric, MetricKind::ErrorRate);
        assert_eq!(error_rate.max, Some(1.0));
        assert_eq!(error_rate.window, secs(60));
        assert_eq!(error_rate.min_requests, 20);
        assert_eq!(
            web.judge.as_ref().map(|j| j.metric),
            Some(MetricKind::LatencyP99)
        );
        assert!(!web.smoke.is_empty());
    }

    #[test]
    fn linear_example_means_what_it_says() {
        let config = parse(include_str!("../../../../examples/linear.toml")).unwrap();
        let api = config.service(&ServiceName::new("api").unwrap()).unwrap();
        assert_eq!(
            api.plan,
            Preset::Linear10PercentEvery1Minute.plan(api.plan.bake)
        );
        assert_eq!(api.strategy, Preset::Linear10PercentEvery1Minute.strategy());
        let Some(TrafficTarget::Aws(aws)) = &api.traffic else {
            panic!("expected an AWS target, got {:?}", api.traffic);
        };
        assert!(aws.blue.as_str().contains(":eu-west-1:123456789012:"));
        assert_ne!(aws.blue, aws.green);
    }

    #[test]
    fn blue_green_example_means_what_it_says() {
        let config = parse(include_str!("../../../../examples/blue-green.toml")).unwrap();
        let checkout = config
            .service(&ServiceName::new("checkout").unwrap())
            .unwrap();
        assert_eq!(checkout.strategy, Strategy::BlueGreen);
        assert_eq!(checkout.plan.steps, vec![Step::Approval, set(100)]);
        assert_eq!(checkout.approval.roles.len(), 2);
        assert_eq!(checkout.approval.quorum, 2);
        assert_eq!(checkout.approval.timeout, Some(secs(30 * 60)));
        assert_eq!(checkout.approval.on_timeout, TimeoutAction::Rollback);
        let Some(TrafficTarget::Aws(aws)) = &checkout.traffic else {
            panic!("expected an AWS target, got {:?}", checkout.traffic);
        };
        assert!(aws.preview_listener.is_some());
        assert!(
            aws.preview_url
                .as_deref()
                .is_some_and(|u| u.starts_with("https://"))
        );
    }

    #[test]
    fn defaults_fill_what_is_left_out() {
        let text = format!(
            r#"
[services.web]
strategy = "all_at_once"

[services.web.aws]
listener_arn = "{LISTENER}"
target_groups = ["{TG_BLUE}", "{TG_GREEN}"]
preview_url = "https://preview.internal:8443"

[services.web.approval]
users = ["222"]

[[services.web.smoke]]
name = "home"
method = "head"
path = "/"

[[services.web.metrics]]
metric = "latency_p95"
max = 250

[services.web.judge]
metric = "latency_p99"
confidence = 0.99
effect_tolerance = 0
"#
        );
        let config = parse(&text).unwrap();
        let web = config.service(&ServiceName::new("web").unwrap()).unwrap();
        assert_eq!(web.plan.bake, secs(300));
        assert_eq!(web.plan.steps, vec![set(100)]);
        assert_eq!(web.initial_live, Slot::Blue);
        assert_eq!(web.health, HealthGate::default());
        assert_eq!(web.alarms, AlarmGate::default());
        assert_eq!(web.notifications, Notifications::default());
        assert_eq!(
            web.approval,
            ApprovalPolicy {
                users: vec!["222".into()],
                ..ApprovalPolicy::default()
            }
        );
        let smoke = &web.smoke[0];
        assert_eq!(smoke.method, "HEAD");
        assert_eq!(smoke.expect_status, 200);
        assert_eq!(smoke.timeout, secs(5));
        assert_eq!(smoke.header, None);
        let metric = &web.metrics[0];
        assert_eq!(metric.max, Some(250.0));
        assert_eq!(metric.window, secs(60));
        assert_eq!(metric.min_requests, 0);
        assert_eq!(web.judge.as_ref().map(|j| j.min_samples), Some(10));
        let Some(TrafficTarget::Aws(aws)) = &web.traffic else {
            panic!("expected an AWS target");
        };
        assert_eq!(
            aws.switch,
            AwsSwitch::Listener(ListenerArn::new(LISTENER).unwrap())
        );
        assert_eq!(aws.blue.as_str(), TG_BLUE);
        assert_eq!(aws.green.as_str(), TG_GREEN);
        assert_eq!(aws.preview_listener, None);
    }

    #[test]
    fn smoke_checks_on_aws_need_the_preview_url() {
        const PREVIEW_LISTENER: &str = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:listener/app/web/0123456789abcdef/0467ef3c8400ae65";
        const PREVIEW_URL: &str = "https://preview.internal:8443";
        const SMOKE: &str = "[[services.web.smoke]]\nname = \"home\"\npath = \"/healthz\"\n";
        let service = |preview: &str, smoke: &str| {
            format!(
                "[services.web]\nstrategy = \"all_at_once\"\n[services.web.aws]\nlistener_arn = \"{LISTENER}\"\ntarget_groups = [\"{TG_BLUE}\", \"{TG_GREEN}\"]\n{preview}{smoke}"
            )
        };
        let listener = format!("preview_listener_arn = \"{PREVIEW_LISTENER}\"\n");
        let url = format!("preview_url = \"{PREVIEW_URL}\"\n");
        // (what the aws table has, smoke checks, the problem at line 3 column 1 if any)
        let table: [(&str, String, &str, Option<&str>); 5] = [
            ("both keys", format!("{listener}{url}"), SMOKE, None),
            (
                // Previews routed by other means: the URL is called as it is.
                "preview_url alone",
                url.clone(),
                SMOKE,
                None,
            ),
            (
                "preview_listener_arn alone",
                listener.clone(),
                SMOKE,
                Some("has no `preview_url`"),
            ),
            (
                "neither key",
                String::new(),
                SMOKE,
                Some("has no `preview_url`"),
            ),
            ("no smoke checks", String::new(), "", None),
        ];
        for (case, preview, smoke, expected) in table {
            let text = service(&preview, smoke);
            match (parse(&text), expected) {
                (Ok(config), None) => {
                    let web = config.service(&ServiceName::new("web").unwrap()).unwrap();
                    let Some(TrafficTarget::Aws(aws)) = &web.traffic else {
                        panic!("{case}: expected an AWS target");
                    };
                    assert_eq!(
                        aws.preview_url.is_some(),
                        preview.contains(PREVIEW_URL),
                        "{case}"
                    );
                    assert_eq!(web.smoke.len(), usize::from(!smoke.is_empty()), "{case}");
                }
                (Err(error), Some(expected)) => {
                    let found = error.problems();
                    assert_eq!(found.len(), 1, "{case}: {error}");
                    let problem = &found[0];
                    assert_eq!((problem.line, problem.column), (3, 1), "{case}: {error}");
                    for needed in [
                        expected,
                        "preview_url",
                        "preview_listener_arn",
                        "[services.web.aws]",
                    ] {
                        assert!(
                            problem.message.contains(needed),
                            "{case}: {needed:?} in {error}"
                        );
                    }
                }
                (Ok(_), Some(expected)) => panic!("{case}: parsed, expected {expected:?}"),
                (Err(error), None) => panic!("{case}: {error}"),
            }
        }
        // Local mode calls the upstreams directly and needs neither key.
        let local = format!("[services.web]\nstrategy = \"all_at_once\"\n{LOCAL}{SMOKE}");
        assert!(parse(&local).is_ok(), "{local}");
    }

    #[test]
    fn every_step_kind_parses() {
        let text = r#"
[authors]
octocat = "123"

[services.web]
strategy = "canary"
live = "green"
bake = "0s"
steps = [
  { set_weight = 0 },
  { smoke = true },
  { set_weight = 5 },
  { pause = "until_resumed" },
  { approval = true },
  { analysis = "90s" },
  { set_weight = 100 },
  { pause = "1m" },
]
[services.web.local]
listen = "[::1]:8080"
upstreams = ["http://localhost:9001", "http://localhost:9002"]
[[services.web.smoke]]
name = "home"
path = "/"
header = { name = "x-version", value = "v43" }
[services.web.judge]
metric = "error_rate"
confidence = 0.9
effect_tolerance = 0.05
"#;
        let config = parse(text).unwrap();
        assert_eq!(
            config.authors.get("octocat").map(String::as_str),
            Some("123")
        );
        let web = config.service(&ServiceName::new("web").unwrap()).unwrap();
        assert_eq!(web.initial_live, Slot::Green);
        assert_eq!(web.plan.bake, Duration::ZERO);
        assert_eq!(
            web.plan.steps,
            vec![
                set(0),
                Step::Smoke,
                set(5),
                Step::PauseUntilResumed,
                Step::Approval,
                Step::Analysis(secs(90)),
                set(100),
                Step::Pause(secs(60)),
            ]
        );
        assert_eq!(
            web.smoke[0].header,
            Some(("x-version".to_string(), "v43".to_string()))
        );
    }

    #[test]
    fn strategies_with_parameters_compile() {
        let local = "[services.web.local]\nlisten = \"127.0.0.1:8080\"\nupstreams = [\"http://127.0.0.1:9001\", \"http://127.0.0.1:9002\"]\n";
        let table: [(&str, Strategy, Vec<Step>, Ramp); 4] = [
            (
                "strategy = \"linear\"\nstep_percent = 50\ninterval = \"2m\"\n",
                Strategy::Linear {
                    step: Weight::new(50).unwrap(),
                    interval: secs(120),
                },
                vec![set(50), Step::Pause(secs(120)), set(100)],
                Ramp::Traffic,
            ),
            (
                "strategy = \"blue_green\"\napprove_before_switch = false\n",
                Strategy::BlueGreen,
                vec![set(100)],
                Ramp::Traffic,
            ),
            (
                "strategy = \"flag\"\nflag = \"new-checkout\"\nsteps = [{ set_weight = 25 }, { set_weight = 100 }]\n",
                Strategy::Flag {
                    flag: "new-checkout".into(),
                },
                vec![set(25), set(100)],
                Ramp::Flag("new-checkout".into()),
            ),
            (
                "preset = \"CodeDeployDefault.LambdaCanary10Percent30Minutes\"\n",
                Strategy::Canary,
                vec![set(10), Step::Pause(secs(1800)), set(100)],
                Ramp::Traffic,
            ),
        ];
        for (service, strategy, steps, ramp) in table {
            let text = format!("[services.web]\n{service}{local}");
            let config = parse(&text).unwrap_or_else(|e| panic!("{service}: {e}"));
            let web = &config.services[&ServiceName::new("web").unwrap()];
            assert_eq!(web.strategy, strategy, "{service}");
            assert_eq!(web.plan.steps, steps, "{service}");
            assert_eq!(web.plan.ramp, ramp, "{service}");
        }
    }

    #[test]
    fn a_listener_rule_can_be_switched() {
        let rule = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:listener-rule/app/web/0123456789abcdef/fedcba9876543210/0011223344556677";
        let text = format!(
            "[services.web]\nstrategy = \"all_at_once\"\n[services.web.aws]\nrule_arn = \"{rule}\"\ntarget_groups = [\"{TG_BLUE}\", \"{TG_GREEN}\"]\n"
        );
        let config = parse(&text).unwrap();
        let web = &config.services[&ServiceName::new("web").unwrap()];
        let Some(TrafficTarget::Aws(aws)) = &web.traffic else {
            panic!("expected an AWS target, got {:?}", web.traffic);
        };
        assert_eq!(
            aws.switch,
            AwsSwitch::Rule(ListenerRuleArn::new(rule).unwrap())
        );

        // A listener ARN is not a rule ARN.
        let wrong = text.replace(rule, LISTENER);
        let found = problems(&wrong);
        assert_eq!((found[0].line, found[0].column), (4, 12), "{}", found[0]);
        assert!(
            found[0].message.contains("is not a listener rule ARN"),
            "{}",
            found[0]
        );
    }

    #[test]
    fn a_flag_service_needs_no_traffic_target() {
        let text = "[services.checkout-flag]\nstrategy = \"flag\"\nflag = \"new-checkout\"\nsteps = [{ set_weight = 100 }]\n";
        let config = parse(text).unwrap();
        let spec = &config.services[&ServiceName::new("checkout-flag").unwrap()];
        assert_eq!(spec.traffic, None);
        assert_eq!(spec.plan.ramp, Ramp::Flag("new-checkout".into()));
    }

    /// A service that is valid as it stands: each case below breaks one thing.
    const LOCAL: &str = "[services.web.local]\nlisten = \"127.0.0.1:8080\"\nupstreams = [\"http://127.0.0.1:9001\", \"http://127.0.0.1:9002\"]\n";

    #[test]
    fn each_rule_is_reported_where_it_is_broken() {
        // (text, line, column, fragment of the message)
        let cases: Vec<(String, usize, usize, &str)> = vec![
            // Service names.
            (
                format!("[services.Web]\nstrategy = \"all_at_once\"\n{}", LOCAL.replace("web", "Web")),
                1,
                11,
                "service name \"Web\" is not valid",
            ),
            // At least one service.
            ("[authors]\nocto = \"1\"\n".to_string(), 1, 1, "no services are configured"),
            ("[services]\n".to_string(), 1, 1, "no services are configured"),
            // Weights in range.
            (
                format!("[services.web]\nstrategy = \"canary\"\nsteps = [\n  {{ set_weight = 120 }},\n]\n{LOCAL}"),
                4,
                18,
                "weight 120 is out of range: use a whole percentage from 0 to 100",
            ),
            (
                format!("[services.web]\nstrategy = \"canary\"\nsteps = [{{ set_weight = -5 }}, {{ set_weight = 100 }}]\n{LOCAL}"),
                3,
                25,
                "weight -5 is out of range",
            ),
            // Weights strictly rising.
            (
                format!("[services.web]\nstrategy = \"canary\"\nsteps = [{{ set_weight = 50 }}, {{ set_weight = 50 }}, {{ set_weight = 100 }}]\n{LOCAL}"),
                3,
                46,
                "does not rise above the previous set_weight 50",
            ),
            // The last weight is 100.
            (
                format!("[services.web]\nstrategy = \"canary\"\nsteps = [{{ set_weight = 10 }}, {{ pause = \"1m\" }}, {{ set_weight = 50 }}]\n{LOCAL}"),
                3,
                64,
                "add { set_weight = 100 }",
            ),
            (
                format!("[services.web]\nstrategy = \"canary\"\nsteps = [{{ pause = \"1m\" }}]\n{LOCAL}"),
                3,
                9,
                "never set a weight",
            ),
            // One key per step.
            (
                format!("[services.web]\nstrategy = \"canary\"\nsteps = [{{ set_weight = 10, pause = \"1m\" }}, {{ set_weight = 100 }}]\n{LOCAL}"),
                3,
                10,
                "this step has 2 keys (set_weight, pause)",
            ),
            (
                format!("[services.web]\nstrategy = \"canary\"\nsteps = [{{}}, {{ set_weight = 100 }}]\n{LOCAL}"),
                3,
                10,
                "this step is empty",
            ),
            // Durations parse, and pauses are longer than zero.
            (
                format!("[services.web]\nstrategy = \"canary\"\nsteps = [{{ pause = \"5 minutes\" }}, {{ set_weight = 100 }}]\n{LOCAL}"),
                3,
                20,
                "is not a duration",
            ),
            (
                format!("[services.web]\nstrategy = \"canary\"\nsteps = [{{ pause = \"0s\" }}, {{ set_weight = 100 }}]\n{LOCAL}"),
                3,
                20,
                "a pause must be longer than 0s",
            ),
            (
                format!("[services.web]\nstrategy = \"all_at_once\"\nbake = \"soon\"\n{LOCAL}"),
                3,
                8,
                "bake: \"soon\" is not a duration",
            ),
            // Approval and smoke steps must be true.
            (
                format!("[services.web]\nstrategy = \"canary\"\nsteps = [{{ approval = false }}, {{ set_weight = 100 }}]\n{LOCAL}"),
                3,
                23,
                "write { approval = true }",
            ),
            // Steps only for canary and flag.
            (
                format!("[services.web]\nstrategy = \"blue_green\"\nsteps = [{{ set_weight = 100 }}]\n{LOCAL}"),
                3,
                9,
                "`steps` only applies to strategy = \"canary\" or \"flag\", not \"blue_green\"",
            ),
            (
                format!("[services.web]\npreset = \"AllAtOnce\"\nsteps = [{{ set_weight = 100 }}]\n{LOCAL}"),
                3,
                9,
                "cannot be combined with preset \"AllAtOnce\"",
            ),
            // Linear's settings only for linear, and required there.
            (
                format!("[services.web]\nstrategy = \"canary\"\nstep_percent = 10\nsteps = [{{ set_weight = 100 }}]\n{LOCAL}"),
                3,
                16,
                "`step_percent` only applies to strategy = \"linear\"",
            ),
            (
                format!("[services.web]\nstrategy = \"all_at_once\"\ninterval = \"1m\"\n{LOCAL}"),
                3,
                12,
                "`interval` only applies to strategy = \"linear\"",
            ),
            (
                format!("[services.web]\nstrategy = \"linear\"\ninterval = \"1m\"\n{LOCAL}"),
                2,
                12,
                "needs `step_percent`",
            ),
            (
                format!("[services.web]\nstrategy = \"linear\"\nstep_percent = 0\ninterval = \"1m\"\n{LOCAL}"),
                3,
                16,
                "step_percent 0 is out of range",
            ),
            (
                format!("[services.web]\nstrategy = \"linear\"\nstep_percent = 10\ninterval = \"0s\"\n{LOCAL}"),
                4,
                12,
                "interval must be longer than 0s",
            ),
            // Flag only for flag, and required there.
            (
                format!("[services.web]\nstrategy = \"canary\"\nflag = \"x\"\nsteps = [{{ set_weight = 100 }}]\n{LOCAL}"),
                3,
                8,
                "`flag` only applies to strategy = \"flag\"",
            ),
            (
                "[services.web]\nstrategy = \"flag\"\nsteps = [{ set_weight = 100 }]\n".to_string(),
                2,
                12,
                "needs `flag`",
            ),
            // approve_before_switch only for blue_green.
            (
                format!("[services.web]\nstrategy = \"canary\"\napprove_before_switch = true\nsteps = [{{ set_weight = 100 }}]\n{LOCAL}"),
                3,
                25,
                "`approve_before_switch` only applies to strategy = \"blue_green\"",
            ),
            // Analysis needs metrics or a judge; smoke needs smoke checks.
            (
                format!("[services.web]\nstrategy = \"canary\"\nsteps = [{{ set_weight = 10 }}, {{ analysis = \"5m\" }}, {{ set_weight = 100 }}]\n{LOCAL}"),
                3,
                44,
                "add [[services.web.metrics]] checks or a [services.web.judge]",
            ),
            (
                format!("[services.web]\nstrategy = \"canary\"\nsteps = [{{ smoke = true }}, {{ set_weight = 100 }}]\n{LOCAL}"),
                3,
                20,
                "add at least one [[services.web.smoke]]",
            ),
            // Strategy and preset.
            (
                format!("[services.web]\nstrategy = \"canary\"\npreset = \"AllAtOnce\"\n{LOCAL}"),
                3,
                10,
                "`preset` and `strategy` cannot both be set",
            ),
            (
                format!("[services.web]\nstrategy = \"rolling\"\n{LOCAL}"),
                2,
                12,
                "unknown strategy \"rolling\": use one of blue_green, canary, linear, all_at_once, flag",
            ),
            (
                format!("[services.web]\npreset = \"Canary50Percent\"\n{LOCAL}"),
                2,
                10,
                "unknown preset \"Canary50Percent\": use one of Canary10Percent5Minutes",
            ),
            (
                format!("[services.web]\nlive = \"blue\"\n{LOCAL}"),
                1,
                1,
                "service `web` has no strategy",
            ),
            (
                format!("[services.web]\nstrategy = \"canary\"\n{LOCAL}"),
                2,
                12,
                "strategy \"canary\" needs `steps`",
            ),
            (
                format!("[services.web]\nstrategy = \"all_at_once\"\nlive = \"purple\"\n{LOCAL}"),
                3,
                8,
                "live must be \"blue\" or \"green\"",
            ),
            // Quorum.
            (
                format!("[services.web]\nstrategy = \"all_at_once\"\n{LOCAL}[services.web.approval]\nusers = [\"1\", \"2\"]\nquorum = 3\n"),
                8,
                10,
                "quorum 3 is more than the 2 users listed",
            ),
            (
                format!("[services.web]\nstrategy = \"all_at_once\"\n{LOCAL}[services.web.approval]\nquorum = 0\n"),
                7,
                10,
                "quorum 0 is out of range",
            ),
            // Exactly one traffic target.
            (
                "[services.web]\nstrategy = \"all_at_once\"\n".to_string(),
                1,
                1,
                "service `web` has no traffic target",
            ),
            (
                format!("[services.web]\nstrategy = \"all_at_once\"\n[services.web.aws]\nlistener_arn = \"{LISTENER}\"\ntarget_groups = [\"{TG_BLUE}\", \"{TG_GREEN}\"]\n{LOCAL}"),
                6,
                1,
                "has both [services.web.aws] and [services.web.local]",
            ),
            // ARNs, listener or rule, target groups.
            (
                format!("[services.web]\nstrategy = \"all_at_once\"\n[services.web.aws]\nlistener_arn = \"arn:aws:elasticloadbalancing:eu-west-1:123:listener/app/web/a/b\"\ntarget_groups = [\"{TG_BLUE}\", \"{TG_GREEN}\"]\n"),
                4,
                16,
                "is not a listener ARN",
            ),
            (
                format!("[services.web]\nstrategy = \"all_at_once\"\n[services.web.aws]\ntarget_groups = [\"{TG_BLUE}\", \"{TG_GREEN}\"]\n"),
                3,
                1,
                "needs `listener_arn` or `rule_arn`",
            ),
            (
                format!("[services.web]\nstrategy = \"all_at_once\"\n[services.web.aws]\nlistener_arn = \"{LISTENER}\"\nrule_arn = \"x\"\ntarget_groups = [\"{TG_BLUE}\", \"{TG_GREEN}\"]\n"),
                5,
                12,
                "`listener_arn` and `rule_arn` are both set",
            ),
            (
                format!("[services.web]\nstrategy = \"all_at_once\"\n[services.web.aws]\nlistener_arn = \"{LISTENER}\"\ntarget_groups = [\"{TG_BLUE}\", \"{TG_BLUE}\"]\n"),
                5,
                22 + TG_BLUE.len(),
                "both target groups are the same",
            ),
            (
                format!("[services.web]\nstrategy = \"all_at_once\"\n[services.web.aws]\nlistener_arn = \"{LISTENER}\"\ntarget_groups = [\"{TG_BLUE}\"]\n"),
                5,
                17,
                "target_groups lists 1 ARN: list exactly two ARNs",
            ),
            (
                format!("[services.web]\nstrategy = \"all_at_once\"\n[services.web.aws]\nlistener_arn = \"{LISTENER}\"\ntarget_groups = [\"{TG_BLUE}\", \"{LISTENER}\"]\n"),
                5,
                22 + TG_BLUE.len(),
                "is not a target group ARN",
            ),
            (
                format!("[services.web]\nstrategy = \"all_at_once\"\n[services.web.aws]\nlistener_arn = \"{LISTENER}\"\ntarget_groups = [\"{TG_BLUE}\", \"{TG_GREEN}\"]\npreview_url = \"preview.internal\"\n"),
                6,
                15,
                "use an http:// or https:// URL",
            ),
            // Local mode.
            (
                "[services.web]\nstrategy = \"all_at_once\"\n[services.web.local]\nlisten = \"localhost\"\nupstreams = [\"http://127.0.0.1:9001\", \"http://127.0.0.1:9002\"]\n".to_string(),
                4,
                10,
                "is not a socket address",
            ),
            (
                "[services.web]\nstrategy = \"all_at_once\"\n[services.web.local]\nlisten = \"127.0.0.1:8080\"\nupstreams = [\"http://127.0.0.1:9001\", \"http://127.0.0.1:9001\"]\n".to_string(),
                5,
                39,
                "both upstreams are the same",
            ),
            (
                "[services.web]\nstrategy = \"all_at_once\"\n[services.web.local]\nlisten = \"127.0.0.1:8080\"\nupstreams = [\"https://a\", \"http://b\"]\n".to_string(),
                5,
                14,
                "use an http:// URL",
            ),
            // Smoke checks.
            (
                format!("[services.web]\nstrategy = \"all_at_once\"\n{LOCAL}[[services.web.smoke]]\nname = \"home\"\npath = \"/\"\n[[services.web.smoke]]\nname = \"home\"\npath = \"healthz\"\nmethod = \"FETCH\"\nexpect_status = 700\ntimeout = \"0s\"\n"),
                10,
                8,
                "smoke check name \"home\" is used twice",
            ),
            // Alarms.
            (
                format!("[services.web]\nstrategy = \"all_at_once\"\n{LOCAL}[services.web.alarms]\nnames = [\"web-5xx\", \"web-5xx\"]\n"),
                7,
                21,
                "alarm \"web-5xx\" is listed twice",
            ),
            // Metric checks and the judge.
            (
                format!("[services.web]\nstrategy = \"all_at_once\"\n{LOCAL}[[services.web.metrics]]\nmetric = \"error_rate\"\nmax = 120.0\n"),
                8,
                7,
                "percentage 120 is out of range",
            ),
            (
                format!("[services.web]\nstrategy = \"all_at_once\"\n{LOCAL}[[services.web.metrics]]\nmetric = \"error_rate\"\n"),
                6,
                1,
                "a metric check needs a threshold",
            ),
            (
                format!("[services.web]\nstrategy = \"all_at_once\"\n{LOCAL}[[services.web.metrics]]\nmetric = \"apdex\"\nmax = 1\n"),
                7,
                10,
                "unknown metric \"apdex\"",
            ),
            (
                format!("[services.web]\nstrategy = \"all_at_once\"\n{LOCAL}[[services.web.metrics]]\nmetric = \"latency_p95\"\nmax = 100\nmin = 200\n"),
                9,
                7,
                "min 200 is above max 100",
            ),
            (
                format!("[services.web]\nstrategy = \"all_at_once\"\n{LOCAL}[services.web.judge]\nmetric = \"latency_p99\"\nconfidence = 1.0\neffect_tolerance = 0.1\n"),
                8,
                14,
                "strictly between 0.5 and 1",
            ),
            (
                format!("[services.web]\nstrategy = \"all_at_once\"\n{LOCAL}[services.web.judge]\nmetric = \"latency_p99\"\nconfidence = 0.95\neffect_tolerance = 0.1\nmin_samples = 2\n"),
                10,
                15,
                "use 3 or more",
            ),
            // Health and notifications.
            (
                format!("[services.web]\nstrategy = \"all_at_once\"\n{LOCAL}[services.web.health]\nmin_healthy = 0\n"),
                7,
                15,
                "min_healthy 0 is out of range",
            ),
            (
                format!("[services.web]\nstrategy = \"all_at_once\"\n{LOCAL}[services.web.notifications]\nwebhook_url = \"ftp://example.com\"\n"),
                7,
                15,
                "webhook_url \"ftp://example.com\" is not a valid URL",
            ),
        ];
        // Every case is tried before failing, so that one run shows every mismatch.
        let mut mismatches = Vec::new();
        for (text, line, column, fragment) in cases {
            let found = problems(&text);
            let matched = found.iter().any(|p| {
                p.line == line
                    && p.column == column
                    && p.message.contains(fragment)
                    && p.path == "ripcord.toml"
            });
            if !matched {
                let got: Vec<String> = found.iter().map(ToString::to_string).collect();
                mismatches.push(format!(
                    "expected {line}:{column} {fragment:?} in:\n{text}got:\n{}\n",
                    got.join("\n")
                ));
            }
        }
        assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
    }

    #[test]
    fn an_environment_fills_in_the_roles_a_service_leaves_out() {
        let text = format!(
            "[environments.production]\ndeployers = [\"333\"]\napprovers = [\"111\"]\n\
             [services.web]\nstrategy = \"all_at_once\"\n{LOCAL}\
             [services.web.chat]\nenvironment = \"production\"\n\
             [services.api]\nstrategy = \"all_at_once\"\n\
             [services.api.local]\nlisten = \"127.0.0.1:8081\"\nupstreams = [\"http://127.0.0.1:9003\", \"http://127.0.0.1:9004\"]\n\
             [services.api.chat]\nenvironment = \"production\"\ndeployers = [\"444\"]\n\
             [services.api.approval]\nusers = [\"222\"]\n"
        );
        let config = parse(&text).unwrap();
        let web = config.service(&ServiceName::new("web").unwrap()).unwrap();
        assert_eq!(web.chat.environment.as_deref(), Some("production"));
        assert_eq!(web.chat.deployers, vec!["333".to_string()]);
        assert_eq!(web.approval.roles, vec!["111".to_string()]);
        let api = config.service(&ServiceName::new("api").unwrap()).unwrap();
        assert_eq!(api.chat.deployers, vec!["444".to_string()]);
        assert!(
            api.approval.roles.is_empty(),
            "the service's own approvers win"
        );
        assert_eq!(api.approval.users, vec!["222".to_string()]);
    }

    #[test]
    fn flag_approvers_come_from_flags_or_its_environment() {
        let base = format!("[services.web]\nstrategy = \"all_at_once\"\n{LOCAL}");
        let none = parse(&base).unwrap();
        assert_eq!(none.flags, FlagAccess::default());
        let listed = parse(&format!(
            "[environments.production]\napprovers = [\"111\"]\n\
             [flags]\nenvironment = \"production\"\napprovers = [\"555\"]\n{base}"
        ))
        .unwrap();
        assert_eq!(listed.flags.approvers, vec!["555".to_string()]);
        let inherited = parse(&format!(
            "[environments.production]\napprovers = [\"111\"]\n\
             [flags]\nenvironment = \"production\"\n{base}"
        ))
        .unwrap();
        assert_eq!(inherited.flags.approvers, vec!["111".to_string()]);
        assert_eq!(inherited.flags.environment.as_deref(), Some("production"));
        let found: Vec<(usize, String)> = problems(&format!(
            "[flags]\nenvironment = \"prod\"\napprovers = [\"x1\"]\n{base}"
        ))
        .into_iter()
        .map(|p| (p.line, p.message))
        .collect();
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!(found[0].0, 2);
        assert!(
            found[0].1.contains("unknown environment \"prod\""),
            "{found:?}"
        );
        assert_eq!(found[1].0, 3);
        assert!(found[1].1.contains("\"x1\" in `approvers`"), "{found:?}");
    }

    #[test]
    fn chat_roles_and_environments_are_checked_where_written() {
        let text = format!(
            "[environments.production]\ndeployers = [\"ops\"]\n\
             [services.web]\nstrategy = \"all_at_once\"\n{LOCAL}\
             [services.web.chat]\nenvironment = \"prod\"\ndeployers = [\"12a\"]\n"
        );
        let found: Vec<(usize, String)> = problems(&text)
            .into_iter()
            .map(|p| (p.line, p.message))
            .collect();
        assert_eq!(found.len(), 3, "{found:?}");
        assert_eq!(found[0].0, 2);
        assert!(
            found[0]
                .1
                .contains("\"ops\" in `deployers` is not a Discord role id")
        );
        assert_eq!(found[1].0, 9);
        assert!(
            found[1]
                .1
                .contains("unknown environment \"prod\": use one of: production")
        );
        assert_eq!(found[2].0, 10);
        assert!(found[2].1.contains("\"12a\""));
    }

    #[test]
    fn every_problem_is_reported_not_just_the_first() {
        let text = format!(
            "[services.web]\nstrategy = \"all_at_once\"\n{LOCAL}[[services.web.smoke]]\nname = \"home\"\npath = \"healthz\"\nmethod = \"FETCH\"\nexpect_status = 700\ntimeout = \"0s\"\n[services.web.health]\nmin_healthy = 0\n"
        );
        let found = problems(&text);
        let expected = [
            (8, 8, "path \"healthz\" does not start with '/'"),
            (9, 10, "unknown HTTP method \"FETCH\""),
            (10, 17, "expect_status 700 is not an HTTP status"),
            (11, 11, "timeout must be longer than 0s"),
            (13, 15, "min_healthy 0 is out of range"),
        ];
        assert_eq!(found.len(), expected.len(), "{found:#?}");
        for ((line, column, fragment), problem) in expected.into_iter().zip(&found) {
            assert_eq!((problem.line, problem.column), (line, column), "{problem}");
            assert!(problem.message.contains(fragment), "{problem}");
        }
    }

    #[test]
    fn problems_across_services_are_all_reported_in_file_order() {
        let text = format!(
            "[services.web]\nstrategy = \"canary\"\nsteps = [{{ set_weight = 120 }}]\n{LOCAL}\n[services.api]\nstrategy = \"rolling\"\n{}",
            LOCAL.replace("web", "api")
        );
        let error = parse(&text).unwrap_err();
        let positions: Vec<(usize, usize)> = error
            .problems()
            .iter()
            .map(|p| (p.line, p.column))
            .collect();
        assert_eq!(positions, vec![(3, 25), (9, 12)], "{error}");
    }

    #[test]
    fn unknown_keys_are_refused_with_their_position() {
        let cases = [
            (
                format!("[services.web]\nstratgy = \"canary\"\n{LOCAL}"),
                2,
                1,
                "unknown key `stratgy`: remove it, or use one of the keys allowed here: `strategy`, `preset`",
            ),
            (
                format!(
                    "[services.web]\nstrategy = \"canary\"\nsteps = [{{ set_wieght = 100 }}]\n{LOCAL}"
                ),
                3,
                12,
                "unknown key `set_wieght`",
            ),
            (
                format!(
                    "[services.web]\nstrategy = \"all_at_once\"\n{LOCAL}[services.web.alarms]\nnames = []\nthreshold = 5\n"
                ),
                8,
                1,
                "unknown key `threshold`",
            ),
            (
                "[server]\nport = 1\n".to_string(),
                1,
                2,
                "unknown key `server`",
            ),
        ];
        for (text, line, column, fragment) in cases {
            let found = problems(&text);
            assert_eq!(found.len(), 1, "{found:#?}");
            let problem = &found[0];
            assert_eq!((problem.line, problem.column), (line, column), "{problem}");
            assert!(problem.message.contains(fragment), "{problem}");
        }
    }

    #[test]
    fn syntax_and_type_errors_have_a_position() {
        let cases = [
            ("[services.web]\nstrategy = \n".to_string(), 2, 12, ""),
            (
                "[services.web\nstrategy = \"canary\"\n".to_string(),
                1,
                14,
                "",
            ),
            (
                "[services.web]\nstrategy = \"canary\"\nstrategy = \"linear\"\n".to_string(),
                3,
                1,
                "duplicate key",
            ),
            (
                format!(
                    "[services.web]\nstrategy = \"linear\"\nstep_percent = \"10\"\ninterval = \"1m\"\n{LOCAL}"
                ),
                3,
                16,
                "expected a whole number",
            ),
            (
                format!(
                    "[services.web]\nstrategy = \"canary\"\nsteps = {{ set_weight = 100 }}\n{LOCAL}"
                ),
                3,
                9,
                "expected an array",
            ),
            (
                format!(
                    "[services.web]\nstrategy = \"canary\"\nsteps = [10, {{ set_weight = 100 }}]\n{LOCAL}"
                ),
                3,
                10,
                "expected a step table",
            ),
        ];
        for (text, line, column, fragment) in cases {
            let found = problems(&text);
            assert_eq!(found.len(), 1, "{found:#?}");
            let problem = &found[0];
            assert_eq!((problem.line, problem.column), (line, column), "{problem}");
            assert!(problem.message.contains(fragment), "{problem}");
            assert!(!problem.message.contains('\n'), "{problem}");
        }
    }

    #[test]
    fn errors_display_one_problem_per_line() {
        let text = format!(
            "[services.web]\nstrategy = \"canary\"\nsteps = [\n  {{ set_weight = 10 }},\n  {{ set_weight = 120 }},\n]\nlive = \"red\"\n{LOCAL}"
        );
        let error = parse(&text).unwrap_err();
        assert_eq!(
            error.to_string(),
            "ripcord.toml:5:18: weight 120 is out of range: use a whole percentage from 0 to 100\n\
             ripcord.toml:7:8: unknown slot \"red\": live must be \"blue\" or \"green\""
        );
    }

    #[test]
    fn columns_count_characters_not_bytes() {
        let table = [
            ("abc", 0, (1, 1)),
            ("abc", 2, (1, 3)),
            ("a\nbc", 2, (2, 1)),
            ("a\r\nbc", 4, (2, 2)),
            ("é = \"x\"\nz", 5, (1, 5)),
            ("x", 10, (1, 2)),
        ];
        for (text, offset, expected) in table {
            assert_eq!(
                line_and_column(text, offset),
                expected,
                "{text:?} at {offset}"
            );
        }
    }
}
