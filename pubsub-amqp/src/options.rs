//! How to connect and how to lay out the topology: [`AmqpBuilder`].

use std::time::Duration;

use lapin::types::FieldTable;
use lapin::uri::AMQPUri;
use pubsub_core::{Error, HeaderValue, Result};

use crate::connection::Address;
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
    /// One durable headers exchange, which routes by the headers a message carries
    /// and ignores its routing key, the topic (Infrahub's `infrahub.delayed`). Only
    /// for publishing: queues bind to it with [`QueueSpec::bind_headers`], and
    /// subscribing is [`Error::Unsupported`]. See [`AmqpBackend::headers_exchange`].
    Headers,
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
    pub(crate) publishing_channels: usize,
    pub(crate) confirm_window: usize,
    pub(crate) quorum: bool,
    pub(crate) delivery_limit: Option<u32>,
    pub(crate) dead_letter_topic: Option<String>,
    pub(crate) backlog: u32,
    pub(crate) backlog_bytes: Option<u32>,
    /// Addresses given with [`AmqpBuilder::address`].
    pub(crate) more_addresses: Vec<String>,
    /// The CA (PEM) that `amqps://` trusts instead of the system's roots.
    pub(crate) root_certificate: Option<String>,
    /// Queues that others own, given with [`AmqpBuilder::queue`].
    pub(crate) queues: Vec<QueueSpec>,
}

/// A queue that another system owns, for the group named after it to consume
/// ([`AmqpBuilder::queue`]): declared with exactly the owner's flags and arguments,
/// or only checked for (passive), so that neither side is refused with
/// `PRECONDITION_FAILED`, whoever starts first.
///
/// ```
/// use pubsub_amqp::QueueSpec;
///
/// // OpenPaaS ESN's point-to-point channel: durable, no arguments.
/// let esn = QueueSpec::declare("calendar:event:alarm");
/// // Infrahub's shared RPC queue, declared as Infrahub does.
/// let infrahub = QueueSpec::declare("infrahub.rpcs").argument("x-max-priority", 5u8);
/// // Whatever the owner declared; refused if it does not exist.
/// let joined = QueueSpec::passive("infrahub.rpcs");
/// # drop((esn, infrahub, joined));
/// ```
#[derive(Debug, Clone)]
pub struct QueueSpec {
    pub(crate) name: String,
    pub(crate) durable: bool,
    pub(crate) exclusive: bool,
    pub(crate) arguments: Vec<(String, HeaderValue)>,
    pub(crate) passive: bool,
    /// Headers exchanges it is bound to, with the binding's arguments.
    pub(crate) header_bindings: Vec<(String, Vec<(String, HeaderValue)>)>,
}

impl QueueSpec {
    /// The queue `name`, declared durable (not exclusive, not auto-delete) with no
    /// arguments but those given with [`argument`](Self::argument).
    pub fn declare(name: impl Into<String>) -> Self {
        QueueSpec {
            name: name.into(),
            durable: true,
            exclusive: false,
            arguments: Vec::new(),
            passive: false,
            header_bindings: Vec::new(),
        }
    }

    /// The queue `name` as it exists: only checked for, never declared, so any
    /// flags and arguments do; subscribing fails, naming the queue, while it does
    /// not exist.
    pub fn passive(name: impl Into<String>) -> Self {
        QueueSpec {
            passive: true,
            ..QueueSpec::declare(name)
        }
    }

    /// Whether the queue is declared durable (default yes).
    pub fn durable(mut self, yes: bool) -> Self {
        self.durable = yes;
        self
    }

    /// Declared exclusive, as Infrahub declares its callback queues: private to the
    /// connection that declares it and deleted when that connection closes, so it
    /// is not durable either. A group that joins it runs on the bus's connection,
    /// which declares it again after a reconnect.
    pub fn exclusive(mut self) -> Self {
        self.exclusive = true;
        self.durable = false;
        self
    }

