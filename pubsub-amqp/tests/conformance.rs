//! The whole conformance suite against the private RabbitMQ node of this test binary,
//! in both topologies: one topic exchange (patterns work) and one fanout exchange per
//! topic (pattern cases are listed as ignored); and on a topic exchange with
//! confirmed publishes spread over every publishing channel.

use pubsub_amqp::{AmqpBackend, AmqpBuilder};
use pubsub_brokers::RabbitServer;
use pubsub_core::PubSub;

async fn connect(options: impl FnOnce(AmqpBuilder) -> AmqpBuilder) -> PubSub {
    // Starting the node blocks for seconds: keep it off the async workers.
    let server = tokio::task::spawn_blocking(RabbitServer::shared)
        .await
        .expect("start the RabbitMQ node");
    options(AmqpBackend::builder(&server.url()))
        .connect()
        .await
        .expect("connect to the private RabbitMQ node")
        .into()
}

async fn topic_exchange() -> PubSub {
    connect(|options| options).await
}

async fn fanout_per_topic() -> PubSub {
    connect(AmqpBuilder::fanout_per_topic).await
}

/// Confirm windows of one publish: every confirmed publish in flight beside another
/// takes another publishing channel, as many do under load.
async fn spread_over_channels() -> PubSub {
    connect(|options| options.publishing_channels(4).confirm_window(1)).await
}

fn main() -> std::process::ExitCode {
    pubsub_core::testkit::Conformance::new()
        .backend("amqp", topic_exchange)
        .backend("amqp-fanout", fanout_per_topic)
        .backend("amqp-spread", spread_over_channels)
        .run()
}
