//! Inthe.AM: the web service and Taskd publish per-user channels; the `sync_listener`
//! acts on `sync.*`; the status endpoint streams one user's events to the browser
//! as Server-Sent Events, with a heartbeat.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::sse::{Event as SseEvent, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures::{stream, Stream, StreamExt};
use pubsub_core::{Delivery, Error, Event, Handler, PubSub, Received, Result};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use crate::catalog::inthe_am::{
    kind_of, user_patterns, CertificateCheck, ChangedTask, GeneralAnnouncement, IncomingMail,
    LocalSync, LogMessage, PersonalMessage, RejectionReason, Sync, SyncAction,
};
use crate::demo;

/// Starts Inthe.AM's `sync_listener`: on every `sync.<user>` that stored or merged
/// something, it syncs the user's task store with Taskd, which Inthe.AM announces
/// with `local_sync.<user>`. Syncs without changes are ignored.
pub async fn sync_listener(bus: &PubSub) -> Result<Handler> {
    let replies = bus.clone();
    let mut handler = bus.topic(Sync::TOPIC).on(move |d: Delivery| {
        let bus = replies.clone();
        async move {
            let sync: Sync = d.json()?;
            if !sync.has_changes() {
                println!("sync_listener: {} synced, nothing changed", sync.username);
                return Ok(());
            }
            println!(
                "sync_listener: {} stored {} merged {}: syncing the task store",
                sync.username, sync.stored_count, sync.merged_count
            );
            let done = LocalSync {
                username: sync.username,
                debounce_id: uuid::Uuid::new_v4().simple().to_string(),
                start: sync.branch_point,
                head: uuid::Uuid::new_v4().simple().to_string(),
            };
            bus.send(&done).await?;
            Ok(())
        }
    });
    handler.ready().await?;
    Ok(handler)
}

#[derive(Clone)]
struct AppState {
    bus: PubSub,
    heartbeat: Duration,
}

/// The HTTP service: `GET /status/{username}` streams that user's events (every
/// per-user channel and `__general__`) as Server-Sent Events named by channel kind
/// (`changed_task`, `taskd.certificate`...), with a `heartbeat` event every
/// `heartbeat`. The subscriptions are confirmed before the response starts, so the
/// first heartbeat tells the client it is live.
pub fn router(bus: PubSub, heartbeat: Duration) -> Router {
    Router::new()
        .route("/status/{username}", get(status))
        .with_state(AppState { bus, heartbeat })
}

async fn status(State(state): State<AppState>, Path(username): Path<String>) -> Response {
    match user_events(&state.bus, &username, state.heartbeat).await {
        Ok(events) => Sse::new(events).into_response(),
        Err(error @ Error::InvalidTopic { .. }) => {
            (StatusCode::BAD_REQUEST, error.to_string()).into_response()
        }
        Err(error) => (StatusCode::BAD_GATEWAY, error.to_string()).into_response(),
    }
}

async fn user_events(
    bus: &PubSub,
    username: &str,
    heartbeat: Duration,
) -> Result<impl Stream<Item = std::result::Result<SseEvent, Infallible>>> {
    let [own, general] = user_patterns(username);
    let own = bus.topic(&own).subscribe().await?;
    let general = bus.topic(&general).subscribe().await?;
    let events = stream::select(own, general).map(|received| match received {
        Received::Message(d) => SseEvent::default()
            .event(kind_of(d.topic()))
            .data(String::from_utf8_lossy(d.payload())),
        // Missed messages are news for the browser too: what it shows may be stale,
        // so it should reload. The stream goes on.
        Received::Signal(signal) => SseEvent::default().event("error").data(signal.to_string()),
    });
    let beats = stream::unfold(tokio::time::interval(heartbeat), |mut every| async move {
        every.tick().await;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Some((
            SseEvent::default().event("heartbeat").data(now.to_string()),
            every,
        ))
    });
    Ok(stream::select(events, beats).map(Ok))
}

