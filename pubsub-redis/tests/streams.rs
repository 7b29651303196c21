//! Streams mode beyond the conformance suite: dead letters after the maximum number of
//! attempts, a dead member's messages claimed by the living, replay, and entries as
//! `redis-cli` writes and reads them. One private server for the file; each test uses
//! topics of its own.

// Only `redis_cli` of the shared helpers is used here.
#[allow(dead_code)]
mod support;

use std::sync::LazyLock;
use std::time::{Duration, SystemTime};

use pubsub_brokers::RedisServer;
use pubsub_core::testkit::support::{next, text, unique, within};
use pubsub_core::{Message, PubSub, SubscribeOptions, LAST_ERROR, ORIGINAL_TOPIC};
use pubsub_redis::{RedisBackend, RedisBuilder, Replay};
use support::redis_cli;

static SERVER: LazyLock<RedisServer> = LazyLock::new(RedisServer::start);

fn builder() -> RedisBuilder {
    RedisBackend::builder(&SERVER.url()).streams(true)
}

async fn bus(builder: RedisBuilder) -> PubSub {
    builder.connect().await.expect("connect").into()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_nacked_max_attempts_times_goes_to_the_dead_letter_topic() {
    let bus = bus(builder().max_attempts(3)).await;
    let name = unique("poison");
    let mut dead = bus
        .topic(format!("{name}.dead-letter"))
        .subscribe()
        .await
        .unwrap();
    let mut member = bus.topic(&name).subscribe_group("workers").await.unwrap();
    bus.topic(&name)
        .publish_message(Message::new("bad").with_header("k", "v"))
        .await
        .unwrap();
    for attempt in 1..=3 {
        let d = next(&mut member, "a delivery of the poison message").await;
        assert_eq!(d.attempt(), attempt);
        d.nack(true).await.unwrap();
    }
    let letter = next(&mut dead, "the dead letter").await;
    assert_eq!(text(&letter), "bad");
    assert_eq!(letter.header("k"), Some("v"));
    assert_eq!(letter.header(ORIGINAL_TOPIC), Some(name.as_str()));
    assert!(letter.header(LAST_ERROR).is_some_and(|e| e.contains('4')));
    // The group goes on with the next message, the poison one is gone from it.
    bus.topic(&name).publish(&"good").await.unwrap();
    let d = next(&mut member, "the next message").await;
    assert_eq!(
        (d.json::<String>().unwrap().as_str(), d.attempt()),
        ("good", 1)
    );
    d.ack().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_members_messages_are_claimed_by_a_living_one() {
    let name = unique("crash");
    let options = SubscribeOptions::new().group("g").prefetch(5);
    // The member that dies: it takes five messages and never settles them, as a
    // process that crashes would (no release reaches Redis).
    let dying = bus(builder()).await;
    let mut doomed = dying
        .topic(&name)
        .subscribe_with(options.clone())
        .await
        .unwrap();
    for i in 0..5 {
        dying.topic(&name).publish(&i).await.unwrap();
    }
    for _ in 0..5 {
        std::mem::forget(next(&mut doomed, "taken by the dying member").await);
    }
    dying.close().await.unwrap();

    let living = bus(builder().claim_idle(Duration::from_millis(300))).await;
    let mut heir = living.topic(&name).subscribe_with(options).await.unwrap();
    let mut got = Vec::new();
    for _ in 0..5 {
        let d = next(&mut heir, "claimed from the dead member").await;
        assert_eq!(d.attempt(), 2, "the claim is the second delivery");
        got.push(d.json::<i32>().unwrap());
        d.ack().await.unwrap();
    }
    got.sort();
    assert_eq!(got, [0, 1, 2, 3, 4]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_reads_what_the_stream_holds_then_what_comes() {
    let backend = builder().connect().await.unwrap();
    let bus = PubSub::new(backend.clone());
    let name = unique("history");
    bus.topic(&name).publish(&1).await.unwrap();
    // Entry ids are millisecond times: `middle` is a millisecond after the first
    // entry's and before the second's. (Clock separation, not synchronisation.)
    tokio::time::sleep(Duration::from_millis(2)).await;
    let middle = SystemTime::now();
    tokio::time::sleep(Duration::from_millis(2)).await;
    bus.topic(&name).publish(&2).await.unwrap();
    let mut all = backend.replay(&name, Replay::All).await.unwrap();
    let mut since = backend.replay(&name, Replay::Since(middle)).await.unwrap();
    bus.topic(&name).publish(&3).await.unwrap();
    for (sub, expected) in [(&mut all, vec![1, 2, 3]), (&mut since, vec![2, 3])] {
        let mut got = Vec::new();
        for _ in &expected {
            got.push(next(sub, "replayed").await.json::<i32>().unwrap());
        }
        assert_eq!(got, expected);
    }
    let pubsub = RedisBackend::connect(&SERVER.url()).await.unwrap();
    let err = pubsub.replay(&name, Replay::All).await.unwrap_err();
    assert!(matches!(err, pubsub_core::Error::Unsupported(_)), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_are_plain_fields_for_redis_cli() {
    let bus = bus(builder().prefix("app:")).await;
    let name = unique("fields");
    let mut sub = bus.topic(&name).subscribe().await.unwrap();
    let message = Message::new("hello")
        .with_header("kind", "greeting")
        .with_id("m-1")
        .with_priority(4);
    bus.topic(&name).publish_message(message).await.unwrap();
    drop(next(&mut sub, "our own entry").await);
    let key = format!("app:{name}");
    let shown = redis_cli(&SERVER, &["XRANGE", &key, "-", "+"], b"").await;
    let shown = String::from_utf8_lossy(&shown);
    let lines: Vec<&str> = shown.lines().collect();
    for pair in [
        ["payload", "hello"],
        ["id", "m-1"],
        ["priority", "4"],
        ["h:kind", "greeting"],
    ] {
        assert!(
            lines.windows(2).any(|w| w == pair),
            "{pair:?} not in XRANGE's output:\n{shown}"
        );
    }

    redis_cli(
        &SERVER,
        &[
            "XADD",
            &key,
            "*",
            "payload",
            "from redis-cli",
            "h:via",
            "cli",
        ],
        b"",
    )
    .await;
    redis_cli(&SERVER, &["XADD", &key, "*", "sensor", "t1"], b"").await;
    let d = next(&mut sub, "redis-cli's entry").await;
    assert_eq!(
        (text(&d).as_str(), d.header("via")),
        ("from redis-cli", Some("cli"))
    );
    let foreign = next(&mut sub, "a foreign entry").await;
    assert_eq!(
        foreign.json::<serde_json::Value>().unwrap(),
        serde_json::json!({"sensor": "t1"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patterns_are_refused_with_a_reason() {
    let bus = bus(builder()).await;
    match within("pattern subscribe", bus.topic("a.*").subscribe()).await {
        Err(pubsub_core::Error::Unsupported(why)) => assert!(!why.is_empty()),
        other => panic!("expected Unsupported, got {other:?}"),
    }
    assert!(bus.capabilities().groups && bus.capabilities().persistence);
    assert!(!bus.capabilities().patterns && !bus.capabilities().priorities);
}
