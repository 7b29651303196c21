//! Trying a broker address before lapin connects to it, to say at once what is wrong.
//!
//! lapin 4.12's `Connection::connect` never returns in three cases that users meet
//! first: the TCP connect is refused (its I/O thread fails before the handshake's
//! promise exists), the peer answers nothing (a Redis port waits for a line end), and
//! the broker refuses the virtual host (it closes the connection during
//! `connection.open`). The first and the last became "could not connect within 10s".
//! So a plain `amqp://` address gets a short handshake here first, on a socket of its
//! own ([`crate::wire`]): protocol header, `connection.start-ok` (PLAIN), `tune-ok`,
//! `open` of the vhost, and a clean `close`; the broker's refusal of the login or the vhost comes back
//! with its own words. An `amqps://` address gets the TCP connect and the check
//! that the port does not speak plain AMQP; the TLS handshake is lapin's.

use std::time::Duration;

use futures::io::{AsyncReadExt, AsyncWriteExt};
use lapin::uri::{AMQPScheme, AMQPUri};
use pubsub_core::{Error, Result};
use tokio::time::Instant;

use crate::connection::Address;
use crate::wire::{self, Refusal, HEADER};

/// What went wrong with `address`, found by `deadline`, or `Ok` when lapin may go.
pub(crate) async fn probe(address: &Address, deadline: Instant) -> Result<()> {
    let timeout = deadline.saturating_duration_since(Instant::now());
    let fail = |what: String| Error::Connection {
        message: format!("connect to {}: {what}", address.display),
        source: None,
    };
    match tokio::time::timeout_at(deadline, try_address(&address.uri)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(Refusal::Auth(what))) => Err(Error::Auth(format!(
            "connect to {}: {what}",
            address.display
        ))),
        Ok(Err(Refusal::Other(what))) => Err(fail(what)),
        Err(_) => Err(fail(format!(
            "the port accepted the connection but gave no AMQP answer within {:?}: \
             is this an AMQP port, or is the broker overloaded?",
            Duration::from_millis(timeout.as_millis().try_into().unwrap_or(u64::MAX))
        ))),
    }
}

async fn try_address(uri: &AMQPUri) -> std::result::Result<(), Refusal> {
    // In the clear even for amqps: a TLS port's answer to a plain header says enough.
    let mut stream = wire::connect(uri, None).await?;
    stream.write_all(HEADER).await?;
    // A server that waits for more (Redis waits for a line end, which it never finds
    // behind the header's NUL bytes) runs into the caller's timeout.
    let mut first = [0u8; 1];
    let read = stream.read(&mut first).await?;
    let tls = uri.scheme == AMQPScheme::AMQPS;
    match (read, first[0], tls) {
        // A method frame: AMQP 0-9-1 in the clear.
        (1, 1, false) => {}
        (1, 1, true) => {
            return Err(Refusal::Other(
                "the port speaks AMQP without TLS: use amqp:// (or the broker's TLS port)".into(),
            ))
        }
        // A TLS server closes on, or alerts about, a plain header: what amqps wants.
        (0, _, true) | (1, 0x15, true) => return Ok(()),
        (1, 0x15 | 0x16, false) => {
            return Err(Refusal::Other("the port speaks TLS: use amqps://".into()))
        }
        (0, _, false) => {
            return Err(Refusal::Other(
                "the peer closed the connection at the AMQP header: is this an AMQP port (a \
                 TLS port takes amqps://)?"
                    .into(),
            ))
        }
        (_, b'A', _) => {
            return Err(Refusal::Other(
                "the broker speaks another AMQP version than 0-9-1 (AMQP 1.0?)".into(),
            ))
        }
        (_, b'-' | b'+', _) => {
            return Err(Refusal::Other(
                "the peer does not speak AMQP: it answered like a Redis server".into(),
            ))
        }
        _ => {
            return Err(Refusal::Other(
                "the peer does not speak AMQP 0-9-1 (another service on that port?)".into(),
            ))
        }
    }
    if tls {
        return Ok(());
    }
    let frame_max = wire::handshake(&mut stream, first[0], uri).await?;
    wire::close(&mut stream, "checked", frame_max).await;
    Ok(())
}
