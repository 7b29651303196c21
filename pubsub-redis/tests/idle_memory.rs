//! Idle subscriptions are cheap: 5,000 of them, to distinct topics, cost at most 8 KiB
//! each on the client (the process' resident memory, which counts the rings, the
//! dispatch map and what the redis crate keeps per channel), and leave nothing behind
//! in Redis once dropped. A test binary of its own, so no other test's memory counts.

use pubsub_brokers::RedisServer;
use pubsub_core::testkit::support::{next, resident_bytes, within};
use pubsub_core::PubSub;
use pubsub_redis::RedisBackend;

const SUBSCRIPTIONS: usize = 5_000;
const BUDGET: u64 = 8 * 1024;

/// The first line of a `redis-cli` reply (`:3`, `*5000`): the count it starts with.
fn count(reply: &str) -> &str {
    reply.lines().next().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_thousand_idle_subscriptions_cost_at_most_8_kib_each() {
    let server = RedisServer::start();
    let bus: PubSub = RedisBackend::connect(&server.url()).await.unwrap().into();
    // The subscriber connection exists before measuring: it is the bus's, not theirs.
    let warm_up = bus.topic("idle.warm_up").subscribe().await.unwrap();
    let topics: Vec<_> = (0..SUBSCRIPTIONS)
        .map(|i| bus.topic(format!("idle.topic.{i}")))
        .collect();
    let mut subscriptions = Vec::with_capacity(SUBSCRIPTIONS);

    let before = resident_bytes().expect("resident memory");
    for topic in &topics {
        subscriptions.push(topic.subscribe().await.unwrap());
    }
    let each = resident_bytes()
        .expect("resident memory")
        .saturating_sub(before)
        / SUBSCRIPTIONS as u64;
    println!("{SUBSCRIPTIONS} idle subscriptions: {each} bytes each");
    assert!(each <= BUDGET, "{each} bytes per idle subscription");
    let subscribed = server.command(&["PUBSUB", "CHANNELS", "idle.topic.*"]);
    assert_eq!(count(&subscribed), format!("*{SUBSCRIPTIONS}"));

    // Still live, each on its own topic.
    topics[SUBSCRIPTIONS - 1].publish(&"awake").await.unwrap();
    let last = subscriptions.last_mut().unwrap();
    let delivery = next(last, "the last subscription").await;
    assert_eq!(
        delivery.topic(),
        format!("idle.topic.{}", SUBSCRIPTIONS - 1)
    );

    drop(subscriptions);
    // Waits for every release sent before it, so Redis has done them all.
    within("unsubscribe", warm_up.unsubscribe()).await.unwrap();
    let subscribed = server.command(&["PUBSUB", "CHANNELS", "idle.*"]);
    assert_eq!(count(&subscribed), "*0");
}
