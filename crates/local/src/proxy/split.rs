//! The weighted choice of a slot for each new request.
//!
//! The choice is deterministic rather than random: a per-proxy counter numbers the
//! requests, and request `n` goes to green when `(n mod 100) * 37 mod 100` is below
//! green's weight. Because 37 and 100 are coprime, every run of 100 consecutive
//! numbers maps onto 0..100 exactly once, so every 100 requests carry exactly the
//! configured share, and the stride of 37 spreads the green requests evenly through
//! each run instead of bunching them at its start. A random choice would only get
//! within a point of the weight on average, and a canary at 1% would see long gaps.

use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use ripcord_core::domain::{Slot, Weight, Weights};

/// The stride through each run of 100 requests; coprime with 100.
const STRIDE: u64 = 37;

/// The slot that request number `n` goes to when green has `green_percent` of the
/// traffic (values above 100 count as 100).
///
/// Any 100 consecutive values of `n` send exactly `green_percent` requests to green.
pub fn slot_for_request(n: u64, green_percent: u8) -> Slot {
    if (n % 100) * STRIDE % 100 < u64::from(green_percent) {
        Slot::Green
    } else {
        Slot::Blue
    }
}

/// Holds a proxy's weights and numbers its requests.
///
/// Both are single atomics, so a new weight applies to the very next request that is
/// numbered after it is set, while requests already on their way keep their slot.
#[derive(Debug)]
pub struct Splitter {
    /// Green's share in percent; blue has the rest, so one atomic holds the whole split.
    green_percent: AtomicU8,
    next_request: AtomicU64,
}

impl Splitter {
    /// A splitter serving `weights`, starting its count at zero.
    pub fn new(weights: Weights) -> Self {
        Self {
            green_percent: AtomicU8::new(weights.of(Slot::Green).get()),
            next_request: AtomicU64::new(0),
        }
    }

    /// Serves `weights` from the next request on.
    pub fn set(&self, weights: Weights) {
        self.green_percent
            .store(weights.of(Slot::Green).get(), Ordering::Release);
    }

    /// The weights being served.
    pub fn weights(&self) -> Weights {
        let green = self.green_percent.load(Ordering::Acquire);
        // Only `set` and `new` store here, and both store a `Weight`, which is at most 100.
        let green = Weight::new(u32::from(green)).unwrap_or(Weight::FULL);
        Weights::split(Slot::Green, green)
    }

    /// The weight of one slot.
    pub fn weight_of(&self, slot: Slot) -> Weight {
        self.weights().of(slot)
    }

    /// Numbers a new request and picks its slot.
    pub fn next_slot(&self) -> Slot {
        // Relaxed is enough for the counter: only the uniqueness of the numbers
        // matters, not their order relative to other memory.
        let n = self.next_request.fetch_add(1, Ordering::Relaxed);
        slot_for_request(n, self.green_percent.load(Ordering::Acquire))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_hundred_requests_carry_the_exact_share() {
        for green in 0..=100u8 {
            for start in [0u64, 1, 37, 99, 1_000_003] {
                let to_green = (start..start + 100)
                    .filter(|&n| slot_for_request(n, green) == Slot::Green)
                    .count();
                assert_eq!(to_green, usize::from(green), "green {green}, start {start}");
            }
        }
    }

    #[test]
    fn a_small_share_is_spread_out_not_bunched() {
        // At 10%, the ten green requests of each hundred must not sit side by side:
        // no two of them closer than five requests apart.
        let greens: Vec<u64> = (0..100)
            .filter(|&n| slot_for_request(n, 10) == Slot::Green)
            .collect();
        assert_eq!(greens.len(), 10);
        for pair in greens.windows(2) {
            assert!(pair[1] - pair[0] >= 5, "bunched green requests: {greens:?}");
        }
    }

    #[test]
    fn weights_read_back_as_set() {
        let splitter = Splitter::new(Weights::all_on(Slot::Blue));
        assert_eq!(splitter.weights(), Weights::all_on(Slot::Blue));
        let canary = Weights::split(Slot::Green, Weight::new(10).unwrap());
        splitter.set(canary);
        assert_eq!(splitter.weights(), canary);
        assert_eq!(splitter.weight_of(Slot::Blue).get(), 90);
    }
}
