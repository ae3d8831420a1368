//! Local mode's runtime, what `ripcord up` runs: the proxies, the health probes, the
//! controller loop (the core's `Driver` over `LocalProviders` and a `SqliteStore`),
//! the alarm watch, and the one control port (webhook, JSON API, OFREP, dashboard).
//!
//! The controller loop runs a pass over every active deployment, then sleeps until
//! the earliest time a deployment asked to be woken at, or until something happens
//! (a webhook delivery, a command, an alarm), whichever comes first. While a
//! deployment is active it also wakes at least every `METRIC_CHECK_INTERVAL`, because
//! metric checks are armed the whole time the new slot takes traffic.
//!
//! The alarm watch evaluates every local alarm each `ALARM_INTERVAL`; an alarm that
//! goes into ALARM takes the core's alarm fast path at once, as an EventBridge alarm
//! event does on AWS.
//!
//! Everything durable is in the store, so a restarted runtime resumes where the last
//! one stopped: each proxy starts at the weights of its service's active deployment
//! (or 100% on the live slot), and the first pass carries on from the stored state.

use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ripcord_api::ofrep::{DEFAULT_REFRESH, Ofrep};
use ripcord_core::config::{Config, ConfigError, TrafficTarget, parse_config};
use ripcord_core::domain::{DeploymentId, ServiceName, Weights};
use ripcord_core::driver::Driver;
use ripcord_core::engine::Notification;
use ripcord_core::ports::{BoxFuture, Clock, FlagStore, Notifier, PortError, Store, StoreError};
use tokio::net::TcpListener;
use tokio::sync::{Notify, broadcast, watch};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::alarms::{AlarmSetupError, LocalAlarms};
use crate::discord::LocalDiscord;
use crate::health::LocalHealth;
use crate::providers::{LocalProviders, SystemClock};
use crate::proxy::{ProxyError, ProxyOptions, ProxyRegistry};
use crate::server;
use crate::smoke::LocalSmoke;
use crate::store::SqliteStore;

/// How often, at least, the controller passes while a deployment is active.
pub const METRIC_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// How often the local alarms are evaluated.
pub const ALARM_INTERVAL: Duration = Duration::from_millis(250);

/// How many notifications a slow subscriber may fall behind before it misses some.
const NOTIFICATION_BACKLOG: usize = 256;

/// How long requests in flight may take to finish at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// What a runtime needs to start.
#[derive(Debug, Clone)]
pub struct RuntimeOptions {
    /// The configuration file's name, for messages.
    pub config_path: String,
    /// The configuration's text.
    pub config_text: String,
    /// The SQLite file.
    pub store_path: PathBuf,
    /// The control port's address (`127.0.0.1:0` picks a free port).
    pub control_listen: String,
    /// The webhook's shared secret.
    pub webhook_secret: Vec<u8>,
    /// The token that commands and dashboard buttons must carry.
    pub token: String,
    /// How the proxies behave.
    pub proxy: ProxyOptions,
    /// Discord's settings; without them the interactions route answers 404.
    pub discord: Option<LocalDiscord>,
}

/// Why the runtime could not start.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The configuration is not valid.
    #[error("{0}")]
    Config(#[from] ConfigError),
    /// No service can run in local mode.
    #[error(
        "{path} has no service with a [services.<name>.local] table: local mode needs `listen` and `upstreams` for at least one service"
    )]
    NoLocalService {
        /// The configuration file.
        path: String,
    },
    /// The store could not be opened or written.
    #[error("the store {path}: {source}")]
    Store {
        /// The file.
        path: String,
        /// The cause.
        source: StoreError,
    },
    /// The local alarms are inconsistent.
    #[error(transparent)]
    Alarms(#[from] AlarmSetupError),
    /// A proxy could not start.
    #[error(transparent)]
    Proxy(#[from] ProxyError),
    /// A health probe could not start.
    #[error(transparent)]
    Health(PortError),
    /// The control port could not be bound.
    #[error("cannot listen on {listen} for the control port: {source}; pick another with --listen")]
    Control {
        /// The address.
        listen: String,
        /// The cause.
        source: std::io::Error,
    },
}

/// What the runtime's tasks share.
pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) config_version: u64,
    pub(crate) store: Arc<SqliteStore>,
    /// OFREP evaluation over the store's flags and API keys.
    pub(crate) ofrep: Ofrep,
    pub(crate) providers: LocalProviders,
    pub(crate) clock: SystemClock,
    pub(crate) notifier: LogNotifier,
    pub(crate) webhook_secret: Vec<u8>,
    pub(crate) token: String,
    pub(crate) discord: Option<LocalDiscord>,
    /// Wakes the controller loop early.
    pub(crate) wake: Notify,
    ids: AtomicU64,
}

