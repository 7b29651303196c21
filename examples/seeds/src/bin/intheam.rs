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
    /// The interval of the stream's heartbeat (Inthe.AM's is 15 s).
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
    heartbeat: Duration,
    /// Serves the listener and the status stream on this address until Ctrl-C,
    /// instead of the demo.
    #[arg(long)]
    serve: Option<SocketAddr>,
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
    let addr = http
        .local_addr()
        .map_err(|e| Error::connection("reading the bound address", e))?;
    println!(
        "listening on sync.*; status stream: curl -N http://{addr}/status/{}",
        args.user
    );
    println!("{}", feeding_hint(&args.url, &args.user));
    println!("serving until Ctrl-C");
    tokio::select! {
        served = intheam::serve(http, bus, args.heartbeat) => served,
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}

/// How a person puts events on the stream: another program publishing on the same
/// bus. Never quotes the URL's credentials.
fn feeding_hint(url: &str, user: &str) -> String {
    let event = format!(
        "pub personal.{user} '{{\"title\":\"Hi\",\"message\":\"from the shell\",\"username\":\"{user}\"}}'"
    );
    match url.split_once("://") {
        Some(("memory", _)) => format!(
            "feed it: memory:// is this process's own bus, so nothing else can publish \
             to it; serve with --url redis://127.0.0.1/ and run \
             `pubsub --url redis://127.0.0.1/ {event}`"
        ),
        Some((scheme, rest)) => {
            let host = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
            format!(
                "feed it: `pubsub --url {scheme}://{host} {event}` (with your credentials, if any)"
            )
        }
        None => format!("feed it: `pubsub --url {url} {event}`"),
    }
}
