//! Infrahub's message bus: two git agents in work groups, a priority backlog, the
//! echo and file RPCs, retries then a dead letter, and broadcast registry refreshes.
//!
//! ```text
//! cargo run -p pubsub-seeds --bin infrahub
//! cargo run -p pubsub-seeds --bin infrahub -- --url 'amqp://guest:guest@127.0.0.1:5672/%2f'
//! ```

use std::process::ExitCode;

use clap::Parser;
use pubsub_connect::connect;
use pubsub_core::Result;
use pubsub_seeds::{demo, infrahub};

/// Runs two Infrahub workers and an API server, prints what happens, then exits.
#[derive(Debug, Parser)]
#[command(about)]
struct Args {
    /// The bus (it needs groups: memory:// or amqp://).
    #[arg(long, default_value = "memory://")]
    url: String,
}

#[tokio::main]
async fn main() -> ExitCode {
    demo::exit_code(run(Args::parse()).await)
}

async fn run(args: Args) -> Result<()> {
    let bus = connect(&args.url).await?;
    let report = infrahub::run(&bus).await?;
    println!(
        "done: backlog {:?}, {} outcomes after it",
        report.backlog,
        report.outcomes.len()
    );
    Ok(())
}