impl Shared {
    pub(crate) fn driver(&self) -> Driver<'_> {
        Driver {
            providers: &self.providers,
            store: &*self.store,
            notifier: &self.notifier,
            clock: &self.clock,
        }
    }

    /// A new deployment id: the time in milliseconds and a counter, unique across
    /// restarts of one machine's runtime.
    pub(crate) fn new_id(&self) -> DeploymentId {
        let n = self.ids.fetch_add(1, Ordering::Relaxed);
        let millis = self.clock.now().as_millis();
        DeploymentId::new(format!("d{millis}-{n}")).expect("digits and a dash make a valid id")
    }
}

/// Notifications go to the log and to whoever subscribed (`ripcord up` prints them).
#[derive(Debug)]
pub(crate) struct LogNotifier {
    sender: broadcast::Sender<Notification>,
}

impl Notifier for LogNotifier {
    fn notify<'a>(&'a self, n: &'a Notification) -> BoxFuture<'a, Result<(), PortError>> {
        Box::pin(async move {
            info!(service = %n.service, version = %n.version, state = %n.state, weights = %n.weights, "{}", n.text);
            // Nobody listening is fine: the store has the history.
            let _ = self.sender.send(n.clone());
            Ok(())
        })
    }
}

/// A running local mode. `shutdown` stops it cleanly; the store keeps everything.
pub struct LocalRuntime {
    shared: Arc<Shared>,
    control_addr: SocketAddr,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl LocalRuntime {
    /// Starts everything on the current Tokio runtime.
    pub async fn start(options: RuntimeOptions) -> Result<LocalRuntime, RuntimeError> {
        let config = parse_config(&options.config_path, &options.config_text)?;
        let local: Vec<_> = config
            .services
            .values()
            .filter(|s| matches!(s.traffic, Some(TrafficTarget::Local(_))))
            .cloned()
            .collect();
        if local.is_empty() {
            return Err(RuntimeError::NoLocalService {
                path: options.config_path,
            });
        }
        let store_path = options.store_path.display().to_string();
        let store_error = |source: StoreError| RuntimeError::Store {
            path: store_path.clone(),
            source,
        };
        let store = Arc::new(
            SqliteStore::open(&options.store_path)
                .map_err(|e| store_error(StoreError::Unavailable(e)))?,
        );
        let clock = SystemClock;
        let config_version = apply_config(&store, &options.config_text, clock.now())
            .await
            .map_err(store_error)?;
        let active = store.active_deployments().await.map_err(store_error)?;
        let registry = Arc::new(ProxyRegistry::new());
        let health = LocalHealth::new();
        for spec in &local {
            let weights = match active.iter().find(|d| d.service == spec.name) {
                Some(d) => d.desired,
                None => {
                    let live = store
                        .service_status(&spec.name)
                        .await
                        .map_err(store_error)?
                        .map_or(spec.initial_live, |s| s.live);
                    Weights::all_on(live)
                }
            };
            registry.start(spec, weights, options.proxy.clone())?;
            health.watch(spec).map_err(RuntimeError::Health)?;
        }
        let alarms = LocalAlarms::new(&config, registry.clone(), Arc::new(clock))?;
        let listener = TcpListener::bind(&options.control_listen)
            .await
            .map_err(|source| RuntimeError::Control {
                listen: options.control_listen.clone(),
                source,
            })?;
        let control_addr = listener
            .local_addr()
            .map_err(|source| RuntimeError::Control {
                listen: options.control_listen.clone(),
                source,
            })?;
        // Random rollouts draw from a seed the operating system's randomness starts.
        let seed = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        let ofrep = Ofrep::new(store.clone(), DEFAULT_REFRESH, seed);
        let shared = Arc::new(Shared {
            config,
            config_version,
            store,
            ofrep,
            providers: LocalProviders {
                proxies: registry,
                health,
                alarms,
                smoke: LocalSmoke,
            },
            clock,
            notifier: LogNotifier {
                sender: broadcast::channel(NOTIFICATION_BACKLOG).0,
            },
            webhook_secret: options.webhook_secret,
            token: options.token,
            discord: options.discord,
            wake: Notify::new(),
            ids: AtomicU64::new(0),
        });
        let (stop, stopped) = watch::channel(false);
        let tasks = vec![
            tokio::spawn(controller_loop(shared.clone(), stopped.clone())),
            tokio::spawn(alarm_watch(shared.clone(), stopped.clone())),
            tokio::spawn(server::serve(listener, shared.clone(), stopped)),
        ];
        info!(%control_addr, "local mode running");
        Ok(LocalRuntime {
            shared,
            control_addr,
            stop,
            tasks,
        })
    }

    /// The control port's address (webhook, API, dashboard).
    pub fn control_addr(&self) -> SocketAddr {
        self.control_addr
    }

    /// The address a service's proxy listens on.
    pub fn proxy_addr(&self, service: &ServiceName) -> Option<SocketAddr> {
        self.shared
            .providers
            .proxies
            .get(service)
            .map(|p| p.local_addr())
    }

    /// The configuration being run.
    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// The configuration's stored version.
    pub fn config_version(&self) -> u64 {
        self.shared.config_version
    }

    /// The store.
    pub fn store(&self) -> &dyn Store {
        &*self.shared.store
    }

    /// The flag store (flags, segments and OFREP API keys), in the same file.
    pub fn flag_store(&self) -> &dyn FlagStore {
        &*self.shared.store
    }

    /// The proxies.
    pub fn proxies(&self) -> &ProxyRegistry {
        &self.shared.providers.proxies
    }

    /// Every notification from now on (progress, rollbacks, alerts).
    pub fn subscribe(&self) -> broadcast::Receiver<Notification> {
        self.shared.notifier.sender.subscribe()
    }

    /// Runs a pass over every active deployment now.
    pub fn wake(&self) {
        self.shared.wake.notify_one();
    }

    /// Stops accepting, lets requests in flight finish, and stops every task. An
    /// in-flight deployment stays in the store and resumes at the next start.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
        self.shared.providers.health.stop();
        self.shared
            .providers
            .proxies
            .shutdown_all(SHUTDOWN_GRACE)
            .await;
        info!("local mode stopped");
    }
}

