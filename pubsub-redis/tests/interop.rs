//! Interop with other Redis clients (`redis-cli`), both ways, on Inthe.AM's channels.
//! Each test has a server of its own, since they share channel names.

mod support;

use pubsub_brokers::RedisServer;
use pubsub_core::testkit::support::{next, within};
use pubsub_core::{Error, Message, PubSub};
use pubsub_redis::RedisBackend;
use support::{redis_cli, redis_cli_subscriber};

async fn bus(server: &RedisServer, raw: bool) -> PubSub {
    RedisBackend::builder(&server.url())
        .raw(raw)
        .connect()
        .await
        .expect("connect")
        .into()
}

/// `redis-cli -x PUBLISH channel` with `payload` (binary safe, from stdin).
async fn cli_publish(server: &RedisServer, channel: &str, payload: &[u8]) {
    let out = redis_cli(server, &["-x", "PUBLISH", channel], payload).await;
    assert_ne!(out, b"0\n", "redis-cli reached no subscriber");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_messages_arrive_as_their_exact_bytes() {
    let server = RedisServer::start();
    let bus = bus(&server, false).await;
    let mut changed = bus.topic("changed_task.alice").subscribe().await.unwrap();
    let mut general = bus.topic("__general__").subscribe().await.unwrap();
    let mut syncs = bus.topic("sync.*").subscribe().await.unwrap();

    let json = br#"{"username": "alice", "task_id": "d7a5"}"#;
    cli_publish(&server, "changed_task.alice", json).await;
    let d = next(&mut changed, "changed_task").await;
    assert_eq!(
        (d.topic(), d.payload().as_ref()),
        ("changed_task.alice", &json[..])
    );
    assert!(!d.has_headers() && d.id().is_none() && d.priority() == 0);

    cli_publish(&server, "__general__", b"{\"message\": \"maintenance\"}").await;
    let d = next(&mut general, "general").await;
    assert_eq!(d.payload().as_ref(), b"{\"message\": \"maintenance\"}");

    cli_publish(&server, "sync.alice", b"{\"stored_count\": 3}").await;
    let d = next(&mut syncs, "sync.*").await;
    assert_eq!(
        (d.topic(), d.payload().as_ref()),
        ("sync.alice", &b"{\"stored_count\": 3}"[..])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_payloads_that_look_like_an_envelope_arrive_unchanged() {
    let server = RedisServer::start();
    let bus = bus(&server, false).await;
    let mut sub = bus.topic("local_sync.alice").subscribe().await.unwrap();
    let lookalikes: [&[u8]; 5] = [
        b"\x00PS\x01",
        b"\x00PS\x01\x00\x00\x00\x00\x00\x00\x00\x02{}payload",
        b"\x00PS\x01\xff\xff\xff\xff\xff\xff\xff\xff",
        b"\x00PS\x01\x12\x34\x56\x78\x00\x00\x00\x0b{\"p\":5}body",
        b"\x00PS",
    ];
    for bytes in lookalikes {
        cli_publish(&server, "local_sync.alice", bytes).await;
        let d = next(&mut sub, "lookalike").await;
        assert_eq!(d.payload().as_ref(), bytes);
        assert!(!d.has_headers() && d.priority() == 0, "{d:?}");
    }
}

/// Publishes `payload` on our bus and reads what a `redis-cli` subscriber prints.
async fn cli_reads(
    server: &RedisServer,
    bus: &PubSub,
    args: &[&str],
    topic: &str,
    message: Message,
) -> Vec<String> {
    let (_cli, mut lines) = redis_cli_subscriber(server, args).await;
    bus.topic(topic)
        .publish_message(message)
        .await
        .expect("publish");
    let count = if args[0] == "PSUBSCRIBE" { 4 } else { 3 };
    let mut out = Vec::new();
    for _ in 0..count {
        let line = within("redis-cli prints the message", lines.next_line()).await;
        out.push(line.expect("read").expect("a line"));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_mode_publishes_bare_payloads_for_foreign_subscribers() {
    let server = RedisServer::start();
    let bus = bus(&server, true).await;
    assert!(!bus.capabilities().headers);
    let json = r#"{"username":"alice","stored_count":2}"#;
    // Headers cannot travel bare: the bus refuses them rather than drop them.
    let with_headers = Message::new(json).with_header("k", "v");
    let refused = bus
        .topic("local_sync.alice")
        .publish_message(with_headers)
        .await;
    assert!(matches!(refused, Err(Error::Unsupported(_))), "{refused:?}");
    // A priority only orders group queues, which Redis has none of: it is left out.
    let with_priority = Message::new(json).with_priority(4);
    let lines = cli_reads(
        &server,
        &bus,
        &["SUBSCRIBE", "local_sync.alice"],
        "local_sync.alice",
        with_priority,
    )
    .await;
    assert_eq!(lines, ["message", "local_sync.alice", json]);

    let lines = cli_reads(
        &server,
        &bus,
        &["PSUBSCRIBE", "sync.*"],
        "sync.alice",
        Message::new(json),
    )
    .await;
    assert_eq!(lines, ["pmessage", "sync.*", "sync.alice", json]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_mode_sends_plain_messages_bare_too() {
    let server = RedisServer::start();
    let bus = bus(&server, false).await;
    let json = r#"{"task":"d7a5"}"#;
    // Message::json sets no content type, which would need the envelope.
    let value: serde_json::Value = serde_json::from_str(json).unwrap();
    let lines = cli_reads(
        &server,
        &bus,
        &["SUBSCRIBE", "changed_task.alice"],
        "changed_task.alice",
        Message::json(&value).unwrap(),
    )
    .await;
    assert_eq!(lines, ["message", "changed_task.alice", json]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_survive_between_our_buses_and_lookalike_payloads_too() {
    let server = RedisServer::start();
    let (a, b) = (bus(&server, false).await, bus(&server, false).await);
    let mut sub = b.topic("__general__").subscribe().await.unwrap();
    let message = Message::new("x")
        .with_header("initiator", "w1")
        .with_id("m-7")
        .with_priority(3)
        .with_content_type("application/json")
        .with_content_encoding("gzip");
    a.topic("__general__")
        .publish_message(message)
        .await
        .unwrap();
    let d = next(&mut sub, "headers").await;
    assert_eq!(
        (d.header("initiator"), d.id(), d.priority()),
        (Some("w1"), Some("m-7"), 3)
    );
    assert_eq!(
        (d.content_type(), d.content_encoding()),
        (Some("application/json"), Some("gzip"))
    );

    let lookalike = b"\x00PS\x01rest".to_vec();
    a.topic("__general__")
        .publish_message(Message::new(lookalike.clone()))
        .await
        .unwrap();
    let d = next(&mut sub, "our lookalike").await;
    assert_eq!(d.payload().as_ref(), &lookalike[..]);
}
