//! Local mode's smoke runner: the service's HTTP checks, sent straight to the new
//! slot's upstream (never through the proxy), so that every answer is that slot's.

use ripcord_core::config::{ServiceSpec, SmokeCheck, TrafficTarget};
use ripcord_core::domain::Slot;
use ripcord_core::observation::{SmokeAnswer, SmokeReport, SmokeResult};
use ripcord_core::ports::{BoxFuture, PortError, SmokeRunner};

use crate::probe::{ProbeAnswer, probe};

/// Runs smoke checks against a local service's upstreams.
#[derive(Debug, Default, Clone, Copy)]
pub struct LocalSmoke;

impl SmokeRunner for LocalSmoke {
    fn run<'a>(
        &'a self,
        service: &'a ServiceSpec,
        slot: Slot,
    ) -> BoxFuture<'a, Result<SmokeReport, PortError>> {
        Box::pin(async move {
            let Some(TrafficTarget::Local(target)) = &service.traffic else {
                return Err(PortError::permanent(format!(
                    "service {} has no [local] traffic target, so local mode cannot run its smoke checks: add [services.{}.local]",
                    service.name, service.name
                )));
            };
            let url = target.upstream(slot);
            let mut results = Vec::with_capacity(service.smoke.len());
            for check in &service.smoke {
                let answer = probe(url, &check.method, &check.path, check.timeout).await;
                results.push(judge(check, url, answer));
            }
            Ok(SmokeReport { results })
        })
    }
}

/// Whether one answer passes one check, and what was seen.
fn judge(check: &SmokeCheck, url: &str, answer: Result<ProbeAnswer, String>) -> SmokeResult {
    let request = format!("{} {}{}", check.method, url, check.path);
    let answer = answer.map(|answer| SmokeAnswer {
        status: answer.status.as_u16(),
        header: check.header.as_ref().and_then(|(name, _)| {
            answer
                .headers
                .get(name.as_str())
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        }),
        body: answer.body,
    });
    SmokeResult::judge(check, &request, answer)
}
