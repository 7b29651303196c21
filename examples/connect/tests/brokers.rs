//! `connect` on private Redis and RabbitMQ servers: the URL picks the backend and its
//! options, refused credentials stay out of the error, `lazy=true` needs no broker.

#![cfg(any(feature = "redis", feature = "amqp"))]

use pubsub_connect::connect;
use pubsub_core::testkit::support::{next, text, unique, within};
use pubsub_core::PubSub;

/// Publishes on `to` and checks that `from` receives it on a fresh topic.
async fn round_trip(from: &PubSub, to: &PubSub) {
    let topic = unique("message:stored");
    let mut sub = from.topic(&topic).subscribe().await.expect("subscribe");
    to.topic(&topic).publish(&"hello").await.expect("publish");
    let delivery = next(&mut sub, "the round trip").await;
    assert_eq!(
        (delivery.topic(), text(&delivery).as_str()),
        (topic.as_str(), "\"hello\"")
    );
}

/// `connect(url)` fails, and its error does not quote `secret`.
async fn refused_without_quoting(url: &str, secret: &str) {
    let error = within("a refused connect", connect(url))
        .await
        .expect_err("wrong credentials");
    for text in [error.to_string(), format!("{error:?}")] {
        assert!(!text.contains(secret), "{text}");
    }
}

#[cfg(feature = "redis")]
mod redis {
    use super::*;
    use pubsub_brokers::RedisServer;

    #[tokio::test]
    async fn a_redis_url_connects_with_its_password() {
        let server = RedisServer::start_with(&["--requirepass", "right-pass"]);
        let url = server.url().replace("redis://", "redis://:right-pass@");
        let (a, b) = (connect(&url).await.unwrap(), connect(&url).await.unwrap());
        assert!(!a.capabilities().groups, "Redis PubSub has no groups");
        round_trip(&a, &b).await;
        let wrong = server.url().replace("redis://", "redis://:wr0ng-s3cret@");
        refused_without_quoting(&wrong, "wr0ng-s3cret").await;
    }

    #[tokio::test]
    async fn mode_streams_and_several_hosts_choose_streams_and_a_cluster() {
        let server = RedisServer::start();
        let streams = connect(&format!("{}?mode=streams", server.url()))
            .await
            .unwrap();
        assert!(streams.capabilities().groups, "Streams mode has groups");
        let bad = connect(&format!("{}?mode=queues", server.url())).await;
        assert!(
            matches!(bad, Err(pubsub_core::Error::InvalidUrl(_))),
            "{bad:?}"
        );
        let cluster = pubsub_brokers::RedisCluster::start();
        let (a, b) = (
            connect(&cluster.url()).await.unwrap(),
            connect(&cluster.url()).await.unwrap(),
        );
        assert!(
            !a.capabilities().no_responders,
            "a cluster cannot count them"
        );
        round_trip(&a, &b).await;
    }

    #[tokio::test]
    async fn a_lazy_redis_url_needs_no_server() {
        // Port 1 has no server; a lazy bus connects on first use.
        let bus = within("a lazy connect", connect("redis://127.0.0.1:1/?lazy=true")).await;
        assert!(bus.is_ok(), "{bus:?}");
    }
}

#[cfg(feature = "amqp")]
mod amqp {
    use super::*;
    use pubsub_brokers::RabbitServer;
    use pubsub_core::Error;

    /// The URL of the shared node with `query`, and the node.
    fn node(query: &str) -> (String, &'static RabbitServer) {
        let server = RabbitServer::shared();
        (format!("{}{query}", server.url()), server)
    }

    #[tokio::test]
    async fn an_amqp_url_chooses_the_exchange() {
        let exchange = unique("connect-test");
        let (url, server) = node(&format!("?exchange={exchange}"));
        let (a, b) = (connect(&url).await.unwrap(), connect(&url).await.unwrap());
        assert!(a.capabilities().groups, "RabbitMQ has groups");
        round_trip(&a, &b).await;
        let exchanges = server.rabbitmqctl(&["list_exchanges", "name", "type"]);
        assert!(
            exchanges.contains(&format!("{exchange}\ttopic")),
            "{exchanges}"
        );
    }

    #[tokio::test]
    async fn routing_fanout_is_an_exchange_per_topic() {
        let (url, server) = node("?routing=fanout");
        let (a, b) = (connect(&url).await.unwrap(), connect(&url).await.unwrap());
        round_trip(&a, &b).await;
        let pattern = a.topic("message.*").subscribe().await;
        assert!(matches!(pattern, Err(Error::Unsupported(_))), "{pattern:?}");
        let exchanges = server.rabbitmqctl(&["list_exchanges", "name", "type"]);
        assert!(exchanges.contains("message:stored."), "{exchanges}");
        assert!(
            exchanges
                .lines()
                .filter(|l| l.starts_with("message:stored."))
                .all(|l| l.ends_with("\tfanout")),
            "{exchanges}"
        );
    }

    #[tokio::test]
    async fn refused_amqp_credentials_are_not_quoted() {
        let (url, _) = node("?connect_timeout=5s");
        let wrong = url.replace("guest:guest@", "guest:wr0ng-s3cret@");
        refused_without_quoting(&wrong, "wr0ng-s3cret").await;
    }

    #[tokio::test]
    async fn several_amqp_hosts_fail_over_and_cluster_makes_quorum_groups() {
        let server = RabbitServer::shared();
        let dead = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!(
            "amqp://guest:guest@127.0.0.1:{dead},127.0.0.1:{}/%2f?cluster=true",
            server.port()
        );
        let (a, b) = (connect(&url).await.unwrap(), connect(&url).await.unwrap());
        round_trip(&a, &b).await;
        assert!(
            !a.capabilities().priorities,
            "quorum queues have no priorities"
        );
        let group = unique("connect-quorum");
        let _member = a
            .topic("connect.quorum")
            .subscribe_group(&group)
            .await
            .unwrap();
        let queues = server.rabbitmqctl(&["list_queues", "name", "type"]);
        assert!(
            queues
                .lines()
                .any(|l| l.contains(&group) && l.ends_with("\tquorum")),
            "{queues}"
        );
    }

    #[tokio::test]
    async fn a_lazy_amqp_url_needs_no_broker() {
        let url = "amqp://guest:guest@127.0.0.1:1/%2f?lazy=true";
        let bus = within("a lazy connect", connect(url)).await;
        assert!(bus.is_ok(), "{bus:?}");
    }
}