/// Serves [`router`] on `listener` until the process ends.
pub async fn serve(listener: TcpListener, bus: PubSub, heartbeat: Duration) -> Result<()> {
    axum::serve(listener, router(bus, heartbeat))
        .await
        .map_err(|e| Error::connection("serving HTTP", e))
}

/// Publishes one message on every Inthe.AM channel for `username`: what the web
/// service and Taskd emit. Returns how many it published.
pub async fn publish_all(bus: &PubSub, username: &str) -> Result<usize> {
    let mut sent = Counted { bus, count: 0 };
    let user = || username.to_owned();
    let sync = |stored_count, merged_count| Sync {
        action: SyncAction::Sync,
        username: user(),
        org: "inthe_am".into(),
        client: "taskwarrior 2.6.2".into(),
        ip: "127.0.0.1".into(),
        port: 53589,
        client_key: "6a8e0a61".into(),
        record_count: 12,
        branch_point: "2d4f9c1".into(),
        branch_record_count: 10,
        delta_count: stored_count,
        stored_count,
        merged_count,
        service_duration: 0.031,
    };
    let task = |id: &str, description: &str| ChangedTask {
        username: user(),
        start: "2d4f9c1".into(),
        head: "8e1b7a0".into(),
        task_id: id.into(),
        task_data: [
            ("uuid", json!(id)),
            ("description", json!(description)),
            ("status", json!("pending")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect(),
    };
    sent.send(&GeneralAnnouncement {
        title: "Maintenance".into(),
        message: "Inthe.AM restarts at noon".into(),
        system: true,
    })
    .await?;
    sent.send(&PersonalMessage {
        username: user(),
        title: "Welcome".into(),
        message: "Your task store is ready".into(),
    })
    .await?;
    sent.send(&task("0b7c1ee0-0c8b-4f3f-9a3e-3b1d2a4c5e6f", "Buy milk"))
        .await?;
    sent.send(&task("5d2e8f3a-1b4c-4d6e-8f9a-0b1c2d3e4f5a", "Call Bob"))
        .await?;
    sent.send(&LogMessage {
        username: user(),
        md5hash: "d41d8cd98f00b204e9800998ecf8427e".into(),
        last_seen: "2024-05-01T10:00:00Z".into(),
        created: "2024-05-01T09:00:00Z".into(),
        error: false,
        silent: false,
        message: "Synchronization complete".into(),
        count: 2,
    })
    .await?;
    sent.send(&IncomingMail {
        username: user(),
        message_id: 17,
        subject: "Buy milk".into(),
        accepted: true,
        rejection_reason: None,
        task_id: Some("0b7c1ee0-0c8b-4f3f-9a3e-3b1d2a4c5e6f".into()),
    })
    .await?;
    sent.send(&IncomingMail {
        username: user(),
        message_id: 18,
        subject: "You won!".into(),
        accepted: false,
        rejection_reason: Some(RejectionReason::Passlist),
        task_id: None,
    })
    .await?;
    sent.send(&sync(0, 0)).await?;
    sent.send(&sync(2, 1)).await?;
    sent.send(&CertificateCheck {
        username: user(),
        org: "inthe_am".into(),
        client: "taskwarrior 2.6.2".into(),
        ip: "127.0.0.1".into(),
        port: 53589,
        fingerprint: "ab:cd:ef:01".into(),
        certificate_recognized: true,
        certificate_accepted: true,
    })
    .await?;
    Ok(sent.count)
}

/// Publishes and counts.
struct Counted<'a> {
    bus: &'a PubSub,
    count: usize,
}

impl Counted<'_> {
    async fn send<E: Event>(&mut self, event: &E) -> Result<()> {
        self.bus.send(event).await?;
        self.count += 1;
        Ok(())
    }
}

