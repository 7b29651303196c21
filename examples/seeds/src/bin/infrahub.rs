//! Infrahub's message bus: two git agents on the shared work queue, the echo and
//! file RPCs, a failure retried through the delay topology and given up, and broadcasts each worker skips if it sent
//! them. On RabbitMQ it uses Infrahub's own names (`infrahub.events`,
//! `infrahub.rpcs`...), so it joins a running Infrahub: the shared topology stays.
//!
//! ```text
//! cargo run -p pubsub-seeds --bin infrahub
//! cargo run -p pubsub-seeds --bin infrahub -- --url 'amqp://guest:guest@127.0.0.1:5672/%2f'
//! ```

use std::process::ExitCode;

use clap::Parser;
use pubsub_core::Result;
use pubsub_seeds::demo;
use pubsub_seeds::infrahub::{self, Infrahub};

/// Runs two Infrahub workers and an API server, prints what happens, then exits.
#[derive(Debug, Parser)]
#[command(about)]
struct Args {
    /// The bus: amqp:// for Infrahub's RabbitMQ, or memory://.
    #[arg(long, default_value = "memory://")]
    url: String,
    /// Log lines on stderr.
    #[command(flatten)]
    logging: demo::Logging,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    args.logging.init();
    demo::exit_code(run(args).await)
}

async fn run(args: Args) -> Result<()> {
    let hub = Infrahub::connect(&args.url).await?;
    let report = infrahub::run(&hub).await;
    hub.events.close().await?;
    let report = report?;
    println!("done: {} outcomes", report.outcomes.len());
    Ok(())
}
