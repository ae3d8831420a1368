//! Local mode's weighted HTTP reverse proxy, which stands in for the ALB: one
//! listener per service, splitting new requests between the service's blue and green
//! upstreams by the weights the engine sets, and measuring each slot's traffic.
//!
//! - `split`: the deterministic choice of a slot for each request, exact to the
//!   percent over every 100 requests.
//! - `metrics`: per-slot counts, 5xx answers and latency histograms, per second, for
//!   the last ten minutes.
//! - `registry`: the proxies of every service, behind the engine's `TrafficRouter`
//!   and `MetricSource` ports.
//! - `forward`: one request's way through: slot, rewritten headers, upstream, answer
//!   or 502, measurement; `headers` holds the header rules it applies.
//! - `upstream`: the upstream base URLs, and the upstream connections that each
//!   client connection keeps and drives on its own task.
//! - here: `LocalProxy`, its worker threads, accepting and serving connections, and
//!   shutting down.
//!
//! A request keeps the slot it was given when it arrived: new weights apply to new
//! requests only, so a rollback never cuts an answer in half.

mod forward;
mod headers;
pub mod metrics;
mod registry;
pub mod split;
mod upstream;

use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use ripcord_core::config::LocalTarget;
use ripcord_core::domain::{ServiceName, Slot, Weights};
use ripcord_core::observation::SlotMetrics;
use ripcord_core::time::Timestamp;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tracing::{debug, warn};

use forward::Shared;
use upstream::{IdlePool, Links, Upstream};

pub use metrics::{RETENTION, SlotTotals};
pub use registry::ProxyRegistry;
pub use split::{Splitter, slot_for_request};

/// The cookie that keeps a client on one slot when stickiness is on. Its value is
/// `blue` or `green`.
pub const STICKY_COOKIE: &str = "ripcord_slot";

/// How a proxy behaves, beyond its addresses and weights.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyOptions {
    /// Keep each client on the slot it first got, through the `ripcord_slot` cookie,
    /// for as long as that slot has a weight above zero.
    pub sticky: bool,
    /// The length of each period in the metric series handed to the judge (whole
    /// seconds, at least one).
    pub series_period: Duration,
    /// How long to wait for an upstream to accept a connection before answering 502.
    pub connect_timeout: Duration,
    /// Worker threads; zero means one per CPU core.
    pub workers: usize,
}

impl Default for ProxyOptions {
    fn default() -> Self {
        Self {
            sticky: false,
            series_period: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(5),
            workers: 0,
        }
    }
}

/// Why a proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The listen address is not an IP address and port.
    #[error(
        "listen address {listen:?} is not valid ({reason}): use an IP address and a port, e.g. 127.0.0.1:8080"
    )]
    BadListen {
        /// The address as configured.
        listen: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The listen address could not be bound.
    #[error(
        "cannot listen on {listen}: {source}; stop whatever holds the port or pick another `listen`"
    )]
    Bind {
        /// The address.
        listen: SocketAddr,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// An upstream base URL is not usable.
    #[error("upstream {slot} {url:?} is not usable: {reason}")]
    BadUpstream {
        /// The slot.
        slot: Slot,
        /// The URL as configured.
        url: String,
        /// What is wrong with it and what to do.
        reason: String,
    },
    /// The service is not switched by local mode's proxy.
    #[error(
        "service {service} has no [local] traffic target: give it `listen` and `upstreams` under [services.{service}.local] to run it behind the local proxy"
    )]
    NotLocal {
        /// The service.
        service: ServiceName,
    },
    /// A worker thread or its runtime could not be started.
    #[error("cannot start the local proxy's workers for service {service}: {source}")]
    Worker {
        /// The service.
        service: ServiceName,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// A proxy already runs for the service.
    #[error("a local proxy already runs for service {service}: stop it before starting another")]
    AlreadyRunning {
        /// The service.
        service: ServiceName,
    },
}

/// How `LocalProxy::shutdown` ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShutdownOutcome {
    /// Every request in flight finished within the grace period.
    Drained,
    /// The grace period ran out; these connections were closed with requests still
    /// in flight.
    TimedOut {
        /// How many connections were still open.
        aborted_connections: usize,
    },
}

/// What the proxy's tasks are told to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Accept connections and serve requests.
    Serving,
    /// Accept nothing new; finish the requests in flight, then close.
    Draining,
    /// Close every connection now.
    Closing,
}

