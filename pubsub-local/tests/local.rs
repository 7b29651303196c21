//! What the conformance suite leaves to each backend: the in-process bounds.

use std::time::Duration;

use futures::StreamExt;
use pubsub_core::{Error, Message, PubSub, SubscribeOptions};
use pubsub_local::{LocalBackend, LocalOptions};

async fn next<T>(sub: &mut (impl futures::Stream<Item = T> + Unpin)) -> T {
    tokio::time::timeout(Duration::from_secs(5), sub.next())
        .await
        .expect("an item within 5 s")
        .expect("the stream is open")
}

#[tokio::test]
async fn a_stalled_subscriber_keeps_only_its_buffer_and_is_told_the_count() {
    let bus: PubSub = LocalBackend::with_options(LocalOptions::new().buffer(64)).into();
    let mut slow = bus.topic("firehose").subscribe().await.unwrap();
    for i in 0..200_000u32 {
        bus.topic("firehose")
            .publish_message(Message::new(i.to_be_bytes().to_vec()))
            .await
            .unwrap();
    }
    match next(&mut slow).await {
        Err(Error::Lagged { missed }) => assert_eq!(missed, 200_000 - 64),
        other => panic!("expected a lag signal, got {other:?}"),
    }
    let first = next(&mut slow).await.unwrap();
    assert_eq!(first.payload().as_ref(), (200_000u32 - 64).to_be_bytes());
}

#[tokio::test]
async fn a_full_group_queue_refuses_publishes_with_queue_full() {
    let bus: PubSub = LocalBackend::with_options(LocalOptions::new().group_capacity(3)).into();
    let _member = bus.topic("jobs").subscribe_group("workers").await.unwrap();
    for i in 0..3 {
        bus.topic("jobs").publish(&i).await.unwrap();
    }
    let err = bus.topic("jobs").publish(&3).await.unwrap_err();
    assert!(
        matches!(err, Error::QueueFull { capacity: 3, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_member_holds_at_most_its_prefetch_unacked() {
    let bus: PubSub = LocalBackend::new().into();
    let topic = bus.topic("jobs");
    let options = SubscribeOptions::new().group("workers").prefetch(2);
    let mut greedy = topic.subscribe_with(options.clone()).await.unwrap();
    let mut other = topic.subscribe_with(options).await.unwrap();
    for i in 0..3 {
        topic.publish(&i).await.unwrap();
    }
    let a = next(&mut greedy).await.unwrap();
    let b = next(&mut greedy).await.unwrap();
    // The greedy member is full: the third message goes to the other member.
    let c = next(&mut other).await.unwrap();
    assert_eq!(
        (
            a.json::<i32>().unwrap(),
            b.json::<i32>().unwrap(),
            c.json::<i32>().unwrap()
        ),
        (0, 1, 2)
    );
    a.ack().await.unwrap();
    topic.publish(&3).await.unwrap();
    assert_eq!(next(&mut greedy).await.unwrap().json::<i32>().unwrap(), 3);
}

#[tokio::test]
async fn group_messages_wait_for_the_next_member() {
    let bus: PubSub = LocalBackend::new().into();
    drop(bus.topic("jobs").subscribe_group("workers").await.unwrap());
    bus.topic("jobs").publish(&"waited").await.unwrap();
    let mut member = bus.topic("jobs").subscribe_group("workers").await.unwrap();
    assert_eq!(
        next(&mut member).await.unwrap().json::<String>().unwrap(),
        "waited"
    );
}

#[tokio::test]
async fn clones_of_a_backend_share_one_bus() {
    let backend = LocalBackend::new();
    let a = PubSub::new(backend.clone());
    let b = PubSub::new(backend);
    let mut sub = a.topic("shared").subscribe().await.unwrap();
    b.topic("shared").publish(&1).await.unwrap();
    assert_eq!(next(&mut sub).await.unwrap().json::<i32>().unwrap(), 1);
}
