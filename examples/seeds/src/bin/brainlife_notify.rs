//! brainlife.io's notification service: a group queue of task records whose email
//! handler writes the mail into an outbox folder, acked only once it is written. On
//! this library's bus (`wf.task.#`) by default, or with `--layout current` (or
//! `2016`) on Amaretti's own exchange `wf.task` (`wf`), in brainlife's durable queue
//! `event.task`, which stays after the run as brainlife's does.
//!
//! ```text
//! cargo run -p pubsub-seeds --bin brainlife_notify -- --outbox /tmp/outbox
//! cargo run -p pubsub-seeds --bin brainlife_notify -- --url 'amqp://guest:guest@127.0.0.1:5672/%2f'
//! cargo run -p pubsub-seeds --bin brainlife_notify -- --layout current --url 'amqp://guest:guest@127.0.0.1:5672/%2f'
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use pubsub_connect::connect;
use pubsub_core::Result;
use pubsub_seeds::{brainlife, demo, footprint};

/// Runs the notification service on a few task updates, then exits.
#[derive(Debug, Parser)]
#[command(about)]
struct Args {
    /// The bus (it needs groups: memory:// or amqp://).
    #[arg(long, default_value = "memory://")]
    url: String,
    /// Where the task records come from: this library's bus, or Amaretti's exchange
    /// today (`current`: `wf.task`, `#`) or in 2016 (`wf`, `task.#`), on RabbitMQ.
    #[arg(long, value_enum, default_value = "bus")]
    layout: brainlife::Layout,
    /// Where the mails go (default: brainlife-outbox in the temporary folder).
    #[arg(long)]
    outbox: Option<PathBuf>,
    /// Names of this run's own, deleted at the end, or --keep-names.
    #[command(flatten)]
    naming: footprint::Naming,
    /// Log lines on stderr.
    #[command(flatten)]
    logging: demo::Logging,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    args.logging.init();
    match run(args).await {
        Ok(report) if report.dead_letters.is_empty() => ExitCode::SUCCESS,
        // A mail given up is a failure of the service, whatever else went well.
        Ok(report) => {
            eprintln!(
                "error: gave up on the mail of task {} (the reasons are above)",
                report.dead_letters.join(", ")
            );
            ExitCode::FAILURE
        }
        Err(error) => demo::exit_code::<()>(Err(error)),
    }
}

async fn run(args: Args) -> Result<brainlife::Report> {
    let outbox = args
        .outbox
        .unwrap_or_else(|| std::env::temp_dir().join("brainlife-outbox"));
    let report = if args.layout == brainlife::Layout::Bus {
        let run = args.naming.run(&args.url, "brainlife");
        let bus = connect(run.url()).await?;
        let report = brainlife::run(&bus, &outbox).await;
        bus.close().await?;
        run.clean_up(&brainlife::groups()).await?;
        report?
    } else {
        let bus = args.layout.connect(&args.url).await?;
        let report = brainlife::run_on(&bus, args.layout, &outbox).await;
        bus.close().await?;
        report?
    };
    for mail in report.mails() {
        let text = std::fs::read_to_string(mail).unwrap_or_default();
        println!("--- {}\n{}", mail.display(), text.trim_end());
    }
    println!(
        "done: {} mails, {} given up",
        report.mails().len(),
        report.dead_letters.len()
    );
    Ok(report)
}
