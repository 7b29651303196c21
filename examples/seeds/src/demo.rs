//! What every program shares: bounded waits and how a program ends.

use std::future::Future;
use std::process::ExitCode;
use std::time::Duration;

use pubsub_core::{Error, Result};
use tokio::sync::mpsc::UnboundedReceiver;

/// How long a demo waits for something that should happen before it fails.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// Awaits `future`, or fails with [`Error::Timeout`] naming `what` after [`PATIENCE`].
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let two = pubsub_examples::demo::within("adding", async { 1 + 1 }).await.unwrap();
/// assert_eq!(two, 2);
/// # }
/// ```
pub async fn within<T>(what: &'static str, future: impl Future<Output = T>) -> Result<T> {
    tokio::time::timeout(PATIENCE, future)
        .await
        .map_err(|_| Error::Timeout {
            operation: what,
            after: PATIENCE,
        })
}

/// The next item a program's components reported, waiting at most [`PATIENCE`].
pub async fn next<T>(events: &mut UnboundedReceiver<T>, what: &'static str) -> Result<T> {
    within(what, events.recv()).await?.ok_or(Error::Closed)
}

/// The exit code of a program's result, printing the error and its causes if any.
pub fn exit_code<T>(result: Result<T>) -> ExitCode {
    match result {
        Ok(_) => ExitCode::SUCCESS,
        Err(error) => {
            let mut message = format!("error: {error}");
            let mut source = std::error::Error::source(&error);
            while let Some(cause) = source {
                message.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            eprintln!("{message}");
            ExitCode::FAILURE
        }
    }
}
