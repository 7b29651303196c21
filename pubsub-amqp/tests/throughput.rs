//! A first throughput figure: confirmed publishes through this crate against raw
//! lapin with the same settings (one confirm channel, persistent messages, a topic
//! exchange with one bound durable priority queue, the same number of publishes in
//! flight), on one private RabbitMQ node, in alternating rounds with the queues
//! emptied in between, best round of each. Ignored by default; run it with
//! `cargo test --release -p pubsub-amqp --test throughput -- --ignored --nocapture`.

use std::time::{Duration, Instant};

use futures::future::join_all;
use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions, QueuePurgeOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use pubsub_amqp::AmqpBackend;
use pubsub_brokers::RabbitServer;
use pubsub_core::{Bytes, Message, PubSub, Received};

const MESSAGES: usize = 20_000;
const IN_FLIGHT: usize = 64;
const PAYLOAD: usize = 256;
const ROUNDS: usize = 3;
/// The group queue `bench.ours` publishes into, as this crate names it.
const OUR_QUEUE: &str = "sink@pubsub/bench.ours";

fn rate(elapsed: Duration) -> f64 {
    MESSAGES as f64 / elapsed.as_secs_f64()
}

/// CPU time this process has used (all threads, user and system), from
/// `/proc/self/stat` in clock ticks of 10 ms: steadier than wall time on a machine
/// whose broker shares the cores.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // The fields after the command name, which is in parentheses.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10)
}

/// Wall time of `round` and the CPU time it used.
async fn measured(round: impl std::future::Future<Output = ()>) -> (Duration, Duration) {
    let (cpu, started) = (cpu_time(), Instant::now());
    round.await;
    (started.elapsed(), cpu_time() - cpu)
}

/// Raw lapin: a confirm channel, a durable topic exchange, one bound queue that is
/// the same as a group's (durable, `x-max-priority` 9).
async fn raw_channel(connection: &Connection) -> Channel {
    let channel = connection.create_channel().await.unwrap();
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
    channel
}

async fn raw_round(channel: &Channel) {
    let payload = Bytes::from(vec![b'x'; PAYLOAD]);
    join_all((0..IN_FLIGHT).map(|_| {
        let (channel, payload) = (channel.clone(), payload.clone());
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
}

async fn our_round(bus: &PubSub) {
    let message = Message::new(vec![b'x'; PAYLOAD]);
    join_all((0..IN_FLIGHT).map(|_| {
        let (topic, message) = (bus.topic("bench.ours"), message.clone());
        async move {
            for _ in 0..MESSAGES / IN_FLIGHT {
                topic.publish_message(message.clone()).await.unwrap();
            }
        }
    }))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a check: run with --ignored --release"]
async fn confirmed_publish_throughput_against_raw_lapin() {
    let server = tokio::task::spawn_blocking(RabbitServer::shared)
        .await
        .unwrap();
    let url = server.url();
    let connection = Connection::connect(&url, ConnectionProperties::default())
        .await
        .unwrap();
    let channel = raw_channel(&connection).await;
    // This crate: the same through a group queue, made by a member that leaves.
    let bus = PubSub::new(AmqpBackend::connect(&url).await.unwrap());
    bus.topic("bench.ours")
        .subscribe_group("sink")
        .await
        .unwrap()
        .unsubscribe()
        .await
        .unwrap();

    let best = |(a, b): (Duration, Duration), (c, d): (Duration, Duration)| (a.min(c), b.min(d));
    let (mut raw, mut ours) = (
        (Duration::MAX, Duration::MAX),
        (Duration::MAX, Duration::MAX),
    );
    for _ in 0..ROUNDS {
        raw = best(raw, measured(raw_round(&channel)).await);
        ours = best(ours, measured(our_round(&bus)).await);
        for queue in ["raw.sink", OUR_QUEUE] {
            channel
                .queue_purge(queue.into(), QueuePurgeOptions::default())
                .await
                .unwrap();
        }
    }

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
    let per_message = |cpu: Duration| cpu.as_secs_f64() * 1e6 / MESSAGES as f64;
    eprintln!(
        "{MESSAGES} confirmed persistent publishes of {PAYLOAD} B, {IN_FLIGHT} in flight, \
         best of {ROUNDS}: raw lapin {:.0} msg/s ({:.1} µs CPU each), pubsub-amqp {:.0} \
         msg/s ({:.1} µs CPU each, {:.0}% of raw lapin's rate)",
        rate(raw.0),
        per_message(raw.1),
        rate(ours.0),
        per_message(ours.1),
        100.0 * raw.0.as_secs_f64() / ours.0.as_secs_f64()
    );
}
