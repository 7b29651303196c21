//! The broadcast backlog waits in the broker: a subscriber holds its buffer (the
//! consumer's prefetch) and the rest stays in its broker queue, up to the backlog;
//! past that the broker drops the oldest and the subscription is told how many. On
//! a private RabbitMQ node of this test binary.

use std::time::Duration;

use futures::StreamExt;
use pubsub_amqp::AmqpBackend;
use pubsub_brokers::RabbitServer;
use pubsub_core::testkit::support::{next, next_item, unique, within};
use pubsub_core::{PubSub, Received, Signal, Subscription};

async fn server() -> &'static RabbitServer {
    tokio::task::spawn_blocking(RabbitServer::shared)
        .await
        .expect("start the RabbitMQ node")
}

/// A bus whose broadcast subscriptions hold 100 messages on the client.
async fn buffering_100(server: &RabbitServer) -> PubSub {
    let backend = AmqpBackend::builder(&server.url()).buffer(100);
    PubSub::new(backend.connect().await.expect("connect"))
}

/// Publishes `ids` with confirms, `at_once` at a time (1 keeps the ids' order).
async fn publish_all(bus: &PubSub, topic: &str, ids: std::ops::Range<u32>, at_once: usize) {
    let topic = bus.topic(topic);
    let publishes = ids.map(|id| {
        let topic = topic.clone();
        async move { topic.publish(&id).await.expect("a confirmed publish") }
    });
    futures::stream::iter(publishes)
        .buffered(at_once)
        .collect::<Vec<()>>()
        .await;
}

/// The ready and unacknowledged messages of the queues bound with `topics`.
fn queue_depths(server: &RabbitServer, topics: &[String]) -> Vec<(u64, u64)> {
    let bindings = server.rabbitmqctl(&["list_bindings", "routing_key", "destination_name"]);
    let queues = server.rabbitmqctl(&[
        "list_queues",
        "name",
        "messages_ready",
        "messages_unacknowledged",
    ]);
    let depth = |topic: &String| {
        let queue = bindings
            .lines()
            .find_map(|line| {
                let (key, queue) = line.split_once('\t')?;
                (key == topic).then_some(queue)
            })
            .unwrap_or_else(|| panic!("no queue bound with {topic}: {bindings}"));
        queues
            .lines()
            .find_map(|line| {
                let mut fields = line.split('\t');
                (fields.next()? == queue).then(|| {
                    let ready = fields.next()?.parse().ok()?;
                    let unacked = fields.next()?.parse().ok()?;
                    Some((ready, unacked))
                })?
            })
            .unwrap_or_else(|| panic!("no queue {queue}: {queues}"))
    };
    topics.iter().map(depth).collect()
}

/// Waits until the queue bound with `topic` holds `expected` (ready, unacknowledged)
/// messages.
async fn depth_becomes(server: &'static RabbitServer, topic: &str, expected: (u64, u64)) {
    depths_become(server, &[topic.to_owned()], expected).await;
}

/// Waits until each queue bound with one of `topics` holds `expected` (ready,
/// unacknowledged) messages. Each look is two rabbitmqctl runs, an Erlang VM each:
/// seconds apiece on a loaded machine, so the wait is longer than the suite's
/// patience for one event.
async fn depths_become(server: &'static RabbitServer, topics: &[String], expected: (u64, u64)) {
    let last = std::sync::Mutex::new(None);
    let looking = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let depths = tokio::task::spawn_blocking({
                let topics = topics.to_vec();
                move || queue_depths(server, &topics)
            })
            .await
            .expect("rabbitmqctl");
            if depths.iter().all(|&depth| depth == expected) {
                return;
            }
            *last.lock().unwrap() = Some(depths);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    if looking.await.is_err() {
        panic!(
            "the queues of {topics:?} did not each hold {expected:?} (ready, unacknowledged) \
             within 60 s: last seen {:?}",
            last.lock().unwrap()
        );
    }
}

