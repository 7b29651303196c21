//! The browser's status stream, as Inthe.AM's SSE server sends it: `GET
//! /status/{username}[?head=SHA]` subscribes to exactly that user's channels and
//! `__general__`, and turns each message into the events the web UI listens for.
//!
//! | channel | event | data |
//! |---|---|---|
//! | `local_sync.<u>` | `local_sync`, then `head_changed` when the head moved | the message; the bare new head |
//! | `changed_task.<u>` | `task_changed` | the bare task id |
//! | `log_message.<u>` | `error_logged`, for errors that are not silent | the bare message text |
//! | `personal.<u>` | `personal_announcement` | the message |
//! | `incoming_mail.<u>`, `incoming_trello_change.<u>` | the kind | the message |
//! | `__general__` | `public_announcement` (Inthe.AM drops it; its UI listens for it) | the message |
//!
//! A `heartbeat` with empty data opens the stream (its subscriptions are live by then)
//! and comes again every interval (15 s by default, as Inthe.AM's).

use std::convert::Infallible;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures::{stream, Stream, StreamExt};
use pubsub_core::{Delivery, Error, PubSub, Received, Result};
use serde::Deserialize;
use serde_json::Value;

use crate::catalog::inthe_am::{kind_of, user_channels};

/// Inthe.AM's interval between heartbeats (`EVENT_STREAM_HEARTBEAT_INTERVAL`).
pub const HEARTBEAT: Duration = Duration::from_secs(15);

#[derive(Clone)]
struct AppState {
    bus: PubSub,
    heartbeat: Duration,
}

/// The query of a status request: the head the browser already shows.
#[derive(Debug, Deserialize)]
struct Since {
    head: Option<String>,
}

/// The HTTP service: `GET /status/{username}` streams that user's events as above,
/// with a `heartbeat` every `heartbeat`.
pub fn router(bus: PubSub, heartbeat: Duration) -> Router {
    Router::new()
        .route("/status/{username}", get(status))
        .with_state(AppState { bus, heartbeat })
}

async fn status(
    State(state): State<AppState>,
    Path(username): Path<String>,
    Query(since): Query<Since>,
) -> Response {
    match user_events(&state.bus, &username, since.head, state.heartbeat).await {
        Ok(events) => (
            [(header::CONTENT_TYPE, "text/event-stream")],
            Body::from_stream(events),
        )
            .into_response(),
        Err(error @ Error::InvalidTopic { .. }) => {
            (StatusCode::BAD_REQUEST, error.to_string()).into_response()
        }
        Err(error) => (StatusCode::BAD_GATEWAY, error.to_string()).into_response(),
    }
}

async fn user_events(
    bus: &PubSub,
    username: &str,
    head: Option<String>,
    heartbeat: Duration,
) -> Result<impl Stream<Item = std::result::Result<Bytes, Infallible>>> {
    let mut subscriptions = Vec::new();
    for channel in user_channels(username) {
        subscriptions.push(bus.topic(&channel).subscribe().await?);
    }
    let mut frames = Frames { head };
    let events = stream::select_all(subscriptions).flat_map(move |received| {
        stream::iter(match received {
            Received::Message(delivery) => frames.of(&delivery),
            // What the browser shows may be stale now; it has no event for that, so
            // the log says it.
            Received::Signal(signal) => {
                tracing::warn!(%signal, "the status stream may have missed messages");
                Vec::new()
            }
        })
    });
    let beats = stream::unfold(tokio::time::interval(heartbeat), |mut every| async move {
        every.tick().await;
        Some((frame("heartbeat", ""), every))
    });
    Ok(stream::select(beats, events).map(Ok))
}

/// Turns one user's messages into events, tracking the head the browser has.
struct Frames {
    head: Option<String>,
}

impl Frames {
    fn of(&mut self, delivery: &Delivery) -> Vec<Bytes> {
        let kind = kind_of(delivery.topic());
        let message: Value = match delivery.json() {
            Ok(message) => message,
            Err(error) => {
                tracing::warn!(topic = delivery.topic(), %error, "skipped a message the stream cannot read");
                return Vec::new();
            }
        };
        let text = String::from_utf8_lossy(delivery.payload());
        let event = frame;
        let field = |name: &str| message.get(name).and_then(Value::as_str);
        match kind {
            "local_sync" => {
                let mut events = vec![event("local_sync", &text)];
                if let Some(head) = field("head").filter(|h| self.head.as_deref() != Some(*h)) {
                    self.head = Some(head.to_owned());
                    events.push(event("head_changed", head));
                }
                events
            }
            "changed_task" => field("task_id")
                .map(|id| event("task_changed", id))
                .into_iter()
                .collect(),
            "log_message" => {
                let shown = |name| message.get(name).and_then(Value::as_bool);
                match (shown("error"), shown("silent"), field("message")) {
                    (Some(true), Some(false), Some(text)) => vec![event("error_logged", text)],
                    _ => Vec::new(),
                }
            }
            "personal" => vec![event("personal_announcement", &text)],
            "__general__" => vec![event("public_announcement", &text)],
            other => vec![event(other, &text)],
        }
    }
}

/// One event as the wire carries it: its name, then each line of `data` on a `data:`
/// line of its own (so a payload with newlines keeps its frame; Inthe.AM wrote it on
/// one line), then a blank line. Empty data is one empty `data:` line, which a
/// browser's `EventSource` dispatches with `""` (a frame without one it would drop).
///
/// ```
/// let frame = pubsub_seeds::intheam::stream::frame("heartbeat", "");
/// assert_eq!(&frame[..], b"event: heartbeat\ndata: \n\n");
/// let frame = pubsub_seeds::intheam::stream::frame("local_sync", "{\n  \"head\": \"a\"\n}");
/// assert_eq!(&frame[..], b"event: local_sync\ndata: {\ndata:   \"head\": \"a\"\ndata: }\n\n");
/// ```
pub fn frame(event: &str, data: &str) -> Bytes {
    let mut text = format!("event: {event}\n");
    for line in data.split("\r\n").flat_map(|l| l.split(['\n', '\r'])) {
        text.push_str("data: ");
        text.push_str(line);
        text.push('\n');
    }
    text.push('\n');
    Bytes::from(text)
}

/// Serves [`router`] on `listener` until the process ends.
pub async fn serve(
    listener: tokio::net::TcpListener,
    bus: PubSub,
    heartbeat: Duration,
) -> Result<()> {
    axum::serve(listener, router(bus, heartbeat))
        .await
        .map_err(|e| Error::connection("serving HTTP", e))
}