/// Stores the configuration as the next version unless it is the newest already.
async fn apply_config(
    store: &SqliteStore,
    text: &str,
    now: ripcord_core::time::Timestamp,
) -> Result<u64, StoreError> {
    let latest = store.latest_config().await?;
    match latest {
        Some(stored) if stored.text == text => Ok(stored.version),
        latest => {
            let previous = latest.map_or(0, |c| c.version);
            Ok(store.put_config(text, previous, now).await?.version)
        }
    }
}

async fn controller_loop(shared: Arc<Shared>, mut stopped: watch::Receiver<bool>) {
    loop {
        if *stopped.borrow() {
            return;
        }
        let driver = shared.driver();
        let mut next: Option<Duration> = None;
        match driver.reconcile_all().await {
            Ok(reports) => {
                let now = shared.clock.now();
                for report in reports {
                    match report {
                        Ok(report) => {
                            for error in &report.errors {
                                warn!(deployment = %report.deployment_id, "{error}");
                            }
                            if !report.state.is_terminal() {
                                let due = report
                                    .wake_at
                                    .map_or(METRIC_CHECK_INTERVAL, |at| at.since(now))
                                    .min(METRIC_CHECK_INTERVAL);
                                next = Some(next.map_or(due, |n| n.min(due)));
                            }
                        }
                        Err(error) => {
                            warn!("a controller pass failed: {error}");
                            next = Some(METRIC_CHECK_INTERVAL);
                        }
                    }
                }
            }
            Err(error) => {
                warn!("listing active deployments failed: {error}");
                next = Some(METRIC_CHECK_INTERVAL);
            }
        }
        let sleep = async {
            match next {
                Some(after) => tokio::time::sleep(after).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = sleep => {}
            () = shared.wake.notified() => {}
            _ = stopped.changed() => {}
        }
    }
}

async fn alarm_watch(shared: Arc<Shared>, mut stopped: watch::Receiver<bool>) {
    let mut firing: BTreeMap<String, String> = BTreeMap::new();
    let mut ticks = tokio::time::interval(ALARM_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stopped.changed() => return,
        }
        let now_firing = shared.providers.alarms.firing_now();
        for (name, why) in &now_firing {
            if firing.contains_key(name) {
                continue;
            }
            info!(alarm = %name, "local alarm in ALARM: {why}");
            match shared.driver().on_alarm(name, why).await {
                Ok(reports) if !reports.is_empty() => shared.wake.notify_one(),
                Ok(_) => {}
                Err(error) => warn!(alarm = %name, "the alarm fast path failed: {error}"),
            }
        }
        firing = now_firing;
    }
}
