//! `GET /events?jwt=...&bind=ex:key[&bind=...]`: the same frames as Server-Sent Events,
//! with a heartbeat comment so that proxies keep the stream open (Inthe.AM's stream).

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::{stream, StreamExt};

use crate::frames::BindRequest;
use crate::session::Session;
use crate::state::AppState;

/// Verifies the token, starts every bind, then streams the session's outbox.
pub(crate) async fn events(
    State(state): State<Arc<AppState>>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Response {
    let token = pairs
        .iter()
        .find(|(k, _)| k == "jwt")
        .map(|(_, v)| v.as_str());
    let client = match state.admit(token) {
        Ok(client) => client,
        Err(rejection) => return (rejection.status, rejection.reason).into_response(),
    };
    let mut binds = Vec::new();
    for (_, bind) in pairs.iter().filter(|(k, _)| k == "bind") {
        match bind.split_once(':') {
            Some((ex, key)) => binds.push(BindRequest {
                ex: ex.to_owned(),
                key: key.to_owned(),
            }),
            None => {
                let message = format!("bind {bind:?} is not exchange:key");
                return (StatusCode::BAD_REQUEST, message).into_response();
            }
        }
    }
    if binds.is_empty() {
        return (
            StatusCode::BAD_REQUEST,
            "give at least one bind=exchange:key",
        )
            .into_response();
    }
    let heartbeat = state.limits.heartbeat();
    let shutdown = state.shutdown.clone().cancelled_owned();
    let (mut session, outbox) = Session::new(state, client);
    // A stream's binds are all in its URL, so it always hears how each went.
    for bind in binds {
        session.bind(bind, true);
    }
    // The stream owns the session: when the client goes, axum drops the stream and
    // the session's binds end with it.
    let frames = stream::unfold((session, outbox), |(session, mut outbox)| async move {
        let frame = outbox.next().await?;
        Some((
            Ok::<_, Infallible>(Event::default().data(frame)),
            (session, outbox),
        ))
    });
    // A shutdown ends the stream, so the server can stop.
    Sse::new(frames.take_until(shutdown))
        .keep_alive(KeepAlive::new().interval(heartbeat).text("heartbeat"))
        .into_response()
}
