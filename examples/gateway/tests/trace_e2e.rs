//! One trace across brokers, end to end, with spans recorded in memory: a message
//! published on a local bus, forwarded to a global AMQP bus (ESN's `forward`), handled
//! by a group member that publishes a reply, relayed by the gateway binary to a
//! WebSocket; the same across Redis; a Python producer instrumented with
//! OpenTelemetry whose trace our consumer continues, and a Python consumer that
//! continues ours. Private brokers of this binary.

mod gateway_support;

use std::future::Future;

use gateway_support::{token, within, Gateway};
use pubsub_amqp::AmqpBackend;
use pubsub_brokers::{RabbitServer, RedisServer};
use pubsub_core::testkit::spans::{attribute, named, trace_id, SpanData, SpanId, Spans, TraceId};
use pubsub_core::testkit::support::{next, unique};
use pubsub_core::{Delivery, HandlerOptions, PubSub};
use serde_json::{json, Value};
use tracing::Instrument;

async fn rabbit() -> &'static RabbitServer {
    tokio::task::spawn_blocking(RabbitServer::shared)
        .await
        .expect("start the RabbitMQ node")
}

/// Runs `work` in a root span of its own and returns the span's trace.
async fn traced<T>(work: impl Future<Output = T>) -> (TraceId, T) {
    let root = tracing::info_span!("test");
    let trace = trace_id(&root);
    let out = work.instrument(root).await;
    (trace, out)
}

/// The spans called `name`.
fn all_named<'a>(spans: &'a [SpanData], name: &str) -> Vec<&'a SpanData> {
    spans.iter().filter(|s| s.name == name).collect()
}

fn id(span: &SpanData) -> SpanId {
    span.span_context.span_id()
}

/// A handler on `topic` of `bus` in group `group` (broadcast when `None`) that
/// publishes `{"done": n}` to `reply` of `replies` for each job `n`.
async fn worker(
    bus: &PubSub,
    topic: &str,
    group: Option<&str>,
    replies: &PubSub,
    reply: &str,
) -> pubsub_core::Handler {
    let options = match group {
        Some(group) => HandlerOptions::new().group(group),
        None => HandlerOptions::new(),
    };
    let reply_topic = replies.topic(reply);
    let mut handler = bus.topic(topic).on_with(options, move |job: Delivery| {
        let reply_topic = reply_topic.clone();
        async move {
            let n: u32 = job.json()?;
            reply_topic.publish(&json!({ "done": n })).await?;
            Ok(())
        }
    });
    handler.ready().await.expect("the worker subscribed");
    handler
}

