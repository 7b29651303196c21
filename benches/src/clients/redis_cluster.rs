//! Raw `redis` on a Redis Cluster, written the way a user of the redis crate would:
//! `SPUBLISH` on one cluster connection (RESP3, routed by the channel's slot, with as
//! many publishes in flight as our backend is given), and one cluster connection per
//! subscriber whose pushes carry the messages of its `SSUBSCRIBE`.

use bytes::Bytes;
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{PushInfo, PushKind, Value};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

use crate::client::{BenchResult, Client, Publisher, Receive, Recv, Subscriber};

/// A Redis Cluster client whose publishers keep `depth` publishes in flight.
pub struct RedisClusterClient {
    seeds: Vec<String>,
    publishing: ClusterConnection,
    depth: usize,
}

impl RedisClusterClient {
    /// Connects to the cluster of `seeds` (`redis://host:port` each).
    pub async fn connect(seeds: Vec<String>, depth: usize) -> BenchResult<Self> {
        let publishing = builder(&seeds).build()?.get_async_connection().await?;
        Ok(RedisClusterClient {
            seeds,
            publishing,
            depth,
        })
    }
}

fn builder(seeds: &[String]) -> ClusterClientBuilder {
    ClusterClientBuilder::new(seeds.to_vec()).use_protocol(redis::ProtocolVersion::RESP3)
}

impl Client for RedisClusterClient {
    type Publisher = ClusterPublisher;
    type Subscriber = ClusterSubscriber;

    fn depth(&self) -> usize {
        self.depth
    }

    async fn publisher(&self, topic: &str) -> BenchResult<ClusterPublisher> {
        Ok(ClusterPublisher {
            connection: self.publishing.clone(),
            channel: topic.to_owned(),
        })
    }

    /// Sharded channels only: patterns and groups are not what this baseline measures.
    async fn subscribe(
        &self,
        topic: &str,
        how: Receive<'_>,
    ) -> BenchResult<Option<ClusterSubscriber>> {
        if !matches!(how, Receive::Broadcast) {
            return Ok(None);
        }
        let (pushes, messages) = unbounded_channel();
        let mut connection = builder(&self.seeds)
            .push_sender(pushes)
            .build()?
            .get_async_connection()
            .await?;
        connection.ssubscribe(topic).await?;
        Ok(Some(ClusterSubscriber {
            _connection: connection,
            messages,
        }))
    }
}

/// SPUBLISH to one channel on the shared cluster connection.
pub struct ClusterPublisher {
    connection: ClusterConnection,
    channel: String,
}

impl Publisher for ClusterPublisher {
    async fn publish(&self, payload: Bytes) -> BenchResult<()> {
        // A clone of a cluster connection is a handle on the same connections.
        let mut connection = self.connection.clone();
        redis::cmd("SPUBLISH")
            .arg(&self.channel)
            .arg(payload.as_ref())
            .exec_async(&mut connection)
            .await?;
        Ok(())
    }
}

/// The sharded messages pushed to one subscriber's connection.
pub struct ClusterSubscriber {
    /// Holds the subscription open.
    _connection: ClusterConnection,
    messages: UnboundedReceiver<PushInfo>,
}

impl Subscriber for ClusterSubscriber {
    async fn recv(&mut self) -> Recv {
        while let Some(push) = self.messages.recv().await {
            if push.kind != PushKind::SMessage {
                continue;
            }
            if let Some(Value::BulkString(payload)) = push.data.into_iter().nth(1) {
                return Recv::Msg(Bytes::from(payload));
            }
        }
        Recv::Closed
    }
}
