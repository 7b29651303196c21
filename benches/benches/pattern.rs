//! Micro benchmarks of the one topic matcher every backend and the in-process
//! routing use: `Pattern::matches` on hits and misses of each kind of pattern.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use pubsub_core::Pattern;

fn matching(c: &mut Criterion) {
    let cases = [
        ("concrete", "message.stored", "message.stored"),
        ("star hit", "sync.*", "sync.alice"),
        ("star miss", "sync.*", "changed_task.alice"),
        ("hash tail hit", "task.*.#", "task.42.done.ok"),
        ("hash middle hit", "git.#.get", "git.repo.file.get"),
        (
            "hash middle miss",
            "git.#.get",
            "git.repo.file.put.more.segments",
        ),
        (
            "1000-topic bench hit",
            "bench.pattern.*.hit",
            "bench.pattern.t420.hit",
        ),
        (
            "1000-topic bench miss",
            "bench.pattern.*.hit",
            "bench.pattern.t421.miss",
        ),
    ];
    let mut group = c.benchmark_group("Pattern::matches");
    for (name, pattern, topic) in cases {
        let pattern = Pattern::parse(pattern).expect("the patterns above are valid");
        group.bench_function(name, |b| {
            b.iter(|| black_box(&pattern).matches(black_box(topic)))
        });
    }
    group.finish();
    c.bench_function("Pattern::parse task.*.#", |b| {
        b.iter(|| Pattern::parse(black_box("task.*.#")))
    });
}

criterion_group!(benches, matching);
criterion_main!(benches);
