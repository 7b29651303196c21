//! OpenPaaS ESN: each node has a local bus (in-process, ESN's event emitter) and a
//! global bus (RabbitMQ between nodes). Modules talk on the local bus; the messages
//! controller forwards `message:stored` and `message:activity` to the global bus,
//! where every node receives them. A point-to-point channel ([`PointToPoint`]) has
//! one receiver per node on ESN's durable queue, and each message goes to one of
//! them: ours join the queue that ESN's own receivers consume.

use std::borrow::Cow;

use pubsub_amqp::{AmqpBackend, QueueSpec};
use pubsub_core::{Delivery, Error, Event, Handler, HandlerOptions, PubSub, Result};
use pubsub_local::LocalBackend;
use serde::Serialize;
use serde_json::json;
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};

use crate::catalog::esn::{
    ActivityObject, CommunityChange, CommunityJoin, Id, LoginSuccess, MessageActivity,
    MessageStored, MongodbConnectionAvailable, TimelineEntry, GLOBAL_TOPICS,
};
use crate::catalog::Document;
use crate::demo;

/// One ESN instance: its own local bus and its connection to the global bus.
#[derive(Debug, Clone)]
pub struct Node {
    /// The node's name, for the printout.
    pub name: &'static str,
    /// `pubsub.local`.
    pub local: PubSub,
    /// `pubsub.global`.
    pub global: PubSub,
}

impl Node {
    /// A node with a fresh local bus on the global bus at `global_url`.
    pub async fn start(name: &'static str, global_url: &str) -> Result<Self> {
        Ok(Node {
            name,
            local: LocalBackend::new().into(),
            global: pubsub_connect::connect(&with_esn_heartbeat(global_url)).await?,
        })
    }
}

/// ESN's heartbeat, in seconds: amqp-connection-manager adds `heartbeat=5` to every
/// URL it connects to.
pub const HEARTBEAT_SECONDS: u16 = 5;

/// `url` with ESN's heartbeat when it is an AMQP URL that sets none, so that a dead
/// connection is noticed as soon as ESN's nodes notice theirs.
///
/// ```
/// use pubsub_seeds::esn::with_esn_heartbeat;
///
/// assert_eq!(with_esn_heartbeat("amqp://h/%2f"), "amqp://h/%2f?heartbeat=5");
/// assert_eq!(with_esn_heartbeat("amqp://h/v?lazy=true"), "amqp://h/v?lazy=true&heartbeat=5");
/// assert_eq!(with_esn_heartbeat("amqp://h/v?heartbeat=30"), "amqp://h/v?heartbeat=30");
/// assert_eq!(with_esn_heartbeat("memory://"), "memory://");
/// ```
pub fn with_esn_heartbeat(url: &str) -> String {
    let amqp = url.starts_with("amqp://") || url.starts_with("amqps://");
    let (_, query) = url.split_once('?').unwrap_or((url, ""));
    if !amqp || query.split('&').any(|pair| pair.starts_with("heartbeat=")) {
        return url.to_owned();
    }
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}heartbeat={HEARTBEAT_SECONDS}")
}

/// ESN's point-to-point messaging channel `N` (`pointToPoint.get(N)`): a fanout
/// exchange `N` and a durable queue `N` with no arguments bound to it, consumed by
/// every receiver of every node, ESN's and ours alike, each message handled by
/// one.
///
/// ```no_run
/// use pubsub_seeds::esn::PointToPoint;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> pubsub_core::Result<()> {
/// let channel = PointToPoint::open("amqp://guest:guest@127.0.0.1:5672/%2f", "alarms").await?;
/// let receiver = channel
///     .receive(|delivery| async move {
///         println!("{}", String::from_utf8_lossy(delivery.payload()));
///         Ok(())
///     })
///     .await?;
/// channel.send(&serde_json::json!({"alarm": 1})).await?;
/// # receiver.stop();
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct PointToPoint {
    bus: PubSub,
    name: String,
}

impl PointToPoint {
    /// Channel `name` on the global bus at `global_url`: on RabbitMQ (`amqp://` or
    /// `amqps://`, with `lazy` and `connect_timeout` as for any bus URL), ESN's
    /// topology on a connection of its own; on any other bus, a group.
    pub async fn open(global_url: &str, name: &str) -> Result<Self> {
        let bus = match global_url.split_once("://") {
            Some(("amqp" | "amqps", _)) => {
                amqp_channel(&with_esn_heartbeat(global_url), name).await?
            }
            _ => pubsub_connect::connect(global_url).await?,
        };
        Ok(PointToPoint {
            bus,
            name: name.to_owned(),
        })
    }

