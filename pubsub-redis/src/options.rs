//! The builder: URL, channel prefix, raw mode, buffer sizes and timeouts.

use std::sync::Arc;
use std::time::Duration;

use pubsub_core::backoff::Backoff;
use pubsub_core::{Error, Result};
use redis::{ConnectionInfo, IntoConnectionInfo, ProtocolVersion};

use crate::errors::convert;
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
    /// `Some` in Streams mode.
    pub(crate) streams: Option<StreamSettings>,
    pub(crate) cluster: bool,
    pub(crate) cluster_patterns: bool,
    /// The CA (PEM) that `rediss://` trusts instead of the system's roots.
    pub(crate) root_certificate: Option<Vec<u8>>,
}

/// The settings of Streams mode ([`RedisBuilder::streams`]).
#[derive(Debug, Clone)]
pub(crate) struct StreamSettings {
    /// `XADD ... MAXLEN ~ max_len`.
    pub(crate) max_len: usize,
    /// A pending entry idle this long belongs to a member presumed dead.
    pub(crate) claim_idle: Duration,
    /// Deliveries of an entry before it goes to the dead-letter topic.
    pub(crate) max_attempts: u32,
}

/// Entries a stream keeps, about, unless [`RedisBuilder::stream_max_len`] says otherwise.
pub const DEFAULT_STREAM_MAX_LEN: usize = 100_000;

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
            streams: None,
            cluster: false,
            cluster_patterns: true,
            root_certificate: None,
        }
    }

    /// For `rediss://`: trust the certificate authority in `pem` (one or more PEM
    /// certificates) instead of the system's roots, as for a private CA. A server
    /// whose certificate that CA did not sign, or signed for another host, or which
    /// has expired, is refused with the certificate's problem in the error.
    pub fn tls_root_certificate(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.root_certificate = Some(pem.into());
        self
    }

    /// Streams mode: topics are Redis Streams instead of PubSub channels (see the
    /// [crate docs](crate#streams-mode)). A publish is an `XADD` (trimmed to about
    /// [`stream_max_len`](Self::stream_max_len) entries), a subscription reads the
    /// entries added after it subscribed, and a group is a Redis consumer group with
    /// acks, nack with requeue, attempts and dead letters. Off by default.
    pub fn streams(mut self, yes: bool) -> Self {
        if yes {
            self.stream_settings();
        } else {
            self.streams = None;
        }
        self
    }

    fn stream_settings(&mut self) -> &mut StreamSettings {
        self.streams.get_or_insert(StreamSettings {
            max_len: DEFAULT_STREAM_MAX_LEN,
            claim_idle: Duration::from_secs(30),
            max_attempts: 10,
        })
    }

    /// In Streams mode (and turns it on), about how many entries a stream keeps (`MAXLEN ~`; at least 1,
    /// [`DEFAULT_STREAM_MAX_LEN`] by default). Older entries are trimmed, read or not.
    pub fn stream_max_len(mut self, entries: usize) -> Self {
        self.stream_settings().max_len = entries.max(1);
        self
    }

    /// In Streams mode (and turns it on), how long a group member may hold a message unsettled before
    /// the other members take it (`XAUTOCLAIM`), presuming it dead (30 s by default).
    /// A member that works longer on one message than this may see it handed to
    /// another member too.
    pub fn claim_idle(mut self, idle: Duration) -> Self {
        self.stream_settings().claim_idle = idle.max(Duration::from_millis(1));
        self
    }

    /// In Streams mode (and turns it on), how many times a group message is delivered before it goes to
    /// the dead-letter topic `<topic>.dead-letter` instead (10 by default, at least 1).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.stream_settings().max_attempts = attempts.max(1);
        self
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

    /// The publishing (as the URL says) and subscribing (RESP3) connection settings;
    /// for a cluster, those of every seed node.
    pub(crate) fn endpoint(&self) -> Result<Endpoint> {
        let urls = seed_urls(&self.url);
        let mut seeds = Vec::with_capacity(urls.len());
        for url in &urls {
            seeds.push(one_endpoint(url)?);
        }
        let shown = seeds
            .iter()
            .map(|s| s.shown.as_str())
            .collect::<Vec<_>>()
            .join(",");
        let mut first = seeds.remove(0);
        first.shown = shown;
        first.root_certificate.clone_from(&self.root_certificate);
        first.seeds = std::iter::once(first.subscribe.clone())
            .chain(seeds.into_iter().map(|s| s.subscribe))
            .collect();
        Ok(first)
    }

    /// Whether the bus talks to a Redis Cluster: asked for, or several seed hosts.
    pub(crate) fn is_cluster(&self) -> bool {
        self.cluster || seed_urls(&self.url).len() > 1
    }

    /// Redis Cluster: the URL names one or more seed nodes, comma-separated
    /// (`redis://h1:7000,h2:7001/`), and the bus finds the others. Exact names use
    /// sharded PubSub (`SSUBSCRIBE`/`SPUBLISH`), patterns `PSUBSCRIBE` across the
    /// cluster; Streams mode works too. A URL with several hosts turns it on.
    pub fn cluster(mut self, yes: bool) -> Self {
        self.cluster = yes;
        self
    }

    /// On a cluster, whether pattern subscriptions see what is published: then every
    /// publish is an `SPUBLISH` for the shard and a `PUBLISH`, which Redis sends to
    /// every node, for pattern subscribers. Off, a publish is one `SPUBLISH` and a
    /// pattern subscribe is [`Error::Unsupported`]. On by default.
    pub fn cluster_patterns(mut self, yes: bool) -> Self {
        self.cluster_patterns = yes;
        self
    }
}

