//! The gateway on RabbitMQ: a private node of this test binary, the gateway binary
//! connected to it with one AMQP exchange per configured exchange, and messages
//! published straight to the broker by a separate connection, as brainlife's services
//! do. Tests that restart the node hold `SERIAL`, so do the others, so that no test's
//! broker goes away in its middle.

mod gateway_support;

use std::time::Duration;

use gateway_support::{assert_relayed, token, Gateway};
use pubsub_amqp::AmqpBackend;
use pubsub_brokers::RabbitServer;
use pubsub_core::testkit::unique;
use pubsub_core::{Message, PubSub};
use serde_json::json;
use tokio::sync::Mutex;

static SERIAL: Mutex<()> = Mutex::const_new(());

const EXCHANGES: &str = r#"
[exchanges.wf]
access = "public"

[exchanges.instance]
access = "claim"
claim = "gids"
segment = 0
"#;

async fn node() -> &'static RabbitServer {
    tokio::task::spawn_blocking(RabbitServer::shared)
        .await
        .expect("start the RabbitMQ node")
}

/// A publisher of its own on exchange `exchange`, as another service would be.
async fn publisher(node: &RabbitServer, exchange: &str) -> PubSub {
    let backend = AmqpBackend::connect(&node.url()).await.expect("connect");
    PubSub::new(backend.exchange(exchange))
}

/// What every test starts with: the broker to itself, a gateway on it, a name for
/// this run, and a client bound to `wf` `task.<run>.#`.
async fn setup() -> (
    tokio::sync::MutexGuard<'static, ()>,
    &'static RabbitServer,
    Gateway,
    String,
    gateway_support::Client,
) {
    let serial = SERIAL.lock().await;
    let node = node().await;
    let gw = Gateway::start_on(&node.url(), EXCHANGES);
    let run = unique("run").replace('.', "_");
    let mut client = gw.connect(&alice()).await;
    client.bound("wf", &format!("task.{run}.#")).await;
    (serial, node, gw, run, client)
}

fn alice() -> String {
    token(json!({"sub": "alice", "gids": ["1"]}))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_from_rabbitmq_exchanges_are_relayed_under_the_same_policies() {
    let (_serial, node, gw, run, mut client) = setup().await;
    client.bound("instance", &format!("1.{run}.#")).await;
    client
        .refused("instance", &format!("9.{run}.#"), "denied")
        .await;
    client.refused("instance", "#", "denied").await;
    client.refused("amaretti", "#", "unknown_exchange").await;

    let wf = publisher(node, "wf").await;
    let message = Message::json(&json!({"status": "finished"}))
        .expect("JSON")
        .with_header("origin", "amaretti");
    wf.topic(format!("task.{run}.done"))
        .publish_message(message)
        .await
        .expect("publish to wf");
    let (headers, msg) = (json!({"origin": "amaretti"}), json!({"status": "finished"}));
    let key = format!("task.{run}.done");
    assert_relayed(&client.frame().await, headers, "wf", &key, msg);

    // The same key on another exchange is another message stream.
    let instance = publisher(node, "instance").await;
    for (gid, text) in [("9", "must not arrive"), ("1", "sentinel")] {
        instance
            .topic(format!("{gid}.{run}.x"))
            .publish(&text)
            .await
            .expect("publish to instance");
    }
    assert_eq!(
        client.message().await,
        (format!("1.{run}.x"), json!("sentinel"))
    );
    assert_eq!(gw.stats().await["subscriptions"], 2);
}

/// The routing keys the node's queues are bound with on `exchange`.
fn bound_keys(node: &RabbitServer, exchange: &str) -> Vec<String> {
    node.rabbitmqctl(&["list_bindings", "-q", "source_name", "routing_key"])
        .lines()
        .filter_map(|line| line.split_once('\t'))
        .filter(|(source, _)| *source == exchange)
        .map(|(_, key)| key.to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_the_socket_deletes_its_queues_on_the_broker() {
    let (_serial, node, gw, run, client) = setup().await;
    let keys = tokio::task::spawn_blocking(move || bound_keys(node, "wf"))
        .await
        .expect("list_bindings");
    assert!(keys.contains(&format!("task.{run}.#")), "{keys:?}");

    // Closed right after a bind was sent: wherever the bind is, nothing stays.
    let mut hasty = gw.connect(&alice()).await;
    hasty.bind("wf", &format!("hasty.{run}.#")).await;
    hasty.close().await;

    client.close().await;
    gw.wait_stats("released", |s| {
        s["sockets"] == 0 && s["subscriptions"] == 0 && s["binds_pending"] == 0
    })
    .await;
    let deadline = tokio::time::Instant::now() + gateway_support::PATIENCE;
    loop {
        let keys = tokio::task::spawn_blocking(move || bound_keys(node, "wf"))
            .await
            .expect("list_bindings");
        if !keys.iter().any(|k| k.contains(&run)) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "queues still bound: {keys:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_tells_clients_about_a_broker_restart_and_goes_on() {
    let (_serial, node, gw, run, mut client) = setup().await;

    tokio::task::spawn_blocking(move || node.restart())
        .await
        .expect("restart the node");
    let frame = client.frame_within(Duration::from_secs(60)).await;
    assert_eq!(
        frame["gap"]["bind"],
        json!({"ex": "wf", "key": format!("task.{run}.#")}),
        "{frame}"
    );

    // The same socket receives again once the subscription is restored: publish until
    // one arrives (bounded), since the broker may not have the binding back yet.
    let wf = publisher(node, "wf").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let topic = wf.topic(format!("task.{run}.after"));
    let arrived = loop {
        topic.publish(&"after the restart").await.expect("publish");
        match tokio::time::timeout(Duration::from_millis(500), client.frame()).await {
            Ok(frame) => break frame,
            Err(_) => assert!(
                tokio::time::Instant::now() < deadline,
                "nothing arrived after the restart"
            ),
        }
    };
    assert_eq!(arrived["msg"], "after the restart", "{arrived}");
    // New sockets are served too.
    let mut fresh = gw.connect(&alice()).await;
    fresh.bound("instance", &format!("1.{run}")).await;
}