    /// ESN's `send(message)`: a bare JSON body published to exchange `N` with an
    /// empty routing key. As on ESN, a send before any receiver ever declared the
    /// queue is dropped by the broker.
    pub async fn send<T: Serialize + ?Sized>(&self, message: &T) -> Result<()> {
        self.bus.topic(&self.name).publish(message).await
    }

    /// A receiver next to ESN's own: a member of the group that consumes queue `N`.
    /// `receiver`'s success acknowledges the message, once; an error leaves it to
    /// the library's retry, as a handler's error does.
    pub async fn receive<F, Fut>(&self, receiver: F) -> Result<Handler>
    where
        F: Fn(Delivery) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = pubsub_core::HandlerResult> + Send + 'static,
    {
        let options = HandlerOptions::new().group(&self.name);
        let mut handler = self.bus.topic(&self.name).on_with(options, receiver);
        handler.ready().await?;
        Ok(handler)
    }
}

/// ESN's point-to-point topology on RabbitMQ: the group named after the channel
/// consumes the queue named after it, declared durable with no arguments as ESN
/// declares it, so that neither side's declare is refused.
async fn amqp_channel(url: &str, name: &str) -> Result<PubSub> {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut client = Vec::new();
    let mut lazy = false;
    let mut timeout = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            // The layout is ESN's whatever the URL says.
            Some(("routing", _)) => {}
            Some(("lazy", value)) => lazy = value == "true",
            Some(("connect_timeout", value)) => {
                let parsed = humantime::parse_duration(value)
                    .map_err(|e| Error::InvalidUrl(format!("connect_timeout={value}: {e}")))?;
                timeout = Some(parsed);
            }
            _ => client.push(pair),
        }
    }
    let url = match client.is_empty() {
        true => base.to_owned(),
        false => format!("{base}?{}", client.join("&")),
    };
    let mut builder = AmqpBackend::builder(&url)
        .fanout_per_topic()
        .queue(QueueSpec::declare(name));
    if let Some(timeout) = timeout {
        builder = builder.connect_timeout(timeout);
    }
    let backend = match lazy {
        true => builder.connect_lazy()?,
        false => builder.connect().await?,
    };
    Ok(backend.into())
}

/// One delivery to a subscriber of the demo: who received what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// The receiving node.
    pub node: &'static str,
    /// `local`, `global` or `point-to-point`.
    pub bus: &'static str,
    /// The topic.
    pub topic: String,
}

/// What the demo saw, in order of arrival.
#[derive(Debug, Default)]
pub struct Report {
    /// Every delivery to a subscriber of the demo.
    pub received: Vec<Receipt>,
}

impl Report {
    /// How many times `node` received `topic` on `bus`.
    pub fn count(&self, node: &str, bus: &str, topic: &str) -> usize {
        self.received
            .iter()
            .filter(|r| r.node == node && r.bus == bus && r.topic == topic)
            .count()
    }
}

/// The name of the demo's point-to-point channel.
pub const DEMO_CHANNEL: &str = "esn.demo.alarms";

/// How many messages the demo sends on its point-to-point channel.
pub const DEMO_SENDS: usize = 4;

/// A callback that prints each message and reports it.
fn reporter(
    node: &'static str,
    bus_name: &'static str,
    seen: &UnboundedSender<Receipt>,
) -> impl Fn(Delivery) -> std::future::Ready<pubsub_core::HandlerResult> + Send + Sync + 'static {
    let seen = seen.clone();
    move |d: Delivery| {
        println!(
            "[{node}] {bus_name} {}: {}",
            d.topic(),
            String::from_utf8_lossy(d.payload())
        );
        let receipt = Receipt {
            node,
            bus: bus_name,
            topic: d.topic().to_owned(),
        };
        std::future::ready(seen.send(receipt).map_err(Into::into))
    }
}