/// The URL of each seed host of `url` (`redis://u:p@h1:1,h2:2/0` makes two, each with
/// the user, password and path).
fn seed_urls(url: &str) -> Vec<String> {
    let Some(start) = url.find("://").map(|i| i + 3) else {
        return vec![url.to_owned()];
    };
    let end = url[start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| start + i);
    let authority = &url[start..end];
    let (user, hosts) = match authority.rfind('@') {
        Some(at) => (&authority[..=at], &authority[at + 1..]),
        None => ("", authority),
    };
    if !hosts.contains(',') {
        return vec![url.to_owned()];
    }
    hosts
        .split(',')
        .map(|host| format!("{}{user}{host}{}", &url[..start], &url[end..]))
        .collect()
}

fn one_endpoint(url: &str) -> Result<Endpoint> {
    let parsed =
        url::Url::parse(url).map_err(|e| Error::InvalidUrl(format!("{}: {e}", redact_str(url))))?;
    let shown = redact(&parsed);
    if !matches!(parsed.scheme(), "redis" | "rediss") {
        return Err(Error::InvalidUrl(format!(
            "{shown}: the scheme must be redis:// or rediss://"
        )));
    }
    if parsed.scheme() == "rediss" {
        // Fails only when the application installed a provider already: it wins.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(Error::InvalidUrl(format!("{shown}: no host")));
    }
    let publish = parsed
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
        seeds: Vec::new(),
        root_certificate: None,
    })
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
            .field("streams", &self.streams)
            .field("cluster", &self.is_cluster())
            .finish_non_exhaustive()
    }
}

/// Where to connect, with the URL to show in messages (no password).
#[derive(Clone)]
pub(crate) struct Endpoint {
    pub(crate) shown: String,
    pub(crate) publish: ConnectionInfo,
    pub(crate) subscribe: ConnectionInfo,
    /// Every seed node (RESP3), the first included, for a cluster.
    pub(crate) seeds: Vec<ConnectionInfo>,
    /// See [`RedisBuilder::tls_root_certificate`].
    pub(crate) root_certificate: Option<Vec<u8>>,
}

impl Endpoint {
    /// A client of `info`, trusting the builder's root certificate where one was given.
    pub(crate) fn client(&self, info: &ConnectionInfo) -> Result<redis::Client> {
        let client = match self.certificates() {
            Some(certificates) => redis::Client::build_with_tls(info.clone(), certificates),
            None => redis::Client::open(info.clone()),
        };
        client.map_err(|e| convert(&format!("cannot use {}", self.shown), e))
    }

    /// The builder's root certificate, as the redis crate takes it.
    pub(crate) fn certificates(&self) -> Option<redis::TlsCertificates> {
        let root = self.root_certificate.clone()?;
        Some(redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(root),
        })
    }
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
    fn several_hosts_are_the_seeds_of_a_cluster() {
        let b = RedisBuilder::new("redis://app:hunter2@h1:7000,h2:7001/0");
        assert!(b.is_cluster());
        let endpoint = b.endpoint().unwrap();
        assert_eq!(endpoint.seeds.len(), 2);
        assert_eq!(
            endpoint.shown,
            "redis://app:***@h1:7000/0,redis://app:***@h2:7001/0"
        );
        assert!(!RedisBuilder::new("redis://h1:7000/").is_cluster());
        let e = RedisBuilder::new("redis://:hunter2@h1:x,h2/")
            .endpoint()
            .err()
            .expect("a bad port");
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }

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
