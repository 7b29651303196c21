//! From `redis` errors to the core [`Error`].

use pubsub_core::Error;
use redis::{ErrorKind, RedisError};

/// Whether the connection broke or could not be made, so that trying again later may
/// work.
pub(crate) fn is_transient(e: &RedisError) -> bool {
    e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() || e.is_timeout()
}

/// Whether the server refused the credentials.
pub(crate) fn is_auth(e: &RedisError) -> bool {
    e.kind() == ErrorKind::AuthenticationFailed
        || matches!(e.code(), Some("WRONGPASS" | "NOAUTH" | "NOPERM"))
}

/// The core error for `e`, which happened while doing `what`. Redis errors never hold
/// the URL, so no credentials leak through them.
pub(crate) fn convert(what: &str, e: RedisError) -> Error {
    if is_auth(&e) {
        Error::Auth(format!("{what}: {e}"))
    } else if is_transient(&e) {
        Error::connection(what.to_owned(), e)
    } else {
        Error::broker(what.to_owned(), e)
    }
}

/// Calls `attempt` until it succeeds, fails for another reason than a broken
/// connection, or `deadline` passes, waiting between attempts as `backoff` says.
pub(crate) async fn retry<T, F, Fut>(
    deadline: tokio::time::Instant,
    backoff: pubsub_core::backoff::Backoff,
    attempt: F,
) -> redis::RedisResult<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = redis::RedisResult<T>>,
{
    retry_while(deadline, backoff, is_transient, attempt).await
}

/// [`retry`] for a first connection: a refused one fails at once, since nothing
/// listens there (a server restarting is what later reconnections wait for), and so
/// does one whose server certificate was refused.
pub(crate) async fn retry_connect<T, F, Fut>(
    deadline: tokio::time::Instant,
    backoff: pubsub_core::backoff::Backoff,
    attempt: F,
) -> redis::RedisResult<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = redis::RedisResult<T>>,
{
    let retriable = |e: &RedisError| {
        is_transient(e)
            && !e.is_connection_refusal()
            && pubsub_core::tls::certificate_problem(e).is_none()
    };
    retry_while(deadline, backoff, retriable, attempt).await
}

async fn retry_while<T, F, Fut>(
    deadline: tokio::time::Instant,
    mut backoff: pubsub_core::backoff::Backoff,
    retriable: impl Fn(&RedisError) -> bool,
    mut attempt: F,
) -> redis::RedisResult<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = redis::RedisResult<T>>,
{
    loop {
        match attempt().await {
            Err(e) if retriable(&e) && !is_auth(&e) => {
                let now = tokio::time::Instant::now();
                if now >= deadline {
                    return Err(e);
                }
                tokio::time::sleep(backoff.next_delay().min(deadline - now)).await;
            }
            done => return done,
        }
    }
}
