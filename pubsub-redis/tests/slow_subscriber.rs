//! A subscriber that reads nothing while 200,000 messages go by keeps bounded memory
//! and is told how many it missed.

use std::sync::Arc;
use std::time::Duration;

use pubsub_brokers::RedisServer;
use pubsub_core::testkit::support::{next, next_item, resident_bytes};
use pubsub_core::{Message, PubSub, Received, Signal, SubscribeOptions};
use pubsub_redis::RedisBackend;

const TOTAL: u64 = 200_000;
const BUFFER: usize = 1024;
const PAYLOAD: usize = 512;
const PUBLISHERS: u64 = 64;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_subscriber_keeps_bounded_memory_and_gets_a_lag_count() {
    let server = RedisServer::start();
    let bus: PubSub = RedisBackend::connect(&server.url()).await.unwrap().into();
    let mut slow = bus
        .topic("slow.firehose")
        .subscribe_with(SubscribeOptions::new().buffer(BUFFER))
        .await
        .unwrap();
    // Published after everything else on the same connections: once it arrives, so
    // has every firehose message, and the ring holds what it will ever hold.
    let mut sentinel = bus.topic("slow.sentinel").subscribe().await.unwrap();
    let firehose = bus.topic("slow.firehose");
    let before = resident_bytes().expect("resident memory");

    // 64 publishers; the last message is published once all the others are done.
    let body = Arc::new(vec![b'x'; PAYLOAD]);
    let publishers: Vec<_> = (0..PUBLISHERS)
        .map(|task| {
            let (firehose, body) = (firehose.clone(), body.clone());
            tokio::spawn(async move {
                for _ in (task..TOTAL - 1).step_by(PUBLISHERS as usize) {
                    let message = Message::new(body.as_ref().clone());
                    firehose.publish_message(message).await.unwrap();
                }
            })
        })
        .collect();
    // A debug build publishes some 20,000 a second on a busy machine.
    let all = futures::future::try_join_all(publishers);
    tokio::time::timeout(Duration::from_secs(90), all)
        .await
        .expect("200,000 publishes within 90 s")
        .unwrap();
    firehose
        .publish_message(Message::new("last"))
        .await
        .unwrap();
    bus.topic("slow.sentinel").publish(&"done").await.unwrap();
    let done = next(&mut sentinel, "the sentinel, after the firehose").await;
    assert_eq!(done.json::<String>().unwrap(), "done");
    let grown = resident_bytes()
        .expect("resident memory")
        .saturating_sub(before);
    // Unbounded, the messages alone would be over 100 MB.
    assert!(grown < 48 * 1024 * 1024, "memory grew by {grown} bytes");

    let (mut received, mut missed) = (0u64, 0u64);
    while received + missed < TOTAL {
        match next_item(&mut slow, "slow subscriber").await {
            Received::Message(d) => {
                received += 1;
                if received + missed == TOTAL {
                    assert_eq!(d.payload().as_ref(), b"last");
                }
            }
            Received::Signal(Signal::Lagged { missed: n }) => missed += n,
            Received::Signal(signal) => panic!("unexpected signal {signal}"),
        }
    }
    assert_eq!(received, BUFFER as u64, "it keeps the newest {BUFFER}");
    assert_eq!(missed, TOTAL - BUFFER as u64);
}
