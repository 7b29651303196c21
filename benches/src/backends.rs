//! The backends of the comparison: for each, our library over it and the raw
//! clients it wraps, plus the targets the issue sets for it.

use futures::future::BoxFuture;
use pubsub_amqp::AmqpBackend;
use pubsub_brokers::{RabbitCluster, RabbitServer, RedisCluster, RedisServer};
use pubsub_core::PubSub;
use pubsub_local::{LocalBackend, LocalOptions};
use pubsub_redis::RedisBackend;

use crate::client::{BenchResult, Client};
use crate::clients::{
    broadcast::BroadcastClient,
    bus::BusClient,
    lapin::{LapinClient, LapinSetup},
    redis::RedisClient,
    redis_cluster::RedisClusterClient,
    redis_streams::RedisStreamsClient,
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
    /// A three-node RabbitMQ cluster with quorum-queue groups, through our AMQP
    /// backend against raw `lapin` (not run by default: the cluster takes ~30 s to
    /// start; `--backends amqp-cluster --only group`).
    AmqpCluster,
    /// Redis Streams through our Redis backend's Streams mode, against raw `redis`
    /// doing XADD/XREAD/XREADGROUP/XACK by hand.
    RedisStreams,
    /// A private Redis Cluster (3 masters, 1 replica each) through our Redis backend,
    /// against raw `redis` doing SPUBLISH/SSUBSCRIBE on cluster connections, and
    /// against our backend on one server in PubSub mode (`--backends redis-cluster`;
    /// not run by default: the cluster takes seconds to start).
    RedisCluster,
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

/// Four publishers into a group of four: concurrent confirmed publishes from one bus.
const GROUP_4_4: Workload = Workload::Group {
    publishers: 4,
    workers: 4,
};

/// Starts (or connects to) the backend.
pub async fn open(which: Which, brokers: &Brokers) -> BenchResult<Backend> {
    match which {
        Which::Memory => Ok(memory()),
        Which::Redis => redis(brokers.redis.clone()).await,
        Which::Amqp => amqp(brokers.amqp.clone()).await,
        Which::AmqpCluster => amqp_cluster().await,
        Which::RedisStreams => redis_streams(brokers.redis.clone()).await,
        Which::RedisCluster => redis_cluster().await,
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

async fn redis_streams(url: Option<String>) -> BenchResult<Backend> {
    const RAW: &str = "raw redis streams";
    let (url, broker) = match url {
        Some(url) => (url, None),
        None => {
            let server = tokio::task::spawn_blocking(RedisServer::start).await?;
            (server.url(), Some(Box::new(server) as Box<dyn Send>))
        }
    };
    let ours = PubSub::new(RedisBackend::builder(&url).streams(true).connect().await?);
    Ok(Backend {
        name: "redis-streams",
        contenders: vec![
            Contender::new(
                "pubsub",
                false,
                "a stream is one key: no patterns",
                BusClient::new(ours, DEPTH),
            ),
            Contender::new(
                RAW,
                true,
                "a stream is one key: no patterns; request/reply by hand is not part of the raw baseline",
                RedisStreamsClient::connect(&url, DEPTH).await?,
            ),
        ],
        targets: vec![Target::ratio(
            Workload::Group {
                publishers: 4,
                workers: 4,
            },
            RAW,
            0.9,
        )],
        _broker: broker,
    })
}

async fn redis_cluster() -> BenchResult<Backend> {
    const RAW: &str = "raw redis cluster";
    const ONE_SERVER: &str = "pubsub, one server";
    eprintln!("starting a private Redis Cluster");
    let cluster = tokio::task::spawn_blocking(RedisCluster::start).await?;
    let server = tokio::task::spawn_blocking(RedisServer::start).await?;
    let seeds: Vec<String> = cluster
        .nodes()
        .iter()
        .map(|node| format!("redis://127.0.0.1:{}/", node.port()))
        .collect();
    let ours = RedisBackend::connect(&cluster.url()).await?;
    let names_only = RedisBackend::builder(&cluster.url())
        .cluster_patterns(false)
        .connect()
        .await?;
    let one_server = RedisBackend::connect(&server.url()).await?;
    let no_groups = "Redis PubSub has no groups";
    let baseline = "sharded channels only: no patterns, groups or request/reply by hand";
    Ok(Backend {
        name: "redis-cluster",
        // Sharded PubSub alone first, the figure the raw SPUBLISH is weighed against;
        // then the default, whose every publish is also a PUBLISH for the cluster's
        // pattern subscribers (which Redis Cluster sends to every node).
        contenders: vec![
            Contender::new(
                "pubsub, cluster_patterns(false)",
                false,
                no_groups,
                BusClient::new(names_only.into(), DEPTH),
            ),
            Contender::new(
                "pubsub",
                false,
                no_groups,
                BusClient::new(ours.into(), DEPTH),
            ),
            Contender::new(
                RAW,
                true,
                baseline,
                RedisClusterClient::connect(seeds, DEPTH).await?,
            ),
            // Not a raw client: the single-server figure the cluster is weighed against.
            Contender::new(
                ONE_SERVER,
                true,
                no_groups,
                BusClient::new(one_server.into(), DEPTH),
            ),
        ],
        targets: vec![Target::ratio(Workload::OneToOne { payload: 64 }, RAW, 0.9)],
        _broker: Some(Box::new((cluster, server))),
    })
}

async fn amqp(url: Option<String>) -> BenchResult<Backend> {
    const RAW: &str = "raw lapin";
    const RAW_4: &str = "raw lapin, 4 channels";
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
                LapinClient::connect(
                    &url,
                    "bench.raw",
                    LapinSetup {
                        depth: DEPTH,
                        channels: 1,
                        quorum: false,
                    },
                )
                .await?,
            ),
            Contender::new(
                RAW_4,
                true,
                "request/reply by hand is not part of the raw baseline: our API only",
                LapinClient::connect(
                    &url,
                    "bench.raw4",
                    LapinSetup {
                        depth: DEPTH,
                        channels: 4,
                        quorum: false,
                    },
                )
                .await?,
            ),
        ],
        targets: vec![
            Target::ratio(Workload::OneToOne { payload: 64 }, RAW, 0.9),
            Target::ratio(GROUP_4_4, RAW, 0.9),
            Target::ratio(GROUP_4_4, RAW_4, 0.9),
            Target::p99_below(Workload::Latency { rate: 10_000 }, 5_000.0),
            Target::rss_below(Workload::Stalled, 64.0),
            Target::kib_per_subscription_below(8.0),
        ],
        _broker: broker,
    })
}

async fn amqp_cluster() -> BenchResult<Backend> {
    const RAW: &str = "raw lapin, 4 channels";
    eprintln!("starting a private three-node RabbitMQ cluster");
    let cluster = tokio::task::spawn_blocking(|| RabbitCluster::start(3)).await?;
    let url = cluster.url();
    let ours = PubSub::new(AmqpBackend::builder(&url).cluster().connect().await?);
    // Raw lapin takes one address: the node our bus connects to first.
    let first = format!(
        "amqp://guest:guest@127.0.0.1:{}/%2f",
        cluster.node(0).port()
    );
    let raw = LapinSetup {
        depth: DEPTH,
        channels: 4,
        quorum: true,
    };
    Ok(Backend {
        name: "amqp-cluster",
        contenders: vec![
            Contender::new("pubsub", false, "", BusClient::new(ours, DEPTH)),
            Contender::new(
                RAW,
                true,
                "request/reply by hand is not part of the raw baseline: our API only",
                LapinClient::connect(&first, "bench.raw.cluster", raw).await?,
            ),
        ],
        targets: vec![Target::ratio(GROUP_4_4, RAW, 0.9)],
        _broker: Some(Box::new(cluster)),
    })
}
