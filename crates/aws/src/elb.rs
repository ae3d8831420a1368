//! The ALB traffic router and target health source: a service's weights live in the
//! forward action of one listener (its default action) or one listener rule, which
//! forwards to the service's two target groups.
//!
//! Ripcord owns the weights of that forward action and nothing else. Before it reads
//! or writes them it checks that the action is what the configuration says: one
//! forward action to the service's blue and green target groups and no others. A
//! listener that was pointed somewhere else by hand is refused, not overwritten, so
//! Ripcord never takes traffic away from a target group it does not know about.

use aws_sdk_elasticloadbalancingv2::Client;
use aws_sdk_elasticloadbalancingv2::types::{
    Action, ActionTypeEnum, ForwardActionConfig, TargetGroupStickinessConfig, TargetGroupTuple,
    TargetHealthDescription, TargetHealthStateEnum,
};
use ripcord_core::config::{AwsSwitch, AwsTarget, ServiceSpec, TrafficTarget};
use ripcord_core::domain::{Slot, Weights};
use ripcord_core::observation::HealthReport;
use ripcord_core::ports::{BoxFuture, PortError, TargetHealth, TrafficRouter};

use crate::errors::port_error;

/// Sets, reads and checks the weights of services behind an Application Load Balancer,
/// and reports the target health of their target groups.
#[derive(Debug, Clone)]
pub struct AlbRouter {
    client: Client,
}

impl AlbRouter {
    /// A router that works through this ELBv2 client.
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    /// The actions that currently hold the service's weights: the listener's default
    /// actions, or the rule's actions.
    async fn current_actions(&self, switch: &AwsSwitch) -> Result<Vec<Action>, PortError> {
        match switch {
            AwsSwitch::Listener(arn) => {
                let out = self
                    .client
                    .describe_listeners()
                    .listener_arns(arn.as_str())
                    .send()
                    .await
                    .map_err(|e| port_error(&format!("DescribeListeners for {arn}"), &e))?;
                let listener = out.listeners().first().ok_or_else(|| {
                    PortError::permanent(format!(
                        "listener {arn} was not found: check listener_arn in ripcord.toml"
                    ))
                })?;
                Ok(listener.default_actions().to_vec())
            }
            AwsSwitch::Rule(arn) => {
                let out = self
                    .client
                    .describe_rules()
                    .rule_arns(arn.as_str())
                    .send()
                    .await
                    .map_err(|e| port_error(&format!("DescribeRules for {arn}"), &e))?;
                let rule = out.rules().first().ok_or_else(|| {
                    PortError::permanent(format!(
                        "listener rule {arn} was not found: check rule_arn in ripcord.toml"
                    ))
                })?;
                Ok(rule.actions().to_vec())
            }
        }
    }

    /// Reads the switch's forward action and checks it against the service.
    async fn current_forward(
        &self,
        service: &ServiceSpec,
        target: &AwsTarget,
    ) -> Result<Forward, PortError> {
        let actions = self.current_actions(&target.switch).await?;
        check_forward(service, target, &actions).map_err(PortError::permanent)
    }
}

/// The service's ALB settings, or a permanent error for a service that is not behind
/// an ALB (a local-mode service, or a flag service with no traffic target).
fn aws_target(service: &ServiceSpec) -> Result<&AwsTarget, PortError> {
    match &service.traffic {
        Some(TrafficTarget::Aws(target)) => Ok(target),
        Some(TrafficTarget::Local(_)) => Err(PortError::permanent(format!(
            "service {name} is not behind an ALB: it is configured for local mode ([services.{name}.local]), so the AWS adapter cannot route its traffic; run it with `ripcord up` or give it [services.{name}.aws]",
            name = service.name
        ))),
        None => Err(PortError::permanent(format!(
            "service {name} is not behind an ALB: it has no traffic target, so the AWS adapter cannot route its traffic; give it [services.{name}.aws] with listener_arn or rule_arn",
            name = service.name
        ))),
    }
}

/// How a switch is named in messages and logs.
fn switch_label(switch: &AwsSwitch) -> String {
    match switch {
        AwsSwitch::Listener(arn) => format!("listener {arn}"),
        AwsSwitch::Rule(arn) => format!("listener rule {arn}"),
    }
}

/// The forward action found on a switch, already checked to reach only the service's
/// two target groups.
#[derive(Debug, Clone, PartialEq)]
struct Forward {
    /// The blue target group's relative weight (0 when it is not listed).
    blue: u32,
    /// The green target group's relative weight (0 when it is not listed).
    green: u32,
    /// The action's position, kept so that a rewrite does not reorder anything.
    order: Option<i32>,
    /// Stickiness between the target groups, kept as it was.
    stickiness: Option<TargetGroupStickinessConfig>,
}