    /// Binds the queue to the headers exchange `exchange` with `arguments`
    /// (`x-match` and the header values a message must carry) when
    /// [`AmqpBackend::declare_queue`] declares it; the exchange is declared durable
    /// if it is not there. Values keep their AMQP types (integers the narrowest
    /// signed type that holds them, as aio-pika binds them).
    ///
    /// ```
    /// use pubsub_amqp::QueueSpec;
    /// use pubsub_core::HeaderValue;
    ///
    /// // Infrahub's five-second delay queue: dead-lettered back when its TTL ends.
    /// let delay = QueueSpec::declare("infrahub.delay.five_seconds")
    ///     .argument("x-dead-letter-exchange", "infrahub.dlx")
    ///     .argument("x-message-ttl", 5000i32)
    ///     .argument("x-max-priority", 5u8)
    ///     .bind_headers("infrahub.delayed", [("x-match", "all".into()), ("delay", HeaderValue::Int(5000))]);
    /// # drop(delay);
    /// ```
    pub fn bind_headers<K: Into<String>>(
        mut self,
        exchange: &str,
        arguments: impl IntoIterator<Item = (K, HeaderValue)>,
    ) -> Self {
        let arguments = arguments.into_iter().map(|(k, v)| (k.into(), v)).collect();
        self.header_bindings.push((exchange.to_owned(), arguments));
        self
    }

    /// An argument to declare the queue with, as its owner does
    /// (`x-max-priority`, `x-message-ttl`, `x-dead-letter-exchange`...). RabbitMQ
    /// compares an argument's value, and integers of any width as one kind, when
    /// the queue is declared again.
    pub fn argument(mut self, key: &str, value: impl Into<HeaderValue>) -> Self {
        self.arguments.retain(|(k, _)| k != key);
        self.arguments.push((key.to_owned(), value.into()));
        self
    }

    /// The arguments as an AMQP table.
    pub(crate) fn argument_table(&self) -> Result<FieldTable> {
        crate::properties::to_table(&self.arguments)
    }

