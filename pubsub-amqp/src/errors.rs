//! lapin's errors as this crate's [`Error`], each saying what was attempted.

use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
use lapin::ErrorKind;
use pubsub_core::Error;

/// `error` from attempting `what`.
pub(crate) fn lapin_error(what: &str, error: lapin::Error) -> Error {
    match error.kind() {
        ErrorKind::ProtocolError(amqp) => match amqp.kind() {
            AMQPErrorKind::Soft(AMQPSoftError::ACCESSREFUSED) if what == CONNECT => Error::Auth(
                format!("the broker refused the login: {}", amqp.get_message()),
            ),
            _ => Error::broker(format!("{what}: {amqp}"), error),
        },
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

/// What `connect` attempts, so that a refused login reads as [`Error::Auth`].
pub(crate) const CONNECT: &str = "connect to the broker";
