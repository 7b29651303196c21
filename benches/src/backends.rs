//! The backends of the comparison: for each, our library over it and the raw
//! clients it wraps, plus the targets the issue sets for it.

use futures::future::BoxFuture;
use pubsub_core::PubSub;
use pubsub_local::{LocalBackend, LocalOptions};

use crate::client::{BenchResult, Client};
use crate::clients::{broadcast::BroadcastClient, bus::BusClient};
use crate::measure::Outcome;
use crate::report::Target;
use crate::workloads::{self, Scale, Workload};

/// The backends the harness knows, by the name `--backends` takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Which {
    /// The in-process backend, against raw `tokio::sync::broadcast`.
    Memory,
}

/// One backend's side of the comparison.
pub struct Backend {
    /// Its name in the table.
    pub name: &'static str,
    /// Our library first, then the raw clients.
    pub contenders: Vec<Contender>,
    /// What the issue asks of it.
    pub targets: Vec<Target>,
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
    pub fn new<C: Client>(label: &'static str, raw: bool, unsupported: &'static str, client: C) -> Self {
        Contender {
            label,
            raw,
            unsupported,
            client: Box::new(client),
        }
    }

    /// Runs one workload; `None` when the client cannot.
    pub async fn run(&self, workload: Workload, scale: Scale, topic: &str) -> BenchResult<Option<Outcome>> {
        self.client.run(workload, scale, topic).await
    }
}

/// Erases the client type once per run, never per message.
trait Runs: Send + Sync {
    fn run<'a>(&'a self, workload: Workload, scale: Scale, topic: &'a str) -> BoxFuture<'a, BenchResult<Option<Outcome>>>;
}

impl<C: Client> Runs for C {
    fn run<'a>(&'a self, workload: Workload, scale: Scale, topic: &'a str) -> BoxFuture<'a, BenchResult<Option<Outcome>>> {
        Box::pin(workloads::run(self, workload, scale, topic))
    }
}

/// The buffer both in-process contenders give each subscriber.
const BUFFER: usize = 1024;

/// Starts (or connects to) the backend.
pub async fn open(which: Which) -> BenchResult<Backend> {
    match which {
        Which::Memory => Ok(memory()),
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
        ],
    }
}
