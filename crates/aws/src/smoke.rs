//! Smoke checks on AWS: the service's HTTP checks, sent to its preview URL while the
//! preview (test) listener forwards only to the new slot, before any user traffic
//! moves, as CodeDeploy's test traffic route does.
//!
//! With `preview_listener_arn`, each run first points that listener at the new slot
//! (all of its weight, through the same checks as the production listener: it must
//! forward to exactly the service's two target groups), so every answer comes from the
//! slot being checked. Without it, `preview_url` is called as it is, for setups that
//! route previews themselves.

use ripcord_core::config::{AwsSwitch, ServiceSpec, SmokeCheck, TrafficTarget};
use ripcord_core::domain::{Slot, Weights};
use ripcord_core::observation::{SmokeAnswer, SmokeReport, SmokeResult};
use ripcord_core::ports::{BoxFuture, PortError, SmokeRunner, TrafficRouter};

use crate::elb::AlbRouter;

/// The most of an answer's body that is read; checks look for short texts.
const MAX_BODY: usize = 256 * 1024;

/// Runs a service's smoke checks through its preview listener and URL.
#[derive(Debug, Clone)]
pub struct PreviewSmoke {
    router: AlbRouter,
    http: reqwest::Client,
}

impl PreviewSmoke {
    /// A runner that moves preview listeners through `router` and calls preview URLs
    /// with its own HTTP client (HTTP or HTTPS, no redirects followed, so a check sees
    /// the status the slot gave).
    pub fn new(router: AlbRouter) -> Self {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("ripcord-smoke/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("an HTTP client with default TLS settings");
        Self { router, http }
    }

    /// A runner on the ELBv2 client of an SDK configuration.
    pub fn from_config(config: &aws_config::SdkConfig) -> Self {
        Self::new(AlbRouter::new(aws_sdk_elasticloadbalancingv2::Client::new(
            config,
        )))
    }

    /// Sends one check's request and reads the answer within the check's timeout.
    async fn call(&self, check: &SmokeCheck, url: &str) -> Result<SmokeAnswer, String> {
        let method = reqwest::Method::from_bytes(check.method.as_bytes())
            .map_err(|_| format!("{:?} is not an HTTP method", check.method))?;
        let exchange = async {
            let mut response = self
                .http
                .request(method, url)
                .send()
                .await
                .map_err(|e| describe(&e))?;
            let status = response.status().as_u16();
            let header = check.header.as_ref().and_then(|(name, _)| {
                response
                    .headers()
                    .get(name.as_str())
                    .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            });
            let mut body = Vec::new();
            while body.len() < MAX_BODY {
                match response.chunk().await.map_err(|e| describe(&e))? {
                    Some(chunk) => body.extend_from_slice(&chunk),
                    None => break,
                }
            }
            body.truncate(MAX_BODY);
            Ok(SmokeAnswer {
                status,
                header,
                body: String::from_utf8_lossy(&body).into_owned(),
            })
        };
        match tokio::time::timeout(check.timeout, exchange).await {
            Ok(answer) => answer,
            Err(_) => Err(format!(
                "no answer within {}",
                ripcord_core::time::format_duration(check.timeout)
            )),
        }
    }
}

/// What went wrong with a request, for a person: the error and its causes, without
/// the URL (which the caller already names).
fn describe(error: &reqwest::Error) -> String {
    let mut text = if error.is_timeout() {
        "timed out".to_string()
    } else if error.is_connect() {
        "could not connect".to_string()
    } else {
        "the request failed".to_string()
    };
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

impl SmokeRunner for PreviewSmoke {
    fn run<'a>(
        &'a self,
        service: &'a ServiceSpec,
        slot: Slot,
    ) -> BoxFuture<'a, Result<SmokeReport, PortError>> {
        Box::pin(async move {
            let Some(TrafficTarget::Aws(target)) = &service.traffic else {
                return Err(PortError::permanent(format!(
                    "service {} has no [services.{}.aws] section, so its smoke checks cannot run on AWS",
                    service.name, service.name
                )));
            };
            let Some(base) = &target.preview_url else {
                return Err(PortError::permanent(format!(
                    "service {} has smoke checks but no preview_url: add preview_url (the preview listener's address) and preview_listener_arn under [services.{}.aws]",
                    service.name, service.name
                )));
            };
            if let Some(preview) = &target.preview_listener {
                let mut previewed = service.clone();
                if let Some(TrafficTarget::Aws(target)) = &mut previewed.traffic {
                    target.switch = AwsSwitch::Listener(preview.clone());
                }
                self.router
                    .set_weights(&previewed, Weights::all_on(slot))
                    .await
                    .map_err(|mut e| {
                        e.message = format!(
                            "the preview listener could not be pointed at {slot}: {}",
                            e.message
                        );
                        e
                    })?;
            }
            let base = base.trim_end_matches('/');
            let mut results = Vec::with_capacity(service.smoke.len());
            for check in &service.smoke {
                let url = format!("{base}{}", check.path);
                let answer = self.call(check, &url).await;
                let request = format!("{} {url}", check.method);
                results.push(SmokeResult::judge(check, &request, answer));
            }
            Ok(SmokeReport { results })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_refused_is_described_without_the_url() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let client = reqwest::Client::new();
        let error = runtime
            .block_on(client.get(format!("http://127.0.0.1:{port}/x")).send())
            .unwrap_err();
        let text = describe(&error);
        assert!(text.starts_with("could not connect"), "{text}");
        assert!(!text.contains("/x"), "{text}");
    }
}
