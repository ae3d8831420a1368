//! A fault-injecting HTTP proxy between the SDK and the local AWS emulator.
//!
//! Tests point a client at [`FaultProxy::sdk_config`] and schedule faults per action
//! ("the next 2 `ModifyListener` calls are throttled"). Every other request goes
//! through to the emulator unchanged. A fault is an answer in the service's own error
//! format, as AWS sends it: the query protocol's XML `ErrorResponse` for ELBv2 and
//! CloudWatch, JSON 1.0 with `__type` for DynamoDB, each with a request id in the body
//! and in `x-amzn-RequestId`, so the SDK parses it exactly as it parses AWS's answers.
//!
//! The proxy runs on its own thread and runtime, so it serves tests whatever runtime
//! they use, and stops when the test process ends.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

/// What the proxy does to a request it was told to fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// HTTP 400 with the service's throttling error (`Throttling` for the query
    /// protocol, `ThrottlingException` for JSON).
    Throttle,
    /// HTTP 500 with the service's internal error.
    InternalError,
    /// HTTP 503 with `ServiceUnavailable`.
    Unavailable,
    /// Holds the request this long, then forwards it. Past the SDK's attempt timeout
    /// the client gives up while the emulator still applies the request later, as a
    /// slow AWS would.
    Delay(Duration),
}

/// One injected fault, as the client received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Injected {
    /// The action, e.g. `ModifyListener` or `TransactWriteItems`.
    pub action: String,
    /// The fault.
    pub fault: Fault,
    /// The request id the fault answer carried (empty for a delay).
    pub request_id: String,
}

#[derive(Default)]
struct Shared {
    /// Faults still to inject, per action, in order.
    planned: HashMap<String, VecDeque<Fault>>,
    /// Requests seen per action, faulted or not.
    seen: HashMap<String, usize>,
    injected: Vec<Injected>,
}

/// A running proxy. Cloning it shares the same schedule.
#[derive(Clone)]
pub struct FaultProxy {
    url: String,
    shared: Arc<Mutex<Shared>>,
}

impl FaultProxy {
    /// Starts a proxy in front of the emulator at `AWS_ENDPOINT_URL`.
    pub fn start() -> FaultProxy {
        let upstream = std::env::var("AWS_ENDPOINT_URL")
            .expect("AWS_ENDPOINT_URL must point at the local AWS emulator")
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        listener.set_nonblocking(true).expect("non-blocking");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let shared = Arc::new(Mutex::new(Shared::default()));
        let state = Arc::clone(&shared);
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for the proxy");
            runtime.block_on(serve(listener, upstream, state));
        });
        FaultProxy { url, shared }
    }

    /// The proxy's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// An SDK configuration with Ripcord's settings whose every client goes through
    /// the proxy.
    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        // Each client reads the endpoint variables again over an endpoint that came
        // from the environment; one marked as set in code is the one it uses.
        let mut builder = super::config().await.to_builder();
        builder.insert_origin("endpoint_url", aws_types::origin::Origin::shared_config());
        builder.endpoint_url(&self.url).build()
    }

    /// Answers the next `count` requests of `action` with `fault`, after any faults
    /// already planned for it.
    pub fn fail_next(&self, action: &str, count: usize, fault: Fault) {
        let mut shared = self.shared.lock().unwrap();
        let queue = shared.planned.entry(action.to_string()).or_default();
        queue.extend(std::iter::repeat_n(fault, count));
    }

    /// How many requests of `action` reached the proxy, faulted or not.
    pub fn seen(&self, action: &str) -> usize {
        self.shared
            .lock()
            .unwrap()
            .seen
            .get(action)
            .copied()
            .unwrap_or(0)
    }

    /// Faults planned for `action` and not yet injected.
    pub fn pending(&self, action: &str) -> usize {
        self.shared
            .lock()
            .unwrap()
            .planned
            .get(action)
            .map_or(0, VecDeque::len)
    }

    /// Every fault injected so far, in order.
    pub fn injected(&self) -> Vec<Injected> {
        self.shared.lock().unwrap().injected.clone()
    }
}

async fn serve(listener: std::net::TcpListener, upstream: String, shared: Arc<Mutex<Shared>>) {
    let listener = tokio::net::TcpListener::from_std(listener).expect("a tokio listener");
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let (upstream, shared) = (upstream.clone(), Arc::clone(&shared));
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                handle(request, upstream.clone(), Arc::clone(&shared))
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// The wire protocol of a request, which decides the shape of an error answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    /// `X-Amz-Target: DynamoDB_20120810.GetItem` and a JSON body.
    Json,
    /// A form body with `Action=ModifyListener`, answered in XML.
    Query,
}

