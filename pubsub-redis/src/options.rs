//! The builder: URL, channel prefix, raw mode, buffer sizes and timeouts.

use std::sync::Arc;
use std::time::Duration;

use pubsub_core::backoff::Backoff;
use pubsub_core::{Error, Result};
use redis::{ConnectionInfo, IntoConnectionInfo, ProtocolVersion};

use crate::RedisBackend;

/// Options of a [`RedisBackend`]; [`RedisBackend::builder`] makes one.
///
/// ```no_run
/// use std::time::Duration;
/// use pubsub_redis::RedisBackend;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> pubsub_core::Result<()> {
/// let backend = RedisBackend::builder("redis://app:secret@127.0.0.1:6379/2")
///     .prefix("inthe.am:")
///     .raw(true)
///     .buffer(4096)
///     .publish_timeout(Duration::from_secs(2))
///     .connect()
///     .await?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct RedisBuilder {
    url: String,
    pub(crate) prefix: Arc<str>,
    pub(crate) raw: bool,
    pub(crate) buffer: usize,
    pub(crate) publish_timeout: Duration,
    pub(crate) connect_budget: Duration,
    pub(crate) backoff: Backoff,
}

/// Messages a subscription holds before it lags, unless its options say otherwise.
pub const DEFAULT_BUFFER: usize = 1024;

impl RedisBuilder {
    pub(crate) fn new(url: &str) -> Self {
        RedisBuilder {
            url: url.to_owned(),
            prefix: Arc::from(""),
            raw: false,
            buffer: DEFAULT_BUFFER,
            publish_timeout: Duration::from_secs(5),
            connect_budget: Duration::from_secs(5),
            backoff: Backoff::default(),
        }
    }

    /// Puts `prefix` in front of every Redis channel name (and strips it from received
    /// ones), to share one Redis between applications. Empty by default.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = Arc::from(prefix.into());
        self
    }

    /// Publishes bare payloads that any Redis client reads as is, and reads received
    /// payloads as is. Headers cannot travel (the capabilities say so, and the bus
    /// refuses messages with headers); an id or priority is left out. Off by default.
    pub fn raw(mut self, raw: bool) -> Self {
        self.raw = raw;
        self
    }

    /// How many messages a subscription holds before it lags, unless its
    /// [`SubscribeOptions`](pubsub_core::SubscribeOptions) say otherwise (at least 1;
    /// [`DEFAULT_BUFFER`] by default). Memory follows what is buffered, not this
    /// limit: an idle subscription holds no buffer.
    pub fn buffer(mut self, messages: usize) -> Self {
        self.buffer = messages.max(1);
        self
    }

    /// How long a publish waits for a broken connection to come back before it fails
    /// (5 s by default).
    pub fn publish_timeout(mut self, timeout: Duration) -> Self {
        self.publish_timeout = timeout;
        self
    }

    /// How long [`connect`](Self::connect) keeps trying to reach the broker before it
    /// fails with [`Error::Connection`] (5 s by default).
    pub fn connect_budget(mut self, budget: Duration) -> Self {
        self.connect_budget = budget;
        self
    }

    /// The delays between reconnection attempts: `initial`, doubling up to `max`
    /// (50 ms to 2 s by default).
    pub fn reconnect_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.backoff = Backoff::new(initial, max);
        self
    }

    /// Connects, trying for up to the connect budget. Fails with
    /// [`Error::InvalidUrl`], [`Error::Auth`] or [`Error::Connection`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a cancelled connect leaves nothing behind.
    pub async fn connect(self) -> Result<RedisBackend> {
        RedisBackend::open(self).await
    }

    /// Returns at once; the connections are made in the background, and publishes and
    /// subscribes wait for them (publishes up to the publish timeout). Fails only on a
    /// bad URL. Call it within a tokio runtime.
    pub fn connect_lazy(self) -> Result<RedisBackend> {
        RedisBackend::open_lazy(self)
    }

    /// The publishing (as the URL says) and subscribing (RESP3) connection settings.
    pub(crate) fn endpoint(&self) -> Result<Endpoint> {
        let url = url::Url::parse(&self.url)
            .map_err(|e| Error::InvalidUrl(format!("{}: {e}", redact_str(&self.url))))?;
        let shown = redact(&url);
        if !matches!(url.scheme(), "redis" | "rediss") {
            return Err(Error::InvalidUrl(format!(
                "{shown}: the scheme must be redis:// or rediss://"
            )));
        }
        if url.scheme() == "rediss" {
            // Fails only when the application installed a provider already: it wins.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(Error::InvalidUrl(format!("{shown}: no host")));
        }
        let publish = url
            .clone()
            .into_connection_info()
            .map_err(|e| Error::InvalidUrl(format!("{shown}: {e}")))?;
        let redis = publish
            .redis_settings()
            .clone()
            .set_protocol(ProtocolVersion::RESP3);
        let subscribe = publish.clone().set_redis_settings(redis);
        Ok(Endpoint {
            shown,
            publish,
            subscribe,
        })
    }
}

impl std::fmt::Debug for RedisBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBuilder")
            .field("url", &redact_str(&self.url))
            .field("prefix", &self.prefix)
            .field("raw", &self.raw)
            .field("buffer", &self.buffer)
            .field("publish_timeout", &self.publish_timeout)
            .field("connect_budget", &self.connect_budget)
            .finish_non_exhaustive()
    }
}

/// Where to connect, with the URL to show in messages (no password).
#[derive(Clone)]
pub(crate) struct Endpoint {
    pub(crate) shown: String,
    pub(crate) publish: ConnectionInfo,
    pub(crate) subscribe: ConnectionInfo,
}

/// `url` with its password replaced by `***`.
fn redact(url: &url::Url) -> String {
    let mut shown = url.clone();
    if shown.password().is_some() {
        let _ = shown.set_password(Some("***"));
    }
    shown.to_string()
}

/// A URL that did not parse, shown without anything between `//` and `@`.
fn redact_str(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(parsed) => redact(&parsed),
        Err(_) => match (url.find("://"), url.rfind('@')) {
            (Some(start), Some(at)) if at > start => {
                format!("{}***{}", &url[..start + 3], &url[at..])
            }
            _ => url.to_owned(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show() {
        let b = RedisBuilder::new("redis://user:hunter2@localhost:6379/3");
        assert!(!format!("{b:?}").contains("hunter2"));
        assert_eq!(
            b.endpoint().unwrap().shown,
            "redis://user:***@localhost:6379/3"
        );
        for bad in [
            "redis://user:hunter2@[::1",
            "ftp://u:hunter2@h/",
            "redis://:hunter2@h/x",
        ] {
            let e = RedisBuilder::new(bad).endpoint().err().expect("invalid");
            assert!(matches!(e, Error::InvalidUrl(_)), "{e:?}");
            assert!(!e.to_string().contains("hunter2"), "{e}");
        }
    }
}
