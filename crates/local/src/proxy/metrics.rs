//! Per-slot request metrics: counts, 5xx answers and a latency histogram per second,
//! kept for the last ten minutes, so that any window the engine asks about can be read.
//!
//! Recording is lock-free: every counter is an atomic, and each second of the ring
//! has its own set. The latency histogram has fixed log-scale buckets, eight per
//! doubling from 50 µs to about a minute, so a percentile read from it is within
//! 9% of the true value (one bucket's width), and histograms of different seconds merge exactly by
//! adding their counts (which averaging per-second percentiles would not).

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ripcord_core::config::MetricKind;
use ripcord_core::observation::SlotMetrics;
use ripcord_core::time::Timestamp;

/// The longest window that can be read; older seconds have been overwritten.
pub const RETENTION: Duration = Duration::from_secs(600);

/// Seconds kept in the ring: the retention, plus the second being recorded and a
/// little room so that a window of exactly ten minutes ending now is whole.
const RING_SECONDS: usize = 605;

/// The lower bound of the first log-scale bucket, in microseconds.
const FIRST_BOUND_MICROS: f64 = 50.0;

/// Buckets per doubling of latency.
const BUCKETS_PER_DOUBLING: f64 = 8.0;

/// Bucket 0 holds everything under 50 µs; buckets 1 to 162 step by a factor of 2^⅛
/// up to 50 µs · 2^20.25 ≈ 62 s; the last bucket holds everything slower.
const BUCKETS: usize = 164;

/// Marks a ring cell that one thread is clearing for a new second.
const RESETTING: u64 = u64::MAX;

/// The bucket a latency falls in.
fn bucket_of(latency: Duration) -> usize {
    let micros = latency.as_secs_f64() * 1e6;
    if micros < FIRST_BOUND_MICROS {
        return 0;
    }
    let steps = (micros / FIRST_BOUND_MICROS).log2() * BUCKETS_PER_DOUBLING;
    // `steps` is finite and non-negative here; the cast saturates on huge values.
    (1 + steps.floor() as usize).min(BUCKETS - 1)
}

/// The lower bound of a bucket, in microseconds.
fn lower_bound_micros(bucket: usize) -> f64 {
    match bucket {
        0 => 0.0,
        b => FIRST_BOUND_MICROS * ((b - 1) as f64 / BUCKETS_PER_DOUBLING).exp2(),
    }
}

/// A latency histogram with plain counts, as merged for reading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LatencyHistogram {
    counts: [u64; BUCKETS],
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self {
            counts: [0; BUCKETS],
        }
    }
}

impl LatencyHistogram {
    /// Counts one latency.
    pub fn record(&mut self, latency: Duration) {
        self.counts[bucket_of(latency)] += 1;
    }

    /// How many latencies it holds.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Adds another histogram's counts to this one.
    pub fn merge(&mut self, other: &LatencyHistogram) {
        for (mine, theirs) in self.counts.iter_mut().zip(other.counts.iter()) {
            *mine += theirs;
        }
    }

    /// The latency below which a share `quantile` (0 to 1) of the counted latencies
    /// fall, in milliseconds; `None` when the histogram is empty.
    ///
    /// Within a bucket the value is interpolated geometrically, matching the buckets'
    /// geometric widths; latencies beyond the last bound report that bound.
    pub fn quantile_ms(&self, quantile: f64) -> Option<f64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = ((quantile.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut below = 0;
        for (bucket, &count) in self.counts.iter().enumerate() {
            if count == 0 || below + count < rank {
                below += count;
                continue;
            }
            let fraction = (rank - below) as f64 / count as f64;
            let lower = lower_bound_micros(bucket);
            let micros = if bucket == 0 {
                FIRST_BOUND_MICROS * fraction
            } else if bucket == BUCKETS - 1 {
                lower
            } else {
                let upper = lower_bound_micros(bucket + 1);
                lower * (upper / lower).powf(fraction)
            };
            return Some(micros / 1000.0);
        }
        None
    }
}

/// One second of one slot's traffic.
#[derive(Debug)]
struct SecondCell {
    /// The second (since the Unix epoch) plus one that the counters belong to; zero
    /// while unused, `RESETTING` while being cleared.
    epoch: AtomicU64,
    requests: AtomicU64,
    errors_5xx: AtomicU64,
    latency: [AtomicU32; BUCKETS],
}

impl SecondCell {
    fn new() -> Self {
        Self {
            epoch: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            errors_5xx: AtomicU64::new(0),
            latency: std::array::from_fn(|_| AtomicU32::new(0)),
        }
    }

