//! The broker comparison harness: runs the same workloads on each backend through
//! our library and through the raw client the backend wraps, then prints a Markdown
//! table, and writes a JSON file with every figure and an SVG chart.
//!
//! ```text
//! cargo run --release -p pubsub-benches -- [--quick] [--backends memory,redis,amqp,redis-streams,redis-cluster,amqp-cluster] [--redis-url URL] [--amqp-url URL] [--out DIR]
//! ```

mod backends;
mod chart;
mod client;
mod clients;
mod flow;
mod measure;
mod report;
mod workloads;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use clap::Parser;

use crate::backends::{Backend, Which};
use crate::client::BenchResult;
use crate::measure::Outcome;
use crate::report::{Results, Row};
use crate::workloads::{Scale, Workload};

/// Compares pub/sub backends, through this library and through their raw clients.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Every workload, briefly (a smoke test of well under two minutes).
    #[arg(long)]
    quick: bool,
    /// The backends to compare.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [Which::Memory, Which::Redis, Which::Amqp])]
    backends: Vec<Which>,
    /// Run only the workloads whose label contains this text (for profiling).
    #[arg(long)]
    only: Option<String>,
    /// A Redis server to use instead of a private `redis-server`.
    #[arg(long)]
    redis_url: Option<String>,
    /// An AMQP broker to use instead of a private RabbitMQ node.
    #[arg(long)]
    amqp_url: Option<String>,
    /// Where the JSON file and the chart go.
    #[arg(long, default_value = "target/bench-results")]
    out: PathBuf,
}

fn main() -> BenchResult<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(compare(args))
}

async fn compare(args: Args) -> BenchResult<()> {
    let scale = if args.quick {
        Scale::QUICK
    } else {
        Scale::FULL
    };
    let machine = report::Machine::here();
    let brokers = backends::Brokers {
        redis: args.redis_url.clone(),
        amqp: args.amqp_url.clone(),
    };
    let workloads: Vec<Workload> = Workload::all()
        .into_iter()
        .filter(|w| {
            args.only
                .as_ref()
                .is_none_or(|only| w.label().contains(only.as_str()))
        })
        .collect();
    let (mut rows, mut verdicts) = (Vec::new(), Vec::new());
    for which in &args.backends {
        let backend = backends::open(*which, &brokers).await?;
        eprintln!("== {} ==", backend.name);
        for workload in &workloads {
            rows.extend(compare_one(&backend, *workload, scale).await);
        }
        backend.close().await;
        verdicts.extend(report::judge(&rows, backend.name, &backend.targets));
    }
    print!("{}", report::markdown(&rows, &verdicts));
    println!(
        "\n{} ({} cores), load average {:.1} at the start; {}",
        machine.cpu,
        machine.cores,
        machine.load_average,
        std::env::args().collect::<Vec<_>>().join(" ")
    );
    std::fs::create_dir_all(&args.out)?;
    let json = args.out.join("results.json");
    let results = Results {
        command: std::env::args().collect::<Vec<_>>().join(" "),
        machine,
        scale,
        rows: &rows,
        targets: &verdicts,
    };
    std::fs::write(&json, serde_json::to_string_pretty(&results)?)?;
    let svg = args.out.join("chart.svg");
    chart::draw(&rows, &svg)?;
    eprintln!("wrote {} and {}", json.display(), svg.display());
    // A smoke test must fail when a run did, not hide it in a table cell.
    let failed = rows.iter().filter(|r| r.failed).count();
    match failed {
        0 => Ok(()),
        n => Err(format!("{n} runs failed; see the table").into()),
    }
}

/// Runs one workload on every contender of a backend, in alternating rounds so that
/// a disturbance of the machine hits all of them alike; keeps each one's median.
async fn compare_one(backend: &Backend, workload: Workload, scale: Scale) -> Vec<Row> {
    let label = workload.label();
    let mut results: Vec<Result<Vec<Outcome>, String>> =
        vec![Ok(Vec::new()); backend.contenders.len()];
    for round in 0..workload.rounds(scale) {
        for (contender, result) in backend.contenders.iter().zip(&mut results) {
            let Ok(outcomes) = result else { continue };
            let topic = format!("bench.{}.{}", next_run(), backend.name);
            eprint!(
                "{:>6} | {:<22} | {:<22} | round {} ",
                backend.name,
                label,
                contender.label,
                round + 1
            );
            match contender.run(workload, scale, &topic).await {
                Ok(Some(outcome)) => {
                    eprintln!("{:>12.0} msg/s", outcome.msg_per_s);
                    outcomes.push(outcome);
                }
                Ok(None) => {
                    eprintln!("n/a");
                    *result = Err(contender.unsupported.to_owned());
                }
                Err(e) => {
                    eprintln!("failed: {e}");
                    *result = Err(format!("failed: {e}"));
                }
            }
        }
    }
    backend
        .contenders
        .iter()
        .zip(results)
        .map(|(contender, result)| {
            let (outcome, rounds, note) = match result {
                Ok(mut outcomes) => {
                    outcomes.sort_by(|a, b| workload.ranking(a).total_cmp(&workload.ranking(b)));
                    let rounds = outcomes.iter().map(|o| o.msg_per_s).collect();
                    (outcomes.get(outcomes.len() / 2).cloned(), rounds, None)
                }
                Err(note) => (None, Vec::new(), Some(note)),
            };
            let failed = note.as_ref().is_some_and(|n| n.starts_with("failed"));
            Row {
                backend: backend.name,
                workload,
                label: label.clone(),
                client: contender.label,
                raw: contender.raw,
                outcome,
                rounds_msg_per_s: rounds,
                note,
                failed,
            }
        })
        .collect()
}

/// A fresh number for each run's topic names, so no run sees another's messages.
fn next_run() -> u64 {
    static RUNS: AtomicU64 = AtomicU64::new(0);
    RUNS.fetch_add(1, Ordering::Relaxed)
}
