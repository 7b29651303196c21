//! The backends of the comparison: for each, our library over it and the raw
//! clients it wraps, plus the targets the issue sets for it.

use futures::future::BoxFuture;
use pubsub_amqp::AmqpBackend;
use pubsub_brokers::{RabbitServer, RedisServer};
use pubsub_core::PubSub;
use pubsub_local::{LocalBackend, LocalOptions};
use pubsub_redis::RedisBackend;

use crate::client::{BenchResult, Client};
use crate::clients::{
    broadcast::BroadcastClient, bus::BusClient, lapin::LapinClient, redis::RedisClient,
};
use crate::measure::Outcome;
use crate::report::Target;
use crate::workloads::{self, Scale, Workload};

/// The backends the harness knows, by the name `--backends` takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Which {
    /// The in-process backend, against raw `tokio::sync::broadcast`.
    Memory,
    /// Redis through our Redis backend, against the raw `redis` crate.
    Redis,
    /// RabbitMQ through our AMQP backend, against raw `lapin`.
    Amqp,
}

/// Where the brokers are; a private one is started where no URL is given.
#[derive(Debug, Clone, Default)]
pub struct Brokers {
    /// A Redis URL.
    pub redis: Option<String>,
    /// An AMQP URL.
    pub amqp: Option<String>,
}

/// One backend's side of the comparison.
pub struct Backend {
    /// Its name in the table.
    pub name: &'static str,
    /// Our library first, then the raw clients.
    pub contenders: Vec<Contender>,
    /// What the issue asks of it.
    pub targets: Vec<Target>,
    /// A broker started for this run, stopped when dropped.
    _broker: Option<Box<dyn Send>>,
}

/// One client that runs the workloads.
pub struct Contender {
    /// Its name in the table.
    pub label: &'static str,
    /// Whether it is a raw client (a baseline) rather than our library.
    pub raw: bool,
    /// Why a workload it cannot run shows "n/a".
    pub unsupported: &'static str,
    client: Box<dyn Runs>,
}

impl Contender {
    /// Our library, or a raw client, as a contender.
    pub fn new<C: Client>(
        label: &'static str,
        raw: bool,
        unsupported: &'static str,
        client: C,
    ) -> Self {
        Contender {
            label,
            raw,
            unsupported,
            client: Box::new(client),
        }
    }

    /// Runs one workload; `None` when the client cannot.
    pub async fn run(
        &self,
        workload: Workload,
        scale: Scale,
        topic: &str,
    ) -> BenchResult<Option<Outcome>> {
        self.client.run(workload, scale, topic).await
    }
}

impl Backend {
    /// Closes every contender's connections.
    pub async fn close(&self) {
        for contender in &self.contenders {
            contender.client.close().await;
        }
    }
}

/// Erases the client type once per run, never per message.
trait Runs: Send + Sync {
    fn run<'a>(
        &'a self,
        workload: Workload,
        scale: Scale,
        topic: &'a str,
    ) -> BoxFuture<'a, BenchResult<Option<Outcome>>>;
    fn close(&self) -> BoxFuture<'_, ()>;
}

impl<C: Client> Runs for C {
    fn run<'a>(
        &'a self,
        workload: Workload,
        scale: Scale,
        topic: &'a str,
    ) -> BoxFuture<'a, BenchResult<Option<Outcome>>> {
        Box::pin(workloads::run(self, workload, scale, topic))
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(Client::close(self))
    }
}

/// The buffer both in-process contenders give each subscriber.
const BUFFER: usize = 1024;

/// Publishes in flight per publisher on a broker, for our library and the raw
/// client alike.
const DEPTH: usize = 64;

/// Starts (or connects to) the backend.
pub async fn open(which: Which, brokers: &Brokers) -> BenchResult<Backend> {
    match which {
        Which::Memory => Ok(memory()),
        Which::Redis => redis(brokers.redis.clone()).await,
        Which::Amqp => amqp(brokers.amqp.clone()).await,
    }
}

