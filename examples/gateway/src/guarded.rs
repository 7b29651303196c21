//! The deadlines of a connection, kept by its socket itself so that they hold whatever
//! serves it (the HTTP server, then a WebSocket or an SSE stream):
//!
//! - the handshake: a request head (the first one, or the next on a kept-alive
//!   connection) must arrive within `handshake_timeout_ms`, or reading fails and the
//!   connection closes. Slowloris clients, that send a request slowly or not at all,
//!   hold a connection no longer than that. The [`handshake`] middleware lifts the
//!   deadline when a request reaches the router, and sets it again after a response
//!   that is neither an upgrade nor an event stream.
//! - stalled writes: a write that waits `idle_timeout_ms` for the client to read fails,
//!   so that a client that stopped reading (a full socket buffer, a vanished peer)
//!   does not hold its connection, its session and its outbox forever.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::connect_info::{ConnectInfo, Connected};
use axum::extract::Request;
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use axum::serve::IncomingStream;
use metrics::Counter;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

use crate::config::Limits;
use crate::connections::{Limited, Slot};

/// The deadlines every connection gets, and the counters of the connections they closed.
#[derive(Debug, Clone)]
pub(crate) struct Deadlines {
    handshake: Duration,
    idle: Duration,
    handshake_expired: Counter,
    writes_stalled: Counter,
}

impl Deadlines {
    /// The deadlines of `limits`.
    pub(crate) fn new(limits: &Limits) -> Deadlines {
        Deadlines {
            handshake: limits.handshake_timeout(),
            idle: limits.idle_timeout(),
            handshake_expired: metrics::counter!("gateway_connections_closed_total", "reason" => "handshake_timeout"),
            writes_stalled: metrics::counter!("gateway_connections_closed_total", "reason" => "writes_stalled"),
        }
    }
}

/// A client's connection, with its place among the open ones and its deadlines.
#[derive(Debug)]
pub(crate) struct Guarded {
    stream: TcpStream,
    _slot: Slot,
    handshake: Handshake,
    handshake_timer: Pin<Box<Sleep>>,
    /// Runs while a write waits for the client.
    stall_timer: Pin<Box<Sleep>>,
    stalled: bool,
    deadlines: Deadlines,
}

/// When the connection's current request head must have arrived, if one is awaited;
/// shared with the requests' handlers as their connection info.
#[derive(Debug, Clone)]
pub(crate) struct Handshake {
    deadline: Arc<Mutex<Option<Instant>>>,
    timeout: Duration,
}

impl Handshake {
    fn set(&self, deadline: Option<Instant>) {
        *self.deadline.lock().unwrap_or_else(PoisonError::into_inner) = deadline;
    }

    fn get(&self) -> Option<Instant> {
        *self.deadline.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Guarded {
    /// `stream`, holding `slot`, its handshake deadline running from now.
    pub(crate) fn new(stream: TcpStream, slot: Slot, deadlines: &Deadlines) -> Guarded {
        let deadline = Instant::now() + deadlines.handshake;
        Guarded {
            stream,
            _slot: slot,
            handshake: Handshake {
                deadline: Arc::new(Mutex::new(Some(deadline))),
                timeout: deadlines.handshake,
            },
            handshake_timer: Box::pin(tokio::time::sleep_until(deadline)),
            stall_timer: Box::pin(tokio::time::sleep(deadlines.idle)),
            stalled: false,
            deadlines: deadlines.clone(),
        }
    }

    /// Fails once the handshake deadline passed, else registers to be woken then.
    fn poll_handshake(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        let Some(deadline) = self.handshake.get() else {
            return Poll::Pending;
        };
        if self.handshake_timer.deadline() != deadline {
            self.handshake_timer.as_mut().reset(deadline);
        }
        self.handshake_timer.as_mut().poll(cx).map(|()| {
            self.deadlines.handshake_expired.increment(1);
            let timeout = self.deadlines.handshake;
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no request within {timeout:?}"),
            )
        })
    }

    /// What a write that returned `poll` answers: a write pending for longer than the
    /// idle timeout fails.
    fn watch_write<T>(
        &mut self,
        poll: Poll<io::Result<T>>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<T>> {
        if poll.is_ready() {
            self.stalled = false;
            return poll;
        }
        if !self.stalled {
            self.stalled = true;
            let deadline = Instant::now() + self.deadlines.idle;
            self.stall_timer.as_mut().reset(deadline);
        }
        self.stall_timer
            .as_mut()
            .poll(cx)
            .map(|()| {
                self.deadlines.writes_stalled.increment(1);
                let idle = self.deadlines.idle;
                io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("the client read nothing for {idle:?}"),
                )
            })
            .map(Err)
    }
}

impl AsyncRead for Guarded {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Poll::Ready(expired) = this.poll_handshake(cx) {
            return Poll::Ready(Err(expired));
        }
        Pin::new(&mut this.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.stream).poll_write(cx, buf);
        this.watch_write(poll, cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        this.watch_write(poll, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

impl Connected<IncomingStream<'_, Limited>> for Handshake {
    fn connect_info(stream: IncomingStream<'_, Limited>) -> Self {
        stream.io().handshake.clone()
    }
}

/// Lifts the handshake deadline while a request is served, and sets it again for the
/// next request unless the response holds the connection (an upgrade, an event stream).
pub(crate) async fn handshake(request: Request, next: Next) -> Response {
    let handshake = request
        .extensions()
        .get::<ConnectInfo<Handshake>>()
        .map(|ConnectInfo(h)| h.clone());
    if let Some(handshake) = &handshake {
        handshake.set(None);
    }
    let response = next.run(request).await;
    let streams = response.status() == StatusCode::SWITCHING_PROTOCOLS
        || response
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|t| t.as_bytes().starts_with(b"text/event-stream"));
    if let (Some(handshake), false) = (handshake, streams) {
        handshake.set(Some(Instant::now() + handshake.timeout));
    }
    response
}