async fn ids(sub: &mut Subscription, count: usize) -> Vec<u32> {
    let mut got = Vec::with_capacity(count);
    while got.len() < count {
        got.push(next(sub, "a message").await.json().expect("an id"));
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_before_the_subscriber_reads_arrives_whole() {
    let server = server().await;
    let bus = PubSub::new(AmqpBackend::connect(&server.url()).await.expect("connect"));
    let topic = unique("backlog.burst");
    let mut sub = bus.topic(&topic).subscribe().await.expect("subscribe");
    publish_all(&bus, &topic, 0..5_000, 8).await;
    let mut got = ids(&mut sub, 5_000).await;
    got.sort_unstable();
    assert_eq!(got, (0..5_000).collect::<Vec<_>>());
    // Nothing more: no signal, no duplicate.
    bus.topic(&topic).publish(&u32::MAX).await.expect("publish");
    assert_eq!(
        next(&mut sub, "the last").await.json::<u32>().unwrap(),
        u32::MAX
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_holds_its_buffer_and_the_broker_the_rest() {
    let server = server().await;
    let bus = buffering_100(server).await;
    let topic = unique("backlog.depth");
    let mut sub = bus.topic(&topic).subscribe().await.expect("subscribe");
    publish_all(&bus, &topic, 0..1_000, 8).await;
    depth_becomes(server, &topic, (900, 100)).await;
    // Reading acknowledges, and the broker sends the rest.
    let got = ids(&mut sub, 1_000).await;
    assert_eq!(got.len(), 1_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_its_backlog_the_broker_drops_the_oldest_and_says_how_many() {
    let server = server().await;
    let slow_bus = PubSub::new(
        AmqpBackend::builder(&server.url())
            .buffer(100)
            .backlog(500)
            .connect()
            .await
            .expect("connect"),
    );
    let bus = PubSub::new(AmqpBackend::connect(&server.url()).await.expect("connect"));
    let topic = unique("backlog.full");
    let mut slow = slow_bus.topic(&topic).subscribe().await.expect("subscribe");
    let mut fast = bus.topic(&topic).subscribe().await.expect("subscribe");
    let reader = tokio::spawn(async move { ids(&mut fast, 2_000).await });
    // A subscriber that does not read blocks neither the publisher nor the other
    // subscriber. One at a time keeps the ids in the broker's order, which the
    // assertions below need; 2,000 confirms in a row take about 4 s on an idle
    // machine and more than the suite's patience for one event on a loaded one, so
    // the bound is for a blocked publisher, not a slow one.
    tokio::time::timeout(
        Duration::from_secs(90),
        publish_all(&bus, &topic, 0..2_000, 1),
    )
    .await
    .expect("2,000 confirmed publishes, one at a time, blocked for 90 s");
    let mut heard = within("the fast subscriber", reader).await.expect("reader");
    heard.sort_unstable();
    assert_eq!(heard, (0..2_000).collect::<Vec<_>>());

    // The slow one: its prefetch, then what was dropped, then the newest 500.
    let mut messages = Vec::new();
    let mut dropped = 0u64;
    while messages.len() < 600 {
        match next_item(&mut slow, "the slow subscriber").await {
            Received::Message(d) => messages.push(d.json::<u32>().unwrap()),
            Received::Signal(Signal::Gap { reason }) => {
                dropped += reason
                    .split_whitespace()
                    .skip_while(|w| *w != "dropped")
                    .nth(2)
                    .and_then(|n| n.parse::<u64>().ok())
                    .unwrap_or_else(|| panic!("no count in {reason:?}"));
            }
            Received::Signal(other) => panic!("{other}"),
        }
    }
    assert_eq!(dropped, 1_400, "2,000 published, 100 held, 500 kept");
    let (held, kept) = messages.split_at(100);
    assert!(held.iter().all(|&id| id < 1_500), "{held:?}");
    let mut kept = kept.to_vec();
    kept.sort_unstable();
    assert_eq!(kept, (1_500..2_000).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_sharing_a_channel_hold_their_own_prefetch_and_settle_what_they_read() {
    let server = server().await;
    // One bus: its broadcast subscriptions consume on one channel, whose delivery
    // tags interleave theirs.
    let bus = buffering_100(server).await;
    let (read, unread) = (unique("backlog.read"), unique("backlog.unread"));
    let mut reader = bus.topic(&read).subscribe().await.expect("subscribe");
    let idle = bus.topic(&unread).subscribe().await.expect("subscribe");
    let both = futures::future::join(
        publish_all(&bus, &read, 0..1_000, 8),
        publish_all(&bus, &unread, 0..1_000, 8),
    );
    let (got, _) = futures::future::join(ids(&mut reader, 1_000), both).await;
    assert_eq!(got.len(), 1_000);
    // The reader's acks settled its own deliveries only: the idle one holds its
    // prefetch and the broker the rest.
    depth_becomes(server, &unread, (900, 100)).await;
    depth_becomes(server, &read, (0, 0)).await;

    // Alone on the channel, then beside a newcomer: every message once, no gap.
    drop(idle);
    let alone = futures::future::join(
        ids(&mut reader, 1_000),
        publish_all(&bus, &read, 0..1_000, 8),
    );
    assert_eq!(alone.await.0.len(), 1_000);
    let mut newcomer = bus.topic(&read).subscribe().await.expect("subscribe");
    let published = publish_all(&bus, &read, 1_000..2_000, 8);
    let (mut first, mut second, ()) = futures::future::join3(
        ids(&mut reader, 1_000),
        ids(&mut newcomer, 1_000),
        published,
    )
    .await;
    first.sort_unstable();
    second.sort_unstable();
    assert_eq!(first, (1_000..2_000).collect::<Vec<_>>());
    assert_eq!(first, second);
    depth_becomes(server, &read, (0, 0)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_reading_side_by_side_on_one_channel_settle_all_they_read() {
    let server = server().await;
    // Six subscriptions on one channel, their delivery tags interleaved, each acking
    // every 25 it reads: their `multiple` acks settle one another's deliveries.
    let bus = buffering_100(server).await;
    let topics: Vec<String> = (0..6).map(|_| unique("backlog.side")).collect();
    let mut subs = Vec::new();
    for topic in &topics {
        subs.push(bus.topic(topic).subscribe().await.expect("subscribe"));
    }
    let reading = futures::future::join_all(subs.iter_mut().map(|sub| ids(sub, 1_000)));
    let publishing = futures::future::join_all(
        topics
            .iter()
            .map(|topic| publish_all(&bus, topic, 0..1_000, 8)),
    );
    let (got, _) = futures::future::join(reading, publishing).await;
    for mut ids in got {
        ids.sort_unstable();
        assert_eq!(ids, (0..1_000).collect::<Vec<_>>(), "every message once");
    }
    // No ack named a tag twice (a channel error, then a gap): each reads on.
    for (topic, sub) in topics.iter().zip(&mut subs) {
        bus.topic(topic).publish(&u32::MAX).await.expect("publish");
        assert_eq!(next(sub, "the last").await.json::<u32>().unwrap(), u32::MAX);
    }
    depths_become(server, &topics, (0, 0)).await;
}