impl Forward {
    fn weights(&self, service: &ServiceSpec, target: &AwsTarget) -> Result<Weights, PortError> {
        Weights::from_relative(self.blue, self.green).map_err(|e| {
            PortError::permanent(format!(
                "{} of service {}: {e}",
                switch_label(&target.switch),
                service.name
            ))
        })
    }
}

/// Names an action for a message: its type, and where a redirect or fixed response goes.
fn describe_action(action: &Action) -> String {
    match action.r#type() {
        Some(ActionTypeEnum::Redirect) => {
            let redirect = action.redirect_config();
            let part = |value: Option<&str>, default: &'static str| {
                value
                    .map(str::to_string)
                    .unwrap_or_else(|| default.to_string())
            };
            format!(
                "a redirect ({} to {}://{}:{}{})",
                redirect
                    .and_then(|r| r.status_code())
                    .map_or("redirect", |code| code.as_str()),
                part(redirect.and_then(|r| r.protocol()), "#{protocol}"),
                part(redirect.and_then(|r| r.host()), "#{host}"),
                part(redirect.and_then(|r| r.port()), "#{port}"),
                part(redirect.and_then(|r| r.path()), "/#{path}"),
            )
        }
        Some(ActionTypeEnum::FixedResponse) => format!(
            "a fixed response (status {})",
            action
                .fixed_response_config()
                .and_then(|f| f.status_code())
                .unwrap_or("unknown")
        ),
        Some(other) => format!("a {} action", other.as_str()),
        None => "an action of unknown type".to_string(),
    }
}

/// Checks that `actions` are one forward action to the service's target groups and no
/// others, and returns its weights. The error says what was found and what is expected.
fn check_forward(
    service: &ServiceSpec,
    target: &AwsTarget,
    actions: &[Action],
) -> Result<Forward, String> {
    let what = switch_label(&target.switch);
    let expected = format!(
        "expected one forward action to the target groups of service {}: blue {} and green {}",
        service.name, target.blue, target.green
    );
    let action = match actions {
        [action] => action,
        [] => return Err(format!("{what} has no action; {expected}")),
        several => {
            let found: Vec<String> = several.iter().map(describe_action).collect();
            return Err(format!(
                "{what} has {} actions ({}); {expected}",
                several.len(),
                found.join(", ")
            ));
        }
    };
    if action.r#type() != Some(&ActionTypeEnum::Forward) {
        return Err(format!(
            "{what} does not forward: its action is {}; {expected}",
            describe_action(action)
        ));
    }

    // A listed target group without a weight counts as 1: only the ratio matters, and
    // a forward to a single target group is often written without one.
    let config = action.forward_config();
    let listed: Vec<(&str, u32)> = match config.map(|c| c.target_groups()) {
        Some(groups) if !groups.is_empty() => groups
            .iter()
            .map(|g| {
                (
                    g.target_group_arn().unwrap_or_default(),
                    g.weight().map_or(1, |w| u32::try_from(w).unwrap_or(0)),
                )
            })
            .collect(),
        _ => match action.target_group_arn() {
            Some(arn) => vec![(arn, 1)],
            None => {
                return Err(format!("{what} forwards to no target group; {expected}"));
            }
        },
    };

    let mut blue = None;
    let mut green = None;
    let mut strangers = Vec::new();
    for (arn, weight) in listed {
        let slot = if arn == target.blue.as_str() {
            &mut blue
        } else if arn == target.green.as_str() {
            &mut green
        } else {
            strangers.push(format!("{arn} (weight {weight})"));
            continue;
        };
        if slot.replace(weight).is_some() {
            return Err(format!("{what} lists target group {arn} twice; {expected}"));
        }
    }
    if !strangers.is_empty() {
        return Err(format!(
            "{what} forwards to {}, which {} not a target group of service {}; {expected}. Remove the other target group from the {} or fix target_groups in ripcord.toml",
            strangers.join(" and "),
            if strangers.len() == 1 { "is" } else { "are" },
            service.name,
            match target.switch {
                AwsSwitch::Listener(_) => "listener",
                AwsSwitch::Rule(_) => "rule",
            }
        ));
    }
    Ok(Forward {
        blue: blue.unwrap_or(0),
        green: green.unwrap_or(0),
        order: action.order(),
        stickiness: config.and_then(|c| c.target_group_stickiness_config().cloned()),
    })
}

