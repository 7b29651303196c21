//! OpenPaaS ESN's local and global buses: two nodes, local topics, `message:stored`
//! and `message:activity` forwarded to the global bus and received by both nodes;
//! then a point-to-point channel with a receiver on each node (on RabbitMQ, ESN's own
//! durable queue, shared with ESN's receivers), each message handled by one.
//!
//! ```text
//! cargo run -p pubsub-seeds --bin esn
//! cargo run -p pubsub-seeds --bin esn -- --url 'amqp://guest:guest@127.0.0.1:5672/%2f?routing=fanout&lazy=true'
//! ```

use std::process::ExitCode;

use clap::Parser;
use pubsub_seeds::{demo, esn};

/// Runs two ESN nodes and prints what each receives, then exits.
#[derive(Debug, Parser)]
#[command(about)]
struct Args {
    /// The global bus both nodes join: `memory://NAME` shares one in-process bus;
    /// ESN's RabbitMQ layout is `amqp://...?routing=fanout` (add `&lazy=true` to start
    /// before the broker).
    #[arg(long, default_value = "memory://esn-global")]
    url: String,
    /// Log lines on stderr.
    #[command(flatten)]
    logging: demo::Logging,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    args.logging.init();
    let result = esn::run(&args.url).await;
    if let Ok(report) = &result {
        println!("done: {} deliveries", report.received.len());
    }
    demo::exit_code(result)
}