/// Subscribes a callback on `bus` that prints each message and reports it, as an ESN
/// module's `pubsub.topic(name).subscribe(callback)` does.
async fn listen(
    node: &'static str,
    bus_name: &'static str,
    bus: &PubSub,
    topic: &str,
    seen: &UnboundedSender<Receipt>,
) -> Result<Handler> {
    let mut handler = bus.topic(topic).on(reporter(node, bus_name, seen));
    handler.ready().await?;
    Ok(handler)
}

/// Runs the demo: two nodes on the global bus at `global_url`; node `a` publishes
/// ESN's local topics and a new message, forwarded to global; both nodes receive the
/// global events. Then each node has a receiver on the point-to-point channel
/// [`DEMO_CHANNEL`], and node `a` sends [`DEMO_SENDS`] messages, each handled by one
/// receiver. Returns once everything expected has arrived.
pub async fn run(global_url: &str) -> Result<Report> {
    let a = Node::start("a", global_url).await?;
    let b = Node::start("b", global_url).await?;
    let (seen, mut events) = unbounded_channel();
    let mut handlers = Vec::new();

    // Node a's modules on its local bus (the seed's summary table).
    for topic in [
        MessageActivity::TOPIC,
        CommunityJoin::TOPIC,
        LoginSuccess::TOPIC,
        MongodbConnectionAvailable::TOPIC,
    ] {
        handlers.push(listen(a.name, "local", &a.local, topic, &seen).await?);
    }
    // Every node's global subscribers.
    for node in [&a, &b] {
        for topic in GLOBAL_TOPICS {
            handlers.push(listen(node.name, "global", &node.global, topic, &seen).await?);
        }
    }

    a.local.send(&MongodbConnectionAvailable(())).await?;
    a.local
        .send(&LoginSuccess(document([
            ("_id", json!("u123")),
            ("firstname", json!("Awesome")),
        ])))
        .await?;
    a.local
        .send(&CommunityJoin(CommunityChange {
            author: Id::Text("u123".into()),
            target: Id::Text("u123".into()),
            community: Id::Text("c42".into()),
        }))
        .await?;

    // The messages controller: a message is stored, then its activity recorded; both
    // go to this node's modules and to every node.
    let stored = MessageStored(document([
        ("_id", json!(456)),
        ("objectType", json!("whatsup")),
        ("content", json!("Hello from node a")),
        ("author", json!(123)),
    ]));
    forward(&a, &stored).await?;
    forward(&a, &MessageActivity(post_activity())).await?;

    let channels = [
        PointToPoint::open(global_url, DEMO_CHANNEL).await?,
        PointToPoint::open(global_url, DEMO_CHANNEL).await?,
    ];
    for (node, channel) in [a.name, b.name].into_iter().zip(&channels) {
        handlers.push(
            channel
                .receive(reporter(node, "point-to-point", &seen))
                .await?,
        );
    }
    for alarm in 0..DEMO_SENDS {
        channels[0].send(&json!({ "alarm": alarm })).await?;
    }

    // Four local deliveries on node a (message:activity among them), each global
    // topic on both nodes, and each point-to-point message once.
    let expected = 4 + 2 * GLOBAL_TOPICS.len() + DEMO_SENDS;
    let mut report = Report::default();
    while report.received.len() < expected {
        report
            .received
            .push(demo::next(&mut events, "ESN deliveries").await?);
    }
    for handler in handlers {
        handler.stop();
    }
    Ok(report)
}

/// ESN's `pubsub.local.topic(name).forward(pubsub.global, data)`.
async fn forward<E: Event>(node: &Node, event: &E) -> Result<()> {
    let topic: Cow<'_, str> = event.topic();
    node.local.topic(&topic).forward(&node.global, event).await
}

/// The seed's example: user 123 sent message 456 to user 798.
fn post_activity() -> TimelineEntry {
    let object = |object_type: &str, id| ActivityObject {
        object_type: object_type.into(),
        id: Id::Number(id),
        image: None,
        display_name: None,
    };
    TimelineEntry {
        verb: "post".into(),
        language: "en".into(),
        published: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis().try_into().unwrap_or(i64::MAX)),
        actor: ActivityObject {
            image: Some(Id::Number(987654321)),
            display_name: Some("Awesome User".into()),
            ..object("user", 123)
        },
        object: object("whatsup", 456),
        target: vec![object("user", 798)],
        extra: Document::new(),
    }
}

fn document<const N: usize>(fields: [(&str, serde_json::Value); N]) -> Document {
    fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}