    /// Makes the cell hold `second`, clearing it if it held an older one.
    fn claim(&self, second: u64) {
        let wanted = second + 1;
        let mut spins = 0u32;
        loop {
            let epoch = self.epoch.load(Ordering::Acquire);
            // A cell holding a later second means this sample is older than the ring
            // (a thread stalled for ten minutes); counting it in the later second is
            // better than clearing that second's data.
            if epoch != RESETTING && epoch >= wanted {
                return;
            }
            if epoch == RESETTING {
                // Another thread is clearing this cell for the same new second: a
                // few dozen stores. Wait for it rather than lose this sample.
                spins += 1;
                if spins.is_multiple_of(64) {
                    std::thread::yield_now();
                } else {
                    std::hint::spin_loop();
                }
                continue;
            }
            if self
                .epoch
                .compare_exchange(epoch, RESETTING, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                self.requests.store(0, Ordering::Relaxed);
                self.errors_5xx.store(0, Ordering::Relaxed);
                for bucket in &self.latency {
                    bucket.store(0, Ordering::Relaxed);
                }
                self.epoch.store(wanted, Ordering::Release);
                return;
            }
        }
    }

    /// The cell's counts if it holds `second`.
    fn read(&self, second: u64) -> Option<(u64, u64, LatencyHistogram)> {
        if self.epoch.load(Ordering::Acquire) != second + 1 {
            return None;
        }
        let mut histogram = LatencyHistogram::default();
        for (count, bucket) in histogram.counts.iter_mut().zip(self.latency.iter()) {
            *count = u64::from(bucket.load(Ordering::Relaxed));
        }
        Some((
            self.requests.load(Ordering::Relaxed),
            self.errors_5xx.load(Ordering::Relaxed),
            histogram,
        ))
    }
}

/// Everything one slot has served since the proxy started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SlotTotals {
    /// Requests answered (by the upstream, or with the proxy's own 502).
    pub requests: u64,
    /// Of which answered with a 5xx status.
    pub errors_5xx: u64,
}

/// One slot's metrics: a ring of per-second cells and lifetime totals.
#[derive(Debug)]
pub struct SlotRecorder {
    ring: Box<[SecondCell]>,
    requests: AtomicU64,
    errors_5xx: AtomicU64,
}

impl Default for SlotRecorder {
    fn default() -> Self {
        Self::new()
    }
}

impl SlotRecorder {
    /// An empty recorder.
    pub fn new() -> Self {
        Self {
            ring: (0..RING_SECONDS).map(|_| SecondCell::new()).collect(),
            requests: AtomicU64::new(0),
            errors_5xx: AtomicU64::new(0),
        }
    }

    fn cell(&self, second: u64) -> &SecondCell {
        &self.ring[(second % RING_SECONDS as u64) as usize]
    }

