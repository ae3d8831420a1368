//! One HTTP request straight to an upstream, for health checks and smoke checks: a
//! fresh connection per request, a deadline on the whole exchange, and the answer's
//! body read up to a limit. The proxy is not involved, so the answer comes from the
//! slot asked and no other. `send` does the same with headers and a body, for the
//! command line's `--local` client, the demo and tests.

use std::time::Duration;

use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// The most of an answer's body that is read; checks look for short texts.
const MAX_BODY: usize = 256 * 1024;

/// What an upstream answered.
#[derive(Debug, Clone)]
pub struct ProbeAnswer {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body, as text (invalid UTF-8 replaced).
    pub body: String,
}

/// Sends `method path` to the upstream at `base_url` (an `http://` URL, possibly with
/// a base path) and reads the answer, all within `timeout`. The error says what failed,
/// for a person.
pub async fn probe(
    base_url: &str,
    method: &str,
    path: &str,
    timeout: Duration,
) -> Result<ProbeAnswer, String> {
    send(base_url, method, path, &[], Vec::new(), timeout).await
}

/// Sends `method path` with `headers` and `body` to the server at `base_url` and reads
/// the answer, all within `timeout`.
pub async fn send(
    base_url: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
    timeout: Duration,
) -> Result<ProbeAnswer, String> {
    let exchange = exchange(base_url, method, path, headers, body);
    match tokio::time::timeout(timeout, exchange).await {
        Ok(result) => result,
        Err(_) => Err(format!(
            "no answer within {}",
            ripcord_core::time::format_duration(timeout)
        )),
    }
}

async fn exchange(
    base_url: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Result<ProbeAnswer, String> {
    let rest = base_url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{base_url} is not an http:// URL"))?;
    let (authority, base_path) = match rest.find('/') {
        Some(at) => (&rest[..at], rest[at..].trim_end_matches('/')),
        None => (rest, ""),
    };
    let address = if authority.contains(':') && !authority.ends_with(']') {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    let method = Method::from_bytes(method.as_bytes())
        .map_err(|_| format!("{method:?} is not an HTTP method"))?;
    let stream = TcpStream::connect(&address)
        .await
        .map_err(|e| format!("cannot connect to {address}: {e}"))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("HTTP handshake with {address} failed: {e}"))?;
    let driver = tokio::spawn(connection);
    let mut request = Request::builder()
        .method(method)
        .uri(format!("{base_path}{path}"))
        .header(http::header::HOST, authority)
        .header(http::header::USER_AGENT, "ripcord-local");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| format!("cannot build the request: {e}"))?;
    let result = async {
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("the request to {address} failed: {e}"))?;
        let (parts, body) = response.into_parts();
        let body = Limited::new(body, MAX_BODY)
            .collect()
            .await
            .map_err(|e| format!("reading the answer from {address} failed: {e}"))?
            .to_bytes();
        Ok(ProbeAnswer {
            status: parts.status,
            headers: parts.headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    }
    .await;
    driver.abort();
    result
}
