//! `GET /subscribe?jwt=...`: brainlife's WebSocket protocol.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{close_code, CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::response::Response;
use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio::time::{timeout, Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::frames::ClientFrame;
use crate::outbox::OutboxReader;
use crate::session::Session;
use crate::state::AppState;

/// The token in the query string, as browsers cannot set headers on a WebSocket.
#[derive(Debug, Deserialize)]
pub(crate) struct TokenQuery {
    pub(crate) jwt: Option<String>,
}

/// Frames this many times over the limit are not read at all: the socket is closed.
const HARD_LIMIT_FACTOR: usize = 16;

/// Verifies the token, then upgrades. A refused client is upgraded too and closed at
/// once with a reason, because a browser cannot read an HTTP error on a WebSocket.
pub(crate) async fn subscribe(
    State(state): State<Arc<AppState>>,
    Query(query): Query<TokenQuery>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let admitted = state.admit(query.jwt.as_deref());
    let max_frame = state.limits.max_frame_bytes;
    let hard_limit = max_frame.saturating_mul(HARD_LIMIT_FACTOR);
    // tungstenite zero-fills its whole read buffer, 128 KiB by default, on every read:
    // 640 MiB resident for 5,000 sockets that only ever send small bind frames. A
    // buffer of one frame's size keeps a socket small; a larger frame grows it.
    upgrade
        .read_buffer_size(max_frame)
        .max_message_size(hard_limit)
        .max_frame_size(hard_limit)
        .on_upgrade(move |socket| {
            let sockets = state.sockets.clone();
            sockets.track_future(async move {
                match admitted {
                    Ok(client) => {
                        let watch = Watch {
                            max_frame,
                            idle: state.limits.idle_timeout(),
                            shutdown: state.shutdown.clone(),
                        };
                        serve(socket, Session::new(state, client), watch).await
                    }
                    Err(rejection) => close(socket, rejection.close_code, &rejection.reason).await,
                }
            })
        })
}

/// How long a close frame may take to write: its peer may be gone.
pub(crate) const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// What a socket's loop watches besides its frames.
struct Watch {
    max_frame: usize,
    /// A peer silent this long, pinged twice, is closed.
    idle: Duration,
    shutdown: CancellationToken,
}

async fn close(mut socket: WebSocket, code: u16, reason: &str) {
    // A close reason is at most 123 bytes.
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let frame = CloseFrame {
        code,
        reason: reason[..end].into(),
    };
    let _ = socket.send(Message::Close(Some(frame))).await;
}

async fn serve(
    socket: WebSocket,
    (mut session, mut outbox): (Session, OutboxReader),
    watch: Watch,
) {
    let Watch {
        max_frame,
        idle,
        shutdown,
    } = watch;
    let (mut sink, mut stream) = socket.split();
    let mut ping = tokio::time::interval_at(Instant::now() + idle / 2, idle / 2);
    ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut heard = Instant::now();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => {
                let frame = CloseFrame { code: close_code::AWAY, reason: "the gateway is shutting down".into() };
                let _ = timeout(CLOSE_GRACE, sink.send(Message::Close(Some(frame)))).await;
                return;
            }
            _ = ping.tick() => {
                if heard.elapsed() >= idle {
                    metrics::counter!("gateway_connections_closed_total", "reason" => "no_pong").increment(1);
                    let reason = format!("no answer to pings for {} ms", idle.as_millis());
                    let frame = CloseFrame { code: close_code::AWAY, reason: reason.into() };
                    let _ = timeout(CLOSE_GRACE, sink.send(Message::Close(Some(frame)))).await;
                    return;
                }
                if sink.send(Message::Ping(Default::default())).await.is_err() {
                    return;
                }
            }
            frame = outbox.next() => {
                let Some(frame) = frame else { return };
                if sink.send(Message::Text(frame.into())).await.is_err() {
                    return;
                }
            }
            received = stream.next() => match received.inspect(|_| heard = Instant::now()) {
                Some(Ok(Message::Text(text))) if text.len() > max_frame => {
                    let message = format!("frame of {} bytes is over the limit of {max_frame}", text.len());
                    session.reject("frame_too_large", &message, None);
                }
                Some(Ok(Message::Text(text))) => match serde_json::from_str::<ClientFrame>(&text) {
                    Ok(frame) => session.bind(frame.bind, frame.ack),
                    Err(e) => session.reject("malformed", &format!("not a bind frame: {e}"), None),
                },
                Some(Ok(Message::Binary(_))) => {
                    session.reject("malformed", "binary frames are not part of the protocol", None);
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(Message::Close(_))) | None => return,
                Some(Err(e)) => {
                    let reason = format!("unreadable frame: {e}");
                    let mut socket = sink.reunite(stream).ok();
                    if let Some(socket) = socket.take() {
                        close(socket, close_code::POLICY, &reason).await;
                    }
                    return;
                }
            }
        }
    }
}
