//! Raw `redis`, written the way a user of the redis crate would: PUBLISH on a
//! multiplexed connection (with as many publishes in flight as our backend is
//! given, or one at a time), and one PubSub connection per subscriber with
//! SUBSCRIBE or PSUBSCRIBE.

use bytes::Bytes;
use futures::StreamExt;
use redis::aio::{MultiplexedConnection, PubSubStream};

use crate::client::{BenchResult, Client, Publisher, Receive, Recv, Subscriber};

/// A Redis client whose publishers keep `depth` publishes in flight.
pub struct RedisClient {
    client: redis::Client,
    publishing: MultiplexedConnection,
    depth: usize,
}

impl RedisClient {
    /// Connects to `url`.
    pub async fn connect(url: &str, depth: usize) -> BenchResult<Self> {
        let client = redis::Client::open(url)?;
        let publishing = client.get_multiplexed_async_connection().await?;
        Ok(RedisClient {
            client,
            publishing,
            depth,
        })
    }
}

impl Client for RedisClient {
    type Publisher = RedisPublisher;
    type Subscriber = RedisSubscriber;

    fn depth(&self) -> usize {
        self.depth
    }

    async fn publisher(&self, topic: &str) -> BenchResult<RedisPublisher> {
        Ok(RedisPublisher {
            connection: self.publishing.clone(),
            channel: topic.to_owned(),
        })
    }

    /// Broadcast and patterns; Redis PubSub has no groups.
    async fn subscribe(
        &self,
        topic: &str,
        how: Receive<'_>,
    ) -> BenchResult<Option<RedisSubscriber>> {
        let mut pubsub = self.client.get_async_pubsub().await?;
        match how {
            Receive::Broadcast => pubsub.subscribe(topic).await?,
            // The benchmark's patterns use `*` between dots only, where a Redis glob
            // and an AMQP pattern agree.
            Receive::Pattern => pubsub.psubscribe(topic).await?,
            Receive::Group(_) => return Ok(None),
        }
        Ok(Some(RedisSubscriber(pubsub.into_on_message())))
    }
}

/// PUBLISH to one channel on the shared multiplexed connection.
pub struct RedisPublisher {
    connection: MultiplexedConnection,
    channel: String,
}

impl Publisher for RedisPublisher {
    async fn publish(&self, payload: Bytes) -> BenchResult<()> {
        // A clone of a multiplexed connection is a handle on the same socket.
        let mut connection = self.connection.clone();
        redis::cmd("PUBLISH")
            .arg(&self.channel)
            .arg(payload.as_ref())
            .exec_async(&mut connection)
            .await?;
        Ok(())
    }
}

/// One PubSub connection's messages.
pub struct RedisSubscriber(PubSubStream);

impl Subscriber for RedisSubscriber {
    async fn recv(&mut self) -> Recv {
        match self.0.next().await {
            Some(message) => Recv::Msg(Bytes::copy_from_slice(message.get_payload_bytes())),
            None => Recv::Closed,
        }
    }
}