fn memory() -> Backend {
    const RAW: &str = "raw tokio broadcast";
    let local = LocalBackend::with_options(LocalOptions::new().buffer(BUFFER));
    Backend {
        name: "memory",
        contenders: vec![
            Contender::new("pubsub", false, "", BusClient::new(PubSub::new(local), 1)),
            Contender::new(
                RAW,
                true,
                "tokio has no patterns, groups or request/reply: our API only",
                BroadcastClient::new(BUFFER),
            ),
        ],
        targets: vec![
            Target::ratio(Workload::OneToOne { payload: 64 }, RAW, 0.9),
            Target::ratio(Workload::OneToOne { payload: 4096 }, RAW, 0.9),
            Target::ratio(Workload::OneToOne { payload: 65536 }, RAW, 0.9),
            Target::ratio(Workload::FanOut { subscribers: 100 }, RAW, 0.8),
            Target::p99_below(Workload::Latency { rate: 10_000 }, 100.0),
            Target::rss_below(Workload::Stalled, 64.0),
            Target::kib_per_subscription_below(2.0),
        ],
        _broker: None,
    }
}

async fn redis(url: Option<String>) -> BenchResult<Backend> {
    const PIPELINED: &str = "raw redis multiplexed";
    const SEQUENTIAL: &str = "raw redis one-at-a-time";
    let (url, broker) = match url {
        Some(url) => (url, None),
        None => {
            let server = tokio::task::spawn_blocking(RedisServer::start).await?;
            (server.url(), Some(Box::new(server) as Box<dyn Send>))
        }
    };
    let ours = PubSub::new(RedisBackend::connect(&url).await?);
    let unsupported =
        "Redis PubSub has no groups, and request/reply by hand is not part of the raw baseline";
    Ok(Backend {
        name: "redis",
        contenders: vec![
            Contender::new(
                "pubsub",
                false,
                "Redis PubSub has no groups",
                BusClient::new(ours, DEPTH),
            ),
            Contender::new(
                PIPELINED,
                true,
                unsupported,
                RedisClient::connect(&url, DEPTH).await?,
            ),
            Contender::new(
                SEQUENTIAL,
                true,
                unsupported,
                RedisClient::connect(&url, 1).await?,
            ),
        ],
        targets: vec![
            Target::ratio(Workload::OneToOne { payload: 64 }, PIPELINED, 1.0),
            Target::ratio(Workload::OneToOne { payload: 64 }, SEQUENTIAL, 5.0),
            Target::p99_below(Workload::Latency { rate: 10_000 }, 1_000.0),
            Target::rss_below(Workload::Stalled, 64.0),
            Target::kib_per_subscription_below(8.0),
        ],
        _broker: broker,
    })
}

async fn amqp(url: Option<String>) -> BenchResult<Backend> {
    const RAW: &str = "raw lapin";
    let (url, broker) = match url {
        Some(url) => (url, None),
        None => {
            eprintln!("starting a private RabbitMQ node");
            let server = tokio::task::spawn_blocking(RabbitServer::start).await?;
            (server.url(), Some(Box::new(server) as Box<dyn Send>))
        }
    };
    let ours = PubSub::new(AmqpBackend::connect(&url).await?);
    Ok(Backend {
        name: "amqp",
        contenders: vec![
            Contender::new("pubsub", false, "", BusClient::new(ours, DEPTH)),
            Contender::new(
                RAW,
                true,
                "request/reply by hand is not part of the raw baseline: our API only",
                LapinClient::connect(&url, "bench.raw", DEPTH).await?,
            ),
        ],
        targets: vec![
            Target::ratio(Workload::OneToOne { payload: 64 }, RAW, 0.9),
            Target::p99_below(Workload::Latency { rate: 10_000 }, 5_000.0),
            Target::rss_below(Workload::Stalled, 64.0),
            Target::kib_per_subscription_below(8.0),
        ],
        _broker: broker,
    })
}