/// Checks the spans of a forward and its handled reply: the two publishes of the
/// forward under the root, the global one received, processed, and the reply
/// published from the processing. Returns the reply's publish span.
fn check_forward_and_reply<'a>(
    all: &'a [SpanData],
    global: &PubSub,
    job: &str,
    reply: &str,
) -> &'a SpanData {
    let root = named(all, "test");
    let forwards = all_named(all, &format!("publish {job}"));
    assert_eq!(forwards.len(), 2, "a publish here and one there");
    assert!(forwards.iter().all(|p| p.parent_span_id == id(root)));
    let receive = named(all, &format!("receive {job}"));
    let publish = forwards
        .iter()
        .find(|p| p.span_context.span_id() == receive.parent_span_id)
        .expect("the receive span's parent is one of the forward's publishes");
    let system = global.capabilities().system;
    assert_eq!(
        attribute(publish, "messaging.system").as_deref(),
        Some(system)
    );
    assert_eq!(
        attribute(receive, "messaging.system").as_deref(),
        Some(system)
    );
    let process = named(all, &format!("process {job}"));
    assert_eq!(process.parent_span_id, id(receive));
    let published_reply = named(all, &format!("publish {reply}"));
    assert_eq!(published_reply.parent_span_id, id(process));
    published_reply
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_to_amqp_to_a_group_member_whose_reply_the_gateway_relays_is_one_trace() {
    let spans = Spans::install();
    let node = rabbit().await;
    let gw = Gateway::start_on(&node.url(), "[exchanges.wf]\naccess = \"public\"\n");
    let run = unique("run").replace('.', "_");
    let (job, reply) = (format!("job.{run}"), format!("task.{run}.done"));
    let mut browser = gw.connect(&token(json!({"sub": "alice"}))).await;
    browser.bound("wf", &format!("task.{run}.#")).await;

    let local: PubSub = pubsub_local::LocalBackend::new().into();
    let amqp = AmqpBackend::connect(&node.url()).await.expect("connect");
    let wf = PubSub::new(amqp.exchange("wf"));
    let global = PubSub::new(amqp);
    let member = worker(&global, &job, Some("workers"), &wf, &reply).await;

    let (trace, ()) = traced(async {
        local
            .topic(&job)
            .forward(&global, &7)
            .await
            .expect("forward");
    })
    .await;
    let frame = browser.frame().await;
    assert_eq!(frame["msg"], json!({"done": 7}), "{frame}");

    // test, 2 publishes, receive, process, ack, the reply's publish.
    let all = spans.wait_for(trace, 7).await;
    let published_reply = check_forward_and_reply(&all, &global, &job, &reply);
    let receive = named(&all, &format!("receive {job}"));
    assert_eq!(
        named(&all, &format!("ack {job}")).parent_span_id,
        id(receive)
    );
    assert_eq!(
        attribute(receive, "messaging.consumer.group.name").as_deref(),
        Some("workers")
    );
    // The gateway's frame carries the reply's trace: the browser's spans continue it.
    let traceparent = frame["headers"]["traceparent"]
        .as_str()
        .expect("a traceparent");
    assert_eq!(
        traceparent,
        format!("00-{trace}-{}-01", id(published_reply)),
        "{frame}"
    );
    member.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_to_redis_to_a_handler_and_its_reply_is_one_trace() {
    let spans = Spans::install();
    let redis = tokio::task::spawn_blocking(RedisServer::start)
        .await
        .expect("start redis-server");
    let global = redis_bus(&redis.url()).await;
    let local: PubSub = pubsub_local::LocalBackend::new().into();
    let run = unique("run");
    let (job, reply) = (format!("job.{run}"), format!("reply.{run}"));
    let mut replies = global.topic(&reply).subscribe().await.expect("subscribe");
    let handler = worker(&global, &job, None, &global, &reply).await;

    let (trace, ()) = traced(async {
        local
            .topic(&job)
            .forward(&global, &3)
            .await
            .expect("forward");
    })
    .await;
    let answer = next(&mut replies, "the reply").await;
    assert_eq!(answer.json::<Value>().expect("JSON"), json!({"done": 3}));
    drop(answer);

    // test, 2 publishes, receive, process, the reply's publish and its receive.
    let all = spans.wait_for(trace, 7).await;
    let published_reply = check_forward_and_reply(&all, &global, &job, &reply);
    let received_reply = named(&all, &format!("receive {reply}"));
    assert_eq!(received_reply.parent_span_id, id(published_reply));
    assert!(
        all_named(&all, &format!("ack {job}")).is_empty(),
        "Redis PubSub has no acks"
    );
    handler.stop();
}

async fn redis_bus(url: &str) -> PubSub {
    PubSub::new(
        pubsub_redis::RedisBackend::connect(url)
            .await
            .expect("connect"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_producers_trace_is_continued_by_our_consumer() {
    let spans = Spans::install();
    let node = rabbit().await;
    let global = PubSub::new(AmqpBackend::connect(&node.url()).await.expect("connect"));
    let topic = format!("py.{}", unique("run"));
    let mut members = global
        .topic(&topic)
        .subscribe_group("py-consumers")
        .await
        .expect("subscribe");

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/otel_producer.py");
    let mut python = std::process::Command::new("python3");
    python
        .arg(script)
        .arg(node.url())
        .arg(pubsub_amqp::DEFAULT_EXCHANGE)
        .arg(&topic);
    let output = within("the Python producer", async {
        tokio::task::spawn_blocking(move || python.output()).await
    })
    .await
    .expect("the waiting thread")
    .expect("run python3 (opentelemetry-sdk and pika: scripts/python-requirements.txt)");
    assert!(
        output.status.success(),
        "the producer failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let produced: Value = serde_json::from_slice(&output.stdout).expect("the ids as JSON");
    let python_trace =
        TraceId::from_hex(produced["trace_id"].as_str().expect("trace_id")).expect("a trace id");
    let python_span = produced["span_id"].as_str().expect("span_id");

    let delivery = next(&mut members, "the Python message").await;
    assert_eq!(
        delivery.json::<Value>().expect("JSON"),
        json!({"from": "python"})
    );
    assert_eq!(trace_id(delivery.span()), python_trace);
    delivery.ack().await.expect("ack");

    let all = spans.wait_for(python_trace, 2).await;
    let receive = named(&all, &format!("receive {topic}"));
    assert_eq!(receive.parent_span_id.to_string(), python_span);
    assert!(receive.parent_span_is_remote);
    assert_eq!(
        named(&all, &format!("ack {topic}")).parent_span_id,
        id(receive)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_trace_is_continued_by_a_python_consumer() {
    use std::io::{BufRead, BufReader};

    let spans = Spans::install();
    let node = rabbit().await;
    let global = PubSub::new(AmqpBackend::connect(&node.url()).await.expect("connect"));
    let topic = format!("py.{}", unique("out"));
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/otel_consumer.py");
    let mut python = std::process::Command::new("python3")
        .arg(script)
        .arg(node.url())
        .arg(pubsub_amqp::DEFAULT_EXCHANGE)
        .arg(&topic)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run python3 (opentelemetry-sdk and pika: scripts/python-requirements.txt)");
    let mut stdout = BufReader::new(python.stdout.take().expect("piped stdout"));
    let (stdout, ready) = within("the Python consumer to bind", async {
        tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            let read = stdout.read_line(&mut line).map(|_| line);
            (stdout, read)
        })
        .await
    })
    .await
    .expect("the reading thread");
    assert_eq!(ready.expect("its first line").trim(), "ready");

    let (trace, ()) = traced(async {
        let out = global.topic(&topic);
        out.publish(&json!({"from": "rust"}))
            .await
            .expect("publish");
    })
    .await;
    let mut stdout = stdout;
    let line = within("the Python consumer's span", async {
        tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            stdout.read_line(&mut line).map(|_| line)
        })
        .await
    })
    .await
    .expect("the reading thread")
    .expect("its span as JSON");
    let consumed: Value = serde_json::from_str(&line).expect("JSON");
    assert_eq!(consumed["body"], json!({"from": "rust"}).to_string());
    let python_trace = TraceId::from_hex(consumed["trace_id"].as_str().expect("trace_id"));
    assert_eq!(python_trace.expect("a trace id"), trace);
    let all = spans.wait_for(trace, 2).await;
    let publish = named(&all, &format!("publish {topic}"));
    assert_eq!(consumed["parent_span_id"], id(publish).to_string());
    let _ = tokio::task::spawn_blocking(move || python.wait()).await;
}
