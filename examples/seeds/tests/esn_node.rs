//! OpenPaaS ESN's own client on the other end: `tests/node/esn.js`, node's amqplib at
//! the version ESN pins, making ESN's calls with ESN's options, against our ESN seed
//! on a private RabbitMQ node. `scripts/test` installs amqplib under the target
//! directory (`NODE_PATH` says where); a missing `node` or amqplib fails the tests.

use std::collections::BTreeSet;
use std::process::Stdio;
use std::time::Duration;

use pubsub_brokers::RabbitServer;
use pubsub_core::testkit::support::within;
use pubsub_core::{Event, Handler};
use pubsub_seeds::catalog::esn::MessageStored;
use pubsub_seeds::esn::{self, PointToPoint};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};

mod support;

/// The URL of a fresh vhost on the shared node, and the vhost's name.
async fn vhost(query: &'static str) -> (String, String) {
    tokio::task::spawn_blocking(move || {
        let server = RabbitServer::shared();
        let name = format!("esn-node-{}", uuid::Uuid::new_v4().simple());
        server.rabbitmqctl(&["add_vhost", &name]);
        server.rabbitmqctl(&["set_permissions", "-p", &name, "guest", ".*", ".*", ".*"]);
        let url = format!(
            "amqp://guest:guest@127.0.0.1:{}/{name}{query}",
            server.port()
        );
        (url, name)
    })
    .await
    .expect("a vhost")
}

/// `tests/node/esn.js` in `role`; its stdout is read line by line.
struct EsnNode {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl EsnNode {
    fn start(role: &str, args: &[&str]) -> Self {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/node/esn.js");
        let modules = std::env::var("NODE_PATH").unwrap_or_else(|_| {
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../target/interop-node/node_modules"
            )
            .to_owned()
        });
        let mut child = Command::new("node")
            .arg(script)
            .arg(role)
            .args(args)
            .env("NODE_PATH", modules)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("run node (scripts/test installs it and amqplib)");
        let lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        EsnNode { child, lines }
    }

    /// The next line the script prints, within the tests' patience.
    async fn line(&mut self, what: &str) -> String {
        within(what, self.lines.next_line())
            .await
            .expect("read the script's output")
            .unwrap_or_else(|| panic!("{what}: the script ended (see its stderr)"))
    }

    /// Closes its standard input (which ends a receiver) and waits for a clean exit.
    async fn finish(mut self, what: &str) {
        drop(self.child.stdin.take());
        let status = within(what, self.child.wait())
            .await
            .expect("wait for node");
        assert!(status.success(), "{what}: node failed (see its stderr)");
    }
}

