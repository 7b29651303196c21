//! Request/reply as every AMQP client does it, with Python's `pika` on the other side:
//! our requests (RabbitMQ's direct reply-to) answered by a pika responder that replies
//! the standard way, a pika requester (its own reply queue) answered by our
//! responder, late and duplicate replies, no responders, a prefixed bus, and a
//! requester whose connection was closed.
//!
//! pika's part is `request_reply.py`, beside this file; a missing `python3` or `pika`
//! fails the tests.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pubsub_amqp::{AmqpBackend, DEFAULT_EXCHANGE};
use pubsub_brokers::RabbitServer;
use pubsub_core::testkit::support::{next, unique, within};
use pubsub_core::{Error, Prefixed, PubSub, Received};
use serde_json::{json, Value};
use tokio::sync::mpsc;

/// What our direct reply-to requests carry as `reply-to` once the broker rewrote it.
const DIRECT_REPLY_TO: &str = "amq.rabbitmq.reply-to.";

async fn server() -> &'static RabbitServer {
    tokio::task::spawn_blocking(RabbitServer::shared)
        .await
        .expect("start the RabbitMQ node")
}

async fn bus(url: &str) -> PubSub {
    PubSub::new(AmqpBackend::connect(url).await.expect("connect"))
}

/// `request_reply.py` running, its stdout lines read as they come.
struct Pika {
    child: Child,
    lines: mpsc::UnboundedReceiver<String>,
}

impl Pika {
    /// Runs `request_reply.py URL args...`.
    fn run(url: &str, args: &[&str]) -> Pika {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/request_reply.py");
        let mut child = Command::new("python3")
            .arg(script)
            .arg(url)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("run python3 (the python3 and python3-pika packages)");
        let stdout = child.stdout.take().expect("piped stdout");
        let (sender, lines) = mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    return;
                }
            }
        });
        Pika { child, lines }
    }

    /// The next line the script prints.
    async fn line(&mut self, what: &str) -> String {
        within(what, self.lines.recv())
            .await
            .unwrap_or_else(|| panic!("{what}: request_reply.py ended first"))
    }

    /// Waits for the script to end successfully.
    async fn finish(mut self) {
        let status = tokio::task::spawn_blocking(move || self.child.wait())
            .await
            .expect("join")
            .expect("wait for python3");
        assert!(status.success(), "request_reply.py failed: {status}");
    }
}