/// One service's running proxy.
///
/// It runs on threads of its own, one single-threaded Tokio runtime each, all
/// accepting from the one listener, as nginx's worker processes do: a connection and
/// its upstream connections stay on one thread, so a request never waits for
/// another thread to be woken, and the engine's own work cannot hold the proxy up.
///
/// `shutdown` stops it cleanly; dropping it (every `Arc` of it) stops it at once,
/// cutting any request in flight.
#[derive(Debug)]
pub struct LocalProxy {
    service: ServiceName,
    local_addr: SocketAddr,
    series_period: Duration,
    shared: Arc<Shared>,
    /// Every connection of the proxy holds a receiver, so `closed` tells when all
    /// have ended. The workers hold the sender too, to keep their runtimes running
    /// until then.
    phase: Arc<watch::Sender<Phase>>,
    /// Only the accept loops hold receivers, so `closed` tells when every one has
    /// stopped and the listener is closed.
    accepting: watch::Sender<()>,
}

impl LocalProxy {
    /// Listens on `target.listen` (port 0 picks a free port; see `local_addr`) and
    /// serves `weights` between `target.blue` and `target.green`.
    pub fn start(
        service: ServiceName,
        target: &LocalTarget,
        weights: Weights,
        options: ProxyOptions,
    ) -> Result<LocalProxy, ProxyError> {
        let listen: SocketAddr = target
            .listen
            .parse()
            .map_err(|e: std::net::AddrParseError| ProxyError::BadListen {
                listen: target.listen.clone(),
                reason: e.to_string(),
            })?;
        let blue = Upstream::parse(Slot::Blue, &target.blue)?;
        let green = Upstream::parse(Slot::Green, &target.green)?;
        let bind_error = |source| ProxyError::Bind { listen, source };
        let listener = std::net::TcpListener::bind(listen).map_err(bind_error)?;
        listener.set_nonblocking(true).map_err(bind_error)?;
        let local_addr = listener.local_addr().map_err(bind_error)?;
        let shared = Arc::new(Shared::new(
            Splitter::new(weights),
            blue,
            green,
            options.sticky,
            options.connect_timeout,
        ));
        let (phase, phase_rx) = watch::channel(Phase::Serving);
        let phase = Arc::new(phase);
        let (accepting, accepting_rx) = watch::channel(());
        let proxy = LocalProxy {
            service,
            local_addr,
            series_period: options.series_period.max(Duration::from_secs(1)),
            shared,
            phase,
            accepting,
        };
        let workers = if options.workers == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            options.workers
        };
        let balance = Arc::new(Balance::new(workers));
        for worker in 0..workers {
            let worker_error = |source| ProxyError::Worker {
                service: proxy.service.clone(),
                source,
            };
            // Every worker accepts from the same socket; the kernel hands each new
            // connection to whichever is waiting, so the idlest worker takes it.
            let listener = listener.try_clone().map_err(bind_error)?;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(worker_error)?;
            let work = worker_loop(
                listener,
                Worker {
                    index: worker,
                    balance: balance.clone(),
                },
                proxy.shared.clone(),
                proxy.phase.clone(),
                phase_rx.clone(),
                accepting_rx.clone(),
            );
            // If this fails, dropping `proxy` on the way out stops the workers
            // already started.
            std::thread::Builder::new()
                .name(format!("proxy-{}-{worker}", proxy.service))
                .spawn(move || runtime.block_on(work))
                .map_err(worker_error)?;
        }
        debug!(service = %proxy.service, %local_addr, %weights, workers, "local proxy listening");
        Ok(proxy)
    }

    /// The service it serves.
    pub fn service(&self) -> &ServiceName {
        &self.service
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The base URL of a slot's upstream, as configured.
    pub fn upstream(&self, slot: Slot) -> &str {
        &self.shared.upstream(slot).url
    }

    /// Serves `weights` from the next request on; requests in flight keep their slot.
    pub fn set_weights(&self, weights: Weights) {
        self.shared.splitter.set(weights);
    }

    /// The weights being served.
    pub fn weights(&self) -> Weights {
        self.shared.splitter.weights()
    }

    /// Everything a slot has served since the proxy started.
    pub fn totals(&self, slot: Slot) -> SlotTotals {
        self.shared.recorder(slot).totals()
    }

    /// A slot's metrics over `[start, end)`, in whole seconds, within the last
    /// `RETENTION`. Latency is the time from a request's arrival to its upstream's
    /// response headers, as an ALB's target response time is.
    pub fn metrics(&self, slot: Slot, start: Timestamp, end: Timestamp) -> SlotMetrics {
        self.shared
            .recorder(slot)
            .read(start, end, self.shared.clock.second(), self.series_period)
    }

    /// Stops accepting connections, lets the requests in flight finish for up to
    /// `grace`, then closes whatever is left. Idle kept-alive connections close at
    /// once. Calling it again waits for the same end.
    pub async fn shutdown(&self, grace: Duration) -> ShutdownOutcome {
        // Only ever forward: a second call must not reopen what the first closed.
        self.phase.send_if_modified(|phase| {
            let serving = *phase == Phase::Serving;
            if serving {
                *phase = Phase::Draining;
            }
            serving
        });
        // Once every accept loop has ended, the listener is closed and new
        // connections are refused.
        self.accepting.closed().await;
        if tokio::time::timeout(grace, self.phase.closed())
            .await
            .is_ok()
        {
            return ShutdownOutcome::Drained;
        }
        let aborted_connections = self.phase.receiver_count();
        warn!(
            service = %self.service,
            aborted_connections,
            "local proxy shutdown grace period ran out; closing connections with requests in flight"
        );
        self.phase.send_replace(Phase::Closing);
        self.phase.closed().await;
        ShutdownOutcome::TimedOut {
            aborted_connections,
        }
    }
}

