//! How to connect and how to lay out the topology: [`AmqpBuilder`].

use std::time::Duration;

use lapin::uri::AMQPUri;
use pubsub_core::{Error, Result};

use crate::AmqpBackend;

/// The exchange used unless [`AmqpBuilder::exchange`] names another.
pub const DEFAULT_EXCHANGE: &str = "pubsub";

/// How topics map to exchanges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Routing {
    /// One durable topic exchange; the routing key is the topic, and subscriptions
    /// bind with the topic or pattern (AMQP's own `*` and `#`).
    Topic,
    /// One durable fanout exchange per topic, named after the topic: OpenPaaS ESN's
    /// global pubsub topology. Patterns are [`Error::Unsupported`] here.
    FanoutPerTopic,
}

/// Options of an [`AmqpBackend`], built from a URL.
///
/// ```no_run
/// use std::time::Duration;
/// use pubsub_amqp::AmqpBackend;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> pubsub_core::Result<()> {
/// let backend = AmqpBackend::builder("amqp://guest:guest@127.0.0.1:5672/%2f")
///     .exchange("infrahub.events")
///     .prefetch(2)
///     .max_priority(5)
///     .heartbeat(Duration::from_secs(30))
///     .connect()
///     .await?;
/// # drop(backend);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct AmqpBuilder {
    pub(crate) url: String,
    pub(crate) exchange: String,
    pub(crate) routing: Routing,
    pub(crate) prefetch: u16,
    pub(crate) max_priority: u8,
    pub(crate) confirms: bool,
    pub(crate) persistent: bool,
    pub(crate) heartbeat: Option<Duration>,
    pub(crate) connect_timeout: Duration,
    pub(crate) publish_timeout: Duration,
    pub(crate) buffer: usize,
}

impl AmqpBuilder {
    pub(crate) fn new(url: &str) -> Self {
        AmqpBuilder {
            url: url.to_owned(),
            exchange: DEFAULT_EXCHANGE.to_owned(),
            routing: Routing::Topic,
            prefetch: 32,
            max_priority: pubsub_core::MAX_PRIORITY,
            confirms: true,
            persistent: true,
            heartbeat: None,
            connect_timeout: Duration::from_secs(10),
            publish_timeout: Duration::from_secs(30),
            buffer: 1024,
        }
    }

    /// The topic exchange to publish to and bind on (default `pubsub`). It is
    /// declared durable on first use.
    pub fn exchange(mut self, name: impl Into<String>) -> Self {
        self.exchange = name.into();
        self
    }

    /// One fanout exchange per topic, named after the topic (ESN's global pubsub).
    pub fn fanout_per_topic(mut self) -> Self {
        self.routing = Routing::FanoutPerTopic;
        self
    }

    /// Unacknowledged messages a group member may hold (default 32); a
    /// subscription's own [`SubscribeOptions::prefetch`](pubsub_core::SubscribeOptions)
    /// wins.
    pub fn prefetch(mut self, messages: u16) -> Self {
        self.prefetch = messages.max(1);
        self
    }

    /// The `x-max-priority` of group queues (default 9; 0 declares queues without
    /// priorities). A queue that already exists with another value cannot be
    /// joined: RabbitMQ refuses arguments that differ.
    pub fn max_priority(mut self, priority: u8) -> Self {
        self.max_priority = priority;
        self
    }

    /// Whether `publish` waits for the broker's publisher confirm (default yes).
    /// Without, `Ok` only means the message was written to the socket.
    pub fn confirms(mut self, yes: bool) -> Self {
        self.confirms = yes;
        self
    }

    /// Whether messages are published persistent, so that they survive a broker
    /// restart in durable group queues (default yes).
    pub fn persistent(mut self, yes: bool) -> Self {
        self.persistent = yes;
        self
    }

    /// The heartbeat interval asked of the broker (default: the broker's).
    pub fn heartbeat(mut self, interval: Duration) -> Self {
        self.heartbeat = Some(interval);
        self
    }

    /// How long `connect` (and a lazy backend's first use) waits for the broker
    /// (default 10 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long a publish waits for its confirm, across a reconnect (default 30 s).
    pub fn publish_timeout(mut self, timeout: Duration) -> Self {
        self.publish_timeout = timeout;
        self
    }

