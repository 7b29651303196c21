//! What every program shares: its logs, bounded waits, reading a subscription, and
//! how a program ends.

use std::future::Future;
use std::process::ExitCode;
use std::time::Duration;

use pubsub_connect::logging::{self, LogFormat};
use pubsub_core::{Delivery, Error, Received, Result, Subscription};
use tokio::sync::mpsc::UnboundedReceiver;

/// The logging options of every program: its log lines go to stderr, filtered by
/// `RUST_LOG` (default `info`), so that a message a handler gave up on, a dead letter,
/// a lag or a gap is seen.
///
/// ```
/// use clap::Parser;
///
/// #[derive(Parser)]
/// struct Args {
///     #[command(flatten)]
///     logging: pubsub_seeds::demo::Logging,
/// }
///
/// let args = Args::parse_from(["program", "--log-format", "json"]);
/// args.logging.init();
/// ```
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct Logging {
    /// How log lines look on stderr: `text`, or `json` (one object per line, for a
    /// log collector). `RUST_LOG` filters them (default `info`).
    #[arg(long, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

impl Logging {
    /// Installs the process's log subscriber. A second call (a subscriber installed
    /// already) changes nothing.
    pub fn init(self) {
        // The only error is a subscriber installed before, which then does the job.
        let _ = logging::init(self.log_format);
    }
}

/// How long a demo waits for something that should happen before it fails.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// Awaits `future`, or fails with [`Error::Timeout`] naming `what` after [`PATIENCE`].
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let two = pubsub_seeds::demo::within("adding", async { 1 + 1 }).await.unwrap();
/// assert_eq!(two, 2);
/// # }
/// ```
///
/// # Cancel safety
///
/// As cancel safe as `future`.
pub async fn within<T>(what: &'static str, future: impl Future<Output = T>) -> Result<T> {
    tokio::time::timeout(PATIENCE, future)
        .await
        .map_err(|_| Error::Timeout {
            operation: what,
            after: PATIENCE,
        })
}

/// The next item a program's components reported, waiting at most [`PATIENCE`].
///
/// # Cancel safety
///
/// Cancel safe: an item is taken only when this returns.
pub async fn next<T>(events: &mut UnboundedReceiver<T>, what: &'static str) -> Result<T> {
    within(what, events.recv()).await?.ok_or(Error::Closed)
}

/// The next message of `subscription`, waiting at most [`PATIENCE`] in all.
///
/// A signal (messages were missed) is printed and reading goes on: a demo that lost a
/// message then fails on what it waits for, with the signal that explains it above.
///
/// ```
/// use pubsub_seeds::demo;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> pubsub_core::Result<()> {
/// let bus = pubsub_connect::connect("memory://").await?;
/// let mut failed = bus.topic("brainlife.notifications.failed").subscribe().await?;
/// bus.topic("brainlife.notifications.failed").publish(&"t-2").await?;
/// let dead = demo::next_message(&mut failed, "the dead letter").await?;
/// assert_eq!(dead.json::<String>()?, "t-2");
/// # Ok(())
/// # }
/// ```
///
/// # Cancel safety
///
/// Cancel safe: a message is taken only when this returns.
pub async fn next_message(subscription: &mut Subscription, what: &'static str) -> Result<Delivery> {
    let read = async {
        while let Some(received) = subscription.next().await {
            match received {
                Received::Message(delivery) => return Ok(delivery),
                Received::Signal(signal) => eprintln!("{what}: {signal}"),
            }
        }
        Err(Error::Closed)
    };
    within(what, read).await?
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