impl Drop for LocalProxy {
    fn drop(&mut self) {
        // The workers hold the sender too, so they would not notice it go: tell them.
        self.phase.send_replace(Phase::Closing);
    }
}

/// One worker thread's work: accept connections until told to stop, then keep
/// serving the connections already accepted until every one of the proxy's
/// connections has ended (the runtime only runs them while this future runs).
async fn worker_loop(
    listener: std::net::TcpListener,
    worker: Worker,
    shared: Arc<Shared>,
    phase: Arc<watch::Sender<Phase>>,
    phase_rx: watch::Receiver<Phase>,
    accepting: watch::Receiver<()>,
) {
    match TcpListener::from_std(listener) {
        Ok(listener) => accept_loop(listener, worker, shared, phase_rx, Arc::default()).await,
        Err(error) => warn!(%error, "a local proxy worker could not use the listener"),
    }
    drop(accepting);
    phase.closed().await;
}

/// How long, in 1 ms ticks, a worker ahead of the others leaves new connections to
/// them before it takes one anyway (another worker may be stuck).
const MAX_DEFER_TICKS: u32 = 4;

/// A worker may hold this many more connections than the least busy one before it
/// leaves new ones to the others.
const BALANCE_SLACK: usize = 2;

/// The live connections of each worker.
///
/// Every worker is woken for every new connection, and a burst (a load generator
/// opening all its connections at once) can be accepted whole by the first worker
/// to run, leaving one core with all the work. A worker that is ahead waits a
/// moment, so that the others take their share.
#[derive(Debug)]
struct Balance {
    live: Box<[AtomicUsize]>,
}

impl Balance {
    fn new(workers: usize) -> Self {
        Self {
            live: (0..workers).map(|_| AtomicUsize::new(0)).collect(),
        }
    }

    fn is_ahead(&self, worker: usize) -> bool {
        let mine = self.live[worker].load(Ordering::Relaxed);
        let least = self
            .live
            .iter()
            .map(|live| live.load(Ordering::Relaxed))
            .min()
            .unwrap_or(mine);
        mine > least + BALANCE_SLACK
    }
}

/// One worker: its index, and the balance it shares with the others.
#[derive(Debug)]
struct Worker {
    index: usize,
    balance: Arc<Balance>,
}

impl Worker {
    /// Counts a connection as this worker's for as long as the guard lives.
    fn connection(&self) -> LiveConnection {
        self.balance.live[self.index].fetch_add(1, Ordering::Relaxed);
        LiveConnection {
            balance: self.balance.clone(),
            index: self.index,
        }
    }
}

/// A connection counted in the balance until dropped.
#[derive(Debug)]
struct LiveConnection {
    balance: Arc<Balance>,
    index: usize,
}

impl Drop for LiveConnection {
    fn drop(&mut self) {
        self.balance.live[self.index].fetch_sub(1, Ordering::Relaxed);
    }
}

