//! Passing one request on: picking its slot, rewriting it for the upstream, sending it
//! over the client connection's own upstream connection, and passing the answer (or
//! a 502) back, measured.
//!
//! Bodies are never collected: the client's request body goes to the upstream as the
//! same streaming body, and the upstream's answer comes back the same way.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::header::{CONTENT_TYPE, HOST, SET_COOKIE};
use http::{HeaderValue, Method, Request, Response, StatusCode, Version};
use http_body_util::{Either, Full};
use hyper::body::{Bytes, Incoming};
use ripcord_core::domain::Slot;
use tracing::debug;

use super::headers::{add_forwarded, original_host, sticky_cookie, sticky_slot, strip_hop_by_hop};
use super::metrics::{MetricClock, SlotRecorder};
use super::split::Splitter;
use super::upstream::{Links, Upstream};

/// The body of an answer: the upstream's, streamed, or the proxy's own error.
pub(crate) type ProxyBody = Either<Incoming, Full<Bytes>>;

/// What every connection of one proxy shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) splitter: Splitter,
    pub(crate) blue: Upstream,
    pub(crate) green: Upstream,
    pub(crate) blue_metrics: SlotRecorder,
    pub(crate) green_metrics: SlotRecorder,
    pub(crate) clock: MetricClock,
    pub(crate) sticky: bool,
    connect_timeout: Duration,
}

impl Shared {
    pub(crate) fn new(
        splitter: Splitter,
        blue: Upstream,
        green: Upstream,
        sticky: bool,
        connect_timeout: Duration,
    ) -> Self {
        Self {
            splitter,
            blue,
            green,
            blue_metrics: SlotRecorder::new(),
            green_metrics: SlotRecorder::new(),
            clock: MetricClock::new(),
            sticky,
            connect_timeout,
        }
    }

    pub(crate) fn upstream(&self, slot: Slot) -> &Upstream {
        match slot {
            Slot::Blue => &self.blue,
            Slot::Green => &self.green,
        }
    }

    pub(crate) fn recorder(&self, slot: Slot) -> &SlotRecorder {
        match slot {
            Slot::Blue => &self.blue_metrics,
            Slot::Green => &self.green_metrics,
        }
    }

    /// The slot for a new request: the sticky cookie's while that slot still takes
    /// traffic, otherwise the splitter's choice.
    fn choose(&self, cookie: Option<Slot>) -> Slot {
        match cookie {
            Some(slot) if self.splitter.weight_of(slot).get() > 0 => slot,
            _ => self.splitter.next_slot(),
        }
    }
}

/// Answers one request from a client at `client`, over that client connection's
/// upstream connections.
pub(crate) async fn forward(
    shared: Arc<Shared>,
    links: Arc<Links>,
    client: SocketAddr,
    request: Request<Incoming>,
) -> Result<Response<ProxyBody>, Infallible> {
    let started = Instant::now();
    if request.method() == Method::CONNECT {
        return Ok(error_response(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this is a reverse proxy for one service: CONNECT tunnels are not offered",
        ));
    }
    let cookie = if shared.sticky {
        sticky_slot(request.headers())
    } else {
        None
    };
    let slot = shared.choose(cookie);
    let upstream = shared.upstream(slot);

    let (mut parts, body) = request.into_parts();
    let host = original_host(&parts.headers, &parts.uri);
    strip_hop_by_hop(&mut parts.headers);
    add_forwarded(&mut parts.headers, client.ip(), host);
    parts.headers.insert(HOST, upstream.host.clone());
    parts.uri = match upstream.target_for(&parts.uri) {
        Ok(uri) => uri,
        Err(error) => {
            return Ok(error_response(
                StatusCode::BAD_REQUEST,
                "bad_request",
                &format!(
                    "the request's path cannot be joined onto {}: {error}",
                    upstream.url
                ),
            ));
        }
    };
    // The client may have spoken HTTP/1.0; the proxy's own hop to the upstream is
    // always HTTP/1.1, so that its connections can be kept alive and reused.
    parts.version = Version::HTTP_11;

    let request = Request::from_parts(parts, body);
    match links
        .send(slot, upstream, request, shared.connect_timeout)
        .await
    {
        Ok(answer) => {
            let status = answer.status();
            shared.recorder(slot).record(
                shared.clock.second(),
                Some(started.elapsed()),
                status.is_server_error(),
            );
            let (mut parts, body) = answer.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            if shared.sticky && cookie != Some(slot) {
                parts.headers.append(SET_COOKIE, sticky_cookie(slot));
            }
            Ok(Response::from_parts(parts, Either::Left(body)))
        }
        Err(error) => {
            // No upstream answered, so there is no latency to record, but the client
            // got a 5xx from this slot and the slot's error rate must show it.
            shared
                .recorder(slot)
                .record(shared.clock.second(), None, true);
            let message = if error.is_connect() {
                format!("upstream {slot} ({}) is unreachable: {error}", upstream.url)
            } else {
                format!("upstream {slot} ({}) did not answer: {error}", upstream.url)
            };
            debug!(%message, "bad gateway");
            Ok(error_response(
                StatusCode::BAD_GATEWAY,
                "bad_gateway",
                &message,
            ))
        }
    }
}

/// An error answer in Ripcord's one error shape, `{"error", "message"}`.
fn error_response(status: StatusCode, code: &str, message: &str) -> Response<ProxyBody> {
    let body = serde_json::json!({ "error": code, "message": message }).to_string();
    let mut response = Response::new(Either::Right(Full::new(Bytes::from(body))));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}
