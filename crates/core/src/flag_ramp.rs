//! `FlagRouter`: the traffic router of a `flag` service. It maps the engine's weights
//! to the flag's rollout percentage, so that a flag ramp passes through the same
//! engine as traffic: the same steps, gates, approvals, pauses and rollback.
//!
//! The new slot's weight is the rollout: the slot that is not the service's live one
//! (the live slot recorded after its last successful ramp, or its initial one) is "the
//! flag is on". A ramp from 0 to 100% sets the rollout from 0 to 100%; a rollback puts
//! all weight on the live slot, which sets the rollout to 0 in one write: the kill
//! switch. After a successful ramp the flag's side is live, so a flag still at 100%
//! reads as traffic on the live slot and a further ramp of it starts from there.
//!
//! Every write goes through the [`FlagStore`], so each change of the rollout is
//! recorded in the flag's history with the time and the ramp's service, while the
//! deployment's own history records each step, gate and rollback as for traffic.

use std::sync::Arc;

use crate::config::{Ramp, ServiceSpec};
use crate::domain::{Weight, Weights};
use crate::flags::stored::{format_percent, new_rollout_flag, rollout, with_rollout};
use crate::history::Actor;
use crate::ports::{
    BoxFuture, Clock, FlagRecordKind, FlagStore, FlagStoreError, FlagWrite, PortError, Store,
    TrafficRouter,
};

/// How many times a write is tried again when someone else changed the flag meanwhile.
const WRITE_ATTEMPTS: u32 = 5;

/// Ramps feature flags in place of traffic.
pub struct FlagRouter {
    flags: Arc<dyn FlagStore>,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
}

impl FlagRouter {
    /// A router over the flag store, reading each service's live slot from `store`.
    pub fn new(flags: Arc<dyn FlagStore>, store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Self {
        Self {
            flags,
            store,
            clock,
        }
    }

    /// The service's flag and the slot that stands for "on".
    async fn target(
        &self,
        service: &ServiceSpec,
    ) -> Result<(String, crate::domain::Slot), PortError> {
        let Ramp::Flag(flag) = &service.plan.ramp else {
            return Err(PortError::permanent(format!(
                "service {} ramps traffic, not a flag; this is a bug in Ripcord's choice of router",
                service.name
            )));
        };
        let live = self
            .store
            .service_status(&service.name)
            .await
            .map_err(store_error)?
            .map_or(service.initial_live, |status| status.live);
        Ok((flag.clone(), live.other()))
    }
}

fn store_error(error: crate::ports::StoreError) -> PortError {
    match error {
        crate::ports::StoreError::Unavailable(e) => e,
        other => PortError::transient(other.to_string()),
    }
}

fn flag_error(error: FlagStoreError) -> PortError {
    match error {
        FlagStoreError::Unavailable(e) => e,
        other => PortError::transient(other.to_string()),
    }
}

impl TrafficRouter for FlagRouter {
    fn set_weights<'a>(
        &'a self,
        service: &'a ServiceSpec,
        weights: Weights,
    ) -> BoxFuture<'a, Result<(), PortError>> {
        Box::pin(async move {
            let (flag, on) = self.target(service).await?;
            let wanted = weights.of(on);
            let mut last = None;
            for _ in 0..WRITE_ATTEMPTS {
                let current = self
                    .flags
                    .flag_record(FlagRecordKind::Flag, &flag)
                    .await
                    .map_err(flag_error)?;
                let (expected_version, definition, before) = match &current {
                    Some(record) => {
                        let before = rollout(&record.definition);
                        if before.is_some_and(|p| p.get() == f64::from(wanted.get())) {
                            return Ok(());
                        }
                        let definition = with_rollout(&flag, &record.definition, wanted)
                            .map_err(|e| PortError::permanent(e.to_string()))?;
                        (record.version, definition, before)
                    }
                    None => (0, new_rollout_flag(&flag, wanted), None),
                };
                let summary = format!(
                    "rollout {} → {} by the ramp of service {}",
                    before.map_or("none".to_string(), format_percent),
                    format_percent(percent(wanted)),
                    service.name
                );
                let write = FlagWrite {
                    kind: FlagRecordKind::Flag,
                    name: flag.clone(),
                    expected_version,
                    definition,
                    at: self.clock.now(),
                    actor: Actor::Schedule,
                    summary,
                };
                match self.flags.put_flag_record(write).await {
                    Ok(_) => return Ok(()),
                    Err(error @ FlagStoreError::Conflict { .. }) => last = Some(error),
                    Err(error) => return Err(flag_error(error)),
                }
            }
            Err(PortError::transient(format!(
                "flag {flag} kept changing while its rollout was set ({}); the next pass tries again",
                last.map_or_else(String::new, |e| e.to_string())
            )))
        })
    }

    fn read_weights<'a>(
        &'a self,
        service: &'a ServiceSpec,
    ) -> BoxFuture<'a, Result<Weights, PortError>> {
        Box::pin(async move {
            let (flag, on) = self.target(service).await?;
            let record = self
                .flags
                .flag_record(FlagRecordKind::Flag, &flag)
                .await
                .map_err(flag_error)?;
            // A flag that does not exist yet is on for nobody; the first step creates it.
            let Some(record) = record else {
                return Ok(Weights::split(on, Weight::ZERO));
            };
            let Some(current) = rollout(&record.definition) else {
                return Err(PortError::permanent(format!(
                    "flag {flag} has no flexibleRollout strategy, so service {} cannot ramp it; give it one with `ripcord flags set`",
                    service.name
                )));
            };
            // A rollout set by hand to a fraction reads as the nearest whole percent;
            // if that differs from what the ramp set, the engine re-applies its own.
            let whole = Weight::new(current.get().round() as u32)
                .map_err(|e| PortError::permanent(e.to_string()))?;
            Ok(Weights::split(on, whole))
        })
    }
}

fn percent(weight: Weight) -> crate::domain::Percent {
    crate::domain::Percent::new(f64::from(weight.get())).unwrap_or(crate::domain::Percent::ZERO)
}
