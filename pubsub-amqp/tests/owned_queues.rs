//! Joining topology that another system owns ([`QueueSpec`]), on a private RabbitMQ
//! node: the owner's queues and exchanges are declared here with lapin, as a foreign
//! client does, before or after our side.

use lapin::options::{ExchangeDeclareOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties, ExchangeKind};
use pubsub_amqp::{AmqpBackend, AmqpBuilder, QueueSpec};
use pubsub_brokers::RabbitServer;
use pubsub_core::testkit::support::{next, unique};
use pubsub_core::{Error, HeaderValue, Message, PubSub, Subscription};

async fn server() -> &'static RabbitServer {
    tokio::task::spawn_blocking(RabbitServer::shared)
        .await
        .expect("start the RabbitMQ node")
}

async fn bus(builder: AmqpBuilder) -> PubSub {
    PubSub::new(builder.connect().await.expect("connect"))
}

/// A receiver of ESN's point-to-point `channel`, as ESN makes one: the fanout
/// exchange and durable queue both named after the channel, declared with exactly
/// ESN's arguments, joined as a group of that name.
async fn point_to_point_receiver(url: &str, channel: &str) -> (PubSub, Subscription) {
    let bus = bus(AmqpBackend::builder(url)
        .fanout_per_topic()
        .queue(QueueSpec::declare(channel)))
    .await;
    let receiver = bus
        .topic(channel)
        .subscribe_group(channel)
        .await
        .expect("declare and join the channel's queue");
    (bus, receiver)
}

/// The owner: a plain lapin channel of its own connection.
async fn owner(url: &str) -> (Connection, lapin::Channel) {
    let connection = Connection::connect(url, ConnectionProperties::default())
        .await
        .expect("the owner connects");
    let channel = connection.create_channel().await.expect("a channel");
    (connection, channel)
}

fn durable() -> QueueDeclareOptions {
    QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    }
}