    /// Counts one request answered in `second` (since the Unix epoch). `latency` is
    /// the time to the upstream's response headers, or `None` when no upstream
    /// answered (the proxy's own 502), which counts the request but not its latency.
    pub fn record(&self, second: u64, latency: Option<Duration>, is_5xx: bool) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if is_5xx {
            self.errors_5xx.fetch_add(1, Ordering::Relaxed);
        }
        let cell = self.cell(second);
        cell.claim(second);
        cell.requests.fetch_add(1, Ordering::Relaxed);
        if is_5xx {
            cell.errors_5xx.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(latency) = latency {
            cell.latency[bucket_of(latency)].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Everything recorded since the start.
    pub fn totals(&self) -> SlotTotals {
        SlotTotals {
            requests: self.requests.load(Ordering::Relaxed),
            errors_5xx: self.errors_5xx.load(Ordering::Relaxed),
        }
    }

    /// The metrics of every second that overlaps `[start, end)`, as of second `now`.
    ///
    /// Seconds are whole: a window that starts or ends mid-second takes that whole
    /// second, so no request inside the window is ever left out. Only the last
    /// `RETENTION` before `now` can be read. `series` holds one value per `period`
    /// (counted from the window's first second) for each metric: the request count
    /// for every period, the 5xx rate and latency percentiles for periods that had
    /// requests.
    pub fn read(
        &self,
        start: Timestamp,
        end: Timestamp,
        now: u64,
        period: Duration,
    ) -> SlotMetrics {
        let mut metrics = SlotMetrics::default();
        if end <= start {
            return metrics;
        }
        let oldest_kept = now.saturating_sub(RETENTION.as_secs());
        let first = second_of(start).max(oldest_kept);
        let last = second_of(Timestamp::from_millis(end.as_millis() - 1)).min(now);
        if last < first {
            return metrics;
        }
        let period = period.as_secs().max(1);
        let mut whole = LatencyHistogram::default();
        let mut period_start = first;
        while period_start <= last {
            let period_end = period_start.saturating_add(period - 1).min(last);
            let (mut requests, mut errors) = (0, 0);
            let mut histogram = LatencyHistogram::default();
            for second in period_start..=period_end {
                if let Some((r, e, h)) = self.cell(second).read(second) {
                    requests += r;
                    errors += e;
                    histogram.merge(&h);
                }
            }
            metrics.requests += requests;
            metrics.errors_5xx += errors;
            whole.merge(&histogram);
            push(&mut metrics, MetricKind::RequestCount, requests as f64);
            if requests > 0 {
                push(
                    &mut metrics,
                    MetricKind::ErrorRate,
                    errors as f64 * 100.0 / requests as f64,
                );
            }
            if let Some(p95) = histogram.quantile_ms(0.95) {
                push(&mut metrics, MetricKind::LatencyP95, p95);
            }
            if let Some(p99) = histogram.quantile_ms(0.99) {
                push(&mut metrics, MetricKind::LatencyP99, p99);
            }
            period_start = period_end + 1;
        }
        metrics.latency_p95_ms = whole.quantile_ms(0.95);
        metrics.latency_p99_ms = whole.quantile_ms(0.99);
        metrics
    }
}

fn push(metrics: &mut SlotMetrics, kind: MetricKind, value: f64) {
    metrics.series.entry(kind).or_default().push(value);
}

/// The second since the Unix epoch that holds an instant (zero before the epoch).
fn second_of(at: Timestamp) -> u64 {
    u64::try_from(at.as_millis().div_euclid(1000)).unwrap_or(0)
}

/// Wall-clock time for metrics, read through a monotonic clock so that a step of the
/// system clock cannot send samples into the wrong cells of the ring.
#[derive(Debug, Clone, Copy)]
pub struct MetricClock {
    wall_at_start: Timestamp,
    start: Instant,
}

impl Default for MetricClock {
    fn default() -> Self {
        Self::new()
    }
}

impl MetricClock {
    /// A clock anchored at the system's wall time now.
    pub fn new() -> Self {
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Self {
            wall_at_start: Timestamp::from_millis(
                i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX),
            ),
            start: Instant::now(),
        }
    }

    /// Now.
    pub fn now(&self) -> Timestamp {
        self.wall_at_start.plus(self.start.elapsed())
    }

    /// The current second since the Unix epoch.
    pub fn second(&self) -> u64 {
        second_of(self.now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(value: f64) -> Duration {
        Duration::from_secs_f64(value / 1000.0)
    }

    #[test]
    fn buckets_cover_50_microseconds_to_a_minute_in_order() {
        assert_eq!(bucket_of(Duration::from_micros(10)), 0);
        assert_eq!(bucket_of(Duration::from_micros(50)), 1);
        assert_eq!(bucket_of(Duration::from_secs(60)), BUCKETS - 2);
        assert_eq!(bucket_of(Duration::from_secs(3600)), BUCKETS - 1);
        let mut previous = 0;
        for micros in (0..70_000_000u64).step_by(997) {
            let bucket = bucket_of(Duration::from_micros(micros));
            assert!(bucket >= previous, "bucket fell at {micros} µs");
            assert!(lower_bound_micros(bucket) <= micros as f64 + 1e-9);
            previous = bucket;
        }
    }

    #[test]
    fn percentiles_of_a_known_distribution_are_within_ten_percent() {
        let mut histogram = LatencyHistogram::default();
        // 1,000 latencies spread evenly from 1 ms to 1,000 ms: the true p50 is 500 ms,
        // p95 950 ms, p99 990 ms.
        for i in 1..=1000 {
            histogram.record(ms(i as f64));
        }
        for (quantile, expected) in [(0.5, 500.0), (0.95, 950.0), (0.99, 990.0)] {
            let got = histogram.quantile_ms(quantile).unwrap();
            assert!(
                (got - expected).abs() / expected < 0.1,
                "q{quantile}: {got} ms, expected about {expected} ms"
            );
        }
        assert_eq!(LatencyHistogram::default().quantile_ms(0.99), None);
    }

    #[test]
    fn a_window_sums_its_seconds_and_splits_them_into_periods() {
        let recorder = SlotRecorder::new();
        let base = 1_800_000_000u64;
        for offset in 0..20u64 {
            for i in 0..10 {
                recorder.record(base + offset, Some(ms(2.0)), offset == 5 && i < 5);
            }
        }
        let start = Timestamp::from_millis((base * 1000) as i64);
        let end = start.plus(Duration::from_secs(20));
        let metrics = recorder.read(start, end, base + 20, Duration::from_secs(5));
        assert_eq!(metrics.requests, 200);
        assert_eq!(metrics.errors_5xx, 5);
        assert_eq!(
            metrics.series[&MetricKind::RequestCount],
            vec![50.0, 50.0, 50.0, 50.0]
        );
        assert_eq!(
            metrics.series[&MetricKind::ErrorRate],
            vec![0.0, 10.0, 0.0, 0.0]
        );
        let p99 = metrics.latency_p99_ms.unwrap();
        assert!((1.8..2.2).contains(&p99), "p99 {p99}");
        assert_eq!(recorder.totals().requests, 200);

        // A window of the last five seconds only.
        let late = recorder.read(
            start.plus(Duration::from_secs(15)),
            end,
            base + 20,
            Duration::from_secs(1),
        );
        assert_eq!(late.requests, 50);
        assert_eq!(late.series[&MetricKind::RequestCount].len(), 5);
    }

    #[test]
    fn seconds_older_than_the_retention_are_gone() {
        let recorder = SlotRecorder::new();
        let base = 1_800_000_000u64;
        recorder.record(base, Some(ms(1.0)), false);
        // The same cell of the ring, one lap later, clears the old second.
        let lap = base + RING_SECONDS as u64;
        recorder.record(lap, Some(ms(1.0)), true);
        let old = Timestamp::from_millis((base * 1000) as i64);
        let metrics = recorder.read(
            old,
            old.plus(Duration::from_secs(1)),
            lap,
            Duration::from_secs(1),
        );
        assert_eq!(metrics.requests, 0);
        let new = Timestamp::from_millis((lap * 1000) as i64);
        let metrics = recorder.read(
            new,
            new.plus(Duration::from_secs(1)),
            lap,
            Duration::from_secs(1),
        );
        assert_eq!((metrics.requests, metrics.errors_5xx), (1, 1));
        assert_eq!(
            recorder.totals(),
            SlotTotals {
                requests: 2,
                errors_5xx: 1
            }
        );
    }

    #[test]
    fn concurrent_recording_across_a_second_boundary_loses_nothing() {
        let recorder = std::sync::Arc::new(SlotRecorder::new());
        let base = 1_800_000_000u64;
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let recorder = recorder.clone();
                std::thread::spawn(move || {
                    for i in 0..20_000u64 {
                        recorder.record(base + i / 5_000, Some(ms(1.0)), false);
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let start = Timestamp::from_millis((base * 1000) as i64);
        let metrics = recorder.read(
            start,
            start.plus(Duration::from_secs(4)),
            base + 4,
            Duration::from_secs(1),
        );
        assert_eq!(metrics.requests, 80_000);
        assert_eq!(metrics.series[&MetricKind::RequestCount], vec![20_000.0; 4]);
    }
}
