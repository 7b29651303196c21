//! Interop with a foreign AMQP client, Python's `pika`, on a private RabbitMQ node:
//! Infrahub's topic exchange with priorities, our messages as pika sees them, and
//! ESN's fanout-per-topic layout, a topic header forged by a foreign publisher, content
//! types both ways and a priority above ours. A missing `python3` or `pika` fails the
//! tests.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use pubsub_amqp::{AmqpBackend, AmqpBuilder};
use pubsub_brokers::RabbitServer;
use pubsub_core::testkit::support::{next, unique};
use pubsub_core::{Bytes, HeaderValue, Message, PubSub, SubscribeOptions};
use serde_json::{json, Value};

async fn server() -> &'static RabbitServer {
    tokio::task::spawn_blocking(RabbitServer::shared)
        .await
        .expect("start the RabbitMQ node")
}

/// A bus on `builder`'s backend.
async fn bus(builder: AmqpBuilder) -> PubSub {
    PubSub::new(builder.connect().await.expect("connect"))
}

/// Runs a pika script with `args`; its stdout is read line by line.
fn pika(script: &str, args: &[&str]) -> Child {
    let prelude = "import calendar, datetime, json, sys, pika\n\
                   params = pika.URLParameters(sys.argv[1])\n\
                   conn = pika.BlockingConnection(params)\n\
                   ch = conn.channel()\n";
    Command::new("python3")
        .arg("-c")
        .arg(format!("{prelude}{script}"))
        .args(args)
        .stdout(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()
        .expect("run python3 (the python3 and python3-pika packages)")
}

/// Waits for the script to end successfully and returns its stdout lines.
async fn finish(child: Child) -> Vec<String> {
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .expect("join")
        .expect("wait for python3");
    assert!(
        out.status.success(),
        "the pika script failed (is python3-pika installed?)"
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Reads lines until `ready`, so the script's queue is bound before we publish.
async fn wait_ready(mut child: Child) -> (Child, Vec<String>) {
    let stdout = child.stdout.take().expect("piped stdout");
    let (stdout, lines) = tokio::task::spawn_blocking(move || {
        let mut reader = BufReader::new(stdout);
        let mut lines = Vec::new();
        let mut line = String::new();
        while reader.read_line(&mut line).expect("read pika's stdout") > 0 {
            if line.trim() == "ready" {
                break;
            }
            lines.push(std::mem::take(&mut line));
        }
        (reader.into_inner(), lines)
    })
    .await
    .expect("join");
    child.stdout = Some(stdout);
    (child, lines)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pika_publishes_infrahub_routing_keys_and_a_group_gets_them_by_priority() {
    let url = server().await.url();
    let exchange = unique("infrahub.events");
    let bus = bus(AmqpBackend::builder(&url)
        .exchange(&exchange)
        .max_priority(5))
    .await;
    let group = unique("infrahub.workers");
    let options = SubscribeOptions::new().group(&group).prefetch(2);
    // Create the durable queue and its binding, then leave, so that everything pika
    // sends waits in the queue and comes out by priority.
    bus.topic("git.file.*")
        .subscribe_with(options.clone())
        .await
        .expect("subscribe_group")
        .unsubscribe()
        .await
        .expect("unsubscribe");

    let script = "ex = sys.argv[2]\n\
        for i, p in enumerate([1, 3, 5, 2, 4, 0]):\n\
        \x20   key = 'git.file.get' if i % 2 == 0 else 'git.file.put'\n\
        \x20   props = pika.BasicProperties(priority=p, message_id=f'm-{i}', correlation_id=f'c-{i}',\n\
        \x20       reply_to='infrahub.rpc.reply', content_type='application/json', content_encoding='utf-8',\n\
        \x20       headers={'initiator_id': 'worker-7', 'attempt': 3, 'ok': True, 'none': None,\n\
        \x20           'sent': datetime.datetime(2023, 11, 14, 22, 13, 20), 'raw': b'\\xff',\n\
        \x20           'x-death': [{'count': 1, 'reason': 'expired'}]})\n\
        \x20   ch.basic_publish(exchange=ex, routing_key=key, body=json.dumps({'i': i, 'p': p}), properties=props)\n\
        conn.close()\n";
    finish(pika(script, &[&url, &exchange])).await;

    let mut workers = bus
        .topic("git.file.*")
        .subscribe_with(options)
        .await
        .expect("subscribe_group");
    let mut priorities = Vec::new();
    for _ in 0..6 {
        let d = next(&mut workers, "infrahub message").await;
        let body: Value = d.json().expect("JSON body");
        let i = body["i"].as_u64().unwrap();
        assert_eq!(u64::from(d.priority()), body["p"].as_u64().unwrap());
        assert_eq!(d.id(), Some(format!("m-{i}").as_str()));
        assert_eq!(d.header("correlation-id"), Some(format!("c-{i}").as_str()));
        assert_eq!(d.header("reply-to"), Some("infrahub.rpc.reply"));
        assert_eq!(d.header("initiator_id"), Some("worker-7"));
        // Every value as pika typed it, not stringified.
        let value = |key| d.header_value(key).cloned();
        assert_eq!(value("attempt"), Some(HeaderValue::Int(3)));
        assert_eq!(value("ok"), Some(HeaderValue::Bool(true)));
        assert_eq!(value("none"), Some(HeaderValue::Null));
        assert_eq!(value("sent"), Some(HeaderValue::Timestamp(1_700_000_000)));
        assert_eq!(
            value("raw"),
            Some(HeaderValue::Bytes(Bytes::from_static(b"\xff")))
        );
        let death = [("count", HeaderValue::Int(1)), ("reason", "expired".into())];
        let death = HeaderValue::Table(death.map(|(k, v)| (k.to_owned(), v)).to_vec());
        assert_eq!(value("x-death"), Some(HeaderValue::List(vec![death])));
        assert_eq!(d.content_type(), Some("application/json"));
        assert_eq!(d.content_encoding(), Some("utf-8"));
        let key = if i.is_multiple_of(2) {
            "git.file.get"
        } else {
            "git.file.put"
        };
        assert_eq!(d.topic(), key);
        priorities.push(d.priority());
        d.ack().await.expect("ack");
    }
    assert_eq!(priorities, vec![5, 4, 3, 2, 1, 0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pika_receives_what_we_publish_with_its_properties() {
    let url = server().await.url();
    let bus = PubSub::new(AmqpBackend::connect(&url).await.expect("connect"));
    let topic = unique("interop.out");
    // pika hands over bytes for byte arrays and timestamps as datetimes.
    let script = "def shown(v):\n\
        \x20   if isinstance(v, bytes): return {'bytes': list(v)}\n\
        \x20   if isinstance(v, datetime.datetime): return {'timestamp': calendar.timegm(v.utctimetuple())}\n\
        \x20   return v\n\
        ch.exchange_declare(exchange='pubsub', exchange_type='topic', durable=True)\n\
        q = ch.queue_declare(queue='', exclusive=True).method.queue\n\
        ch.queue_bind(queue=q, exchange='pubsub', routing_key=sys.argv[2])\n\
        print('ready', flush=True)\n\
        for method, props, body in ch.consume(q, auto_ack=True, inactivity_timeout=20):\n\
        \x20   if method is None:\n\
        \x20       sys.exit('nothing arrived')\n\
        \x20   print(json.dumps({'key': method.routing_key, 'body': body.decode(), 'priority': props.priority,\n\
        \x20       'message_id': props.message_id, 'correlation_id': props.correlation_id,\n\
        \x20       'reply_to': props.reply_to, 'delivery_mode': props.delivery_mode,\n\
        \x20       'content_type': props.content_type, 'content_encoding': props.content_encoding,\n\
        \x20       'headers': {k: shown(v) for k, v in (props.headers or {}).items()}}))\n\
        \x20   break\n\
        conn.close()\n";
    let (child, _) = wait_ready(pika(script, &[&url, &topic])).await;
    let message = Message::new(r#"{"_id":456}"#)
        .with_id("m-1")
        .with_priority(4)
        .with_header("k", "v")
        .with_header("delay", 5000)
        .with_header("big", 70_000)
        .with_header("ok", false)
        .with_header("at", HeaderValue::Timestamp(1_700_000_000))
        .with_header("raw", Bytes::from_static(&[0, 255]))
        .with_header(
            "list",
            vec![HeaderValue::Int(1), "two".into(), HeaderValue::Null],
        )
        .with_header("table", HeaderValue::Table(vec![("n".into(), 2.into())]))
        .with_header("correlation-id", "c-1")
        .with_header("reply-to", "replies.here")
        .with_content_type("application/json")
        .with_content_encoding("gzip");
    bus.topic(&topic)
        .publish_message(message)
        .await
        .expect("publish");
    let lines = finish(child).await;
    let got: Value = serde_json::from_str(lines.last().expect("a line")).expect("JSON");
    assert_eq!(
        got,
        json!({
            "key": topic, "body": r#"{"_id":456}"#, "priority": 4, "message_id": "m-1",
            "correlation_id": "c-1", "reply_to": "replies.here", "delivery_mode": 2,
            "content_type": "application/json", "content_encoding": "gzip",
            "headers": {"k": "v", "delay": 5000, "big": 70_000, "ok": false,
                "at": {"timestamp": 1_700_000_000}, "raw": {"bytes": [0, 255]},
                "list": [1, "two", null], "table": {"n": 2}}
        })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn esn_fanout_per_topic_works_both_ways_with_pika() {
    let url = server().await.url();
    let bus = bus(AmqpBackend::builder(&url).fanout_per_topic()).await;
    let topic = format!("{}:stored", unique("message"));
    // ESN's subscriber: a server-named exclusive queue on the topic's fanout exchange.
    let script = "ex = sys.argv[2]\n\
        ch.exchange_declare(exchange=ex, exchange_type='fanout', durable=True)\n\
        q = ch.queue_declare(queue='', exclusive=True).method.queue\n\
        ch.queue_bind(queue=q, exchange=ex)\n\
        print('ready', flush=True)\n\
        for method, props, body in ch.consume(q, auto_ack=True, inactivity_timeout=20):\n\
        \x20   if method is None:\n\
        \x20       sys.exit('nothing arrived')\n\
        \x20   print(body.decode())\n\
        \x20   break\n\
        ch.basic_publish(exchange=ex, routing_key='', body=json.dumps({'_id': 'from-pika'}))\n\
        conn.close()\n";
    let mut ours = bus.topic(&topic).subscribe().await.expect("subscribe");
    let (child, _) = wait_ready(pika(script, &[&url, &topic])).await;
    bus.topic(&topic)
        .publish(&json!({"_id": 456}))
        .await
        .expect("publish");
    let lines = finish(child).await;
    assert_eq!(
        serde_json::from_str::<Value>(lines.last().expect("a line")).unwrap(),
        json!({"_id": 456})
    );
    // Our own subscriber got ours, then pika's (whose routing key is empty: the
    // topic is the exchange's name).
    assert_eq!(
        next(&mut ours, "ours").await.json::<Value>().unwrap(),
        json!({"_id": 456})
    );
    let from_pika = next(&mut ours, "pika's").await;
    assert_eq!(
        from_pika.json::<Value>().unwrap(),
        json!({"_id": "from-pika"})
    );
    assert_eq!(from_pika.topic(), topic);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_joins_a_priority_queue_that_pika_declared() {
    let url = server().await.url();
    let bus = bus(AmqpBackend::builder(&url).max_priority(5)).await;
    let (group, topic) = (unique("infrahub.rpcs"), unique("git.repo"));
    let queue = format!("{group}@pubsub/{topic}");
    let script =
        "ch.queue_declare(queue=sys.argv[2], durable=True, arguments={'x-max-priority': 5})\n\
        conn.close()\n";
    finish(pika(script, &[&url, &queue])).await;
    let mut member = bus
        .topic(&topic)
        .subscribe_group(&group)
        .await
        .expect("join pika's queue");
    bus.topic(&topic).publish(&"job").await.expect("publish");
    let d = next(&mut member, "job").await;
    assert_eq!(d.json::<String>().unwrap(), "job");
    d.ack().await.expect("ack");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_header_from_pika_cannot_rename_a_delivery() {
    let url = server().await.url();
    let exchange = unique("forged");
    let bus = bus(AmqpBackend::builder(&url).exchange(&exchange)).await;
    let group = unique("orders.workers");
    let mut broadcast = bus.topic("orders.*").subscribe().await.expect("subscribe");
    let mut workers = bus
        .topic("orders.*")
        .subscribe_group(&group)
        .await
        .expect("subscribe_group");
    let queue = pubsub_amqp::group_queue(&group, &exchange, "orders.*").expect("queue name");
    // Through the exchange, then straight into the group queue as our requeued copies
    // travel: both with our topic header set to a topic the subscription does not take.
    let script = "ex, queue = sys.argv[2], sys.argv[3]\n\
        props = pika.BasicProperties(headers={'x-pubsub-topic': 'admin.payroll.deleted'})\n\
        ch.basic_publish(exchange=ex, routing_key='orders.7', body='{\"n\": 1}', properties=props)\n\
        ch.basic_publish(exchange='', routing_key=queue, body='{\"n\": 2}', properties=props)\n\
        ch.basic_publish(exchange=ex, routing_key='orders.8', body='{\"n\": 3}')\n\
        conn.close()\n";
    finish(pika(script, &[&url, &exchange, &queue])).await;

    let heard = next(&mut broadcast, "the routed message").await;
    assert_eq!(heard.topic(), "orders.7");
    let first = next(&mut workers, "the routed message in the group").await;
    assert_eq!(first.topic(), "orders.7");
    first.ack().await.expect("ack");
    // The forged copy names no topic of the subscription: rejected, never handed out.
    let next_one = next(&mut workers, "the message after the forged copy").await;
    assert_eq!(next_one.json::<Value>().expect("JSON")["n"], 3);
    assert_eq!(next_one.topic(), "orders.8");
    next_one.ack().await.expect("ack");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_handler_dead_letters_a_pika_message_of_priority_255_after_its_attempts() {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use pubsub_core::{HandlerOptions, RetryPolicy};

    let url = server().await.url();
    let exchange = unique("priority255");
    let bus = bus(AmqpBackend::builder(&url)
        .exchange(&exchange)
        .max_priority(5))
    .await;
    let mut dead = bus.topic("jobs.dead").subscribe().await.expect("subscribe");
    let runs = Arc::new(AtomicU32::new(0));
    let counted = Arc::clone(&runs);
    let retry = RetryPolicy::attempts(3)
        .delay(Duration::from_millis(10))
        .dead_letter("jobs.dead");
    let options = HandlerOptions::new().group(unique("jobs")).retry(retry);
    let mut handler = bus.topic("jobs.run").on_with(options, move |_delivery| {
        counted.fetch_add(1, Ordering::SeqCst);
        async { Err("always fails".into()) }
    });
    handler.ready().await.expect("the handler subscribed");
    let script = "props = pika.BasicProperties(priority=255)\n\
        ch.basic_publish(exchange=sys.argv[2], routing_key='jobs.run', body='job', properties=props)\n\
        conn.close()\n";
    finish(pika(script, &[&url, &exchange])).await;

    let letter = next(&mut dead, "the dead letter").await;
    assert_eq!(letter.payload().as_ref(), b"job");
    // Delivered as 9, the top of ours, and told as it came, which the letter keeps.
    assert_eq!(letter.priority(), pubsub_core::MAX_PRIORITY);
    assert_eq!(letter.header(pubsub_core::ORIGINAL_PRIORITY), Some("255"));
    assert_eq!(letter.header("x-original-topic"), Some("jobs.run"));
    assert_eq!(
        runs.load(Ordering::SeqCst),
        3,
        "the handler ran once per attempt"
    );
    handler.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pika_priority_above_ours_arrives_as_nine_with_the_value_it_came_with() {
    let url = server().await.url();
    let exchange = unique("priority200");
    let bus = bus(AmqpBackend::builder(&url).exchange(&exchange)).await;
    let mut sub = bus.topic("jobs.*").subscribe().await.expect("subscribe");
    let script = "for p in [200, 7]:\n\
        \x20   props = pika.BasicProperties(priority=p)\n\
        \x20   ch.basic_publish(exchange=sys.argv[2], routing_key='jobs.run', body=str(p), properties=props)\n\
        conn.close()\n";
    finish(pika(script, &[&url, &exchange])).await;

    let high = next(&mut sub, "priority 200").await;
    assert_eq!(high.payload().as_ref(), b"200");
    assert_eq!(high.priority(), pubsub_core::MAX_PRIORITY);
    assert_eq!(high.header(pubsub_core::ORIGINAL_PRIORITY), Some("200"));
    let within = next(&mut sub, "priority 7").await;
    assert_eq!(within.priority(), 7);
    assert_eq!(within.header(pubsub_core::ORIGINAL_PRIORITY), None);
}
