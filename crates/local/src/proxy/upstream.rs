//! The proxy's side of the conversation with the upstreams: each slot's base URL,
//! and the upstream connections of one client connection.
//!
//! Every client connection keeps its own kept-alive connection to each slot's
//! upstream, and the upstream connections are driven by the client connection's own
//! task. A request therefore goes from the client's socket to the upstream's and its
//! answer comes back without ever waking another task or thread; a shared pool
//! would hand every request to the pooled connection's task and back, and that
//! cross-task hop, not the HTTP work, is what made a pooled client the slow part of
//! the proxy. HTTP/1.1 answers one request at a time per connection, so one upstream
//! connection per slot is all a client connection can use.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::Context;
use std::time::Duration;

use http::uri::{PathAndQuery, Scheme};
use http::{HeaderValue, Request, Response, Uri};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use ripcord_core::domain::Slot;
use tokio::net::TcpStream;
use tracing::debug;

use super::ProxyError;

/// One slot's upstream, parsed once when the proxy starts.
#[derive(Debug, Clone)]
pub(crate) struct Upstream {
    /// The base URL as configured, for messages.
    pub(crate) url: String,
    /// Where to connect.
    address: Address,
    /// The base URL's path without its trailing `/`; empty for a bare host.
    base_path: String,
    /// The `Host` header the upstream expects.
    pub(crate) host: HeaderValue,
}

/// An upstream's address: an IP address needs no lookup; a name is looked up on
/// every new connection, so that a changed DNS record is followed.
#[derive(Debug, Clone)]
enum Address {
    Ip(SocketAddr),
    Name(String, u16),
}

impl Upstream {
    /// Parses a base URL such as `http://127.0.0.1:9001` or `http://app.local/prefix`.
    pub(crate) fn parse(slot: Slot, url: &str) -> Result<Self, ProxyError> {
        let bad = |reason: &str| ProxyError::BadUpstream {
            slot,
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        let uri: Uri = url
            .parse()
            .map_err(|e| bad(&format!("it is not a URL ({e})")))?;
        if uri.scheme() != Some(&Scheme::HTTP) {
            return Err(bad(
                "the proxy speaks plain HTTP to upstreams: use an http:// URL",
            ));
        }
        let Some(authority) = uri.authority() else {
            return Err(bad("it has no host: use e.g. http://127.0.0.1:9001"));
        };
        if uri.query().is_some() {
            return Err(bad(
                "a base URL cannot carry a query: remove everything from '?'",
            ));
        }
        let port = authority.port_u16().unwrap_or(80);
        let host = authority.host();
        let address = match host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        {
            Ok(ip) => Address::Ip(SocketAddr::new(ip, port)),
            Err(_) => Address::Name(host.to_owned(), port),
        };
        Ok(Self {
            url: url.to_owned(),
            address,
            base_path: uri.path().trim_end_matches('/').to_owned(),
            host: HeaderValue::from_str(authority.as_str())
                .map_err(|e| bad(&format!("its host is not a valid header value ({e})")))?,
        })
    }

    /// The request target to send upstream, in origin form: the base URL's path with
    /// the request's path and query appended.
    pub(crate) fn target_for(&self, request: &Uri) -> Result<Uri, http::Error> {
        let path_and_query = match request.path_and_query() {
            // Origin-form paths, the only kind a reverse proxy should pass on; `*`
            // (server-wide OPTIONS) and authority-form targets become the root.
            Some(pq) if pq.as_str().starts_with('/') => pq.clone(),
            _ => PathAndQuery::from_static("/"),
        };
        let path_and_query = if self.base_path.is_empty() {
            path_and_query
        } else {
            PathAndQuery::try_from(format!("{}{}", self.base_path, path_and_query.as_str()))?
        };
        Ok(Uri::from(path_and_query))
    }

    async fn connect(&self, timeout: Duration) -> Result<TcpStream, UpstreamError> {
        let connecting = async {
            match &self.address {
                Address::Ip(addr) => TcpStream::connect(addr).await,
                Address::Name(host, port) => TcpStream::connect((host.as_str(), *port)).await,
            }
        };
        let stream = tokio::time::timeout(timeout, connecting)
            .await
            .map_err(|_| UpstreamError::ConnectTimeout(timeout))?
            .map_err(UpstreamError::Connect)?;
        // Requests are small and each one waits for its answer: send them at once.
        if let Err(error) = stream.set_nodelay(true) {
            debug!(%error, "could not disable Nagle's algorithm upstream");
        }
        Ok(stream)
    }
}

/// Why an upstream gave no answer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum UpstreamError {
    /// The connection was refused or failed.
    #[error("{0}")]
    Connect(std::io::Error),
    /// Nothing accepted the connection in time.
    #[error("no connection within {0:?}")]
    ConnectTimeout(Duration),
    /// Connected, but the exchange failed.
    #[error("{0}")]
    Exchange(hyper::Error),
}

