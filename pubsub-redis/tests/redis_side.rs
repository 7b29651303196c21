//! What Redis itself sees: one (P)SUBSCRIBE per channel or glob however many local
//! subscriptions share it, released with the last one; prefixes; escaped globs;
//! foreign channels that are no topic names. Each test has a server of its own, since
//! some count what the whole server holds.

mod support;

use pubsub_brokers::RedisServer;
use pubsub_core::testkit::support::{next, next_item, within};
use pubsub_core::{Message, PubSub, Received, Signal};
use pubsub_redis::RedisBackend;
use support::{redis_cli, redis_cli_subscriber};

async fn bus(server: &RedisServer, prefix: &str) -> PubSub {
    RedisBackend::builder(&server.url())
        .prefix(prefix)
        .connect()
        .await
        .expect("connect")
        .into()
}

/// How many connections are subscribed to `channel`, from `PUBSUB NUMSUB`.
fn numsub(server: &RedisServer, channel: &str) -> String {
    let reply = server.command(&["PUBSUB", "NUMSUB", channel]);
    reply.lines().last().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_redis_subscription_per_channel_released_with_the_last() {
    let server = RedisServer::start();
    let bus = bus(&server, "").await;
    let first = bus.topic("refcount.a").subscribe().await.unwrap();
    let second = bus.topic("refcount.a").subscribe().await.unwrap();
    assert_eq!(numsub(&server, "refcount.a"), ":1");
    first.unsubscribe().await.unwrap();
    assert_eq!(
        numsub(&server, "refcount.a"),
        ":1",
        "the second still needs it"
    );
    second.unsubscribe().await.unwrap();
    assert_eq!(numsub(&server, "refcount.a"), ":0");

    let before = server.command(&["PUBSUB", "NUMPAT"]);
    let pattern = bus.topic("refcount.*").subscribe().await.unwrap();
    let same_glob = bus.topic("refcount.*").subscribe().await.unwrap();
    assert_ne!(server.command(&["PUBSUB", "NUMPAT"]), before);
    drop(pattern);
    same_glob.unsubscribe().await.unwrap();
    assert_eq!(server.command(&["PUBSUB", "NUMPAT"]), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_prefix_is_on_the_wire_and_escaped_in_globs() {
    let server = RedisServer::start();
    let bus = bus(&server, "app[1]:").await;
    let mut sub = bus.topic("changed_task.*").subscribe().await.unwrap();
    let (_cli, mut lines) =
        redis_cli_subscriber(&server, &["SUBSCRIBE", "app[1]:changed_task.alice"]).await;
    bus.topic("changed_task.alice")
        .publish_message(Message::new("x"))
        .await
        .unwrap();
    for expected in ["message", "app[1]:changed_task.alice", "x"] {
        let line = within("redis-cli", lines.next_line()).await.unwrap();
        assert_eq!(line.as_deref(), Some(expected));
    }
    let d = next(&mut sub, "prefixed").await;
    assert_eq!(d.topic(), "changed_task.alice");

    // `[1]` is literal: `app1:` is another application's channel.
    redis_cli(
        &server,
        &["PUBLISH", "app1:changed_task.bob", "not ours"],
        b"",
    )
    .await;
    redis_cli(
        &server,
        &["PUBLISH", "app[1]:changed_task.bob", "ours"],
        b"",
    )
    .await;
    let d = next(&mut sub, "escaped glob").await;
    assert_eq!(d.payload().as_ref(), b"ours");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_channel_that_is_no_topic_name_is_a_gap_never_a_topic() {
    let server = RedisServer::start();
    let bus = bus(&server, "").await;
    let mut sub = bus.topic("orders.*").subscribe().await.unwrap();
    let long = format!("orders.{}", "x".repeat(1_000));
    for channel in [
        "orders.has space",
        "orders.new\nline",
        long.as_str(),
        "orders.7",
    ] {
        redis_cli(&server, &["PUBLISH", channel, channel], b"").await;
    }
    for skipped in [
        "\"orders.has space\"",
        "\"orders.new\\nline\"",
        "\"orders.xxxx",
    ] {
        match next_item(&mut sub, "a gap for a channel that is no topic name").await {
            Received::Signal(Signal::Gap { reason }) => {
                assert!(reason.contains(skipped), "{reason}");
                assert!(reason.contains("is no topic name"), "{reason}");
            }
            Received::Signal(other) => panic!("a gap, not {other:?}"),
            Received::Message(d) => panic!("{:?} handed out as a topic", d.topic()),
        }
    }
    let d = next(&mut sub, "the message on a topic").await;
    assert_eq!(d.topic(), "orders.7");
}
