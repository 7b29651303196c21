//! What every case needs: a factory for buses, unique names, bounded waits. Public so
//! that backends' own tests wait the same way.

use std::future::Future;
use std::time::Duration;

use futures::future::BoxFuture;

use crate::{Delivery, Error, PubSub, Received, Result, Subscription};

/// How long a case waits for something that should happen.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// Builds a fresh bus on the backend under test. Cases build the buses they need and
/// use unique topic names, so the buses of several cases may share one broker.
pub trait BusFactory: Sync {
    /// A new bus.
    fn bus(&self) -> BoxFuture<'_, PubSub>;
}

impl<F, Fut> BusFactory for F
where
    F: Fn() -> Fut + Sync,
    Fut: Future<Output = PubSub> + Send + 'static,
{
    fn bus(&self) -> BoxFuture<'_, PubSub> {
        Box::pin(self())
    }
}

/// A name no other case or run uses: `prefix` plus a random suffix segment.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}.{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

/// The next item of `sub`, or a panic naming `what` after [`PATIENCE`].
pub async fn next_item(sub: &mut Subscription, what: &str) -> Received {
    match tokio::time::timeout(PATIENCE, sub.next()).await {
        Ok(Some(item)) => item,
        Ok(None) => panic!("{what}: the subscription ended"),
        Err(_) => panic!("{what}: nothing arrived within {PATIENCE:?}"),
    }
}

/// The next delivery of `sub`, skipping no signal: a signal fails the case.
pub async fn next(sub: &mut Subscription, what: &str) -> Delivery {
    match next_item(sub, what).await {
        Received::Message(delivery) => delivery,
        Received::Signal(signal) => panic!("{what}: expected a delivery, got the signal {signal}"),
    }
}

/// Awaits `future`, failing the case if it takes longer than [`PATIENCE`].
pub async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, future)
        .await
        .unwrap_or_else(|_| panic!("{what}: did not finish within {PATIENCE:?}"))
}

/// The payload as text, for assertions.
pub fn text(delivery: &Delivery) -> String {
    String::from_utf8_lossy(delivery.payload()).into_owned()
}

/// The resident memory of this process (`VmRSS` in `/proc/self/status`, Linux), for
/// tests and benchmarks that measure what something costs.
pub fn resident_bytes() -> std::io::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map(|kib| kib * 1024)
        .ok_or_else(|| std::io::Error::other("no VmRSS line in /proc/self/status"))
}

/// Awaits `connect`, which must fail at once (within 3 s, where a retried failure
/// would wait out a connect timeout) with [`Error::Connection`] saying `expected`;
/// returns the error's message.
///
/// ```
/// use pubsub_core::{testkit::support::refused_at_once, Error};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let refused = async {
///     Err::<(), _>(Error::Connection { message: "certificate expired".into(), source: None })
/// };
/// assert_eq!(refused_at_once("expired", refused).await, "connection error: certificate expired");
/// # }
/// ```
pub async fn refused_at_once<T>(
    expected: &str,
    connect: impl Future<Output = Result<T>>,
) -> String {
    let started = std::time::Instant::now();
    let error = match connect.await {
        Ok(_) => panic!("{expected}: connected, though it should be refused"),
        Err(error) => error,
    };
    let message = error.to_string();
    assert!(
        matches!(error, Error::Connection { .. }),
        "{expected}: {error:?}"
    );
    assert!(message.contains(expected), "{expected}: {message}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{expected}: refused after {:?}, not at once",
        started.elapsed()
    );
    message
}

/// Sends this process's logs to the output of the test that runs, which libtest shows
/// when the test fails: a fault test that fails says what the library saw. `RUST_LOG`
/// chooses what is logged, `default` when it is not set (e.g. `"pubsub_amqp=debug"`).
/// Later calls in the same process do nothing.
///
/// ```
/// pubsub_core::testkit::support::logs_in_test_output("pubsub_core=debug");
/// tracing::debug!("shown if the test fails");
/// ```
pub fn logs_in_test_output(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}