/// Accepts connections until told to stop, serving each on its own task.
async fn accept_loop(
    listener: TcpListener,
    worker: Worker,
    shared: Arc<Shared>,
    mut phase: watch::Receiver<Phase>,
    pool: Arc<IdlePool>,
) {
    // Each connection gets a receiver of its own, cloned from this one.
    let for_connections = phase.clone();
    let mut deferred = 0;
    loop {
        if deferred < MAX_DEFER_TICKS && worker.balance.is_ahead(worker.index) {
            deferred += 1;
            tokio::select! {
                biased;
                () = stopped(&mut phase) => return,
                () = tokio::time::sleep(Duration::from_millis(1)) => continue,
            }
        }
        deferred = 0;
        tokio::select! {
            biased;
            () = stopped(&mut phase) => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    tokio::spawn(serve_connection(
                        stream,
                        peer,
                        shared.clone(),
                        for_connections.clone(),
                        pool.clone(),
                        worker.connection(),
                    ));
                }
                Err(error) => {
                    // Out of file descriptors, most likely: pause rather than spin
                    // on an error that will repeat until connections close.
                    warn!(%error, "local proxy could not accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
}

/// Completes when the proxy stops serving, or is dropped.
async fn stopped(phase: &mut watch::Receiver<Phase>) {
    // The guard that `wait_for` returns must not live on: it is not `Send`.
    let _ = phase.wait_for(|p| *p != Phase::Serving).await.map(|_| ());
}

/// Serves one client connection (HTTP/1.1 with keep-alive) until it closes or the
/// proxy drains or closes it.
async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    mut phase: watch::Receiver<Phase>,
    pool: Arc<IdlePool>,
    // Held until the connection ends, so that the balance counts it meanwhile.
    _live: LiveConnection,
) {
    // Answers are small and interactive: send them at once instead of letting
    // Nagle's algorithm hold the last segment back.
    if let Err(error) = stream.set_nodelay(true) {
        debug!(%error, "could not disable Nagle's algorithm");
    }
    let links = Arc::new(Links::new(pool));
    let service = service_fn({
        let links = links.clone();
        move |request| forward::forward(shared.clone(), links.clone(), peer, request)
    });
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .serve_connection(TokioIo::new(stream), service);
    let mut connection = pin!(connection);
    let mut current = *phase.borrow_and_update();
    loop {
        match current {
            Phase::Serving => {}
            Phase::Draining => connection.as_mut().graceful_shutdown(),
            Phase::Closing => return,
        }
        // The upstream connections are polled on this task too, before the client
        // connection (so that answers already read are passed on) and after it (so
        // that a request it has just handed over is written at once).
        let serving = std::future::poll_fn(|cx| {
            links.poll_drivers(cx);
            let result = connection.as_mut().poll(cx);
            if result.is_pending() {
                links.poll_drivers(cx);
            }
            result
        });
        tokio::select! {
            result = serving => {
                match result {
                    // The client closed a healthy connection: its idle upstream
                    // connections can serve the next client.
                    Ok(()) if current == Phase::Serving => links.release(),
                    Ok(()) => {}
                    Err(error) => debug!(%error, %peer, "client connection ended with an error"),
                }
                return;
            }
            changed = phase.changed() => {
                if changed.is_err() {
                    // The workers hold the sender until every connection has ended,
                    // so this cannot happen; if it did, nothing could stop this
                    // connection any more, so it stops now.
                    return;
                }
                current = *phase.borrow_and_update();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_ahead_of_the_others_by_more_than_the_slack_leaves_connections_to_them() {
        let balance = Arc::new(Balance::new(2));
        let first = Worker {
            index: 0,
            balance: balance.clone(),
        };
        let second = Worker {
            index: 1,
            balance: balance.clone(),
        };
        let mut held: Vec<LiveConnection> =
            (0..BALANCE_SLACK).map(|_| first.connection()).collect();
        assert!(!balance.is_ahead(0), "within the slack");
        held.push(first.connection());
        assert!(balance.is_ahead(0));
        assert!(!balance.is_ahead(1));
        let other = second.connection();
        assert!(!balance.is_ahead(0), "the other worker caught up");
        drop(other);
        held.clear();
        assert!(
            !balance.is_ahead(0) && !balance.is_ahead(1),
            "closed connections no longer count"
        );

        let alone = Balance::new(1);
        alone.live[0].store(100, Ordering::Relaxed);
        assert!(!alone.is_ahead(0), "a single worker is never ahead");
    }
}
