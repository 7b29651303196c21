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
//! `POST /publish?jwt=` (for holders of the `[publish]` claim), `GET /stats`,
//! `GET /metrics` (Prometheus), and the demo page at `/` (`/?jwt=TOKEN` fills the token
//! in). Connections are limited in number, in total and per address, and closed when
//! their request does not come in time or their client stops reading (`connections.rs`,
//! `guarded.rs`). Logs go to stderr through `tracing` (`RUST_LOG`, `--log-format json`); Ctrl-C or
//! SIGTERM closes every socket and stops. The configuration is described in `config.rs` and shown by
//! `examples/gateway/demo.toml`; the frames are in `frames.rs` and the README.

mod auth;
mod config;
mod connections;
mod demo;
mod exchanges;
mod frames;
mod guarded;
mod meters;
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
use pubsub_connect::logging::{self, LogFormat};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::{Users, Verifier};
use crate::config::Config;
use crate::connections::{Connections, Limited};
use crate::exchanges::Exchanges;
use crate::guarded::{Deadlines, Handshake};
use crate::meters::Meters;
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
    /// How log lines on stderr look: `text` or `json` (filtered by `RUST_LOG`,
    /// default `info`).
    #[arg(long, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    if let Err(e) = logging::init(args.log_format) {
        eprintln!("gateway: no logging: {e}");
    }
    match run(args).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("gateway: {e}");
            std::process::ExitCode::from(2)
        }
    }
}

async fn run(args: Args) -> Result<(), BoxError> {
    // First: the library registers its metrics when the buses subscribe.
    let meters = Meters::install()?;
    let mut config = Config::load(&args.config)?;
    config.listen = args.listen.unwrap_or(config.listen);
    config.backend = args.backend.unwrap_or(config.backend);

    let exchanges = Exchanges::connect(&config).await?;
    demo::start_ticker(&config, &exchanges)?;
    let connections = Arc::new(Connections::new(
        &config.limits,
        connections::open_file_limit(),
    ));
    let state = Arc::new(AppState {
        verifier: Verifier::new(&config.auth)?,
        connections: Arc::clone(&connections),
        limits: config.limits.clone(),
        publishers: config.publish.clone(),
        users: Arc::new(Users::default()),
        http: reqwest::Client::new(),
        subscriptions: Default::default(),
        binds_pending: Default::default(),
        exchanges,
        meters,
        shutdown: CancellationToken::new(),
        sockets: TaskTracker::new(),
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
        .route("/metrics", get(meters::metrics))
        .layer(axum::middleware::from_fn(guarded::handshake))
        .with_state(Arc::clone(&state));

    let listener = listen(config.listen).await?;
    let address = listener.local_addr()?;
    banner(&config, &state, address);
    let backend = pubsub_connect::without_password(&config.backend);
    tracing::info!(%address, %backend, "gateway listening");
    let (max_connections, per_address) = connections.limits();
    tracing::info!(max_connections, per_address, "connection limits");
    let listener = Limited::new(listener, connections, Deadlines::new(&config.limits));
    let shutdown = state.shutdown.clone();
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<Handshake>(),
    )
    .with_graceful_shutdown(async move {
        stop_signal().await;
        tracing::info!("gateway shutting down: closing every socket");
        shutdown.cancel();
    })
    .await?;
    // Each socket writes its close frame within CLOSE_GRACE; one stuck writing to a
    // peer that reads nothing is not waited for longer.
    state.sockets.close();
    let _ = tokio::time::timeout(2 * ws::CLOSE_GRACE, state.sockets.wait()).await;
    state.exchanges.close().await;
    tracing::info!("gateway stopped");
    Ok(())
}

/// Binds `address`, saying which address when it cannot.
async fn listen(address: std::net::SocketAddr) -> Result<tokio::net::TcpListener, String> {
    tokio::net::TcpListener::bind(address).await.map_err(|e| {
        let hint = match e.kind() {
            std::io::ErrorKind::AddrInUse => {
                " (another program listens there: stop it, or choose another address \
                 with --listen or the configuration's `listen`)"
            }
            _ => "",
        };
        format!("cannot listen on {address}: {e}{hint}")
    })
}

/// Ctrl-C (SIGINT) or SIGTERM, whichever comes first.
async fn stop_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = interrupt => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "SIGTERM cannot be caught; Ctrl-C still stops");
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
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
        pubsub_connect::without_password(&config.backend),
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
