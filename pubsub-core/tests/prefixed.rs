//! Request/reply across a [`Prefixed`] bus and a bus on the same broker without the
//! prefix: reply addresses are the backend's own, so the decorator passes them
//! through, whichever side is prefixed.

use std::time::Duration;

use pubsub_core::{Delivery, Prefixed, PubSub, Received, Subscription, REPLY_TO};
use pubsub_local::LocalBackend;

const TIMEOUT: Duration = Duration::from_secs(10);

/// The next delivery of `sub` (the testkit's helper needs its feature).
async fn next(sub: &mut Subscription, what: &str) -> Delivery {
    match tokio::time::timeout(TIMEOUT, sub.next()).await {
        Ok(Some(Received::Message(delivery))) => delivery,
        other => panic!("{what}: expected a delivery, got {other:?}"),
    }
}

/// Answers one request on `bus`'s topic `topic` with the number it carries, plus one;
/// the reply-to the request carried.
async fn answer_once(bus: &PubSub, topic: &str) -> tokio::task::JoinHandle<String> {
    let mut requests = bus.topic(topic).subscribe().await.unwrap();
    tokio::spawn(async move {
        let request = next(&mut requests, "the request").await;
        let n: u32 = request.json().unwrap();
        request.reply(&(n + 1)).await.unwrap();
        request.header(REPLY_TO).unwrap().to_owned()
    })
}

#[tokio::test]
async fn a_prefixed_requester_is_answered_from_the_raw_bus() {
    let broker = LocalBackend::new();
    let staging = PubSub::new(Prefixed::new(broker.clone(), "staging").unwrap());
    let raw = PubSub::new(broker);
    let answered = answer_once(&raw, "staging.rpc").await;
    let reply: u32 = staging.topic("rpc").request(&1, TIMEOUT).await.unwrap();
    assert_eq!(reply, 2);
    // The inbox's address is the topic it subscribed on the broker.
    let reply_to = answered.await.unwrap();
    assert!(reply_to.starts_with("staging._inbox."), "{reply_to}");
}

#[tokio::test]
async fn a_raw_requester_is_answered_from_a_prefixed_bus() {
    let broker = LocalBackend::new();
    let staging = PubSub::new(Prefixed::new(broker.clone(), "staging").unwrap());
    let raw = PubSub::new(broker);
    let answered = answer_once(&staging, "rpc").await;
    // Before reply addresses were the backend's own, this reply went to
    // `staging._inbox.…`, where nobody listened.
    let reply: u32 = raw.topic("staging.rpc").request(&1, TIMEOUT).await.unwrap();
    assert_eq!(reply, 2);
    let reply_to = answered.await.unwrap();
    assert!(reply_to.starts_with("_inbox."), "{reply_to}");
}

#[tokio::test]
async fn a_reply_to_that_is_no_topic_name_is_an_error_that_says_so() {
    let bus = PubSub::new(LocalBackend::new());
    let mut requests = bus.topic("rpc").subscribe().await.unwrap();
    let request = pubsub_core::Message::new("1").with_header(REPLY_TO, "has space");
    bus.topic("rpc").publish_message(request).await.unwrap();
    let request = next(&mut requests, "the request").await;
    let err = request.reply(&2).await.unwrap_err();
    assert!(err.to_string().contains("reply-to has space"), "{err}");
}
