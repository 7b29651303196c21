//! A status-stream client as a browser's `EventSource` reads it: the event name, and
//! the data lines joined with newlines. For the demo and the tests.

use std::net::SocketAddr;

use futures::{stream, Stream};
use pubsub_core::{Error, Result};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// One Server-Sent Event as a client reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamEvent {
    /// The event name (the channel kind, or `heartbeat`).
    pub event: String,
    /// The data lines, joined with newlines.
    pub data: String,
}

/// Opens `GET /status/{path}` on `addr` (a username, and a `?head=` if wanted) and returns the events as they come.
/// HTTP/1.0, so the body is the bare stream (no chunked framing to undo).
pub async fn open_stream(
    addr: SocketAddr,
    path: &str,
) -> Result<impl Stream<Item = Result<StreamEvent>>> {
    let io = |what: &'static str| move |e| Error::connection(what, e);
    let mut socket = TcpStream::connect(addr)
        .await
        .map_err(io("connecting to the status stream"))?;
    let request =
        format!("GET /status/{path} HTTP/1.0\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n");
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