/// ESN's receiver and ours on point-to-point channel `N`, started in the given
/// order; a third node sends 200 messages: each is handled once, by one of them,
/// and neither side's declare is refused.
async fn share_the_channel_queue(esn_first: bool) {
    let (url, vhost) = vhost("?routing=fanout").await;
    let channel = "esn.point-to-point.jobs";
    let (ours_seen, mut ours) = unbounded_channel();
    let (handler, mut node) = match esn_first {
        true => {
            let node = esn_receiver(&url, channel).await;
            (our_receiver(&url, channel, ours_seen).await, node)
        }
        false => {
            let handler = our_receiver(&url, channel, ours_seen).await;
            (handler, esn_receiver(&url, channel).await)
        }
    };

    let sender = PointToPoint::open(&url, channel).await.expect("a sender");
    for n in 0..200 {
        sender.send(&json!({ "n": n })).await.expect("send");
    }
    let (mut by_us, mut by_esn) = (Vec::new(), Vec::new());
    within("200 messages handled", async {
        while by_us.len() + by_esn.len() < 200 {
            tokio::select! {
                n = ours.recv() => by_us.push(n.expect("our receiver")),
                line = node.line("ESN's messages") => {
                    let body: Value = serde_json::from_str(&line).expect("JSON");
                    by_esn.push(body["n"].as_i64().expect("n"));
                }
            }
        }
    })
    .await;
    let all: BTreeSet<i64> = by_us.iter().chain(&by_esn).copied().collect();
    assert_eq!(all, (0..200).collect(), "each message once");
    assert!(
        !by_us.is_empty() && !by_esn.is_empty(),
        "both share the work: ours {}, ESN's {}",
        by_us.len(),
        by_esn.len()
    );

    // Every ack reached the broker (none twice: ESN's channel would have closed), and
    // the queue is ESN's: durable, no arguments.
    within("the queue drains", async {
        loop {
            let listed = queue_state(&vhost).await;
            if listed == format!("{channel}\ttrue\t[]\t0\t0") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    handler.stop();
    node.finish("ESN's receiver").await;
}

/// Our receiver on channel `channel`: reports each message's `n` to `seen`.
async fn our_receiver(url: &str, channel: &str, seen: UnboundedSender<i64>) -> Handler {
    let receiver = PointToPoint::open(url, channel)
        .await
        .expect("open the channel");
    receiver
        .receive(move |delivery| {
            let n = delivery.json::<Value>().map(|body| body["n"].as_i64());
            std::future::ready(match n {
                Ok(Some(n)) => seen.send(n).map_err(Into::into),
                _ => Err("a body without n".into()),
            })
        })
        .await
        .expect("our receiver joins queue N")
}

/// ESN's receiver on channel `channel`, consuming.
async fn esn_receiver(url: &str, channel: &str) -> EsnNode {
    let base = url.split('?').next().unwrap_or(url);
    let mut node = EsnNode::start("receive", &[base, channel]);
    assert_eq!(node.line("ESN's receiver starts").await, "ready");
    node
}

/// `rabbitmqctl list_queues` of `vhost`'s only queue.
async fn queue_state(vhost: &str) -> String {
    let vhost = vhost.to_owned();
    tokio::task::spawn_blocking(move || {
        RabbitServer::shared().rabbitmqctl(&[
            "list_queues",
            "-p",
            &vhost,
            "name",
            "durable",
            "arguments",
            "messages_ready",
            "messages_unacknowledged",
        ])
    })
    .await
    .expect("rabbitmqctl")
    .lines()
    .last()
    .unwrap_or_default()
    .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn esn_receiver_first_then_ours_share_the_point_to_point_queue() {
    share_the_channel_queue(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_receiver_first_then_esns_share_the_point_to_point_queue() {
    share_the_channel_queue(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn esn_global_pubsub_works_both_ways_with_amqplib() {
    let (url, _) = vhost("?routing=fanout").await;
    let base = url.split('?').next().unwrap().to_owned();
    let node = esn::Node::start("rust", &url).await.expect("our node");
    let mut stored = node
        .global
        .subscribe_to::<MessageStored>()
        .await
        .expect("subscribe");
    let mut esn = EsnNode::start("subscribe", &[&base, MessageStored::TOPIC, "1"]);
    assert_eq!(esn.line("ESN's subscriber starts").await, "ready");

    let ours: MessageStored = serde_json::from_value(
        json!({"_id": 456, "objectType": "whatsup", "content": "from rust"}),
    )
    .expect("a stored message");
    node.global.send(&ours).await.expect("publish");
    let got: Value = serde_json::from_str(&esn.line("our message at ESN's").await).expect("JSON");
    assert_eq!(
        got,
        serde_json::to_value(&ours).unwrap(),
        "a bare JSON body"
    );
    esn.finish("ESN's subscriber").await;
    assert_eq!(
        support::next_event(&mut stored, "our own message").await.0["content"],
        "from rust"
    );

    let body = r#"{"_id":"5f1c","objectType":"whatsup","content":"from node.js"}"#;
    EsnNode::start("publish", &[&base, MessageStored::TOPIC, body])
        .finish("ESN's publish")
        .await;
    let theirs = support::next_event(&mut stored, "ESN's message").await;
    assert_eq!(theirs.0["content"], "from node.js");
}