impl UpstreamError {
    /// Whether the upstream could not be reached at all.
    pub(crate) fn is_connect(&self) -> bool {
        matches!(self, Self::Connect(_) | Self::ConnectTimeout(_))
    }
}

/// A future that drives one upstream connection: reads its answers, writes its
/// requests.
type Driver = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Idle upstream connections per slot that a worker keeps for at most this many
/// connections each.
const MAX_IDLE_PER_SLOT: usize = 256;

/// One worker's idle upstream connections, left by client connections that closed.
///
/// Clients that do not keep their connections alive would otherwise cost a new
/// upstream connection per request, and leave a closed socket behind each time. A
/// pooled connection's driver runs as its own task on the worker, which is as cheap
/// as the client connection's task on a single-threaded runtime.
#[derive(Default)]
pub(crate) struct IdlePool {
    idle: Mutex<[Vec<SendRequest<Incoming>>; 2]>,
}

impl IdlePool {
    /// An idle connection to a slot's upstream that has not closed meanwhile.
    fn take(&self, slot: Slot) -> Option<SendRequest<Incoming>> {
        let mut idle = lock(&self.idle);
        let stack = &mut idle[index(slot)];
        while let Some(sender) = stack.pop() {
            if sender.is_ready() {
                return Some(sender);
            }
        }
        None
    }

    fn put(&self, slot: Slot, sender: SendRequest<Incoming>) {
        let mut idle = lock(&self.idle);
        let stack = &mut idle[index(slot)];
        if stack.len() < MAX_IDLE_PER_SLOT {
            stack.push(sender);
        }
    }
}

impl std::fmt::Debug for IdlePool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdlePool").finish_non_exhaustive()
    }
}

/// A client connection's link to one slot's upstream.
#[derive(Default)]
struct SlotLink {
    /// The kept connection; taken out while a request uses it.
    sender: Option<SendRequest<Incoming>>,
    /// Its driver, when this task drives it (not for a connection taken from the
    /// pool, whose driver is already a task of its own).
    driver: Option<Driver>,
}

/// The upstream connections of one client connection, and their drivers, which the
/// client connection's task polls alongside the client connection itself.
pub(crate) struct Links {
    slots: Mutex<[SlotLink; 2]>,
    pool: Arc<IdlePool>,
}

impl std::fmt::Debug for Links {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Links").finish_non_exhaustive()
    }
}

fn index(slot: Slot) -> usize {
    match slot {
        Slot::Blue => 0,
        Slot::Green => 1,
    }
}

impl Links {
    /// No upstream connection yet; idle ones come from, and go back to, `pool`.
    pub(crate) fn new(pool: Arc<IdlePool>) -> Self {
        Self {
            slots: Mutex::default(),
            pool,
        }
    }

    /// Polls the upstream connections this task drives; forgets those that ended.
    pub(crate) fn poll_drivers(&self, cx: &mut Context<'_>) {
        for link in lock(&self.slots).iter_mut() {
            if let Some(driver) = &mut link.driver
                && driver.as_mut().poll(cx).is_ready()
            {
                link.driver = None;
            }
        }
    }

