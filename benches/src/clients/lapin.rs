//! Raw `lapin`, written the way a user of lapin would, with the settings our AMQP
//! backend uses: a durable topic exchange, persistent messages with publisher
//! confirms, exclusive auto-delete queues without acks for broadcast, and a durable
//! `x-max-priority` queue (or a quorum queue) with manual acks and a prefetch of 32
//! for a group; publishers on one channel, or taking several in turn.

use bytes::Bytes;
use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, Consumer,
    ExchangeKind,
};

use crate::client::{BenchResult, Client, Publisher, Receive, Recv, Subscriber};

/// Delivery mode 2: persistent, as our backend publishes by default.
const PERSISTENT: u8 = 2;
/// Our backend's default prefetch and priority levels of group queues.
const PREFETCH: u16 = 32;
const MAX_PRIORITY: u8 = 9;

/// How a [`LapinClient`] publishes and queues.
#[derive(Debug, Clone, Copy)]
pub struct LapinSetup {
    /// Publishes in flight per publisher.
    pub depth: usize,
    /// Confirming channels that publishers take in turn.
    pub channels: usize,
    /// Group queues as quorum queues (no priorities there).
    pub quorum: bool,
}

/// One connection, confirming publishing channels, one topic exchange.
pub struct LapinClient {
    connection: Connection,
    publishing: Vec<Channel>,
    turn: std::sync::atomic::AtomicUsize,
    exchange: ShortString,
    setup: LapinSetup,
}

impl LapinClient {
    /// Connects to `url` and declares `exchange`, set up as `setup` says.
    pub async fn connect(url: &str, exchange: &str, setup: LapinSetup) -> BenchResult<Self> {
        let connection = Connection::connect(url, ConnectionProperties::default()).await?;
        let mut publishing = Vec::with_capacity(setup.channels);
        for _ in 0..setup.channels.max(1) {
            let channel = connection.create_channel().await?;
            channel
                .confirm_select(ConfirmSelectOptions::default())
                .await?;
            publishing.push(channel);
        }
        let exchange: ShortString = exchange.into();
        let options = ExchangeDeclareOptions {
            durable: true,
            ..ExchangeDeclareOptions::default()
        };
        publishing[0]
            .exchange_declare(
                exchange.clone(),
                ExchangeKind::Topic,
                options,
                FieldTable::default(),
            )
            .await?;
        Ok(LapinClient {
            connection,
            publishing,
            turn: std::sync::atomic::AtomicUsize::new(0),
            exchange,
            setup,
        })
    }
}

impl Client for LapinClient {
    type Publisher = LapinPublisher;
    type Subscriber = LapinSubscriber;

    fn depth(&self) -> usize {
        self.setup.depth
    }

    /// Each publisher on the next channel, in turn.
    async fn publisher(&self, topic: &str) -> BenchResult<LapinPublisher> {
        let turn = self.turn.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(LapinPublisher {
            channel: self.publishing[turn % self.publishing.len()].clone(),
            exchange: self.exchange.clone(),
            routing_key: topic.into(),
        })
    }

    async fn close(&self) {
        let _ = self.connection.close(200, "benchmark done".into()).await;
    }

    /// One channel per subscription, as a lapin user subscribes; RabbitMQ allows 2047
    /// channels on a connection by default.
    fn max_subscriptions(&self) -> Option<usize> {
        Some(2_000)
    }

    async fn subscribe(
        &self,
        topic: &str,
        how: Receive<'_>,
    ) -> BenchResult<Option<LapinSubscriber>> {
        let channel = self.connection.create_channel().await?;
        let (queue, options, arguments, ack) = match how {
            Receive::Broadcast | Receive::Pattern => {
                let options = QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..QueueDeclareOptions::default()
                };
                (String::new(), options, FieldTable::default(), false)
            }
            Receive::Group(group) => {
                channel
                    .basic_qos(PREFETCH, BasicQosOptions::default())
                    .await?;
                let mut arguments = FieldTable::default();
                if self.setup.quorum {
                    arguments.insert(
                        "x-queue-type".into(),
                        AMQPValue::LongString("quorum".into()),
                    );
                } else {
                    arguments.insert(
                        "x-max-priority".into(),
                        AMQPValue::ShortShortUInt(MAX_PRIORITY),
                    );
                }
                let options = QueueDeclareOptions {
                    durable: true,
                    ..QueueDeclareOptions::default()
                };
                (format!("bench.raw.{group}"), options, arguments, true)
            }
        };
        // An empty name asks the broker to name the queue.
        let queue = channel
            .queue_declare(queue.as_str().into(), options, arguments)
            .await?;
        let name = queue.name().clone();
        channel
            .queue_bind(
                name.clone(),
                self.exchange.clone(),
                topic.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        let options = BasicConsumeOptions {
            no_ack: !ack,
            ..BasicConsumeOptions::default()
        };
        let consumer = channel
            .basic_consume(name, "".into(), options, FieldTable::default())
            .await?;
        Ok(Some(LapinSubscriber {
            channel,
            consumer,
            ack,
        }))
    }
}

/// Publishes to one routing key and waits for the confirm.
pub struct LapinPublisher {
    channel: Channel,
    exchange: ShortString,
    routing_key: ShortString,
}

impl Publisher for LapinPublisher {
    async fn publish(&self, payload: Bytes) -> BenchResult<()> {
        let properties = BasicProperties::default().with_delivery_mode(PERSISTENT);
        let confirm = self
            .channel
            .basic_publish(
                self.exchange.clone(),
                self.routing_key.clone(),
                BasicPublishOptions::default(),
                &payload,
                properties,
            )
            .await?;
        match confirm.await? {
            Confirmation::Nack(_) => Err("the broker nacked a publish".into()),
            _ => Ok(()),
        }
    }
}

/// A consumer on its own channel.
pub struct LapinSubscriber {
    /// The consumer's channel, closed when it is dropped.
    channel: Channel,
    consumer: Consumer,
    ack: bool,
}

impl Drop for LapinSubscriber {
    /// Closing the channel hands what this consumer held back to the queue, as a
    /// worker that stops would.
    fn drop(&mut self) {
        let channel = self.channel.clone();
        tokio::spawn(async move { channel.close(200, "done".into()).await });
    }
}

impl Subscriber for LapinSubscriber {
    async fn recv(&mut self) -> Recv {
        match self.consumer.next().await {
            Some(Ok(delivery)) => {
                if self.ack
                    && delivery
                        .acker
                        .ack(BasicAckOptions::default())
                        .await
                        .is_err()
                {
                    return Recv::Closed;
                }
                Recv::Msg(Bytes::from(delivery.data))
            }
            Some(Err(_)) | None => Recv::Closed,
        }
    }
}