/// One forward action carrying `weights` (percentages, which ALBs take as relative
/// weights) and the stickiness of the action it replaces.
fn weighted_forward(target: &AwsTarget, weights: Weights, current: &Forward) -> Action {
    let tuple = |slot: Slot| {
        TargetGroupTuple::builder()
            .target_group_arn(target.target_group(slot).as_str())
            .weight(i32::from(weights.of(slot).get()))
            .build()
    };
    let forward = ForwardActionConfig::builder()
        .target_groups(tuple(Slot::Blue))
        .target_groups(tuple(Slot::Green))
        .set_target_group_stickiness_config(current.stickiness.clone())
        .build();
    Action::builder()
        .r#type(ActionTypeEnum::Forward)
        .forward_config(forward)
        .set_order(current.order)
        .build()
}

/// How a target that is not healthy is reported: `<id>:<port> <state> (<reason>)`.
fn describe_unhealthy(description: &TargetHealthDescription) -> String {
    let target = description.target();
    let id = target.and_then(|t| t.id()).unwrap_or("unknown target");
    let address = match target.and_then(|t| t.port()) {
        Some(port) => format!("{id}:{port}"),
        // Lambda targets have no port.
        None => id.to_string(),
    };
    let health = description.target_health();
    let state = health
        .and_then(|h| h.state())
        .map_or("unknown", |s| s.as_str());
    match health.and_then(|h| h.reason()) {
        Some(reason) => format!("{address} {state} ({})", reason.as_str()),
        None => format!("{address} {state}"),
    }
}

impl TrafficRouter for AlbRouter {
    fn set_weights<'a>(
        &'a self,
        service: &'a ServiceSpec,
        weights: Weights,
    ) -> BoxFuture<'a, Result<(), PortError>> {
        Box::pin(async move {
            let target = aws_target(service)?;
            let what = switch_label(&target.switch);
            // The check and the write are two calls: ELBv2 has no conditional update.
            // The window between them is one round trip, and the next read of the
            // weights (which every pass makes) catches anything that slipped in.
            let actions = self.current_actions(&target.switch).await?;
            let current = check_forward(service, target, &actions).map_err(|found| {
                PortError::permanent(format!(
                    "refusing to set {weights} on service {}: {found}; nothing was changed",
                    service.name
                ))
            })?;
            let wanted = (
                u32::from(weights.of(Slot::Blue).get()),
                u32::from(weights.of(Slot::Green).get()),
            );
            if (current.blue, current.green) == wanted {
                tracing::debug!(service = %service.name, switch = %what, %weights, "ALB weights already set");
                return Ok(());
            }

            let action = weighted_forward(target, weights, &current);
            match &target.switch {
                AwsSwitch::Listener(arn) => {
                    self.client
                        .modify_listener()
                        .listener_arn(arn.as_str())
                        .default_actions(action)
                        .send()
                        .await
                        .map_err(|e| port_error(&format!("ModifyListener for {arn}"), &e))?;
                }
                AwsSwitch::Rule(arn) => {
                    self.client
                        .modify_rule()
                        .rule_arn(arn.as_str())
                        .actions(action)
                        .send()
                        .await
                        .map_err(|e| port_error(&format!("ModifyRule for {arn}"), &e))?;
                }
            }
            tracing::info!(
                service = %service.name,
                switch = %what,
                from_blue = current.blue,
                from_green = current.green,
                to = %weights,
                "set ALB weights"
            );
            Ok(())
        })
    }

    fn read_weights<'a>(
        &'a self,
        service: &'a ServiceSpec,
    ) -> BoxFuture<'a, Result<Weights, PortError>> {
        Box::pin(async move {
            let target = aws_target(service)?;
            let current = self.current_forward(service, target).await?;
            current.weights(service, target)
        })
    }
}

impl TargetHealth for AlbRouter {
    fn health<'a>(
        &'a self,
        service: &'a ServiceSpec,
        slot: Slot,
    ) -> BoxFuture<'a, Result<HealthReport, PortError>> {
        Box::pin(async move {
            let target = aws_target(service)?;
            let group = target.target_group(slot);
            let out = self
                .client
                .describe_target_health()
                .target_group_arn(group.as_str())
                .send()
                .await
                .map_err(|e| port_error(&format!("DescribeTargetHealth for {group}"), &e))?;
            let descriptions = out.target_health_descriptions();
            let mut report = HealthReport {
                total: u32::try_from(descriptions.len()).unwrap_or(u32::MAX),
                ..HealthReport::default()
            };
            for description in descriptions {
                let healthy = description.target_health().and_then(|h| h.state())
                    == Some(&TargetHealthStateEnum::Healthy);
                if healthy {
                    report.healthy += 1;
                } else {
                    report.unhealthy.push(describe_unhealthy(description));
                }
            }
            Ok(report)
        })
    }
}
