//! The broker comparison harness: runs the same workloads on each backend through
//! our library and through the raw client the backend wraps, then prints a Markdown
//! table, and writes a JSON file with every figure and an SVG chart.
//!
//! ```text
//! cargo run --release -p pubsub-benches -- [--quick] [--backends memory] [--out DIR]
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

use clap::Parser;

use crate::backends::Which;
use crate::client::BenchResult;
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
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [Which::Memory])]
    backends: Vec<Which>,
    /// Where the JSON file and the chart go.
    #[arg(long, default_value = "target/bench-results")]
    out: PathBuf,
}

fn main() -> BenchResult<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(compare(args))
}

async fn compare(args: Args) -> BenchResult<()> {
    let scale = if args.quick { Scale::QUICK } else { Scale::FULL };
    let (mut rows, mut verdicts) = (Vec::new(), Vec::new());
    for (b, which) in args.backends.iter().enumerate() {
        let backend = backends::open(*which).await?;
        eprintln!("== {} ==", backend.name);
        for (w, workload) in Workload::all().into_iter().enumerate() {
            for contender in &backend.contenders {
                let topic = format!("bench.b{b}w{w}.{}", rows.len());
                let label = workload.label();
                eprint!("{:>10} | {:<22} | {:<28} ", backend.name, label, contender.label);
                let (outcome, note) = match contender.run(workload, scale, &topic).await {
                    Ok(Some(outcome)) => (Some(outcome), None),
                    Ok(None) => (None, Some(contender.unsupported.to_owned())),
                    Err(e) => (None, Some(format!("failed: {e}"))),
                };
                match (&outcome, &note) {
                    (Some(o), _) => eprintln!("{:>12.0} msg/s", o.msg_per_s),
                    (None, note) => eprintln!("{}", note.as_deref().unwrap_or("")),
                }
                rows.push(Row {
                    backend: backend.name,
                    workload,
                    label,
                    client: contender.label,
                    raw: contender.raw,
                    outcome,
                    note,
                });
            }
        }
        verdicts.extend(report::judge(&rows, backend.name, &backend.targets));
    }
    print!("{}", report::markdown(&rows, &verdicts));
    std::fs::create_dir_all(&args.out)?;
    let json = args.out.join("results.json");
    let results = Results {
        command: std::env::args().collect::<Vec<_>>().join(" "),
        machine: report::Machine::here(),
        scale,
        rows: &rows,
        targets: &verdicts,
    };
    std::fs::write(&json, serde_json::to_string_pretty(&results)?)?;
    let svg = args.out.join("chart.svg");
    chart::draw(&rows, &svg)?;
    eprintln!("wrote {} and {}", json.display(), svg.display());
    Ok(())
}
