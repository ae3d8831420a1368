//! Smoke checks on AWS against the local emulator: the preview listener is pointed at
//! the new slot before any check is sent, the checks go to the preview URL (a real HTTP
//! server on loopback standing for the new slot behind that listener) and are judged by
//! status, body and header, and a service without a preview URL or with a preview
//! listener forwarding elsewhere gets a clear error and no change.

mod support;

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use aws_sdk_elasticloadbalancingv2::types::ProtocolEnum;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use ripcord_aws::PreviewSmoke;
use ripcord_core::config::{ServiceSpec, TrafficTarget, parse_config};
use ripcord_core::domain::Slot;
use ripcord_core::ports::{ErrorKind, SmokeRunner};
use support::world::{Installation, forward};
use tokio::net::TcpListener;

/// The new slot's answers: `/healthz` is healthy and says its version, `/broken`
/// fails. Every request's method and path are recorded.
async fn new_slot() -> (String, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let recorded = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let recorded = recorded.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request: Request<Incoming>| {
                    let recorded = recorded.clone();
                    async move {
                        let path = request.uri().path().to_string();
                        recorded
                            .lock()
                            .unwrap()
                            .push(format!("{} {path}", request.method()));
                        let response = match path.as_str() {
                            "/healthz" => Response::builder()
                                .header("x-version", "v43")
                                .body(Full::new(Bytes::from_static(b"ok: all good"))),
                            _ => Response::builder()
                                .status(500)
                                .body(Full::new(Bytes::from_static(b"boom"))),
                        };
                        Ok::<_, Infallible>(response.unwrap())
                    }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (url, seen)
}

/// A listener on the installation's ALB, on `port`, forwarding everything to blue.
async fn preview_listener(inst: &Installation, port: i32) -> String {
    let out = inst
        .elb
        .describe_listeners()
        .listener_arns(&inst.listener)
        .send()
        .await
        .expect("DescribeListeners");
    let lb = out.listeners()[0].load_balancer_arn().unwrap().to_string();
    inst.elb
        .create_listener()
        .load_balancer_arn(lb)
        .protocol(ProtocolEnum::Http)
        .port(port)
        .default_actions(forward(&inst.blue, 100, &inst.green, 0))
        .send()
        .await
        .expect("CreateListener")
        .listeners()[0]
        .listener_arn()
        .unwrap()
        .to_string()
}

/// The installation's service with smoke checks, previewed through `preview`.
fn service(inst: &Installation, preview: Option<(&str, &str)>, checks: &str) -> ServiceSpec {
    let aws = inst
        .config
        .services
        .values()
        .next()
        .unwrap()
        .traffic
        .clone();
    let Some(TrafficTarget::Aws(target)) = aws else {
        panic!("the installation's service is on AWS")
    };
    let switch = match &target.switch {
        ripcord_core::config::AwsSwitch::Listener(arn) => format!("listener_arn = \"{arn}\""),
        other => panic!("{other:?}"),
    };
    let preview = match preview {
        Some((listener, url)) => {
            format!("preview_listener_arn = \"{listener}\"\npreview_url = \"{url}\"\n")
        }
        None => String::new(),
    };
    let text = format!(
        "[services.web]\nstrategy = \"canary\"\nsteps = [{{ set_weight = 100 }}]\n\
         [services.web.aws]\n{switch}\ntarget_groups = [\"{}\", \"{}\"]\n{preview}\n{checks}",
        target.blue, target.green
    );
    parse_config("ripcord.toml", &text)
        .unwrap_or_else(|e| panic!("{e}\n{text}"))
        .services
        .into_values()
        .next()
        .unwrap()
}

const CHECKS: &str = r#"
[[services.web.smoke]]
name = "health"
path = "/healthz"
body_contains = "all good"
header = { name = "x-version", value = "v43" }

[[services.web.smoke]]
name = "broken"
path = "/broken"
"#;

#[tokio::test]
async fn the_preview_listener_is_pointed_at_the_new_slot_and_the_checks_are_judged() {
    let inst = Installation::new(&support::config().await).await;
    let preview = preview_listener(&inst, 8443).await;
    let (url, seen) = new_slot().await;
    let service = service(&inst, Some((&preview, &url)), CHECKS);
    let runner = PreviewSmoke::from_config(&support::config().await);

    let report = runner.run(&service, Slot::Green).await.expect("a report");

    // The preview listener now sends everything to green; production is untouched.
    let weights = |arn: String| {
        let elb = inst.elb.clone();
        async move {
            let out = elb
                .describe_listeners()
                .listener_arns(arn)
                .send()
                .await
                .unwrap();
            out.listeners()[0].default_actions()[0]
                .forward_config()
                .unwrap()
                .target_groups()
                .iter()
                .map(|g| {
                    (
                        g.target_group_arn().unwrap().to_string(),
                        g.weight().unwrap(),
                    )
                })
                .collect::<Vec<_>>()
        }
    };
    let previewed = weights(preview.clone()).await;
    assert!(
        previewed.contains(&(inst.green.clone(), 100))
            && previewed.contains(&(inst.blue.clone(), 0)),
        "{previewed:?}"
    );
    let production = weights(inst.listener.clone()).await;
    assert!(
        production.contains(&(inst.blue.clone(), 100)),
        "{production:?}"
    );

    assert_eq!(
        *seen.lock().unwrap(),
        vec!["GET /healthz".to_string(), "GET /broken".to_string()]
    );
    assert_eq!(report.results.len(), 2);
    let health = &report.results[0];
    assert!(health.passed, "{health:?}");
    assert!(
        health.detail.contains(&format!("GET {url}/healthz")),
        "{health:?}"
    );
    let broken = &report.results[1];
    assert!(!broken.passed);
    assert!(
        broken.detail.contains("answered 500, expected 200"),
        "{broken:?}"
    );
    assert!(!report.passed());
}

#[tokio::test]
async fn a_wrong_header_missing_text_or_no_answer_fails_its_check_with_what_was_seen() {
    let inst = Installation::new(&support::config().await).await;
    let preview = preview_listener(&inst, 8444).await;
    let (url, _) = new_slot().await;
    let checks = r#"
[[services.web.smoke]]
name = "version"
path = "/healthz"
header = { name = "x-version", value = "v44" }

[[services.web.smoke]]
name = "text"
path = "/healthz"
body_contains = "v44 ready"
"#;
    let runner = PreviewSmoke::from_config(&support::config().await);
    let report = runner
        .run(&service(&inst, Some((&preview, &url)), checks), Slot::Green)
        .await
        .unwrap();
    assert!(
        report.results[0]
            .detail
            .contains("header x-version is \"v43\", expected \"v44\""),
        "{report:?}"
    );
    assert!(
        report.results[1].detail.contains("without \"v44 ready\""),
        "{report:?}"
    );

    // Nothing listens on the preview URL: the check fails saying it could not connect.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let nobody = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let report = runner
        .run(
            &service(&inst, Some((&preview, &nobody)), CHECKS),
            Slot::Blue,
        )
        .await
        .unwrap();
    assert!(!report.passed());
    assert!(
        report.results[0].detail.contains("could not connect"),
        "{report:?}"
    );
}

#[tokio::test]
async fn without_a_preview_url_or_with_a_foreign_preview_listener_nothing_is_sent() {
    let inst = Installation::new(&support::config().await).await;
    let runner = PreviewSmoke::from_config(&support::config().await);
    let (url, seen) = new_slot().await;
    let preview = preview_listener(&inst, 8445).await;

    // `ripcord validate` refuses smoke checks on AWS without a preview URL; a deployment
    // whose snapshot of the configuration predates that rule meets this error instead.
    let mut unpreviewed = service(&inst, Some((&preview, &url)), CHECKS);
    if let Some(TrafficTarget::Aws(target)) = &mut unpreviewed.traffic {
        target.preview_listener = None;
        target.preview_url = None;
    }
    let error = runner
        .run(&unpreviewed, Slot::Green)
        .await
        .expect_err("no preview URL");
    assert_eq!(error.kind, ErrorKind::Permanent);
    assert!(error.message.contains("add preview_url"), "{error}");

    // A preview listener that forwards to a target group of another service.
    let other = inst
        .elb
        .describe_target_groups()
        .target_group_arns(&inst.blue)
        .send()
        .await
        .unwrap();
    let vpc = other.target_groups()[0].vpc_id().unwrap().to_string();
    let third = inst
        .elb
        .create_target_group()
        .name(support::unique("rc-other"))
        .protocol(ProtocolEnum::Http)
        .port(8080)
        .vpc_id(vpc)
        .send()
        .await
        .unwrap()
        .target_groups()[0]
        .target_group_arn()
        .unwrap()
        .to_string();
    inst.elb
        .modify_listener()
        .listener_arn(&preview)
        .default_actions(forward(&inst.blue, 50, &third, 50))
        .send()
        .await
        .unwrap();
    let error = runner
        .run(&service(&inst, Some((&preview, &url)), CHECKS), Slot::Green)
        .await
        .expect_err("a foreign preview listener");
    assert!(
        error
            .message
            .contains("the preview listener could not be pointed at green"),
        "{error}"
    );
    assert!(seen.lock().unwrap().is_empty(), "no check was sent");
}
