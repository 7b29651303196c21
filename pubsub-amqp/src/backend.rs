//! `AmqpBackend`: the `Backend` over one lapin connection.

use std::sync::Arc;

use pubsub_core::backend::{system, Backend, Capabilities, Publisher};
use pubsub_core::{async_trait, Error, Pattern, Result, SubscribeOptions, Subscription, TopicName};

use crate::connection::{Live, Shared};
use crate::inbox::ReplyPublisher;
use crate::options::{redact, AmqpBuilder, Routing};
use crate::publish::TopicPublisher;
use crate::route::route;

/// RabbitMQ's default `max_message_size` (128 MiB).
const MAX_MESSAGE_SIZE: usize = 128 * 1024 * 1024;

/// The AMQP 0-9-1 backend: see the [crate docs](crate) for how topics, groups and
/// messages map to RabbitMQ. Clones share the connection.
///
/// ```no_run
/// use pubsub_amqp::AmqpBackend;
/// use pubsub_core::PubSub;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> pubsub_core::Result<()> {
/// let backend = AmqpBackend::connect("amqp://guest:guest@127.0.0.1:5672/%2f").await?;
/// // brainlife binds to two exchanges over one connection.
/// let wf = PubSub::new(backend.exchange("wf"));
/// let warehouse = PubSub::new(backend.exchange("warehouse"));
/// let mut tasks = wf.topic("task.42.#").subscribe().await?;
/// # drop((warehouse, tasks));
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct AmqpBackend {
    shared: Arc<Shared>,
    exchange: Arc<str>,
    routing: Routing,
}

impl AmqpBackend {
    /// Connects to `url` (`amqp://user:password@host:port/vhost`, or `amqps://`)
    /// with the default options: one durable topic exchange `pubsub`, publisher
    /// confirms, prefetch 32, `x-max-priority` 9 on group queues.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a cancelled connect leaves no connection open.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::builder(url).connect().await
    }

    /// A backend that connects on first use: nothing is checked but the URL.
    pub fn connect_lazy(url: &str) -> Result<Self> {
        Self::builder(url).connect_lazy()
    }

    /// Options, then [`connect`](AmqpBuilder::connect).
    pub fn builder(url: &str) -> AmqpBuilder {
        AmqpBuilder::new(url)
    }

    pub(crate) fn from_builder(options: AmqpBuilder) -> Result<Self> {
        let addresses = options.addresses()?;
        let exchange = options.exchange.as_str().into();
        let routing = options.routing;
        let display = redact(&options.url);
        Ok(AmqpBackend {
            shared: Arc::new(Shared::new(options, display, addresses)),
            exchange,
            routing,
        })
    }

    pub(crate) async fn connection(&self) -> Result<Arc<Live>> {
        self.shared.live().await
    }

    /// A backend on the topic exchange `name` that shares this one's connection: no
    /// new connection, no I/O until used.
    pub fn exchange(&self, name: &str) -> AmqpBackend {
        AmqpBackend {
            shared: Arc::clone(&self.shared),
            exchange: name.into(),
            routing: Routing::Topic,
        }
    }

    /// A backend that publishes to the durable headers exchange `name` (declared on
    /// first use, as Infrahub declares `infrahub.delayed`), sharing this one's
    /// connection. The exchange routes by the message's headers; the topic is the
    /// routing key, which the queues it routes to keep (and dead-letter with).
    /// Subscribing to it is [`Error::Unsupported`]: bind a queue with
    /// [`QueueSpec::bind_headers`](crate::QueueSpec::bind_headers) instead.
    ///
    /// ```no_run
    /// use pubsub_amqp::AmqpBackend;
    /// use pubsub_core::{Message, PubSub};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> pubsub_core::Result<()> {
    /// let backend = AmqpBackend::connect("amqp://guest:guest@127.0.0.1:5672/%2f").await?;
    /// let delayed = PubSub::new(backend.headers_exchange("infrahub.delayed"));
    /// let retry = Message::new(r#"{"meta":{"retry_count":1}}"#).with_header("delay", 5000);
    /// delayed.topic("git.repository.connectivity").publish_message(retry).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn headers_exchange(&self, name: &str) -> AmqpBackend {
        AmqpBackend {
            shared: Arc::clone(&self.shared),
            exchange: name.into(),
            routing: Routing::Headers,
        }
    }

    /// Declares `queue` now, with its flags, arguments and headers bindings
    /// ([`QueueSpec::bind_headers`](crate::QueueSpec::bind_headers)): the topology
    /// a program owns, such as Infrahub's delay queues that nobody consumes. A
    /// queue that exists with other flags or arguments is refused, naming it.
    pub async fn declare_queue(&self, queue: &crate::QueueSpec) -> Result<()> {
        let live = self.shared.live().await?;
        crate::topology::declare_queue(&live.connection, queue).await
    }

    /// The exchange this backend publishes to (in fanout-per-topic mode, the topic
    /// names the exchange instead).
    pub fn exchange_name(&self) -> &str {
        &self.exchange
    }
}

#[deny(clippy::missing_trait_methods)]
#[async_trait]
impl Backend for AmqpBackend {
    fn capabilities(&self) -> Capabilities {
        Capabilities::new()
            .system(system::RABBITMQ)
            .groups(true)
            .acks(true)
            .priorities(self.shared.options.max_priority > 0 && !self.shared.options.quorum)
            .persistence(true)
            .patterns(self.routing == Routing::Topic)
            .headers(true)
            .no_responders(true)
            .max_payload(Some(MAX_MESSAGE_SIZE))
    }

    fn publisher(&self, topic: &TopicName) -> Result<Arc<dyn Publisher>> {
        if self.shared.is_closed() {
            return Err(Error::Closed);
        }
        let route = route(&self.exchange, self.routing, &Pattern::from(topic.clone()))?;
        let publisher = TopicPublisher::new(Arc::clone(&self.shared), topic, route)?;
        Ok(Arc::new(publisher))
    }

    async fn subscribe(
        &self,
        pattern: &Pattern,
        options: SubscribeOptions,
    ) -> Result<Subscription> {
        if options.inbox {
            return crate::inbox::subscribe(&self.shared, pattern, &options).await;
        }
        if self.routing == Routing::Headers {
            return Err(Error::Unsupported(format!(
                "subscribing to {pattern:?} on the headers exchange {:?}: it routes by \
                 headers, not topics; bind a queue to it with QueueSpec::bind_headers",
                &*self.exchange
            )));
        }
        let route = route(&self.exchange, self.routing, pattern)?;
        crate::subscribe::subscribe(&self.shared, route, pattern, options).await
    }

    /// Replies go to the default exchange with `address`, a queue's name, as routing
    /// key: see [`crate::inbox`].
    fn reply_publisher(&self, address: &str) -> Result<Arc<dyn Publisher>> {
        if self.shared.is_closed() {
            return Err(Error::Closed);
        }
        let publisher = ReplyPublisher::new(Arc::clone(&self.shared), address)?;
        Ok(Arc::new(publisher))
    }

    async fn close(&self) -> Result<()> {
        self.shared.close().await
    }
}

impl std::fmt::Debug for AmqpBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmqpBackend")
            .field("broker", &self.shared.display)
            .field("exchange", &self.exchange)
            .field("routing", &self.routing)
            .field("connection", &self.shared.state())
            .finish()
    }
}