/// The protocol and action of a request.
fn action_of(request: &hyper::http::request::Parts, body: &[u8]) -> (Protocol, String) {
    if let Some(target) = request
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
    {
        let action = target.rsplit('.').next().unwrap_or(target);
        return (Protocol::Json, action.to_string());
    }
    let form = String::from_utf8_lossy(body);
    let action = form
        .split('&')
        .find_map(|pair| pair.strip_prefix("Action="))
        .unwrap_or("unknown");
    (Protocol::Query, action.to_string())
}

async fn handle(
    request: Request<Incoming>,
    upstream: String,
    shared: Arc<Mutex<Shared>>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = request.into_parts();
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            return Ok(plain(
                StatusCode::BAD_REQUEST,
                format!("unreadable body: {e}"),
            ));
        }
    };
    let (protocol, action) = action_of(&parts, &body);
    let fault = {
        let mut shared = shared.lock().unwrap();
        *shared.seen.entry(action.clone()).or_default() += 1;
        let fault = shared
            .planned
            .get_mut(&action)
            .and_then(VecDeque::pop_front);
        if let Some(fault) = fault {
            let request_id = match fault {
                Fault::Delay(_) => String::new(),
                _ => format!("fault-{}-{}", action, shared.injected.len() + 1),
            };
            shared.injected.push(Injected {
                action: action.clone(),
                fault,
                request_id,
            });
        }
        fault.map(|f| (f, shared.injected.last().unwrap().request_id.clone()))
    };
    match fault {
        Some((Fault::Delay(by), _)) => {
            // On a task of its own: when the client gives up and closes the
            // connection, hyper drops this handler, but the request still reaches the
            // emulator, as it would reach a slow AWS.
            let upstream = upstream.clone();
            let delayed = tokio::spawn(async move {
                tokio::time::sleep(by).await;
                forward(parts, body, &upstream).await
            });
            Ok(delayed.await.expect("the delayed request's task"))
        }
        Some((fault, request_id)) => Ok(error_answer(protocol, fault, &request_id)),
        None => Ok(forward(parts, body, &upstream).await),
    }
}

/// The answer AWS gives for `fault` in `protocol`.
fn error_answer(protocol: Protocol, fault: Fault, request_id: &str) -> Response<Full<Bytes>> {
    let (status, query_code, json_code, sender, message) = match fault {
        Fault::Throttle => (
            StatusCode::BAD_REQUEST,
            "Throttling",
            "ThrottlingException",
            "Sender",
            "Rate exceeded",
        ),
        Fault::InternalError => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalFailure",
            "InternalServerError",
            "Receiver",
            "We encountered an internal error. Please try again.",
        ),
        Fault::Unavailable => (
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            "ServiceUnavailable",
            "Receiver",
            "Service is unavailable. Please try again.",
        ),
        Fault::Delay(_) => unreachable!("a delay is forwarded, not answered"),
    };
    let (content_type, body) = match protocol {
        Protocol::Json => (
            "application/x-amz-json-1.0",
            serde_json::json!({
                "__type": format!("com.amazonaws.dynamodb.v20120810#{json_code}"),
                "message": message,
            })
            .to_string(),
        ),
        Protocol::Query => (
            "text/xml",
            format!(
                "<ErrorResponse xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\"><Error><Type>{sender}</Type><Code>{query_code}</Code><Message>{message}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>"
            ),
        ),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        "x-amzn-requestid",
        HeaderValue::from_str(request_id).expect("an ASCII request id"),
    );
    response
}

/// Sends the request to the emulator on a new connection and returns its answer.
async fn forward(
    parts: hyper::http::request::Parts,
    body: Bytes,
    upstream: &str,
) -> Response<Full<Bytes>> {
    let answer = async {
        let stream = tokio::net::TcpStream::connect(upstream)
            .await
            .map_err(|e| e.to_string())?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(connection);
        let request = Request::from_parts(parts, Full::new(body));
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
        Ok::<_, String>(Response::from_parts(parts, Full::new(body)))
    };
    match answer.await {
        Ok(response) => response,
        Err(e) => plain(
            StatusCode::BAD_GATEWAY,
            format!("the emulator could not be reached: {e}"),
        ),
    }
}

fn plain(status: StatusCode, text: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(text)));
    *response.status_mut() = status;
    response
}
