//! brainlife.io's notification service: a group queue on `wf.task.#` whose email
//! handler writes the mail into an outbox folder, acked only once it is written.
//!
//! ```text
//! cargo run -p pubsub-seeds --bin brainlife_notify -- --outbox /tmp/outbox
//! cargo run -p pubsub-seeds --bin brainlife_notify -- --url 'amqp://guest:guest@127.0.0.1:5672/%2f'
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use pubsub_connect::connect;
use pubsub_core::Result;
use pubsub_seeds::{brainlife, demo};

/// Runs the notification service on a few task updates, then exits.
#[derive(Debug, Parser)]
#[command(about)]
struct Args {
    /// The bus (it needs groups: memory:// or amqp://).
    #[arg(long, default_value = "memory://")]
    url: String,
    /// Where the mails go (default: brainlife-outbox in the temporary folder).
    #[arg(long)]
    outbox: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> ExitCode {
    demo::exit_code(run(Args::parse()).await)
}

async fn run(args: Args) -> Result<()> {
    let outbox = args
        .outbox
        .unwrap_or_else(|| std::env::temp_dir().join("brainlife-outbox"));
    let bus = connect(&args.url).await?;
    let report = brainlife::run(&bus, &outbox).await?;
    for mail in report.mails() {
        let text = std::fs::read_to_string(mail).unwrap_or_default();
        println!("--- {}\n{}", mail.display(), text.trim_end());
    }
    println!(
        "done: {} mails, {} given up",
        report.mails().len(),
        report.dead_letters.len()
    );
    Ok(())
}
