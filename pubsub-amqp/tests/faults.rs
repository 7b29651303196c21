//! Faults on a private RabbitMQ node of this test binary: restarts, dropped
//! connections, a broker that is down, wrong credentials, conflicting queues.
//!
//! Tests that use the node hold `SERIAL`, so that one test's restart or dropped
//! connections do not land in another's middle.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pubsub_amqp::AmqpBackend;
use pubsub_brokers::{RabbitServer, RedisServer};
use pubsub_core::testkit::support::{self, next, next_item, unique, within};
use pubsub_core::Error;
use pubsub_core::{PubSub, Received, Signal, SubscribeOptions};
use tokio::sync::Mutex;

/// What a failing test shows of the library's logs.
const LOGS: &str = "pubsub_amqp=debug,lapin=warn";

static SERIAL: Mutex<()> = Mutex::const_new(());

async fn server() -> &'static RabbitServer {
    tokio::task::spawn_blocking(RabbitServer::shared)
        .await
        .expect("start the RabbitMQ node")
}

async fn bus() -> PubSub {
    let url = server().await.url();
    PubSub::new(AmqpBackend::connect(&url).await.expect("connect"))
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address").port()
}

/// Runs a blocking harness call (restart, rabbitmqctl) off the async workers.
async fn blocking(f: impl FnOnce(&'static RabbitServer) + Send + 'static) {
    let server = server().await;
    tokio::task::spawn_blocking(move || f(server))
        .await
        .expect("harness call");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_during_confirmed_publishes_loses_nothing_confirmed() {
    support::logs_in_test_output(LOGS);
    let _serial = SERIAL.lock().await;
    let bus = bus().await;
    let topic = unique("fault.restart");
    let group = unique("workers");
    let mut member = bus
        .topic(&topic)
        .subscribe_with(SubscribeOptions::new().group(&group).prefetch(200))
        .await
        .expect("subscribe_group");

    let (tasks, per_task) = (10u32, 1000u32);
    let publishers: Vec<_> = (0..tasks)
        .map(|t| {
            let topic = bus.topic(&topic);
            tokio::spawn(async move {
                let mut confirmed = Vec::new();
                let mut failed = Vec::new();
                for i in 0..per_task {
                    let id = t * per_task + i;
                    match topic.publish(&id).await {
                        Ok(()) => confirmed.push(id),
                        Err(e) => {
                            // One failure says enough; more would only wait out
                            // their timeouts.
                            failed.push(e.to_string());
                            break;
                        }
                    }
                }
                (confirmed, failed)
            })
        })
        .collect();

    let received = Arc::new(std::sync::Mutex::new(HashSet::new()));
    let signals = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (seen, signalled) = (Arc::clone(&received), Arc::clone(&signals));
    let consumer = tokio::spawn(async move {
        while let Some(item) = member.next().await {
            let delivery = match item {
                Received::Message(delivery) => delivery,
                Received::Signal(signal) => {
                    signalled.lock().unwrap().push(signal);
                    continue;
                }
            };
            let id: u32 = delivery.json().expect("an id");
            // An ack on a connection that broke fails; the broker then delivers
            // again, which is the at-least-once this test checks.
            let _ = delivery.ack().await;
            seen.lock().unwrap().insert(id);
        }
    });

    // Restart once a good part is through, while publishes are in flight.
    let start = Instant::now();
    while received.lock().unwrap().len() < 2000 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "publishing stalled before the restart"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    blocking(|s| s.restart()).await;

    let mut confirmed = HashSet::new();
    let mut failures = Vec::new();
    for publisher in publishers {
        let (ok, bad) = publisher.await.expect("publisher task");
        confirmed.extend(ok);
        failures.extend(bad);
    }
    let failed = failures.len();
    failures.dedup();
    eprintln!("failures: {:?}", &failures[..failures.len().min(5)]);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let missing = confirmed.difference(&received.lock().unwrap()).count();
        if missing == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{missing} confirmed messages never arrived ({} confirmed, {failed} failed: \
             {failures:?}); {bus:?}",
            confirmed.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!(
        "restart: {} confirmed, {failed} failed publishes, {} received",
        confirmed.len(),
        received.lock().unwrap().len()
    );
    assert!(
        confirmed.len() > 2000,
        "publishing did not resume after the restart"
    );
    // The broker kept what the member had not acked: a group misses nothing.
    assert!(
        signals.lock().unwrap().is_empty(),
        "{:?}",
        signals.lock().unwrap()
    );
    consumer.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_loses_nothing_confirmed_and_publishes_wait_it_out() {
    support::logs_in_test_output(LOGS);
    let _serial = SERIAL.lock().await;
    let bus = bus().await;
    let topic = unique("fault.restart.quiet");
    let mut member = bus
        .topic(&topic)
        .subscribe_with(
            SubscribeOptions::new()
                .group(unique("workers"))
                .prefetch(50),
        )
        .await
        .expect("subscribe_group");
    let publish_all = |range: std::ops::Range<u32>| {
        let topic = bus.topic(&topic);
        tokio::spawn(async move {
            for id in range {
                topic.publish(&id).await.expect("a confirmed publish");
            }
        })
    };
    // Confirmed before the restart, and read only after it: the durable queue keeps
    // them.
    publish_all(0..500).await.expect("publisher task");
    blocking(|s| s.stop()).await;
    // Published while the broker is down: each waits for it, then is confirmed.
    let during = publish_all(500..1000);
    blocking(|s| s.start_again()).await;
    within("publishes during the outage", during)
        .await
        .expect("publisher task");

    let mut received = HashSet::new();
    while received.len() < 1000 {
        let delivery = next(&mut member, "after the restart").await;
        received.insert(delivery.json::<u32>().expect("an id"));
        // An ack on the connection that broke fails; the broker delivers again.
        let _ = delivery.ack().await;
    }
    assert_eq!(received, (0..1000).collect::<HashSet<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_connection_gives_broadcast_a_gap_and_groups_go_on() {
    support::logs_in_test_output(LOGS);
    let _serial = SERIAL.lock().await;
    let bus = bus().await;
    let topic = unique("fault.closed");
    let mut broadcast = bus.topic(&topic).subscribe().await.expect("subscribe");
    let mut member = bus
        .topic(&topic)
        .subscribe_group(&unique("g"))
        .await
        .expect("subscribe_group");
    bus.topic(&topic).publish(&0).await.expect("publish");
    assert_eq!(
        next(&mut broadcast, "before").await.json::<u32>().unwrap(),
        0
    );
    next(&mut member, "before").await.ack().await.expect("ack");

    blocking(|s| s.close_connections()).await;
    match next_item(&mut broadcast, "after the connection was closed").await {
        Received::Signal(Signal::Gap { reason }) => assert!(!reason.is_empty()),
        other => panic!("expected a gap, got {other:?}"),
    }
    // Publishes wait for the recovery; the broadcast queue is bound again a moment
    // after the publishing channel is back, so publish until it hears.
    let mut sent = 0;
    let heard = loop {
        sent += 1;
        bus.topic(&topic)
            .publish(&sent)
            .await
            .expect("publish after recovery");
        if let Ok(item) = tokio::time::timeout(Duration::from_millis(200), broadcast.next()).await {
            match item.expect("the stream goes on") {
                Received::Message(delivery) => break delivery.json::<u32>().unwrap(),
                Received::Signal(signal) => panic!("one gap only, then {signal}"),
            }
        }
        assert!(sent < 100, "the broadcast subscription did not resume");
    };
    assert!(heard >= 1);
    // The group's durable queue kept every message.
    for i in 1..=sent {
        let d = next(&mut member, "group after recovery").await;
        assert_eq!(d.json::<u32>().unwrap(), i);
        d.ack().await.expect("ack");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_during_an_outage_wait_then_fail_clearly() {
    support::logs_in_test_output(LOGS);
    let _serial = SERIAL.lock().await;
    let url = server().await.url();
    let backend = AmqpBackend::builder(&url)
        .publish_timeout(Duration::from_secs(2))
        .connect()
        .await
        .expect("connect");
    let bus = PubSub::new(backend);
    let topic = unique("fault.outage");
    let mut member = bus
        .topic(&topic)
        .subscribe_group(&unique("g"))
        .await
        .expect("subscribe_group");

    blocking(|s| s.stop()).await;
    let started = Instant::now();
    let err = bus.topic(&topic).publish(&"lost").await.unwrap_err();
    let waited = started.elapsed();
    assert!(matches!(err, Error::Connection { .. }), "{err}");
    assert!(err.to_string().contains("not confirmed within"), "{err}");
    assert!(!err.to_string().contains("guest:guest"), "{err}");
    assert!(
        waited >= Duration::from_secs(2) && waited < Duration::from_secs(10),
        "{waited:?}"
    );

    blocking(|s| s.start_again()).await;
    // Within the publish timeout of a fresh publish, lapin is back.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match bus.topic(&topic).publish(&"after").await {
            Ok(()) => break,
            Err(e) => assert!(Instant::now() < deadline, "publishing did not resume: {e}"),
        }
    }
    let d = next(&mut member, "group after the outage").await;
    assert_eq!(d.json::<String>().unwrap(), "after");
    d.ack().await.expect("ack");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_dies_gives_its_unacked_messages_to_another() {
    support::logs_in_test_output(LOGS);
    let _serial = SERIAL.lock().await;
    let url = server().await.url();
    let dying = PubSub::new(AmqpBackend::connect(&url).await.expect("connect"));
    let heir = PubSub::new(AmqpBackend::connect(&url).await.expect("connect"));
    let topic = unique("fault.member");
    let group = unique("g");
    let mut doomed = dying
        .topic(&topic)
        .subscribe_with(SubscribeOptions::new().group(&group).prefetch(10))
        .await
        .expect("subscribe_group");
    for i in 0..5u32 {
        heir.topic(&topic).publish(&i).await.expect("publish");
    }
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(next(&mut doomed, "held").await);
    }
    let mut survivor = heir
        .topic(&topic)
        .subscribe_group(&group)
        .await
        .expect("subscribe_group");
    // The whole connection goes, as when a process dies.
    dying.close().await.expect("close");
    let mut got = Vec::new();
    for _ in 0..5 {
        let d = next(&mut survivor, "redelivered").await;
        assert!(d.attempt() >= 2, "a redelivery counts as another attempt");
        got.push(d.json::<u32>().unwrap());
        d.ack().await.expect("ack");
    }
    got.sort();
    assert_eq!(got, vec![0, 1, 2, 3, 4]);
    drop(held);
}

/// Connects to `url` with a 10 s connect timeout and returns the error, checking
/// that it came at once (not after a timeout) and shows no credentials.
async fn refused(url: &str) -> Error {
    let started = Instant::now();
    let err = AmqpBackend::builder(url)
        .connect_timeout(Duration::from_secs(10))
        .connect()
        .await
        .expect_err("the connect must fail");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "{took:?} for {err}");
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains("s3cret"), "{shown}");
    assert!(!shown.contains("within"), "not a timeout: {shown}");
    err
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_port_is_refused_at_once_and_says_so() {
    support::logs_in_test_output(LOGS);
    let url = format!("amqp://guest:s3cret@127.0.0.1:{}/%2f", closed_port());
    let err = refused(&url).await;
    assert!(matches!(err, Error::Connection { .. }), "{err}");
    assert!(err.to_string().contains("refused"), "{err}");

    // Lazily, the first subscribe waits for the broker up to the connect timeout,
    // then says the same.
    let lazy = AmqpBackend::builder(&url)
        .connect_timeout(Duration::from_secs(1))
        .connect_lazy()
        .expect("lazy");
    assert!(!format!("{lazy:?}").contains("s3cret"));
    let bus = PubSub::new(lazy);
    let started = Instant::now();
    let err = bus.topic("down.at.connect").subscribe().await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(matches!(err, Error::Connection { .. }), "{err}");
    assert!(err.to_string().contains("refused"), "{err}");
    // A publish waits out its timeout for the broker to come, and then says why it
    // did not.
    let bus = PubSub::new(
        AmqpBackend::builder(&url)
            .publish_timeout(Duration::from_secs(1))
            .connect_lazy()
            .expect("lazy"),
    );
    let err = bus.topic("down.at.connect").publish(&1).await.unwrap_err();
    assert!(matches!(err, Error::Connection { .. }), "{err}");
    assert!(err.to_string().contains("refused"), "{err}");
    assert!(!format!("{err:?}").contains("s3cret"), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_addresses_connect_to_the_one_that_answers() {
    support::logs_in_test_output(LOGS);
    let _serial = SERIAL.lock().await;
    let port = server().await.port();
    let dead = closed_port();
    let url = format!("amqp://guest:guest@127.0.0.1:{dead},127.0.0.1:{port}/%2f");
    let bus = PubSub::new(AmqpBackend::connect(&url).await.expect("connect"));
    let topic = unique("fault.addresses");
    let mut sub = bus.topic(&topic).subscribe().await.expect("subscribe");
    bus.topic(&topic)
        .publish(&"via the second")
        .await
        .expect("publish");
    assert_eq!(
        next(&mut sub, "message").await.json::<String>().unwrap(),
        "via the second"
    );

    // None answers: each one's failure is reported.
    let other = closed_port();
    let url = format!("amqp://guest:s3cret@127.0.0.1:{dead},127.0.0.1:{other}/%2f");
    let text = refused(&url).await.to_string();
    assert!(
        text.contains(&format!("127.0.0.1:{dead}: refused")),
        "{text}"
    );
    assert!(
        text.contains(&format!("127.0.0.1:{other}: refused")),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_are_an_auth_error() {
    support::logs_in_test_output(LOGS);
    let _serial = SERIAL.lock().await;
    let port = server().await.port();
    let err = refused(&format!("amqp://guest:s3cret@127.0.0.1:{port}/%2f")).await;
    assert!(matches!(err, Error::Auth(_)), "{err:?}");
    assert!(err.to_string().contains("refused the login"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_vhost_says_so() {
    support::logs_in_test_output(LOGS);
    let _serial = SERIAL.lock().await;
    let port = server().await.port();
    let err = refused(&format!(
        "amqp://guest:guest@127.0.0.1:{port}/no-such-vhost"
    ))
    .await;
    assert!(matches!(err, Error::Auth(_)), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("virtual host") && text.contains("no-such-vhost"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_that_speaks_no_amqp_says_so() {
    support::logs_in_test_output(LOGS);
    let redis = tokio::task::spawn_blocking(RedisServer::start)
        .await
        .expect("start redis-server");
    // Redis waits for a line end that never comes: the connect timeout tells.
    let url = format!("amqp://guest:s3cret@127.0.0.1:{}/%2f", redis.port());
    let err = AmqpBackend::builder(&url)
        .connect_timeout(Duration::from_secs(1))
        .connect()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Connection { .. }), "{err:?}");
    assert!(err.to_string().contains("no AMQP answer"), "{err}");
    assert!(!format!("{err:?}").contains("s3cret"), "{err:?}");
    drop(redis);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_against_a_plain_port_says_so() {
    support::logs_in_test_output(LOGS);
    let _serial = SERIAL.lock().await;
    let port = server().await.port();
    let err = refused(&format!("amqps://guest:s3cret@127.0.0.1:{port}/%2f")).await;
    assert!(matches!(err, Error::Connection { .. }), "{err:?}");
    assert!(err.to_string().contains("TLS"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicting_queue_arguments_are_a_clear_error_that_poisons_nothing() {
    support::logs_in_test_output(LOGS);
    let _serial = SERIAL.lock().await;
    let url = server().await.url();
    let first = PubSub::new(AmqpBackend::connect(&url).await.expect("connect"));
    let other = PubSub::new(
        AmqpBackend::builder(&url)
            .max_priority(5)
            .connect()
            .await
            .expect("connect"),
    );
    let topic = unique("fault.args");
    let group = unique("g");
    let mut member = first
        .topic(&topic)
        .subscribe_group(&group)
        .await
        .expect("subscribe_group");

    let err = other
        .topic(&topic)
        .subscribe_group(&group)
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::Broker { .. }), "{text}");
    assert!(
        text.contains(&group) && text.contains("x-max-priority"),
        "{text}"
    );

    // The other bus still subscribes and publishes.
    let mut sub = other
        .topic(&topic)
        .subscribe()
        .await
        .expect("subscribe after the refusal");
    other
        .topic(&topic)
        .publish(&"still fine")
        .await
        .expect("publish");
    assert_eq!(
        next(&mut sub, "broadcast").await.json::<String>().unwrap(),
        "still fine"
    );
    let d = next(&mut member, "group").await;
    assert_eq!(d.json::<String>().unwrap(), "still fine");
    d.ack().await.expect("ack");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lazy_bus_publishes_once_the_broker_comes_up() {
    support::logs_in_test_output(LOGS);
    let _serial = SERIAL.lock().await;
    let url = server().await.url();
    let (topic, group) = (unique("fault.lazy"), unique("g"));
    // The group's durable queue exists before the outage and survives it.
    bus()
        .await
        .topic(&topic)
        .subscribe_group(&group)
        .await
        .expect("subscribe_group")
        .unsubscribe()
        .await
        .expect("unsubscribe");

    blocking(|s| s.stop()).await;
    let lazy = PubSub::new(
        AmqpBackend::builder(&url)
            .connect_timeout(Duration::from_secs(2))
            .publish_timeout(Duration::from_secs(60))
            .connect_lazy()
            .expect("a lazy backend needs no broker"),
    );
    let early = {
        let topic = lazy.topic(&topic);
        tokio::spawn(async move { topic.publish(&"early").await })
    };
    blocking(|s| s.start_again()).await;
    early
        .await
        .expect("publish task")
        .expect("the publish waited for the broker");

    let mut member = lazy
        .topic(&topic)
        .subscribe_group(&group)
        .await
        .expect("subscribe_group");
    let d = next(&mut member, "the early message").await;
    assert_eq!(d.json::<String>().unwrap(), "early");
    d.ack().await.expect("ack");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_binding_closes_no_other_subscription() {
    support::logs_in_test_output(LOGS);
    let _serial = SERIAL.lock().await;
    let server = server().await;
    // A user who may read (bind from) the `pubsub` exchange and its own queues, and
    // nothing else; RabbitMQ refuses a binding by closing the channel it came on.
    let user = unique("limited").replace('.', "-");
    blocking({
        let user = user.clone();
        move |s| {
            s.rabbitmqctl(&["add_user", &user, "pw"]);
            s.rabbitmqctl(&[
                "set_permissions",
                "-p",
                "/",
                &user,
                ".*",
                ".*",
                r"^(pubsub|pubsub\.subscriber\..*)$",
            ]);
        }
    })
    .await;
    let url = format!("amqp://{user}:pw@127.0.0.1:{}/%2f", server.port());
    let backend = AmqpBackend::connect(&url).await.expect("connect");
    let bus = PubSub::new(backend.clone());
    let topic = unique("fault.refused");
    let mut before = bus.topic(&topic).subscribe().await.expect("subscribe");

    let forbidden = PubSub::new(backend.exchange(&unique("forbidden")));
    let err = forbidden.topic(&topic).subscribe().await.unwrap_err();
    assert!(matches!(err, Error::Broker { .. }), "{err:?}");
    assert!(err.to_string().contains("bind"), "{err}");

    // The subscription made before and one made after both hear what is published.
    let mut after = bus.topic(&topic).subscribe().await.expect("subscribe");
    bus.topic(&topic).publish(&"heard").await.expect("publish");
    for sub in [&mut before, &mut after] {
        let d = next(sub, "after a refused binding").await;
        assert_eq!(d.json::<String>().unwrap(), "heard");
    }
}
