//! The whole conformance suite against the private RabbitMQ node of this test binary.

use pubsub_amqp::AmqpBackend;
use pubsub_core::testkit::rabbitmq_server::RabbitServer;
use pubsub_core::PubSub;

async fn bus() -> PubSub {
    // Starting the node blocks for seconds: keep it off the async workers.
    let server = tokio::task::spawn_blocking(RabbitServer::shared)
        .await
        .expect("start the RabbitMQ node");
    let backend = AmqpBackend::connect(&server.url())
        .await
        .expect("connect to the private RabbitMQ node");
    PubSub::new(backend)
}

pubsub_core::conformance_tests!(bus);