/// A pika responder on `topic` of our exchange for `count` requests, listening.
async fn responder(url: &str, topic: &str, count: usize) -> Pika {
    let count = count.to_string();
    let mut pika = Pika::run(url, &["respond", DEFAULT_EXCHANGE, topic, &count]);
    assert_eq!(pika.line("pika's responder listening").await, "ready");
    pika
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_request_is_answered_by_a_pika_responder_the_standard_way() {
    let url = server().await.url();
    let bus = bus(&url).await;
    let topic = unique("rpc.pika");
    let mut pika = responder(&url, &topic, 1).await;
    let reply: Value = bus
        .topic(&topic)
        .request(&json!({"text": "ping"}), Duration::from_secs(10))
        .await
        .expect("pika's reply");
    assert_eq!(reply, json!({"echo": "ping"}));
    let reply_to = pika.line("the request's reply_to").await;
    assert!(reply_to.starts_with(DIRECT_REPLY_TO), "{reply_to}");
    pika.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pika_requester_with_its_own_reply_queue_gets_our_reply() {
    let url = server().await.url();
    let bus = bus(&url).await;
    let topic = unique("rpc.ours");
    let mut workers = bus
        .topic(&topic)
        .subscribe_group(&unique("responders"))
        .await
        .expect("subscribe_group");
    let mut pika = Pika::run(&url, &["request", DEFAULT_EXCHANGE, &topic, "ping"]);
    let request = next(&mut workers, "pika's request").await;
    let reply_to = request.header(pubsub_core::REPLY_TO).expect("a reply-to");
    assert!(reply_to.starts_with("api-callback-"), "{reply_to}");
    let text: String = request.json().expect("JSON");
    request.reply(&json!({"echo": text})).await.expect("reply");
    request.ack().await.expect("ack");
    assert_eq!(pika.line("the correlation check").await, "True");
    let body: Value = serde_json::from_str(&pika.line("the reply").await).expect("JSON");
    assert_eq!(body, json!({"echo": "ping"}));
    pika.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_and_duplicate_replies_are_dropped_and_the_next_request_works() {
    let url = server().await.url();
    let bus = bus(&url).await;
    let topic = unique("rpc.late");
    let mut pika = responder(&url, &topic, 3).await;
    let request = |body: Value, timeout: Duration| {
        let topic = bus.topic(&topic);
        async move { topic.request::<_, Value>(&body, timeout).await }
    };
    // pika holds this one and answers it just before the next: after its timeout.
    let late = request(
        json!({"text": "one", "hold": true}),
        Duration::from_millis(500),
    )
    .await;
    assert!(matches!(late, Err(Error::Timeout { .. })), "{late:?}");
    // The late reply comes first, then this one's, twice.
    let second = request(json!({"text": "two", "times": 2}), Duration::from_secs(10)).await;
    assert_eq!(second.expect("the second reply"), json!({"echo": "two"}));
    let third = request(json!({"text": "three"}), Duration::from_secs(10)).await;
    assert_eq!(third.expect("the third reply"), json!({"echo": "three"}));
    for n in 1..=3 {
        let reply_to = pika.line(&format!("request {n}'s reply_to")).await;
        assert!(reply_to.starts_with(DIRECT_REPLY_TO), "{reply_to}");
    }
    pika.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_nobody_subscribed_to_has_no_responders_at_once() {
    let url = server().await.url();
    let bus = bus(&url).await;
    let started = Instant::now();
    let err = bus
        .topic(unique("rpc.nobody"))
        .request::<_, Value>(&1, Duration::from_secs(30))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NoResponders { .. }), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // The inbox's channel is not harmed by the returned request.
    let topic = unique("rpc.after");
    let mut pika = responder(&url, &topic, 1).await;
    let reply: Value = bus
        .topic(&topic)
        .request(&json!({"text": "after"}), Duration::from_secs(10))
        .await
        .expect("a reply after no responders");
    assert_eq!(reply, json!({"echo": "after"}));
    pika.line("the request's reply_to").await;
    pika.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_reply_works_on_a_prefixed_bus() {
    let url = server().await.url();
    let prefix = unique("tenant");
    let prefixed = |backend: AmqpBackend| PubSub::new(Prefixed::new(backend, &prefix).unwrap());
    let requester = prefixed(AmqpBackend::connect(&url).await.expect("connect"));
    let responding = prefixed(AmqpBackend::connect(&url).await.expect("connect"));
    let raw = bus(&url).await;
    let mut seen = raw
        .topic(format!("{prefix}.rpc"))
        .subscribe()
        .await
        .expect("subscribe");
    let mut requests = responding
        .topic("rpc")
        .subscribe()
        .await
        .expect("subscribe");
    let answering = tokio::spawn(async move {
        let request = next(&mut requests, "the request").await;
        let n: u32 = request.json().expect("JSON");
        request.reply(&(n + 1)).await.expect("reply");
    });
    let reply: u32 = requester
        .topic("rpc")
        .request(&41, Duration::from_secs(10))
        .await
        .expect("reply");
    assert_eq!(reply, 42);
    answering.await.expect("the responder");
    // On the broker the request went to the prefixed topic, with a direct reply-to.
    let on_broker = next(&mut seen, "the request on the broker").await;
    let reply_to = on_broker.header(pubsub_core::REPLY_TO).expect("a reply-to");
    assert!(reply_to.starts_with(DIRECT_REPLY_TO), "{reply_to}");
}

/// Answers every request on `bus`'s `topic` with its number doubled, until the
/// subscription ends.
async fn doubler(bus: &PubSub, topic: &str) {
    let mut requests = bus.topic(topic).subscribe().await.expect("subscribe");
    tokio::spawn(async move {
        while let Some(received) = requests.next().await {
            if let Received::Message(request) = received {
                let n: u32 = request.json().expect("JSON");
                let _ = request.reply(&(n * 2)).await;
            }
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buses_sharing_a_connection_each_get_their_own_replies() {
    let url = server().await.url();
    let backend = AmqpBackend::connect(&url).await.expect("connect");
    // Two inboxes on one connection: one direct reply-to consumer serves both.
    let (first, second) = (PubSub::new(backend.clone()), PubSub::new(backend));
    let topic = unique("rpc.shared");
    doubler(&bus(&url).await, &topic).await;
    let ask = |bus: &PubSub, n: u32| {
        let topic = bus.topic(&topic);
        async move { topic.request::<_, u32>(&n, Duration::from_secs(10)).await }
    };
    let asked = (1..=20).map(|n| {
        let bus = if n % 2 == 0 { &first } else { &second };
        ask(bus, n)
    });
    let replies = futures::future::join_all(asked).await;
    let replies: Vec<u32> = replies.into_iter().map(|r| r.expect("a reply")).collect();
    assert_eq!(replies, (1..=20).map(|n| n * 2).collect::<Vec<_>>());
    // The other bus's inbox going leaves this one's consumer running.
    drop(first);
    assert_eq!(ask(&second, 50).await.expect("a reply after"), 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_to_no_queue_name_is_an_error_that_says_so() {
    let backend = AmqpBackend::connect_lazy("amqp://guest:guest@127.0.0.1:1/%2f").unwrap();
    let too_long = "q".repeat(256);
    for address in ["", too_long.as_str()] {
        let err = pubsub_core::Backend::reply_publisher(&backend, address).unwrap_err();
        assert!(err.to_string().contains("reply-to"), "{err}");
    }
}

/// Closing every connection of its node, this test has a node of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inbox_consumes_again_after_its_connection_is_closed() {
    let server = tokio::task::spawn_blocking(RabbitServer::start)
        .await
        .expect("start a RabbitMQ node");
    let url = server.url();
    let requester = bus(&url).await;
    let topic = unique("rpc.again");
    doubler(&bus(&url).await, &topic).await;
    let ask = |n: u32| {
        let topic = requester.topic(&topic);
        async move { topic.request::<_, u32>(&n, Duration::from_secs(1)).await }
    };
    assert_eq!(ask(1).await.expect("a reply before"), 2);
    tokio::task::block_in_place(|| server.close_connections());
    // Both sides reconnect and consume again; until then requests fail or time out.
    let answered = within("a reply after the connections were closed", async {
        loop {
            match ask(21).await {
                Ok(reply) => return reply,
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    })
    .await;
    assert_eq!(answered, 42);
}
