//! What the conformance suite leaves to each backend: the in-process bounds, and how
//! groups share and give back work.

use pubsub_core::testkit::support::{next, next_item, within};
use pubsub_core::{Error, Message, PubSub, Received, Signal, SubscribeOptions};
use pubsub_local::{LocalBackend, LocalOptions};

#[tokio::test]
async fn a_stalled_subscriber_keeps_only_its_buffer_and_is_told_the_count() {
    let bus: PubSub = LocalBackend::with_options(LocalOptions::new().buffer(64)).into();
    let mut slow = bus.topic("firehose").subscribe().await.unwrap();
    let topic = bus.topic("firehose");
    for i in 0..200_000u32 {
        topic
            .publish_message(Message::new(i.to_be_bytes().to_vec()))
            .await
            .unwrap();
    }
    match next_item(&mut slow, "lag signal").await {
        Received::Signal(Signal::Lagged { missed }) => assert_eq!(missed, 200_000 - 64),
        other => panic!("expected a lag signal, got {other:?}"),
    }
    let first = next(&mut slow, "oldest kept").await;
    assert_eq!(first.payload().as_ref(), (200_000u32 - 64).to_be_bytes());
}

#[tokio::test]
async fn a_full_group_queue_refuses_a_publish_before_anyone_receives_it() {
    let bus: PubSub = LocalBackend::with_options(LocalOptions::new().group_capacity(3)).into();
    // The group's member left: its queue fills, as a durable broker queue would.
    drop(bus.topic("jobs").subscribe_group("workers").await.unwrap());
    let mut watcher = bus.topic("jobs").subscribe().await.unwrap();
    for i in 0..3 {
        bus.topic("jobs").publish(&i).await.unwrap();
        assert_eq!(
            next(&mut watcher, "broadcast").await.json::<i32>().unwrap(),
            i
        );
    }
    let err = bus.topic("jobs").publish(&3).await.unwrap_err();
    assert!(
        matches!(err, Error::QueueFull { capacity: 3, .. }),
        "{err:?}"
    );
    let mut member = bus.topic("jobs").subscribe_group("workers").await.unwrap();
    for i in 0..3 {
        let job = next(&mut member, "queued job").await;
        assert_eq!(job.json::<i32>().unwrap(), i);
        job.ack().await.unwrap();
    }
    // Refused everywhere: the broadcast subscriber's next message is the next publish.
    bus.topic("jobs").publish(&4).await.unwrap();
    assert_eq!(next(&mut watcher, "after").await.json::<i32>().unwrap(), 4);
}

#[tokio::test]
async fn a_member_holds_at_most_its_prefetch_unacked() {
    let bus: PubSub = LocalBackend::new().into();
    let topic = bus.topic("jobs");
    let options = SubscribeOptions::new().group("workers").prefetch(2);
    let mut greedy = topic.subscribe_with(options.clone()).await.unwrap();
    let mut other = topic.subscribe_with(options).await.unwrap();
    for i in 0..4 {
        topic.publish(&i).await.unwrap();
    }
    // Members take turns while both have room: 0 and 2 to one, 1 and 3 to the other.
    let a = next(&mut greedy, "first").await;
    let b = next(&mut greedy, "second").await;
    let c = next(&mut other, "third").await;
    let d = next(&mut other, "fourth").await;
    let got = [&a, &b, &c, &d].map(|d| d.json::<i32>().unwrap());
    assert_eq!(got, [0, 2, 1, 3]);
    // Both are full now: the next waits until a slot is free.
    topic.publish(&4).await.unwrap();
    a.ack().await.unwrap();
    assert_eq!(
        next(&mut greedy, "after an ack")
            .await
            .json::<i32>()
            .unwrap(),
        4
    );
    for settled in [b, c, d] {
        settled.ack().await.unwrap();
    }
}

#[tokio::test]
async fn group_messages_wait_for_the_next_member() {
    let bus: PubSub = LocalBackend::new().into();
    drop(bus.topic("jobs").subscribe_group("workers").await.unwrap());
    bus.topic("jobs").publish(&"waited").await.unwrap();
    let mut member = bus.topic("jobs").subscribe_group("workers").await.unwrap();
    let job = next(&mut member, "waiting job").await;
    assert_eq!(job.json::<String>().unwrap(), "waited");
    job.ack().await.unwrap();
}

#[tokio::test]
async fn deliveries_buffered_for_a_member_that_leaves_go_to_another() {
    let bus: PubSub = LocalBackend::new().into();
    let options = SubscribeOptions::new().group("workers").prefetch(8);
    let leaving = bus
        .topic("jobs")
        .subscribe_with(options.clone())
        .await
        .unwrap();
    for i in 0..5 {
        bus.topic("jobs").publish(&i).await.unwrap();
    }
    let mut staying = bus.topic("jobs").subscribe_with(options).await.unwrap();
    drop(leaving);
    let mut got = Vec::new();
    for _ in 0..5 {
        let job = next(&mut staying, "handed over").await;
        assert_eq!(job.attempt(), 2);
        got.push(job.json::<i32>().unwrap());
        job.ack().await.unwrap();
    }
    got.sort();
    assert_eq!(got, [0, 1, 2, 3, 4]);
}

#[tokio::test]
async fn clones_of_a_backend_share_one_bus() {
    let backend = LocalBackend::new();
    let a = PubSub::new(backend.clone());
    let b = PubSub::new(backend);
    let mut sub = a.topic("shared").subscribe().await.unwrap();
    b.topic("shared").publish(&1).await.unwrap();
    assert_eq!(next(&mut sub, "shared").await.json::<i32>().unwrap(), 1);
}

#[tokio::test]
async fn a_topic_handle_made_before_a_subscription_reaches_it() {
    let bus: PubSub = LocalBackend::new().into();
    let topic = bus.topic("late.sub");
    topic.publish(&0).await.unwrap();
    let mut exact = bus.topic("late.sub").subscribe().await.unwrap();
    let mut pattern = bus.topic("late.*").subscribe().await.unwrap();
    topic.publish(&1).await.unwrap();
    assert_eq!(next(&mut exact, "exact").await.json::<i32>().unwrap(), 1);
    assert_eq!(
        next(&mut pattern, "pattern").await.json::<i32>().unwrap(),
        1
    );
    within("unsubscribe", exact.unsubscribe()).await.unwrap();
    topic.publish(&2).await.unwrap();
    assert_eq!(
        next(&mut pattern, "pattern after")
            .await
            .json::<i32>()
            .unwrap(),
        2
    );
}
