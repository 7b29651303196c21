//! A RabbitMQ cluster: quorum-queue groups and connections that fail over between
//! nodes, on a private three-node cluster of this test binary.
//!
//! Tests hold `SERIAL`: they share the cluster, and one stops a node.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pubsub_amqp::AmqpBackend;
use pubsub_brokers::RabbitCluster;
use pubsub_core::testkit::support::{next, unique, within};
use pubsub_core::{Error, Message, PubSub, Received, Signal, SubscribeOptions};

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn cluster() -> &'static RabbitCluster {
    tokio::task::spawn_blocking(RabbitCluster::shared)
        .await
        .expect("start the RabbitMQ cluster")
}

/// Every node's address, node `first` first: a bus on it connects there and fails
/// over to the others.
fn url_from(cluster: &RabbitCluster, first: usize) -> String {
    let count = cluster.nodes().len();
    let hosts: Vec<String> = (0..count)
        .map(|i| format!("127.0.0.1:{}", cluster.node((first + i) % count).port()))
        .collect();
    format!("amqp://guest:guest@{}/%2f", hosts.join(","))
}

async fn bus_on(cluster: &RabbitCluster, first: usize) -> PubSub {
    let backend = AmqpBackend::builder(&url_from(cluster, first))
        .cluster()
        .connect()
        .await
        .expect("connect");
    PubSub::new(backend)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_the_publishers_node_loses_no_confirmed_message_of_a_quorum_group() {
    let _serial = SERIAL.lock().await;
    let cluster = cluster().await;
    assert_eq!(cluster.running_nodes(0).len(), 3, "a cluster of three");
    let topic = unique("cluster.orders");
    let group = unique("billing");
    // Two members on the other nodes; the publisher and a broadcast subscriber on
    // node 0, the one that goes.
    let (member_a, member_b) = (bus_on(cluster, 1).await, bus_on(cluster, 2).await);
    let (publisher, listener) = (bus_on(cluster, 0).await, bus_on(cluster, 0).await);
    let options = SubscribeOptions::new().group(&group).prefetch(100);
    let members = [
        member_a
            .topic(&topic)
            .subscribe_with(options.clone())
            .await
            .expect("join"),
        member_b
            .topic(&topic)
            .subscribe_with(options)
            .await
            .expect("join"),
    ];
    let mut broadcast = listener.topic(&topic).subscribe().await.expect("subscribe");

    let received = Arc::new(Mutex::new(HashSet::new()));
    let deliveries = Arc::new(AtomicU32::new(0));
    let consumers: Vec<_> = members
        .into_iter()
        .map(|mut member| {
            let (received, deliveries) = (Arc::clone(&received), Arc::clone(&deliveries));
            tokio::spawn(async move {
                while let Some(item) = member.next().await {
                    let Received::Message(d) = item else {
                        panic!("a group has nothing to signal: {item:?}");
                    };
                    let id: u32 = d.json().expect("an id");
                    let _ = d.ack().await;
                    deliveries.fetch_add(1, Ordering::Relaxed);
                    received.lock().unwrap().insert(id);
                }
            })
        })
        .collect();

    let total = 10_000u32;
    let next_id = Arc::new(AtomicU32::new(0));
    let publishers: Vec<_> = (0..8)
        .map(|_| {
            let (topic, next_id) = (publisher.topic(&topic), Arc::clone(&next_id));
            tokio::spawn(async move {
                let (mut confirmed, mut failed) = (Vec::new(), Vec::new());
                loop {
                    let id = next_id.fetch_add(1, Ordering::Relaxed);
                    if id >= total {
                        return (confirmed, failed);
                    }
                    match topic.publish(&id).await {
                        Ok(()) => confirmed.push(id),
                        Err(e) => failed.push(e.to_string()),
                    }
                }
            })
        })
        .collect();
    // Quorum confirms on three nodes sharing two cores: seconds when the machine is
    // busy, so the wait is bounded for a stall, not for speed.
    tokio::time::timeout(Duration::from_secs(60), async {
        while received.lock().unwrap().len() < 2_000 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("fewer than 2,000 messages through the cluster in 60 s");
    let stopped = Instant::now();
    tokio::task::spawn_blocking(|| cluster.node(0).stop())
        .await
        .expect("stop node 0");
    let (mut confirmed, mut failures) = (HashSet::new(), Vec::new());
    for publisher in publishers {
        let (ok, failed) = publisher.await.expect("publisher task");
        confirmed.extend(ok);
        failures.extend(failed);
    }
    eprintln!("published past the stop {:?} after it", stopped.elapsed());

    let deadline = Instant::now() + Duration::from_secs(30);
    let lost = loop {
        let lost = confirmed.difference(&received.lock().unwrap()).count();
        if lost == 0 || Instant::now() > deadline {
            break lost;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let (got, distinct) = (
        deliveries.load(Ordering::Relaxed),
        received.lock().unwrap().len(),
    );
    eprintln!(
        "node 0 stopped under load: {} confirmed, {} failed {:?}, the group got {got} \
         deliveries of {distinct} messages ({} duplicates)",
        confirmed.len(),
        failures.len(),
        failures.first(),
        got as usize - distinct
    );
    assert_eq!(lost, 0, "confirmed messages the group never got");
    assert!(
        confirmed.len() as u32 > total - 100,
        "most publishes went through another node"
    );

    // The broadcast subscriber failed over too: after what it held, a gap, then
    // what is published next (published until heard: its new queue is bound a
    // moment after the gap is read).
    let mut saw_gap = false;
    within("the broadcast subscriber after its gap", async {
        loop {
            match tokio::time::timeout(Duration::from_millis(200), broadcast.next()).await {
                Ok(Some(Received::Signal(Signal::Gap { .. }))) => saw_gap = true,
                Ok(Some(Received::Signal(other))) => panic!("{other}"),
                Ok(Some(Received::Message(d))) => {
                    if saw_gap && d.json::<u32>().unwrap() == u32::MAX {
                        return;
                    }
                    continue;
                }
                Ok(None) => panic!("the broadcast subscription ended"),
                Err(_) => {}
            }
            if saw_gap {
                publisher
                    .topic(&topic)
                    .publish(&u32::MAX)
                    .await
                    .expect("publish");
            }
        }
    })
    .await;

    // The node comes back, rejoins, and carries traffic again.
    tokio::task::spawn_blocking(|| cluster.node(0).start_again())
        .await
        .expect("start node 0");
    assert_eq!(cluster.running_nodes(1).len(), 3, "node 0 rejoined");
    let only_node_0 = format!(
        "amqp://guest:guest@127.0.0.1:{}/%2f",
        cluster.node(0).port()
    );
    let through_0 = PubSub::new(
        AmqpBackend::builder(&only_node_0)
            .cluster()
            .connect()
            .await
            .expect("connect to node 0"),
    );
    through_0
        .topic(&topic)
        .publish(&(total + 1))
        .await
        .expect("publish through node 0");
    within("the message through node 0", async {
        while !received.lock().unwrap().contains(&(total + 1)) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    for consumer in consumers {
        consumer.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quorum_groups_refuse_priorities_and_dead_letter_past_the_delivery_limit() {
    let _serial = SERIAL.lock().await;
    let cluster = cluster().await;
    let topic = unique("cluster.poison");
    let dead = unique("cluster.dead");
    let backend = AmqpBackend::builder(&url_from(cluster, 1))
        .cluster()
        .delivery_limit(2)
        .dead_letter_topic(&dead)
        .connect()
        .await
        .expect("connect");
    let bus = PubSub::new(backend.clone());
    assert!(!bus.capabilities().priorities);
    let err = bus
        .topic(&topic)
        .publish_message(Message::new("urgent").with_priority(5))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unsupported(_)), "{err}");
    assert!(err.to_string().contains("quorum"), "{err}");

    let mut dead_letters = bus
        .topic(&dead)
        .subscribe_group(&unique("dead"))
        .await
        .expect("subscribe to the dead letters");
    let group = unique("crashing");
    bus.topic(&topic)
        .subscribe_group(&group)
        .await
        .expect("declare the group")
        .unsubscribe()
        .await
        .expect("unsubscribe");
    bus.topic(&topic).publish(&"poison").await.expect("publish");
    // A member that dies holding the message, three times: each time the broker
    // delivers it again, counting, until it gives up past the limit.
    for delivery in 1..=3u32 {
        let dying = PubSub::new(
            AmqpBackend::builder(&url_from(cluster, 2))
                .cluster()
                .delivery_limit(2)
                .dead_letter_topic(&dead)
                .connect()
                .await
                .expect("connect"),
        );
        let mut member = dying
            .topic(&topic)
            .subscribe_group(&group)
            .await
            .expect("join");
        let d = next(&mut member, "the poison message").await;
        assert_eq!(d.attempt(), delivery, "the broker's count of deliveries");
        // The connection goes with the message unsettled, as when a process dies;
        // the delivery dropped after that has nothing left to give back.
        dying.close().await.expect("close");
        drop(d);
    }
    let d = next(&mut dead_letters, "the dead letter").await;
    assert_eq!(d.json::<String>().unwrap(), "poison");
    d.ack().await.expect("ack");
}