    /// The queue's name.
    pub fn name(&self) -> &str {
        &self.name
    }
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
            publishing_channels: 4,
            confirm_window: 256,
            quorum: false,
            delivery_limit: None,
            dead_letter_topic: None,
            backlog: 10_000,
            backlog_bytes: None,
            more_addresses: Vec::new(),
            root_certificate: None,
            queues: Vec::new(),
        }
    }

    /// For `amqps://`: trust the certificate authority in `pem` (one or more PEM
    /// certificates) as well as the system's roots, as for a private CA. A broker
    /// whose certificate no trusted CA signed, or signed for another host, or which
    /// has expired, is refused at once with the certificate's problem in the error.
    pub fn tls_root_certificate(mut self, pem: impl Into<String>) -> Self {
        self.root_certificate = Some(pem.into());
        self
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

    /// Joins a queue that another system owns: a group named like the queue
    /// consumes it, next to the owner's consumers, instead of a queue of its own,
    /// each message going to one of them. It is declared as `queue` says (no
    /// `x-max-priority` or other argument of this builder's) and bound to the
    /// subscription's topic like any group queue. Publishes with a priority reach
    /// it only as its own arguments allow.
    ///
    /// ```no_run
    /// use pubsub_amqp::{AmqpBackend, QueueSpec};
    /// use pubsub_core::PubSub;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> pubsub_core::Result<()> {
    /// // OpenPaaS ESN's point-to-point channel `alarms`: fanout exchange and
    /// // durable queue both named `alarms`.
    /// let backend = AmqpBackend::builder("amqp://guest:guest@127.0.0.1:5672/%2f")
    ///     .fanout_per_topic()
    ///     .queue(QueueSpec::declare("alarms"))
    ///     .connect()
    ///     .await?;
    /// let bus = PubSub::new(backend);
    /// let mut receiver = bus.topic("alarms").subscribe_group("alarms").await?;
    /// # drop(receiver);
    /// # Ok(())
    /// # }
    /// ```
    pub fn queue(mut self, queue: QueueSpec) -> Self {
        self.queues.retain(|q| q.name != queue.name);
        self.queues.push(queue);
        self
    }

    /// The queue that group `group` joins, if another system owns it.
    pub(crate) fn owned_queue(&self, group: &str) -> Option<&QueueSpec> {
        self.queues.iter().find(|q| q.name == group)
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

    /// How many channels confirmed publishes may spread over (default 4): the broker
    /// handles each channel's publishes and confirms in one process, so many
    /// concurrent publishes from one bus go faster over several. A publish takes the
    /// first channel with room in its confirm window
    /// ([`confirm_window`](Self::confirm_window)). Publishes without confirms all take
    /// the first, to keep their order.
    ///
    /// ```
    /// use pubsub_amqp::AmqpBackend;
    ///
    /// // Up to 8 channels, the next one taken once 128 publishes wait on each.
    /// let builder = AmqpBackend::builder("amqp://guest:guest@127.0.0.1:5672/%2f")
    ///     .publishing_channels(8)
    ///     .confirm_window(128);
    /// # drop(builder);
    /// ```
    pub fn publishing_channels(mut self, channels: usize) -> Self {
        self.publishing_channels = channels.max(1);
        self
    }

    /// How many confirmed publishes may wait for their confirm on one publishing
    /// channel before the next publish takes the next channel (default 256; at least
    /// 1). Publishes in flight share the broker's confirm batches on one channel,
    /// which a few hundred go fastest with; once every channel's window is full, a
    /// publish takes the channel with the fewest in flight, so this never makes a
    /// publish wait.
    pub fn confirm_window(mut self, publishes: usize) -> Self {
        self.confirm_window = publishes.max(1);
        self
    }

    /// Group queues as quorum queues (`x-queue-type: quorum`): replicated on a
    /// majority of a cluster's nodes, so that a group keeps its messages when a node
    /// goes. RabbitMQ's quorum queues have no priorities, so a publish with a priority
    /// is then [`Error::Unsupported`]. A group queue that exists as a classic queue
    /// cannot be joined this way (RabbitMQ refuses another queue type): delete it
    /// first. Broadcast queues stay classic: they belong to one connection.
    pub fn quorum_queues(mut self, yes: bool) -> Self {
        self.quorum = yes;
        self
    }

    /// Tells the backend it runs on a RabbitMQ cluster: group queues are quorum queues
    /// ([`quorum_queues`](Self::quorum_queues)). List the nodes in the URL or with
    /// [`address`](Self::address) so that connections fail over.
    pub fn cluster(self) -> Self {
        self.quorum_queues(true)
    }

    /// With quorum queues, how many times the broker delivers a group message before
    /// it gives up on it (`x-delivery-limit`): a message whose handler keeps crashing
    /// its member then goes to the [`dead_letter_topic`](Self::dead_letter_topic), or
    /// is dropped without one. Nacks with requeue are counted by the library
    /// ([`Delivery::attempt`](pubsub_core::Delivery::attempt)), not here.
    pub fn delivery_limit(mut self, deliveries: u32) -> Self {
        self.delivery_limit = Some(deliveries);
        self
    }

    /// Where group queues dead-letter what they give up on: a message rejected
    /// without requeue, or past the [`delivery_limit`](Self::delivery_limit), is
    /// published to this topic (on the backend's exchange) by the broker itself.
    pub fn dead_letter_topic(mut self, topic: impl Into<String>) -> Self {
        self.dead_letter_topic = Some(topic.into());
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

    /// Messages a broadcast subscriber holds on the client (default 1024, at most
    /// 65,535): its consumer's prefetch, acknowledged as the subscriber reads them. A
    /// subscriber further behind leaves the rest in its broker queue, up to the
    /// [`backlog`](Self::backlog). A subscription's own
    /// [`SubscribeOptions::buffer`](pubsub_core::SubscribeOptions) wins. Nothing is
    /// allocated for it until messages wait.
    pub fn buffer(mut self, messages: usize) -> Self {
        self.buffer = messages.max(1);
        self
    }

    /// Messages a broadcast subscriber's broker queue keeps for it beyond its
    /// [`buffer`](Self::buffer) (default 10,000; `x-max-length`). When the subscriber
    /// falls further behind, the broker drops the oldest and the subscription gets a
    /// [`Signal::Gap`](pubsub_core::Signal::Gap) that says how many.
    pub fn backlog(mut self, messages: u32) -> Self {
        self.backlog = messages;
        self
    }

    /// A limit in bytes (of message bodies) on a broadcast subscriber's broker queue
    /// too (`x-max-length-bytes`; default none).
    pub fn backlog_bytes(mut self, bytes: u32) -> Self {
        self.backlog_bytes = Some(bytes);
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

    /// Another broker address, `host:port`, tried after those of the URL: a node of
    /// the same cluster, with the URL's credentials, vhost and options. The URL may
    /// also list several, `amqp://user:password@node1:5672,node2:5672/vhost`. The
    /// first that answers is used; when its connection fails, the next one made goes
    /// to the first that answers again, starting with the one that worked last.
    pub fn address(mut self, host_port: impl Into<String>) -> Self {
        self.more_addresses.push(host_port.into());
        self
    }

    /// The broker addresses, each with the URL's other parts and the heartbeat applied.
    pub(crate) fn addresses(&self) -> Result<Vec<Address>> {
        let redacted = redact(&self.url);
        let invalid = |why: String| Error::InvalidUrl(format!("{redacted}: {why}"));
        let (scheme, rest) = self
            .url
            .split_once("://")
            .ok_or_else(|| invalid("not a URL".to_owned()))?;
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(authority_end);
        let (user, hosts) = match authority.rsplit_once('@') {
            Some((user, hosts)) => (format!("{user}@"), hosts),
            None => (String::new(), authority),
        };
        let hosts = hosts
            .split(',')
            .map(str::to_owned)
            .chain(self.more_addresses.iter().cloned());
        hosts
            .map(|host_port| {
                if host_port.is_empty() {
                    return Err(invalid("an empty broker address".to_owned()));
                }
                let url = format!("{scheme}://{user}{host_port}{tail}");
                let mut uri: AMQPUri = url.parse().map_err(|e: String| {
                    // The parser quotes the URL in some of its messages.
                    invalid(e.replace(&url, &redacted))
                })?;
                // The parser only keeps host names and falls back to `localhost` for
                // an IP address, which may resolve to another address family than the
                // broker's.
                if let Some(ip) = host(&host_port).and_then(|h| h.parse::<std::net::IpAddr>().ok())
                {
                    uri.authority.host = ip.to_string();
                }
                if let Some(heartbeat) = self.heartbeat {
                    uri.query.heartbeat =
                        Some(u16::try_from(heartbeat.as_secs()).unwrap_or(u16::MAX));
                }
                let display = match uri.authority.host.contains(':') {
                    true => format!("[{}]:{}", uri.authority.host, uri.authority.port),
                    false => format!("{}:{}", uri.authority.host, uri.authority.port),
                };
                Ok(Address { uri, display })
            })
            .collect()
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

/// The host of a `host:port` (brackets of an IPv6 address removed).
fn host(host_port: &str) -> Option<&str> {
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
        let addresses = AmqpBuilder::new("amqp://u:p@127.0.0.1:5673/v")
            .addresses()
            .unwrap();
        let uri = &addresses[0].uri;
        assert_eq!(uri.authority.host, "127.0.0.1");
        assert_eq!(uri.authority.port, 5673);
        assert_eq!(uri.vhost, "v");
        assert_eq!(host("[::1]:5672"), Some("::1"));
    }

    #[test]
    fn several_addresses_share_credentials_vhost_and_options() {
        let addresses =
            AmqpBuilder::new("amqp://u:p@127.0.0.1:5673,localhost,[::1]:5675/v?heartbeat=7")
                .address("10.0.0.4:5676")
                .addresses()
                .unwrap();
        let shown: Vec<_> = addresses.iter().map(|a| a.display.as_str()).collect();
        assert_eq!(
            shown,
            [
                "127.0.0.1:5673",
                "localhost:5672",
                "[::1]:5675",
                "10.0.0.4:5676"
            ]
        );
        for address in &addresses {
            assert_eq!(address.uri.authority.userinfo.username, "u");
            assert_eq!(address.uri.authority.userinfo.password, "p");
            assert_eq!(address.uri.vhost, "v");
            assert_eq!(address.uri.query.heartbeat, Some(7));
        }
        let err = AmqpBuilder::new("amqp://u:s3cret@h1,,h2/")
            .addresses()
            .unwrap_err();
        assert!(matches!(err, Error::InvalidUrl(_)), "{err}");
        assert!(!err.to_string().contains("s3cret"), "{err}");
    }

    #[test]
    fn bad_urls_are_typed_errors_without_the_password() {
        for url in ["http://u:s3cret@h/", "amqp://u:s3cret@h:notaport/", ""] {
            let err = AmqpBuilder::new(url).addresses().unwrap_err();
            assert!(matches!(err, Error::InvalidUrl(_)), "{url}: {err}");
            assert!(!err.to_string().contains("s3cret"), "{err}");
        }
    }
}
