//! The publisher of one topic on a cluster: an `SPUBLISH` to the shard of its
//! channel, and a `PUBLISH` for pattern subscribers where the bus has them on.

use std::sync::Arc;

use pubsub_core::backend::{PublishOptions, Publisher, Publishing};
use pubsub_core::{Error, Message, Result, TopicName};
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::Cmd;
use tokio::time::Instant;

use super::Cluster;
use crate::commands::cluster_send;
use crate::envelope;
use crate::errors::{convert, is_transient, retry};

/// The publisher of one topic: its channel name, prefix included, built once.
#[derive(Debug)]
pub(crate) struct ClusterPublisher {
    topic: TopicName,
    channel: Box<[u8]>,
    cluster: Arc<Cluster>,
}

impl ClusterPublisher {
    pub(crate) fn new(cluster: Arc<Cluster>, prefix: &str, topic: &TopicName) -> Self {
        let channel = [prefix.as_bytes(), topic.as_bytes()].concat().into();
        ClusterPublisher {
            topic: topic.clone(),
            channel,
            cluster,
        }
    }

    fn command(&self, name: &str, payload: &[u8]) -> Cmd {
        let mut publish = Cmd::with_capacity(3, name.len() + self.channel.len() + payload.len());
        publish.arg(name).arg(&*self.channel).arg(payload);
        publish
    }

    /// Sends `publish`, waiting through an outage (a failover) up to the publish
    /// timeout: by its channel's slot, or to `node` (the pattern path). An attempt
    /// that fails on a broken connection has the driver replace the connection.
    async fn send(&self, publish: &Cmd, node: Option<&RoutingInfo>) -> Result<()> {
        let deadline = Instant::now() + self.cluster.publish_timeout;
        retry(deadline, self.cluster.backoff.clone(), || async {
            let (generation, mut connection) = self.cluster.connection();
            let reply = match node {
                Some(node) => match connection
                    .route_command(publish.clone(), node.clone())
                    .await
                {
                    // A PUBLISH reaches the pattern subscribers from any node.
                    Err(e) if is_transient(&e) => {
                        let anywhere = RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random);
                        connection.route_command(publish.clone(), anywhere).await
                    }
                    done => done,
                },
                None => cluster_send(&connection, publish).await,
            };
            if reply.as_ref().is_err_and(is_transient) {
                self.cluster.renew(generation);
            }
            reply?.extract_error()
        })
        .await
        .map(drop)
        .map_err(|e| {
            convert(
                &format!("publish to {:?} on the Redis Cluster", self.topic),
                e,
            )
        })
    }
}

impl Publisher for ClusterPublisher {
    /// A cluster cannot count pattern subscribers on other nodes: a mandatory publish
    /// is an ordinary one (the capabilities say `no_responders: false`).
    fn publish(&self, message: Message, _options: PublishOptions) -> Publishing<'_> {
        if self.cluster.is_closed() {
            return Publishing::done(Err(Error::Closed));
        }
        let payload = match envelope::encode(&message, self.cluster.shared.raw) {
            Ok(payload) => payload,
            Err(e) => return Publishing::done(Err(e)),
        };
        drop(message);
        let sharded = self.command("SPUBLISH", &payload);
        let broadcast = self
            .cluster
            .patterns
            .then(|| self.command("PUBLISH", &payload));
        Publishing::pending(async move {
            match &broadcast {
                Some(broadcast) => {
                    // Every PUBLISH of the bus goes through one node, which forwards them
                    // to the others in order: patterns see one publisher's messages in
                    // the order it sent them, across topics too.
                    let node = &self.cluster.pattern_node;
                    let (a, b) =
                        tokio::join!(self.send(&sharded, None), self.send(broadcast, Some(node)));
                    a.and(b)
                }
                None => self.send(&sharded, None).await,
            }
        })
    }
}
