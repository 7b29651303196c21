//! Micro benchmarks of the in-process publish path, beside a raw
//! `tokio::sync::broadcast` send of the same payload: with no subscriber, one, and a
//! hundred. Subscribers are not read; a broadcast send costs the same whether or not
//! the slot it overwrites was read.

use std::hint::black_box;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use pubsub_core::{Message, PubSub};
use pubsub_local::LocalBackend;

fn publish(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a current-thread runtime builds");
    let payload = Bytes::from_static(&[0x5A; 64]);
    let mut group = c.benchmark_group("publish 64 B");
    for subscribers in [0usize, 1, 100] {
        let bus: PubSub = LocalBackend::new().into();
        let topic = bus.topic("bench.publish");
        let _subs: Vec<_> = runtime.block_on(async {
            let mut subs = Vec::new();
            for _ in 0..subscribers {
                subs.push(topic.subscribe().await.expect("local subscribe works"));
            }
            subs
        });
        group.bench_with_input(
            BenchmarkId::new("pubsub local", subscribers),
            &subscribers,
            |b, _| {
                b.to_async(&runtime).iter(|| async {
                    topic
                        .publish_message(Message::new(black_box(payload.clone())))
                        .await
                        .expect("local publish works")
                })
            },
        );
        let (sender, receiver) = tokio::sync::broadcast::channel::<Bytes>(1024);
        let _receivers: Vec<_> = (0..subscribers).map(|_| sender.subscribe()).collect();
        drop(receiver);
        group.bench_with_input(
            BenchmarkId::new("raw broadcast", subscribers),
            &subscribers,
            |b, _| b.iter(|| sender.send(black_box(payload.clone()))),
        );
    }
    group.finish();
}

criterion_group!(benches, publish);
criterion_main!(benches);
