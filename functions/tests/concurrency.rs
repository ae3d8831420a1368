//! The controller's pass over every active deployment runs passes concurrently, never
//! more at once than its bound.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use ripcord_core::config::{Config, ServiceSpec, Step};
use ripcord_core::deployment::State;
use ripcord_core::domain::{Weight, Weights};
use ripcord_core::driver::{Driver, Providers};
use ripcord_core::memory::{MemoryWakeUps, MemoryWorld, Sandbox, block_on, test_service};
use ripcord_core::ports::{
    AlarmSource, BoxFuture, MetricSource, PortError, SmokeRunner, TargetHealth, TrafficRouter,
};
use ripcord_core::time::Timestamp;
use ripcord_functions::controller::{self, Controller};

const T0: Timestamp = Timestamp::from_millis(1_795_675_415_000);

/// A future that is pending a few times before it is ready: a point where the
/// executor switches to another pass.
struct Yield(u8);

impl Future for Yield {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 == 0 {
            return Poll::Ready(());
        }
        self.0 -= 1;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// The in-memory world, whose weight reads take a while and count how many are in
/// flight at once.
#[derive(Default)]
struct Gauged {
    world: MemoryWorld,
    in_flight: AtomicUsize,
    most: AtomicUsize,
}

impl TrafficRouter for Gauged {
    fn set_weights<'a>(
        &'a self,
        service: &'a ServiceSpec,
        weights: Weights,
    ) -> BoxFuture<'a, Result<(), PortError>> {
        self.world.router.set_weights(service, weights)
    }

    fn read_weights<'a>(
        &'a self,
        service: &'a ServiceSpec,
    ) -> BoxFuture<'a, Result<Weights, PortError>> {
        Box::pin(async move {
            let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.most.fetch_max(now, Ordering::SeqCst);
            Yield(3).await;
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            self.world.router.read_weights(service).await
        })
    }
}

impl Providers for Gauged {
    fn router(&self, _service: &ServiceSpec) -> &dyn TrafficRouter {
        self
    }
    fn health(&self, service: &ServiceSpec) -> &dyn TargetHealth {
        self.world.health(service)
    }
    fn alarms(&self, service: &ServiceSpec) -> &dyn AlarmSource {
        self.world.alarms(service)
    }
    fn metrics(&self, service: &ServiceSpec) -> &dyn MetricSource {
        self.world.metrics(service)
    }
    fn smoke(&self, service: &ServiceSpec) -> &dyn SmokeRunner {
        self.world.smoke(service)
    }
}

/// Six services, each with a deployment waiting for its first pass.
fn six_deployments() -> Sandbox {
    let steps = || {
        vec![
            Step::SetWeight(Weight::new(10).unwrap()),
            Step::Pause(Duration::from_secs(300)),
            Step::SetWeight(Weight::new(100).unwrap()),
        ]
    };
    let services: BTreeMap<_, _> = (1..=6)
        .map(|n| {
            let spec = test_service(&format!("svc{n}"), steps());
            (spec.name.clone(), spec)
        })
        .collect();
    let sb = Sandbox::new(
        Config {
            services,
            authors: BTreeMap::new(),
            flags: Default::default(),
        },
        T0,
    );
    for n in 1..=6 {
        sb.deploy(&format!("svc{n}"), "v2", "octocat").unwrap();
    }
    sb
}

/// Runs one scheduled invocation with `bound`; returns the most passes seen reading
/// weights at once.
fn most_at_once(bound: usize) -> usize {
    let sb = six_deployments();
    let gauged = Gauged::default();
    let wake_ups = MemoryWakeUps::default();
    let pause = |_: Duration| -> BoxFuture<'static, ()> { Box::pin(async {}) };
    let controller = Controller {
        driver: Driver {
            providers: &gauged,
            ..sb.driver()
        },
        wake_ups: &wake_ups,
        pause: &pause,
        concurrency: bound,
    };
    let scheduled = serde_json::from_slice(include_bytes!("events/scheduled.json")).unwrap();
    let out = block_on(controller::handle(
        &controller,
        &scheduled,
        T0.plus(Duration::from_secs(60)),
    ))
    .unwrap();
    assert_eq!(out.passes.len(), 6, "every deployment got its pass");
    assert!(out.failed.is_empty(), "{:?}", out.failed);
    for pass in &out.passes {
        assert!(
            matches!(pass.state, State::Progressing { step: 1 }),
            "{pass:?}"
        );
        assert!(wake_ups.booked(&pass.deployment_id).is_some());
    }
    gauged.most.load(Ordering::SeqCst)
}

#[test]
fn passes_run_concurrently_up_to_the_bound() {
    assert_eq!(most_at_once(1), 1, "a bound of one passes one at a time");
    assert_eq!(most_at_once(3), 3);
    assert_eq!(most_at_once(64), 6, "never more than there are deployments");
}