    /// Hands the idle upstream connections to the worker's pool, when the client
    /// connection has ended. Busy ones (a client that left mid-answer) are closed.
    pub(crate) fn release(&self) {
        let mut slots = lock(&self.slots);
        for (slot, link) in [Slot::Blue, Slot::Green].into_iter().zip(slots.iter_mut()) {
            let Some(sender) = link.sender.take() else {
                continue;
            };
            if !sender.is_ready() {
                continue;
            }
            // A connection taken from the pool has no driver here: its driver is
            // already a task of its own, running while the connection is open.
            if let Some(driver) = link.driver.take() {
                tokio::spawn(driver);
            }
            self.pool.put(slot, sender);
        }
    }

    /// Sends a request to a slot's upstream over the kept connection, an idle one
    /// from the pool, or a new one.
    pub(crate) async fn send(
        &self,
        slot: Slot,
        upstream: &Upstream,
        request: Request<Incoming>,
        connect_timeout: Duration,
    ) -> Result<Response<Incoming>, UpstreamError> {
        let mut request = request;
        let reused = lock(&self.slots)[index(slot)].sender.take();
        let reused = reused.or_else(|| {
            let pooled = self.pool.take(slot)?;
            // The kept connection, if any, is gone; so is its driver's purpose.
            lock(&self.slots)[index(slot)].driver = None;
            Some(pooled)
        });
        if let Some(mut sender) = reused
            && sender.ready().await.is_ok()
        {
            match sender.try_send_request(request).await {
                Ok(response) => {
                    lock(&self.slots)[index(slot)].sender = Some(sender);
                    return Ok(response);
                }
                Err(mut error) => match error.take_message() {
                    // The upstream closed the connection before the request went
                    // out (an idle timeout): it is safe to send it anew.
                    Some(unsent) => request = unsent,
                    None => return Err(UpstreamError::Exchange(error.into_error())),
                },
            }
        }
        let stream = upstream.connect(connect_timeout).await?;
        let (mut sender, connection) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(UpstreamError::Exchange)?;
        // Replacing the driver drops the previous connection's, which has ended or
        // is of no more use.
        lock(&self.slots)[index(slot)].driver = Some(Box::pin(async move {
            if let Err(error) = connection.await {
                debug!(%error, "upstream connection ended with an error");
            }
        }));
        sender.ready().await.map_err(UpstreamError::Exchange)?;
        let response = sender
            .send_request(request)
            .await
            .map_err(UpstreamError::Exchange)?;
        lock(&self.slots)[index(slot)].sender = Some(sender);
        Ok(response)
    }
}

/// Locks a mutex that only this module's short, panic-free sections hold.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_paths_are_joined_onto_the_base_url() {
        let bare = Upstream::parse(Slot::Blue, "http://127.0.0.1:9001").unwrap();
        let uri = bare.target_for(&"/a/b?c=d".parse().unwrap()).unwrap();
        assert_eq!(uri.to_string(), "/a/b?c=d");
        assert_eq!(bare.host, "127.0.0.1:9001");
        assert!(matches!(bare.address, Address::Ip(addr) if addr.port() == 9001));

        let prefixed = Upstream::parse(Slot::Green, "http://app.local/v2/").unwrap();
        let uri = prefixed
            .target_for(&"/orders?id=7".parse().unwrap())
            .unwrap();
        assert_eq!(uri.to_string(), "/v2/orders?id=7");
        let uri = prefixed.target_for(&"*".parse().unwrap()).unwrap();
        assert_eq!(uri.to_string(), "/v2/");
        assert!(matches!(&prefixed.address, Address::Name(host, 80) if host == "app.local"));

        let v6 = Upstream::parse(Slot::Blue, "http://[::1]:9001").unwrap();
        assert!(matches!(v6.address, Address::Ip(addr) if addr.is_ipv6()));
    }

    #[test]
    fn upstreams_must_be_plain_http_base_urls() {
        for bad in [
            "https://127.0.0.1:9001",
            "127.0.0.1:9001",
            "http://x/?q=1",
            "not a url",
        ] {
            let error = Upstream::parse(Slot::Green, bad).unwrap_err();
            assert!(
                error.to_string().contains("green"),
                "{bad}: {error} should name the slot"
            );
        }
    }
}
