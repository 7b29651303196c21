//! Connection errors that say what happened: a refused connection at once, a server
//! that speaks another protocol (AMQP, TLS, plain where TLS was asked for) by what it
//! answers to a probe. Messages name the URL without its password.

use std::time::Duration;

use pubsub_core::Error;
use redis::{ConnectionAddr, ConnectionInfo, RedisError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::errors::{convert, is_auth};

/// How long the probe of a server that failed the handshake may take.
const PROBE: Duration = Duration::from_secs(1);

/// The error for a first connection to `shown` (at `info`) that failed with `e`.
pub(crate) async fn connect_error(shown: &str, info: &ConnectionInfo, e: RedisError) -> Error {
    let what = format!("cannot connect to {shown}");
    if is_auth(&e) {
        return convert(&what, e);
    }
    if let Some(problem) = pubsub_core::tls::certificate_problem(&e) {
        let message = format!("{what}: the server's TLS certificate was refused: {problem}");
        return Error::connection(message, e);
    }
    let (host, port, tls) = match info.addr() {
        ConnectionAddr::Tcp(host, port) => (host.as_str(), *port, false),
        ConnectionAddr::TcpTls { host, port, .. } => (host.as_str(), *port, true),
        _ => return convert(&what, e),
    };
    if e.is_connection_refusal() {
        return Error::Connection {
            message: format!("{what}: connection refused (nothing listens on {host}:{port})"),
            source: None,
        };
    }
    match probe(host, port).await {
        Some(Speaks::Amqp) => wrong_protocol(
            &what,
            "the server speaks AMQP, not Redis: is this a RabbitMQ port?",
        ),
        Some(Speaks::Tls) if !tls => {
            wrong_protocol(&what, "the server expects TLS: use a rediss:// URL")
        }
        Some(Speaks::Redis) if tls => wrong_protocol(
            &what,
            "the server speaks plain Redis, not TLS: use a redis:// URL",
        ),
        Some(Speaks::Other(first)) => wrong_protocol(
            &what,
            &format!("the server does not speak Redis (it answered {first:?})"),
        ),
        _ => convert(&what, e),
    }
}

fn wrong_protocol(what: &str, why: &str) -> Error {
    Error::Connection {
        message: format!("{what}: {why}"),
        source: None,
    }
}

/// What a server answered to a plain-text `PING`.
enum Speaks {
    Redis,
    Amqp,
    Tls,
    Other(String),
}

async fn probe(host: &str, port: u16) -> Option<Speaks> {
    let exchange = async {
        let mut stream = TcpStream::connect((host, port)).await.ok()?;
        // A whole RESP command, longer than the 8 bytes an AMQP server waits for
        // before it answers with its protocol header.
        stream.write_all(b"*1\r\n$4\r\nPING\r\n").await.ok()?;
        let mut reply = [0u8; 16];
        let n = stream.read(&mut reply).await.ok()?;
        Some(reply[..n].to_vec())
    };
    let reply = tokio::time::timeout(PROBE, exchange).await.ok()??;
    Some(match reply.first()? {
        _ if reply.starts_with(b"AMQP") => Speaks::Amqp,
        // A TLS record: an alert (0x15) or a handshake (0x16), version 3.x.
        0x15 | 0x16 if reply.get(1) == Some(&0x03) => Speaks::Tls,
        b'+' | b'-' => Speaks::Redis,
        _ => Speaks::Other(String::from_utf8_lossy(&reply).into_owned()),
    })
}
