//! OpenPaaS ESN: each node has a local bus (in-process, ESN's event emitter) and a
//! global bus (RabbitMQ between nodes). Modules talk on the local bus; the messages
//! controller forwards `message:stored` and `message:activity` to the global bus,
//! where every node receives them.

use std::borrow::Cow;

use pubsub_core::{Delivery, Event, Handler, PubSub, Result};
use pubsub_local::LocalBackend;
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
            global: pubsub_connect::connect(global_url).await?,
        })
    }
}

/// One delivery to a subscriber of the demo: who received what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// The receiving node.
    pub node: &'static str,
    /// `local` or `global`.
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

/// Subscribes a callback on `bus` that prints each message and reports it, as an ESN
/// module's `pubsub.topic(name).subscribe(callback)` does.
async fn listen(
    node: &'static str,
    bus_name: &'static str,
    bus: &PubSub,
    topic: &str,
    seen: &UnboundedSender<Receipt>,
) -> Result<Handler> {
    let seen = seen.clone();
    let mut handler = bus.topic(topic).on(move |d: Delivery| {
        let seen = seen.clone();
        async move {
            println!(
                "[{node}] {bus_name} {}: {}",
                d.topic(),
                String::from_utf8_lossy(d.payload())
            );
            seen.send(Receipt {
                node,
                bus: bus_name,
                topic: d.topic().to_owned(),
            })?;
            Ok(())
        }
    });
    handler.ready().await?;
    Ok(handler)
}

/// Runs the demo: two nodes on the global bus at `global_url`; node `a` publishes
/// ESN's local topics and a new message, forwarded to global; both nodes receive the
/// global events. Returns once everything expected has arrived.
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

    // Four local deliveries on node a (message:activity among them), and each global
    // topic on both nodes.
    let expected = 4 + 2 * GLOBAL_TOPICS.len();
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