/// One Server-Sent Event as a client reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamEvent {
    /// The event name (the channel kind, or `heartbeat`).
    pub event: String,
    /// The data lines, joined with newlines.
    pub data: String,
}

/// Opens `GET /status/{username}` on `addr` and returns the events as they come.
/// HTTP/1.0, so the body is the bare stream (no chunked framing to undo).
pub async fn open_stream(
    addr: SocketAddr,
    username: &str,
) -> Result<impl Stream<Item = Result<StreamEvent>>> {
    let io = |what: &'static str| move |e| Error::connection(what, e);
    let mut socket = TcpStream::connect(addr)
        .await
        .map_err(io("connecting to the status stream"))?;
    let request = format!(
        "GET /status/{username} HTTP/1.0\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n"
    );
    socket
        .write_all(request.as_bytes())
        .await
        .map_err(io("sending the status request"))?;
    let mut lines = BufReader::new(socket).lines();
    let status = lines
        .next_line()
        .await
        .map_err(io("reading the status line"))?
        .unwrap_or_default();
    if !status.contains(" 200 ") {
        return Err(Error::Connection {
            message: format!("the status stream answered {status:?}"),
            source: None,
        });
    }
    // Skip the headers.
    while let Some(line) = lines.next_line().await.map_err(io("reading headers"))? {
        if line.is_empty() {
            break;
        }
    }
    Ok(stream::unfold(lines, |mut lines| async move {
        let mut event = StreamEvent {
            event: "message".into(),
            data: String::new(),
        };
        let mut data = Vec::new();
        loop {
            let line = match lines.next_line().await {
                Ok(Some(line)) => line,
                Ok(None) => return None,
                Err(e) => return Some((Err(Error::connection("reading the stream", e)), lines)),
            };
            if line.is_empty() && !data.is_empty() {
                event.data = data.join("\n");
                return Some((Ok(event), lines));
            }
            if let Some(name) = line.strip_prefix("event:") {
                event.event = name.trim_start().to_owned();
            } else if let Some(text) = line.strip_prefix("data:") {
                data.push(text.strip_prefix(' ').unwrap_or(text).to_owned());
            }
        }
    }))
}

/// What the demo's browser saw.
#[derive(Debug, Default)]
pub struct Report {
    /// The user's events, in order, without heartbeats.
    pub events: Vec<StreamEvent>,
    /// How many heartbeats came.
    pub heartbeats: usize,
}

/// Runs the demo: the sync listener and the status endpoint on `bus`, a browser
/// streaming `username`'s events, and a publisher of every channel. Returns once the
/// browser has every event (the listener's `local_sync` included).
pub async fn run(bus: &PubSub, username: &str, heartbeat: Duration) -> Result<Report> {
    let listener = sync_listener(bus).await?;
    let http = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| Error::connection("binding the HTTP port", e))?;
    let addr = http
        .local_addr()
        .map_err(|e| Error::connection("reading the HTTP port", e))?;
    let server = tokio::spawn(serve(http, bus.clone(), heartbeat));
    println!("status stream: curl -N http://{addr}/status/{username}");

    let mut browser = Box::pin(open_stream(addr, username).await?);
    let mut report = Report::default();
    // The first heartbeat says the stream's subscriptions are live.
    let first = demo::within("the first heartbeat", browser.next()).await?;
    if let Some(Ok(beat)) = first {
        println!("browser: {} {}", beat.event, beat.data);
        report.heartbeats += 1;
    }
    // Every publish reaches the stream, and the listener's local_sync too.
    let expected = publish_all(bus, username).await? + 1;
    while report.events.len() < expected || report.heartbeats < 2 {
        let event = demo::within("the user's events", browser.next())
            .await?
            .ok_or(Error::Closed)??;
        println!("browser: {} {}", event.event, event.data);
        if event.event == "heartbeat" {
            report.heartbeats += 1;
        } else {
            report.events.push(event);
        }
    }
    server.abort();
    listener.stop();
    Ok(report)
}
