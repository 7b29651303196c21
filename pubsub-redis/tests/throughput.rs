//! Publish throughput of this backend against the raw `redis` crate's multiplexed
//! connection, at the same number of publishes in flight, on the same server in the
//! same run. Ignored by default (a measurement); run it with
//! `cargo test -p pubsub-redis --release --test throughput -- --ignored --nocapture`.

use std::time::Instant;

use futures::future::join_all;
use pubsub_brokers::RedisServer;
use pubsub_core::{Bytes, Message, PubSub};
use pubsub_redis::RedisBackend;

const MESSAGES: usize = 200_000;
/// Publishing tasks, each with one publish in flight.
const TASKS: usize = 64;
const PAYLOAD: usize = 128;
const ROUNDS: usize = 3;

/// Runs `publish` `MESSAGES` times from `TASKS` tasks; returns messages per second.
async fn rate<F, Fut>(publish: F) -> f64
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let started = Instant::now();
    let tasks = join_all((0..TASKS).map(|_| {
        let publish = publish.clone();
        tokio::spawn(async move {
            for _ in 0..MESSAGES / TASKS {
                publish().await;
            }
        })
    }));
    for task in tasks.await {
        task.expect("a publishing task");
    }
    (MESSAGES / TASKS * TASKS) as f64 / started.elapsed().as_secs_f64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a test: run with --release --ignored --nocapture"]
async fn publish_throughput_against_the_raw_redis_crate() {
    let server = RedisServer::start();
    let payload = Bytes::from(vec![b'x'; PAYLOAD]);

    let client = redis::Client::open(server.url()).unwrap();
    let raw = client.get_multiplexed_async_connection().await.unwrap();
    let raw_publish = {
        let payload = payload.clone();
        move || {
            let (mut raw, payload) = (raw.clone(), payload.clone());
            async move {
                redis::cmd("PUBLISH")
                    .arg("bench.raw")
                    .arg(payload.as_ref())
                    .exec_async(&mut raw)
                    .await
                    .unwrap();
            }
        }
    };

    let bus: PubSub = RedisBackend::connect(&server.url()).await.unwrap().into();
    // One idle subscriber, so that the bus has its subscriber connection too.
    let _sub = bus.topic("bench.other").subscribe().await.unwrap();
    // One handle, as an application keeps it: its publisher is built once.
    let topic = bus.topic("bench.bus");
    let bus_publish = move || {
        let (topic, payload) = (topic.clone(), payload.clone());
        async move {
            topic.publish_message(Message::new(payload)).await.unwrap();
        }
    };

    // Alternating rounds, the best of each, so that warming up favours neither.
    let (mut raw_rate, mut bus_rate) = (0f64, 0f64);
    for _ in 0..ROUNDS {
        raw_rate = raw_rate.max(rate(raw_publish.clone()).await);
        bus_rate = bus_rate.max(rate(bus_publish.clone()).await);
    }
    println!(
        "publish {MESSAGES} x {PAYLOAD} B from {TASKS} tasks: raw redis multiplexed \
         {raw_rate:.0} msg/s, pubsub-redis {bus_rate:.0} msg/s ({:.0}%)",
        100.0 * bus_rate / raw_rate
    );
    assert!(raw_rate > 0.0 && bus_rate > 0.0);
}
