//! A first throughput figure: confirmed publishes through this crate against raw
//! lapin with the same settings (one confirm channel, persistent messages, a topic
//! exchange with one bound durable priority queue, the same number of publishes in flight), on one
//! private RabbitMQ node in one run. Ignored by default; run it with
//! `cargo test --release -p pubsub-amqp --test throughput -- --ignored --nocapture`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::join_all;
use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Connection, ConnectionProperties, ExchangeKind};
use pubsub_amqp::AmqpBackend;
use pubsub_brokers::RabbitServer;
use pubsub_core::{Message, PubSub, Received};

const MESSAGES: usize = 20_000;
const IN_FLIGHT: usize = 64;
const PAYLOAD: usize = 256;

fn rate(elapsed: Duration) -> f64 {
    MESSAGES as f64 / elapsed.as_secs_f64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a check: run with --ignored --release"]
async fn confirmed_publish_throughput_against_raw_lapin() {
    let server = tokio::task::spawn_blocking(RabbitServer::shared)
        .await
        .unwrap();
    let url = server.url();

    // Raw lapin: a confirm channel, a durable topic exchange, one bound queue.
    let conn = Connection::connect(&url, ConnectionProperties::default())
        .await
        .unwrap();
    let channel = conn.create_channel().await.unwrap();
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..Default::default()
    };
    channel
        .exchange_declare(
            "raw".into(),
            ExchangeKind::Topic,
            durable,
            FieldTable::default(),
        )
        .await
        .unwrap();
    // The same queue as a group's: durable, with x-max-priority 9.
    let mut priorities = FieldTable::default();
    priorities.insert("x-max-priority".into(), AMQPValue::ShortShortUInt(9));
    let queue = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    channel
        .queue_declare("raw.sink".into(), queue, priorities)
        .await
        .unwrap();
    channel
        .queue_bind(
            "raw.sink".into(),
            "raw".into(),
            "bench.raw".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let payload = Arc::new(vec![b'x'; PAYLOAD]);
    let started = Instant::now();
    join_all((0..IN_FLIGHT).map(|_| {
        let (channel, payload) = (channel.clone(), Arc::clone(&payload));
        async move {
            for _ in 0..MESSAGES / IN_FLIGHT {
                channel
                    .basic_publish(
                        "raw".into(),
                        "bench.raw".into(),
                        BasicPublishOptions::default(),
                        &payload,
                        BasicProperties::default().with_delivery_mode(2),
                    )
                    .await
                    .unwrap()
                    .await
                    .unwrap();
            }
        }
    }))
    .await;
    let raw = started.elapsed();

    // This crate: the same through a group queue bound on the default exchange.
    let bus = PubSub::new(AmqpBackend::connect(&url).await.unwrap());
    bus.topic("bench.ours")
        .subscribe_group("sink")
        .await
        .unwrap()
        .unsubscribe()
        .await
        .unwrap();
    let message = Message::new(vec![b'x'; PAYLOAD]);
    let started = Instant::now();
    join_all((0..IN_FLIGHT).map(|_| {
        let (topic, message) = (bus.topic("bench.ours"), message.clone());
        async move {
            for _ in 0..MESSAGES / IN_FLIGHT {
                topic.publish_message(message.clone()).await.unwrap();
            }
        }
    }))
    .await;
    let ours = started.elapsed();

    // Request/reply through the core's generic inbox (a broadcast reply queue).
    let mut responder = bus.topic("bench.echo").subscribe().await.unwrap();
    tokio::spawn(async move {
        while let Some(item) = responder.next().await {
            if let Received::Message(request) = item {
                let _ = request.reply(&"pong").await;
            }
        }
    });
    let requests = 1000u32;
    let started = Instant::now();
    for _ in 0..requests {
        let _: String = bus
            .topic("bench.echo")
            .request(&"ping", Duration::from_secs(5))
            .await
            .unwrap();
    }
    let round_trip = started.elapsed() / requests;

    eprintln!(
        "{requests} sequential requests: {round_trip:?} per round trip (confirmed request \
         and reply)"
    );
    eprintln!(
        "{MESSAGES} confirmed persistent publishes of {PAYLOAD} B, {IN_FLIGHT} in flight: \
         raw lapin {:.0} msg/s, pubsub-amqp {:.0} msg/s ({:.0}%)",
        rate(raw),
        rate(ours),
        100.0 * raw.as_secs_f64() / ours.as_secs_f64()
    );
}
