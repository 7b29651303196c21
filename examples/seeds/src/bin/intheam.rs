//! Inthe.AM's event bus: a publisher of every channel for a user, the `sync.*`
//! listener, and the user's events streamed over HTTP as Server-Sent Events.
//!
//! ```text
//! cargo run -p pubsub-seeds --bin intheam                    # demo, exits by itself
//! cargo run -p pubsub-seeds --bin intheam -- --url redis://127.0.0.1/
//! cargo run -p pubsub-seeds --bin intheam -- --serve 127.0.0.1:8080 --url redis://127.0.0.1/
//! ```

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use pubsub_connect::connect;
use pubsub_core::{Error, Result};
use pubsub_seeds::{demo, intheam};

/// Runs Inthe.AM's listener and status stream.
#[derive(Debug, Parser)]
#[command(about)]
struct Args {
    /// The bus Inthe.AM's services share.
    #[arg(long, default_value = "memory://")]
    url: String,
    /// The user whose channels the demo publishes and streams.
    #[arg(long, default_value = "alice")]
    user: String,
    /// The interval of the stream's heartbeat.
    #[arg(long, default_value = "500ms", value_parser = humantime::parse_duration)]
    heartbeat: Duration,
    /// Serves the listener and the status stream on this address until Ctrl-C,
    /// instead of the demo.
    #[arg(long)]
    serve: Option<SocketAddr>,
}

#[tokio::main]
async fn main() -> ExitCode {
    demo::exit_code(run(Args::parse()).await)
}

async fn run(args: Args) -> Result<()> {
    let bus = connect(&args.url).await?;
    let Some(addr) = args.serve else {
        let report = intheam::run(&bus, &args.user, args.heartbeat).await?;
        println!(
            "done: {} events and {} heartbeats streamed",
            report.events.len(),
            report.heartbeats
        );
        return Ok(());
    };
    let _listener = intheam::sync_listener(&bus).await?;
    let http = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| Error::connection(format!("binding {addr}"), e))?;
    println!("listening on sync.*; status stream: curl -N http://{addr}/status/USERNAME");
    tokio::select! {
        served = intheam::serve(http, bus, args.heartbeat) => served,
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}
