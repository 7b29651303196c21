//! Foreign messages whose properties lapin cannot read (a `message-id`, `reply-to`,
//! `content-type` or header name that is not UTF-8, sent by pika): each is that
//! message's problem only. The group's members go on with every other message, the
//! message is dead-lettered and reported as a gap, a member that joins later does
//! not die on it, and the bus's other subscriptions and publishes go on.
//!
//! pika's part is `unreadable.py`, beside this file; a missing `python3` or `pika`
//! fails the tests.

use std::collections::HashSet;
use std::process::{Command, Stdio};

use pubsub_amqp::{AmqpBackend, AmqpBuilder};
use pubsub_brokers::RabbitServer;
use pubsub_core::testkit::support::{self, text, unique, within};
use pubsub_core::{Message, PubSub, Received, Signal, Subscription};

const LOGS: &str = "pubsub_amqp=debug,lapin=off";

async fn server() -> &'static RabbitServer {
    tokio::task::spawn_blocking(RabbitServer::shared)
        .await
        .expect("start the RabbitMQ node")
}

/// Runs `unreadable.py` with the broker's URL and `args`; its stdout lines.
async fn pika(url: &str, args: &[&str]) -> Vec<String> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/unreadable.py");
    let mut command = Command::new("python3");
    command.arg(script).arg(url).args(args).stdin(Stdio::null());
    let out = tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("join")
        .expect("run python3 (the python3 and python3-pika packages)");
    assert!(
        out.status.success(),
        "unreadable.py {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Reads `subs` together, acking each delivery, until every payload in `wanted` came
/// and, if `gap` is given, a gap whose reason holds it. The gaps' reasons. Another
/// signal, or a subscription that ends, fails the test.
async fn receive(
    subs: &mut [&mut Subscription],
    wanted: &[&str],
    gap: Option<&str>,
    what: &str,
) -> Vec<String> {
    let mut missing: HashSet<&str> = wanted.iter().copied().collect();
    let mut gaps: Vec<String> = Vec::new();
    let gap_missing = |gaps: &[String]| gap.is_some_and(|g| !gaps.iter().any(|r| r.contains(g)));
    while !missing.is_empty() || gap_missing(&gaps) {
        let next = futures::future::select_all(subs.iter_mut().map(|sub| Box::pin(sub.next())));
        let waiting = format!("{what}: still waiting for {missing:?} (gap {gap:?}; gaps {gaps:?})");
        match within(&waiting, next).await.0 {
            Some(Received::Message(delivery)) => {
                missing.remove(text(&delivery).as_str());
                // A delivery whose connection ended fails its ack; the broker sends it
                // again, which is fine.
                let _ = delivery.ack().await;
            }
            Some(Received::Signal(Signal::Gap { reason })) => gaps.push(reason),
            Some(Received::Signal(other)) => panic!("{what}: unexpected signal {other}"),
            None => panic!("{what}: a subscription ended"),
        }
    }
    gaps
}

/// Publishes `payload` as it is on `topic` of `bus`.
async fn publish(bus: &PubSub, topic: &str, payload: &'static str) {
    bus.topic(topic)
        .publish_message(Message::new(payload))
        .await
        .expect("publish");
}

/// pika publishes a message whose `field` is not UTF-8 between good ones; `named` is
/// how the gap names it.
async fn a_message_unreadable_in(field: &str, named: &str) {
    support::logs_in_test_output(LOGS);
    let url = server().await.url();
    let exchange = unique("unreadable");
    let (topic, other, dead) = ("jobs.run", "jobs.other", "jobs.dead");
    let builder = || -> AmqpBuilder {
        AmqpBackend::builder(&url)
            .exchange(&exchange)
            .dead_letter_topic(dead)
    };
    let bus = PubSub::new(builder().connect().await.expect("connect"));
    let group = unique("workers");
    let queue = pubsub_amqp::group_queue(&group, &exchange, topic).expect("queue name");
    let dead_letters = unique("dead-letters");
    pika(&url, &["collect", &exchange, dead, &dead_letters]).await;

    // (1) Two members of a group on one bus, with a broadcast subscription to the
    // same topic and a group on another topic beside them.
    let mut first = bus.topic(topic).subscribe_group(&group).await.unwrap();
    let mut second = bus.topic(topic).subscribe_group(&group).await.unwrap();
    let mut broadcast = bus.topic(topic).subscribe().await.unwrap();
    let mut elsewhere = bus.topic(other).subscribe_group(&group).await.unwrap();
    let sent = ["jobs.run=good-1", "jobs.run=poison", "jobs.run=good-2"];
    let args = [
        &["publish", &exchange, field][..],
        &sent,
        &["jobs.other=other-1"],
    ]
    .concat();
    pika(&url, &args).await;
    // The field is named, its bytes shown lossily.
    let unreadable =
        format!("group queue {queue:?} could not be read ({named} (\"\u{fffd}\u{fffd}\")");
    let members = &mut [&mut first, &mut second];
    receive(members, &["good-1", "good-2"], Some(&unreadable), "members").await;
    // (2) The other subscriptions go on (a broadcast one may have missed what came
    // while its connection was replaced: a gap).
    receive(&mut [&mut elsewhere], &["other-1"], None, "the other topic").await;
    // The broadcast subscription lost its queue with the connection, and says so
    // once it has a new one: what is published from then on reaches it.
    let lost = "a message that this client cannot read";
    receive(&mut [&mut broadcast], &[], Some(lost), "broadcast's gap").await;
    publish(&bus, topic, "after").await;
    publish(&bus, other, "other-after").await;
    receive(&mut [&mut broadcast], &["after"], None, "broadcast").await;
    receive(
        &mut [&mut elsewhere],
        &["other-after"],
        None,
        "the other topic",
    )
    .await;
    receive(members, &["after"], None, "members after").await;

    // (1) A member that joins later, on a bus of its own, while a poison message waits
    // in the queue: it gets what is behind it.
    first.unsubscribe().await.expect("unsubscribe");
    second.unsubscribe().await.expect("unsubscribe");
    let sent = ["jobs.run=good-3", "jobs.run=poison", "jobs.run=good-4"];
    pika(&url, &[&["publish", &exchange, field][..], &sent].concat()).await;
    let late_bus = PubSub::new(builder().connect().await.expect("connect"));
    let mut late = late_bus.topic(topic).subscribe_group(&group).await.unwrap();
    receive(
        &mut [&mut late],
        &["good-3", "good-4"],
        Some(&unreadable),
        "the late member",
    )
    .await;
    publish(&late_bus, topic, "late-after").await;
    receive(
        &mut [&mut late],
        &["late-after"],
        None,
        "the late member after",
    )
    .await;

    // Both poison messages went to the group's dead-letter topic.
    let letters = pika(&url, &["drain", &dead_letters, "2"]).await;
    assert_eq!(letters, ["poison", "poison"], "dead letters");

    // (3) The bus still subscribes and publishes.
    let fresh = unique("fresh");
    let mut again = bus
        .topic(&fresh)
        .subscribe()
        .await
        .expect("subscribe again");
    publish(&bus, &fresh, "fresh").await;
    receive(&mut [&mut again], &["fresh"], None, "a new subscription").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_id_that_is_not_utf8_is_that_messages_problem_only() {
    a_message_unreadable_in("message_id", "message-id is not UTF-8").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_to_that_is_not_utf8_is_that_messages_problem_only() {
    a_message_unreadable_in("reply_to", "reply-to is not UTF-8").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_content_type_that_is_not_utf8_is_that_messages_problem_only() {
    a_message_unreadable_in("content_type", "content-type is not UTF-8").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_header_name_that_is_not_utf8_is_that_messages_problem_only() {
    a_message_unreadable_in("header_name", "a header name is not UTF-8").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_on_two_connections_take_the_poison_out_once() {
    support::logs_in_test_output(LOGS);
    let url = server().await.url();
    let exchange = unique("unreadable");
    let topic = "jobs.run";
    let connect = || async {
        let backend = AmqpBackend::builder(&url).exchange(&exchange).connect();
        PubSub::new(backend.await.expect("connect"))
    };
    let (one, two) = (connect().await, connect().await);
    let group = unique("workers");
    let queue = pubsub_amqp::group_queue(&group, &exchange, topic).expect("queue name");
    let mut first = one.topic(topic).subscribe_group(&group).await.unwrap();
    let mut second = two.topic(topic).subscribe_group(&group).await.unwrap();
    // The poison goes to one member, back to the queue when its connection ends, and
    // maybe to the other before either takes it out: it is reported once all the same.
    let sent = ["jobs.run=good-1", "jobs.run=poison", "jobs.run=good-2"];
    pika(
        &url,
        &[&["publish", &exchange, "message_id"][..], &sent].concat(),
    )
    .await;
    let unreadable = format!("group queue {queue:?} could not be read (message-id");
    let members = &mut [&mut first, &mut second];
    let gaps = receive(members, &["good-1", "good-2"], Some(&unreadable), "members").await;
    publish(&one, topic, "after-1").await;
    publish(&two, topic, "after-2").await;
    let more = receive(members, &["after-1", "after-2"], None, "members after").await;
    let reported = gaps.iter().chain(&more).filter(|r| r.contains(&unreadable));
    assert_eq!(
        reported.count(),
        1,
        "one poison, one report: {gaps:?} {more:?}"
    );
}
