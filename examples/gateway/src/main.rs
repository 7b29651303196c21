//! The event gateway: relays broker messages to browsers over WebSocket and
//! Server-Sent Events, with a verified JWT and a per-exchange access policy for every
//! bind (brainlife's event service, Inthe.AM's event stream).
//!
//! Run the demo on the in-process bus (prints the page's address and a sample token):
//!
//! ```text
//! cargo run -p pubsub-gateway
//! cargo run -p pubsub-gateway -- --config my.toml --backend amqp://guest:guest@127.0.0.1:5672/%2f
//! ```
//!
//! Endpoints: `GET /subscribe?jwt=` (WebSocket), `GET /events?jwt=&bind=ex:key` (SSE),
//! `POST /publish?jwt=` (for holders of the `[publish]` claim), `GET /stats`, and the
//! demo page at `/`. The configuration is described in `config.rs` and shown by
//! `examples/gateway/demo.toml`; the frames are in `frames.rs` and the README.

mod auth;
mod config;
mod demo;
mod exchanges;
mod frames;
mod outbox;
mod policy;
mod publish;
mod session;
mod sse;
mod state;
mod ws;

use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use clap::Parser;

use crate::auth::{Users, Verifier};
use crate::config::Config;
use crate::exchanges::Exchanges;
use crate::state::AppState;

/// Relays broker messages to browsers (WebSocket and SSE) with per-bind access checks.
#[derive(Debug, Parser)]
struct Args {
    /// The configuration file.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/demo.toml"))]
    config: PathBuf,
    /// Where to listen, instead of the file's `listen`.
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
    /// The broker URL, instead of the file's `backend` (`memory://` or `amqp://...`).
    #[arg(long)]
    backend: Option<String>,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() {
    if let Err(e) = run(Args::parse()).await {
        eprintln!("gateway: {e}");
        std::process::exit(2);
    }
}

async fn run(args: Args) -> Result<(), BoxError> {
    let mut config = Config::load(&args.config)?;
    config.listen = args.listen.unwrap_or(config.listen);
    config.backend = args.backend.unwrap_or(config.backend);

    let exchanges = Exchanges::connect(&config).await?;
    demo::start_ticker(&config, &exchanges)?;
    let state = Arc::new(AppState {
        verifier: Verifier::new(&config.auth)?,
        limits: config.limits.clone(),
        publishers: config.publish.clone(),
        users: Arc::new(Users::default()),
        http: reqwest::Client::new(),
        subscriptions: Default::default(),
        binds_pending: Default::default(),
        exchanges,
    });
    let app = Router::new()
        .route("/", get(demo::page))
        .route("/app.js", get(demo::script))
        .route("/subscribe", get(ws::subscribe))
        .route("/events", get(sse::events))
        .route("/publish", post(publish::publish))
        .route(
            "/stats",
            get(|State(s): State<Arc<AppState>>| async move { Json(s.stats()) }),
        )
        .with_state(Arc::clone(&state));

    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    let address = listener.local_addr()?;
    banner(&config, &state, address);
    axum::serve(listener, app).await?;
    Ok(())
}

/// Prints where the gateway listens (tests read this first line to find the port), its
/// exchanges, and the demo's token. A closed stdout must not stop the gateway.
fn banner(config: &Config, state: &AppState, address: std::net::SocketAddr) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "gateway: listening on http://{address}/");
    let mut names: Vec<_> = state
        .exchanges
        .iter()
        .map(|e| format!("{} ({})", e.name, e.policy.describe()))
        .collect();
    names.sort();
    let _ = writeln!(
        out,
        "gateway: backend {}; exchanges: {}",
        config.backend,
        names.join(", ")
    );
    match demo::sample_token(config) {
        Some(Ok(token)) => {
            let _ = writeln!(out, "gateway: sample token (valid 24 h): {token}");
            let _ = writeln!(out, "gateway: demo page: http://{address}/?jwt={token}");
        }
        Some(Err(e)) => {
            let _ = writeln!(out, "gateway: no sample token: {e}");
        }
        None => {}
    }
}
