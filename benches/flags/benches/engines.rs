//! Evaluations per second of Ripcord's evaluator and Yggdrasil on the same flag states
//! and contexts, in one criterion run: `cargo bench --manifest-path
//! benches/flags/Cargo.toml`. Both engines' answers are checked against the spec first.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ripcord_core::flags::SeededRandom;
use ripcord_flags_bench::{assert_agreement, suites};

fn engines(c: &mut Criterion) {
    let suites = suites();
    let cases = assert_agreement(&suites);
    let mut group = c.benchmark_group("client-spec cases");
    group.throughput(Throughput::Elements(cases as u64));
    group.bench_function("ripcord", |b| {
        let mut random = SeededRandom::new(7);
        b.iter(|| {
            for suite in &suites {
                for (flag, context, _, _) in &suite.cases {
                    black_box(suite.ripcord.is_enabled(flag, context, &mut random));
                }
            }
        });
    });
    group.bench_function("yggdrasil", |b| {
        b.iter(|| {
            for suite in &suites {
                for (flag, _, context, _) in &suite.cases {
                    black_box(suite.yggdrasil.is_enabled(flag, context, &None));
                }
            }
        });
    });
    group.finish();
}

criterion_group!(benches, engines);
criterion_main!(benches);