    /// Messages a broadcast subscriber may fall behind before it lags (default 1024);
    /// a subscription's own [`SubscribeOptions::buffer`](pubsub_core::SubscribeOptions)
    /// wins. Nothing is allocated for it until messages wait.
    pub fn buffer(mut self, messages: usize) -> Self {
        self.buffer = messages.max(1);
        self
    }

    /// Connects, and fails if the broker cannot be reached within the connect
    /// timeout or refuses the credentials
    /// ([`Error::Auth`](pubsub_core::Error::Auth)).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a cancelled connect leaves no connection open.
    pub async fn connect(self) -> Result<AmqpBackend> {
        let backend = self.connect_lazy()?;
        backend.connection().await?;
        Ok(backend)
    }

    /// A backend that connects on first use (and again on later uses while the
    /// broker cannot be reached). Only the URL is checked here.
    pub fn connect_lazy(self) -> Result<AmqpBackend> {
        AmqpBackend::from_builder(self)
    }

    /// The URL, parsed, with the heartbeat applied.
    pub(crate) fn uri(&self) -> Result<AMQPUri> {
        let redacted = redact(&self.url);
        let mut uri: AMQPUri = self.url.parse().map_err(|e: String| {
            // The parser quotes the URL in some of its messages.
            Error::InvalidUrl(format!("{redacted}: {}", e.replace(&self.url, &redacted)))
        })?;
        // The parser only keeps host names and falls back to `localhost` for an IP
        // address, which may resolve to another address family than the broker's.
        if let Some(ip) = host(&self.url).and_then(|h| h.parse::<std::net::IpAddr>().ok()) {
            uri.authority.host = ip.to_string();
        }
        if let Some(heartbeat) = self.heartbeat {
            uri.query.heartbeat = Some(u16::try_from(heartbeat.as_secs()).unwrap_or(u16::MAX));
        }
        Ok(uri)
    }
}

impl std::fmt::Debug for AmqpBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmqpBuilder")
            .field("url", &redact(&self.url))
            .field("exchange", &self.exchange)
            .field("routing", &self.routing)
            .field("prefetch", &self.prefetch)
            .field("max_priority", &self.max_priority)
            .field("confirms", &self.confirms)
            .finish_non_exhaustive()
    }
}

/// The URL without its user information, for `Debug`, errors and logs.
pub(crate) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "<not a URL>".to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    format!("{scheme}://{host}{path}")
}

/// The host part of a URL's authority (brackets of an IPv6 address removed).
fn host(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let authority = &rest[..rest.find(['/', '?']).unwrap_or(rest.len())];
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if let Some(v6) = host_port.strip_prefix('[') {
        return v6.split_once(']').map(|(h, _)| h);
    }
    Some(host_port.split_once(':').map_or(host_port, |(h, _)| h))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_drops_credentials() {
        assert_eq!(
            redact("amqp://user:s3cret@host:5672/%2f?heartbeat=5"),
            "amqp://host:5672/%2f?heartbeat=5"
        );
        assert_eq!(redact("amqps://p%40ss@h"), "amqps://h");
        assert_eq!(redact("nonsense"), "<not a URL>");
    }

    #[test]
    fn ip_hosts_are_kept() {
        let uri = AmqpBuilder::new("amqp://u:p@127.0.0.1:5673/v")
            .uri()
            .unwrap();
        assert_eq!(uri.authority.host, "127.0.0.1");
        assert_eq!(uri.authority.port, 5673);
        assert_eq!(uri.vhost, "v");
        assert_eq!(host("amqp://[::1]:5672/"), Some("::1"));
    }

    #[test]
    fn bad_urls_are_typed_errors_without_the_password() {
        for url in ["http://u:s3cret@h/", "amqp://u:s3cret@h:notaport/", ""] {
            let err = AmqpBuilder::new(url).uri().unwrap_err();
            assert!(matches!(err, Error::InvalidUrl(_)), "{url}: {err}");
            assert!(!err.to_string().contains("s3cret"), "{err}");
        }
    }
}
