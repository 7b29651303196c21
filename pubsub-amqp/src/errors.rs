//! lapin's errors as this crate's [`Error`], each saying what was attempted.

use std::io;

use lapin::protocol::{AMQPErrorKind, AMQPHardError, AMQPSoftError};
use lapin::ErrorKind;
use pubsub_core::Error;

/// `error` from attempting `what`.
pub(crate) fn lapin_error(what: &str, error: lapin::Error) -> Error {
    match error.kind() {
        ErrorKind::ProtocolError(amqp) => Error::broker(format!("{what}: {amqp}"), error),
        ErrorKind::IOError(_) | ErrorKind::MissingHeartbeatError => Error::connection(
            format!("{what}: the connection to the broker failed"),
            error,
        ),
        ErrorKind::InvalidChannelState(..) | ErrorKind::InvalidConnectionState(_) => {
            Error::connection(
                format!("{what}: the connection to the broker is not open"),
                error,
            )
        }
        _ => Error::broker(what.to_owned(), error),
    }
}

/// `error` from connecting to `address` (`host:port`, no credentials): what the
/// broker, or whatever listens there, did.
pub(crate) fn connect_error(address: &str, error: lapin::Error) -> Error {
    let connect = format!("connect to {address}");
    match error.kind() {
        ErrorKind::ProtocolError(amqp) => match amqp.kind() {
            AMQPErrorKind::Soft(AMQPSoftError::ACCESSREFUSED) => Error::Auth(format!(
                "{connect}: the broker refused the login: {}",
                amqp.get_message()
            )),
            // RabbitMQ answers an unknown vhost, or one the user may not use, so.
            AMQPErrorKind::Hard(AMQPHardError::NOTALLOWED) => Error::Auth(format!(
                "{connect}: the broker refused the virtual host: {}",
                amqp.get_message()
            )),
            // What RabbitMQ answers while it starts ("vhost is down") or stops: not
            // ready yet, so connecting again later works.
            AMQPErrorKind::Hard(AMQPHardError::INTERNALERROR | AMQPHardError::CONNECTIONFORCED) => {
                Error::connection(
                    format!("{connect}: {amqp}; the broker may be starting or stopping"),
                    error,
                )
            }
            _ => Error::broker(format!("{connect}: {amqp}"), error),
        },
        ErrorKind::IOError(io) => {
            if let Some(problem) = pubsub_core::tls::certificate_problem(&error) {
                let message =
                    format!("{connect}: the broker's TLS certificate was refused: {problem}");
                return Error::connection(message, error);
            }
            let what = match io.kind() {
                io::ErrorKind::ConnectionRefused => {
                    "refused: nothing listens on that port".to_owned()
                }
                io::ErrorKind::UnexpectedEof
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted => {
                    "the peer closed the connection during the AMQP handshake: is this \
                     an AMQP port (a TLS port takes amqps://)?"
                        .to_owned()
                }
                io::ErrorKind::InvalidData => format!(
                    "the TLS handshake failed ({io}): is this a TLS port (a plain one \
                     takes amqp://), with a certificate for this host?"
                ),
                _ => format!("{io}"),
            };
            Error::connection(format!("{connect}: {what}"), error)
        }
        ErrorKind::ParsingError(_) | ErrorKind::InvalidProtocolVersion(_) => Error::connection(
            format!(
                "{connect}: the peer does not speak AMQP 0-9-1 (another service on that \
                 port?)"
            ),
            error,
        ),
        _ => lapin_error(&connect, error),
    }
}
