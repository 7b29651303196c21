//! Connection errors that say what happened, fast: a closed port is refused at once,
//! a RabbitMQ port or a plain server behind a `rediss://` URL are named as such, a
//! lazily connected subscriber on a dead broker hears of the outage through its
//! stream, and no message shows the password.

use std::time::{Duration, Instant};

use pubsub_brokers::{RabbitServer, RedisServer};
use pubsub_core::testkit::support::next_item;
use pubsub_core::{Error, PubSub, Received, Signal};
use pubsub_redis::RedisBackend;

/// A loopback port nobody listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address").port()
}

/// The error and its causes, as a program printing the chain would show them.
fn chain(e: &Error) -> String {
    let mut shown = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        shown.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    shown
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_port_is_refused_at_once_and_said_once() {
    let port = closed_port();
    for streams in [false, true] {
        let started = Instant::now();
        let url = format!("redis://app:hunter2@127.0.0.1:{port}/");
        let err = RedisBackend::builder(&url)
            .streams(streams)
            .connect()
            .await
            .expect_err("nothing listens");
        let shown = chain(&err);
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "took {:?}",
            started.elapsed()
        );
        assert!(matches!(err, Error::Connection { .. }), "{err:?}");
        assert_eq!(shown.matches("refused").count(), 1, "{shown}");
        assert!(shown.contains(&format!("127.0.0.1:{port}")), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rabbitmq_port_is_named_as_amqp() {
    let rabbit = RabbitServer::shared();
    let url = format!("redis://app:hunter2@127.0.0.1:{}/", rabbit.port());
    let err = RedisBackend::connect(&url).await.expect_err("not Redis");
    let shown = chain(&err);
    assert!(shown.contains("speaks AMQP, not Redis"), "{shown}");
    assert!(!shown.contains("hunter2"), "{shown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_against_a_plain_server_says_so() {
    let server = RedisServer::start();
    let url = format!("rediss://:hunter2@127.0.0.1:{}/", server.port());
    let err = RedisBackend::connect(&url).await.expect_err("no TLS there");
    let shown = chain(&err);
    assert!(shown.contains("use a redis:// URL"), "{shown}");
    assert!(!shown.contains("hunter2"), "{shown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lazy_subscriber_on_a_dead_broker_hears_of_the_outage() {
    let url = format!("redis://:hunter2@127.0.0.1:{}/", closed_port());
    let bus: PubSub = RedisBackend::connect_lazy(&url).unwrap().into();
    let mut sub = tokio::time::timeout(Duration::from_secs(5), bus.topic("news").subscribe())
        .await
        .expect("subscribe returns while the broker is down")
        .expect("subscribe");
    match next_item(&mut sub, "the outage").await {
        Received::Signal(Signal::Gap { reason }) => {
            assert!(reason.contains("unreachable"), "{reason}");
            assert!(!reason.contains("hunter2"), "{reason}");
        }
        Received::Signal(other) => panic!("expected a gap, got {other}"),
        Received::Message(d) => panic!("a message from a dead broker: {d:?}"),
    }
}