/// `rabbitmqctl list_queues name arguments` for `queue`.
async fn queue_arguments(queue: &str) -> String {
    let queue = queue.to_owned();
    let server = server().await;
    tokio::task::spawn_blocking(move || {
        server
            .rabbitmqctl(&["list_queues", "name", "durable", "arguments"])
            .lines()
            .find(|line| line.split('\t').next() == Some(queue.as_str()))
            .unwrap_or_else(|| panic!("queue {queue} is listed"))
            .to_owned()
    })
    .await
    .expect("rabbitmqctl")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_declares_an_owned_queue_with_exactly_its_arguments_and_the_owner_joins() {
    let url = server().await.url();
    // ESN's point-to-point channel: a dotted name, fanout exchange and queue alike.
    let channel = unique("esn.point.to.point");
    let (bus, mut receiver) = point_to_point_receiver(&url, &channel).await;
    // Durable, no x-max-priority: what ESN declares, so ESN's own declare passes.
    assert_eq!(
        queue_arguments(&channel).await,
        format!("{channel}\ttrue\t[]")
    );
    let (_connection, foreign) = owner(&url).await;
    foreign
        .queue_declare(channel.as_str().into(), durable(), FieldTable::default())
        .await
        .expect("the owner's declare is not refused");
    bus.topic(&channel)
        .publish(&"to the channel")
        .await
        .expect("publish");
    let d = next(&mut receiver, "the channel's message").await;
    assert_eq!(d.json::<String>().unwrap(), "to the channel");
    assert_eq!(d.topic(), channel);
    d.ack().await.expect("ack");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_joins_a_queue_with_the_owners_arguments_declared_first() {
    let url = server().await.url();
    let exchange = unique("infrahub.events");
    let queue = unique("infrahub.rpcs");
    let (_connection, foreign) = owner(&url).await;
    let mut priority = FieldTable::default();
    priority.insert("x-max-priority".into(), 5u8.into());
    foreign
        .queue_declare(queue.as_str().into(), durable(), priority)
        .await
        .expect("the owner declares");
    let bus = bus(AmqpBackend::builder(&url)
        .exchange(&exchange)
        .queue(QueueSpec::declare(&queue).argument("x-max-priority", 5u8)))
    .await;
    let mut worker = bus
        .topic("git.file.get")
        .subscribe_group(&queue)
        .await
        .expect("join with the owner's arguments");
    bus.topic("git.file.get")
        .publish(&"job")
        .await
        .expect("publish");
    let d = next(&mut worker, "the job").await;
    assert_eq!(
        (d.json::<String>().unwrap().as_str(), d.topic()),
        ("job", "git.file.get")
    );
    d.ack().await.expect("ack");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_arguments_are_a_clear_error_naming_queue_and_argument_and_passive_joins() {
    let url = server().await.url();
    let queue = unique("owned.rpcs");
    let (_connection, foreign) = owner(&url).await;
    let mut priority = FieldTable::default();
    priority.insert("x-max-priority".into(), 5u8.into());
    foreign
        .queue_declare(queue.as_str().into(), durable(), priority)
        .await
        .expect("the owner declares");
    let exact = bus(AmqpBackend::builder(&url).queue(QueueSpec::declare(&queue))).await;
    let mut broadcast = exact
        .topic("owned.topic")
        .subscribe()
        .await
        .expect("subscribe");
    let err = exact
        .topic("owned.topic")
        .subscribe_group(&queue)
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::Broker { .. }), "{text}");
    assert!(
        text.contains(&queue) && text.contains("x-max-priority") && text.contains("passive"),
        "{text}"
    );
    // Nothing else of that bus was closed by the refusal.
    exact
        .topic("owned.topic")
        .publish(&"still fine")
        .await
        .expect("publish after the refusal");
    assert_eq!(
        next(&mut broadcast, "broadcast")
            .await
            .json::<String>()
            .unwrap(),
        "still fine"
    );

    let passive = bus(AmqpBackend::builder(&url).queue(QueueSpec::passive(&queue))).await;
    let mut member = passive
        .topic("owned.topic")
        .subscribe_group(&queue)
        .await
        .expect("join passively whatever the owner declared");
    passive
        .topic("owned.topic")
        .publish(&"joined")
        .await
        .expect("publish");
    let d = next(&mut member, "the passive member's message").await;
    assert_eq!(d.json::<String>().unwrap(), "joined");
    d.ack().await.expect("ack");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joining_a_missing_queue_passively_is_a_clear_error_naming_it() {
    let url = server().await.url();
    let queue = unique("nobody.declared");
    let bus = bus(AmqpBackend::builder(&url).queue(QueueSpec::passive(&queue))).await;
    let err = bus
        .topic("owned.missing")
        .subscribe_group(&queue)
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::Broker { .. }), "{text}");
    assert!(
        text.contains(&queue) && text.contains("does not exist"),
        "{text}"
    );
    // Only groups named like the queue join it; another group has its own queue.
    let mut other = bus
        .topic("owned.missing")
        .subscribe_group("others")
        .await
        .expect("another group");
    bus.topic("owned.missing")
        .publish(&1)
        .await
        .expect("publish");
    next(&mut other, "the other group's message")
        .await
        .ack()
        .await
        .expect("ack");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exchange_with_other_flags_is_a_clear_error_naming_it() {
    let url = server().await.url();
    let topic = unique("esn.transient.exchange");
    let (_connection, foreign) = owner(&url).await;
    foreign
        .exchange_declare(
            topic.as_str().into(),
            ExchangeKind::Fanout,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("the owner declares a transient exchange");
    let bus = bus(AmqpBackend::builder(&url).fanout_per_topic()).await;
    let err = bus.topic(&topic).subscribe().await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains(&topic) && text.contains("durable"), "{text}");
    // The refused declare closed no other subscription of the bus.
    let fine = unique("esn.durable.exchange");
    let mut sub = bus.topic(&fine).subscribe().await.expect("subscribe");
    bus.topic(&fine).publish(&"fine").await.expect("publish");
    assert_eq!(
        next(&mut sub, "the other topic")
            .await
            .json::<String>()
            .unwrap(),
        "fine"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_of_an_owned_queue_joins_it_again_after_its_connection_drops() {
    // A node of its own: closing every connection must not touch the other tests'.
    let server = tokio::task::spawn_blocking(RabbitServer::start)
        .await
        .expect("start a RabbitMQ node");
    let channel = unique("esn.reconnect");
    let (bus, mut receiver) = point_to_point_receiver(&server.url(), &channel).await;
    let server = tokio::task::spawn_blocking(move || {
        server.close_connections();
        server
    })
    .await
    .expect("close the connections");
    // Sent through the channel's exchange once the bus has reconnected; it waits in
    // queue N for the member to consume it again.
    bus.topic(&channel)
        .publish(&"after the drop")
        .await
        .expect("publish after the drop");
    let d = next(&mut receiver, "the message after the drop").await;
    assert_eq!(d.json::<String>().unwrap(), "after the drop");
    d.ack().await.expect("ack");
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_headers_exchange_routes_by_typed_header_to_a_declared_queue() {
    let url = server().await.url();
    let (exchange, queue) = (unique("delayed"), unique("delay.five"));
    // Infrahub's delay queue: bound by header `delay` = 5000, an integer.
    let spec = QueueSpec::declare(&queue)
        .argument("x-max-priority", 5u8)
        .bind_headers(
            &exchange,
            [("x-match", "all".into()), ("delay", HeaderValue::Int(5000))],
        );
    let backend = AmqpBackend::builder(&url)
        .exchange(unique("topics"))
        .queue(spec.clone())
        .connect()
        .await
        .expect("connect");
    backend
        .declare_queue(&spec)
        .await
        .expect("declare the delay queue");
    // Declaring it again with the same flags is no conflict.
    backend
        .declare_queue(&spec)
        .await
        .expect("declare it again");
    let delayed = PubSub::new(backend.headers_exchange(&exchange));
    let bus = PubSub::new(backend);
    let mut members = bus.topic("#").subscribe_group(&queue).await.expect("join");

    let retry = |delay: HeaderValue| Message::new("retry").with_header("delay", delay);
    // The same number as text, or another number, matches no binding: dropped.
    for delay in [
        "5000".into(),
        HeaderValue::Int(10_000),
        HeaderValue::Int(5000),
    ] {
        delayed
            .topic("git.repository.connectivity")
            .publish_message(retry(delay))
            .await
            .expect("publish to the headers exchange");
    }
    let d = next(&mut members, "the retry the binding matched").await;
    assert_eq!(d.header_value("delay"), Some(&HeaderValue::Int(5000)));
    // The routing key travels with it, as a dead-lettered retry needs.
    assert_eq!(d.topic(), "git.repository.connectivity");
    d.ack().await.expect("ack");
    let err = delayed
        .topic("any.topic")
        .subscribe()
        .await
        .expect_err("a headers exchange routes by headers");
    assert!(
        matches!(err, Error::Unsupported(ref m) if m.contains("bind_headers")),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exclusive_queue_is_the_connections_own_and_goes_with_it() {
    let url = server().await.url();
    // Infrahub's callback queue: exclusive, not durable, no arguments.
    let callback = unique("api-callback");
    let spec = QueueSpec::declare(&callback).exclusive();
    let bus = bus(AmqpBackend::builder(&url).queue(spec.clone())).await;
    let mut replies = bus
        .topic(&callback)
        .subscribe_group(&callback)
        .await
        .expect("consume the callback queue");
    assert!(
        queue_arguments(&callback).await.contains("\tfalse\t"),
        "not durable"
    );
    // Another connection may neither use it nor declare it.
    let (_connection, channel) = owner(&url).await;
    let taken = channel
        .queue_declare(
            callback.as_str().into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect_err("an exclusive queue is locked to its connection");
    assert!(taken.to_string().contains("RESOURCE_LOCKED"), "{taken}");
    bus.topic(&callback)
        .publish(&"reply")
        .await
        .expect("publish");
    next(&mut replies, "a reply")
        .await
        .ack()
        .await
        .expect("ack");
    bus.close().await.expect("close");
    // Gone with its connection: a passive look finds nothing.
    let (_connection, channel) = owner(&url).await;
    let passive = QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    };
    let gone = channel
        .queue_declare(callback.as_str().into(), passive, FieldTable::default())
        .await
        .expect_err("the queue went with its connection");
    assert!(gone.to_string().contains("NOT_FOUND"), "{gone}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declaring_a_queue_with_other_arguments_is_an_error_naming_it() {
    let url = server().await.url();
    let queue = unique("infrahub.delay");
    let backend = AmqpBackend::connect(&url).await.expect("connect");
    let ttl = |ms: i32| QueueSpec::declare(&queue).argument("x-message-ttl", ms);
    backend.declare_queue(&ttl(5000)).await.expect("declare");
    let err = backend
        .declare_queue(&ttl(10_000))
        .await
        .expect_err("another TTL conflicts");
    let text = err.to_string();
    assert!(
        text.contains(&queue) && text.contains("PRECONDITION_FAILED"),
        "{text}"
    );
    // The connection lives on: the first declaration still holds.
    backend
        .declare_queue(&ttl(5000))
        .await
        .expect("declare again");
}
