//! Raw `redis` Streams, written the way a user of the redis crate would: XADD on a
//! multiplexed connection (as many in flight as our backend is given), and per
//! subscriber a connection of its own that blocks in XREAD, or in XREADGROUP with an
//! XACK for each message on the shared connection.

use std::collections::VecDeque;

use bytes::Bytes;
use redis::aio::MultiplexedConnection;
use redis::streams::StreamReadReply;
use redis::Value;

use crate::client::{BenchResult, Client, Publisher, Receive, Recv, Subscriber};

/// Entries a stream keeps, as our backend's default.
const MAX_LEN: usize = 100_000;
/// Unacked messages a group member reads at once, as our backend's default prefetch.
const PREFETCH: usize = 16;

/// A Redis Streams client whose publishers keep `depth` publishes in flight.
pub struct RedisStreamsClient {
    client: redis::Client,
    shared: MultiplexedConnection,
    depth: usize,
}

impl RedisStreamsClient {
    /// Connects to `url`.
    pub async fn connect(url: &str, depth: usize) -> BenchResult<Self> {
        let client = redis::Client::open(url)?;
        let shared = client.get_multiplexed_async_connection().await?;
        Ok(RedisStreamsClient {
            client,
            shared,
            depth,
        })
    }
}

impl Client for RedisStreamsClient {
    type Publisher = StreamPublisher;
    type Subscriber = StreamSubscriber;

    fn depth(&self) -> usize {
        self.depth
    }

    async fn publisher(&self, topic: &str) -> BenchResult<StreamPublisher> {
        Ok(StreamPublisher {
            connection: self.shared.clone(),
            key: topic.to_owned(),
        })
    }

    /// Broadcast (XREAD) and groups (XREADGROUP); a stream is one key: no patterns.
    async fn subscribe(
        &self,
        topic: &str,
        how: Receive<'_>,
    ) -> BenchResult<Option<StreamSubscriber>> {
        // Blocking reads wait up to 5 s: no response timeout on their connection.
        let config = redis::AsyncConnectionConfig::new().set_response_timeout(None);
        let mut reading = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        let mode = match how {
            Receive::Pattern => return Ok(None),
            Receive::Broadcast => {
                let last: redis::streams::StreamRangeReply = redis::cmd("XREVRANGE")
                    .arg(topic)
                    .arg("+")
                    .arg("-")
                    .arg("COUNT")
                    .arg(1)
                    .query_async(&mut reading)
                    .await?;
                let cursor = last.ids.first().map_or("0-0".to_owned(), |e| e.id.clone());
                Mode::Broadcast { cursor }
            }
            Receive::Group(group) => {
                let created: redis::RedisResult<()> = redis::cmd("XGROUP")
                    .arg("CREATE")
                    .arg(topic)
                    .arg(group)
                    .arg("$")
                    .arg("MKSTREAM")
                    .query_async(&mut reading)
                    .await;
                if let Err(e) = created {
                    if e.code() != Some("BUSYGROUP") {
                        return Err(e.into());
                    }
                }
                Mode::Group {
                    group: group.to_owned(),
                    consumer: format!("raw-{}", uuid::Uuid::new_v4().simple()),
                }
            }
        };
        Ok(Some(StreamSubscriber {
            reading,
            acking: self.shared.clone(),
            key: topic.to_owned(),
            mode,
            buffered: VecDeque::new(),
        }))
    }
}

/// XADD to one stream on the shared multiplexed connection.
pub struct StreamPublisher {
    connection: MultiplexedConnection,
    key: String,
}

impl Publisher for StreamPublisher {
    async fn publish(&self, payload: Bytes) -> BenchResult<()> {
        let mut connection = self.connection.clone();
        redis::cmd("XADD")
            .arg(&self.key)
            .arg("MAXLEN")
            .arg("~")
            .arg(MAX_LEN)
            .arg("*")
            .arg("payload")
            .arg(payload.as_ref())
            .exec_async(&mut connection)
            .await?;
        Ok(())
    }
}

enum Mode {
    Broadcast { cursor: String },
    Group { group: String, consumer: String },
}

/// One reader of a stream.
pub struct StreamSubscriber {
    reading: MultiplexedConnection,
    acking: MultiplexedConnection,
    key: String,
    mode: Mode,
    /// Entries read and not yet returned: (id, payload).
    buffered: VecDeque<(String, Bytes)>,
}

impl StreamSubscriber {
    async fn fill(&mut self) -> redis::RedisResult<()> {
        let read = match &self.mode {
            Mode::Broadcast { cursor } => {
                let mut read = redis::cmd("XREAD");
                read.arg("COUNT").arg(512).arg("BLOCK").arg(5000);
                read.arg("STREAMS").arg(&self.key).arg(cursor);
                read
            }
            Mode::Group { group, consumer } => {
                let mut read = redis::cmd("XREADGROUP");
                read.arg("GROUP").arg(group).arg(consumer);
                read.arg("COUNT").arg(PREFETCH).arg("BLOCK").arg(5000);
                read.arg("STREAMS").arg(&self.key).arg(">");
                read
            }
        };
        let value: Value = read.query_async(&mut self.reading).await?;
        if value == Value::Nil {
            return Ok(());
        }
        let reply: StreamReadReply = redis::from_redis_value(value)?;
        for entry in reply.keys.into_iter().flat_map(|k| k.ids) {
            let payload = match entry.map.get("payload") {
                Some(Value::BulkString(bytes)) => Bytes::copy_from_slice(bytes),
                _ => Bytes::new(),
            };
            if let Mode::Broadcast { cursor } = &mut self.mode {
                cursor.clone_from(&entry.id);
            }
            self.buffered.push_back((entry.id, payload));
        }
        Ok(())
    }
}

impl Subscriber for StreamSubscriber {
    async fn recv(&mut self) -> Recv {
        while self.buffered.is_empty() {
            if self.fill().await.is_err() {
                return Recv::Closed;
            }
        }
        let Some((id, payload)) = self.buffered.pop_front() else {
            return Recv::Closed;
        };
        if let Mode::Group { group, .. } = &self.mode {
            let acked: redis::RedisResult<()> = redis::cmd("XACK")
                .arg(&self.key)
                .arg(group)
                .arg(&id)
                .exec_async(&mut self.acking)
                .await;
            if acked.is_err() {
                return Recv::Closed;
            }
        }
        Recv::Msg(payload)
    }
}
