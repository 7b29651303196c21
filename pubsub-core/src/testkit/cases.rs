//! The conformance cases: one async function per behaviour, each taking a
//! [`BusFactory`]. [`all`] lists them with what each needs, for
//! [`Conformance`](super::Conformance) to run.

use std::collections::HashSet;
use std::time::Duration;

use futures::StreamExt;

use super::support::*;
use super::BusFactory;
use crate::{Error, Event, HeaderValue, Message, PubSub, Received, Signal, SubscribeOptions};

/// A message published to a topic reaches its subscriber with payload and headers
/// intact.
pub async fn round_trip(factory: &dyn BusFactory) {
    let bus = factory.bus().await;
    let name = unique("round.trip");
    let mut sub = bus.topic(&name).subscribe().await.expect("subscribe");
    let mut message = Message::new("hello");
    if bus.capabilities().headers {
        message = message.with_header("kind", "greeting").with_id("m-1");
    }
    bus.topic(&name)
        .publish_message(message)
        .await
        .expect("publish");
    let got = next(&mut sub, "round trip").await;
    assert_eq!(got.topic(), name);
    assert_eq!(text(&got), "hello");
    if bus.capabilities().headers {
        assert_eq!(got.header("kind"), Some("greeting"));
        assert_eq!(got.id(), Some("m-1"));
    }
}

/// Header values of every type arrive with their types: integers of every width,
/// booleans, floats, timestamps, bytes, lists, nested tables and null (AMQP's field
/// types; Redis keeps them in its envelope).
pub async fn typed_headers_round_trip(factory: &dyn BusFactory) {
    let bus = factory.bus().await;
    let name = unique("typed.headers");
    let mut sub = bus.topic(&name).subscribe().await.expect("subscribe");
    let table = HeaderValue::Table(vec![
        ("count".into(), HeaderValue::Int(2)),
        ("reason".into(), "expired".into()),
    ]);
    let sent: Vec<(String, HeaderValue)> = vec![
        ("at".into(), HeaderValue::Timestamp(1_700_000_000)),
        ("big".into(), HeaderValue::Int(i64::MIN)),
        ("delay".into(), HeaderValue::Int(5000)),
        ("none".into(), HeaderValue::Null),
        ("ok".into(), HeaderValue::Bool(true)),
        ("ratio".into(), HeaderValue::Float(-0.25)),
        (
            "raw".into(),
            HeaderValue::Bytes(crate::Bytes::from_static(&[0, 0xff])),
        ),
        ("text".into(), "plain".into()),
        (
            "x-death".into(),
            HeaderValue::List(vec![table, HeaderValue::Null]),
        ),
    ];
    let message = sent.iter().fold(Message::new("typed"), |m, (k, v)| {
        m.with_header(k, v.clone())
    });
    bus.topic(&name)
        .publish_message(message)
        .await
        .expect("publish");
    let got = next(&mut sub, "typed headers").await;
    // AMQP tables and Redis stream fields keep keys sorted, not in the order sent.
    let mut received: Vec<(String, HeaderValue)> = got
        .headers()
        .map(|(k, v)| (k.to_owned(), v.clone()))
        .collect();
    received.sort_by(|(a, _), (b, _)| a.cmp(b));
    assert_eq!(received, sent);
}

/// Arbitrary bytes (every value 0 to 255, invalid UTF-8) arrive unchanged.
pub async fn binary_payload(factory: &dyn BusFactory) {
    let bus = factory.bus().await;
    let name = unique("binary");
    let mut sub = bus.topic(&name).subscribe().await.expect("subscribe");
    let bytes: Vec<u8> = (0..=255u8).chain([0xff, 0xfe, 0x00, 0xc3]).collect();
    bus.topic(&name)
        .publish_message(Message::new(bytes.clone()))
        .await
        .expect("publish");
    assert_eq!(
        next(&mut sub, "binary").await.payload().as_ref(),
        &bytes[..]
    );
}

/// A 1 MiB payload arrives unchanged.
pub async fn large_payload(factory: &dyn BusFactory) {
    let bus = factory.bus().await;
    let name = unique("large");
    let mut sub = bus.topic(&name).subscribe().await.expect("subscribe");
    let bytes: Vec<u8> = (0..1024 * 1024).map(|i| (i % 251) as u8).collect();
    bus.topic(&name)
        .publish_message(Message::new(bytes.clone()))
        .await
        .expect("publish");
    let got = next(&mut sub, "1 MiB payload").await;
    assert_eq!(got.payload().len(), bytes.len());
    assert!(
        got.payload().as_ref() == &bytes[..],
        "payload changed in transit"
    );
}

/// A payload over the bus's limit is `PayloadTooLarge` before any I/O, and the bus
/// goes on working.
pub async fn oversized_payload_is_rejected(factory: &dyn BusFactory) {
    let bus = factory.bus().await.with_max_payload(1000);
    let name = unique("oversized");
    let mut sub = bus.topic(&name).subscribe().await.expect("subscribe");
    let err = bus
        .topic(&name)
        .publish_message(Message::new(vec![0u8; 1001]))
        .await
        .expect_err("1001 bytes over a 1000 byte limit");
    assert!(
        matches!(
            err,
            Error::PayloadTooLarge {
                size: 1001,
                limit: 1000
            }
        ),
        "{err:?}"
    );
    bus.topic(&name).publish(&"small").await.expect("publish");
    assert_eq!(
        next(&mut sub, "after the oversized one")
            .await
            .json::<String>()
            .unwrap(),
        "small"
    );
}

/// Fifty subscribers to one topic each receive every message.
pub async fn fan_out_to_50_subscribers(factory: &dyn BusFactory) {
    let bus = factory.bus().await;
    let name = unique("fanout");
    let mut subs = Vec::new();
    for _ in 0..50 {
        subs.push(bus.topic(&name).subscribe().await.expect("subscribe"));
    }
    for i in 0..10 {
        bus.topic(&name).publish(&i).await.expect("publish");
    }
    for (n, sub) in subs.iter_mut().enumerate() {
        for i in 0..10 {
            let got: i32 = next(sub, &format!("subscriber {n}")).await.json().unwrap();
            assert_eq!(got, i, "subscriber {n}");
        }
    }
}

/// Fifty publishers at once, twenty messages each: every message arrives once.
pub async fn concurrent_publishers_lose_nothing(factory: &dyn BusFactory) {
    let bus = factory.bus().await;
    let name = unique("concurrent");
    let mut sub = bus.topic(&name).subscribe().await.expect("subscribe");
    let reader = tokio::spawn(async move {
        let mut seen = HashSet::new();
        while seen.len() < 1000 {
            let (p, i): (u32, u32) = next(&mut sub, "concurrent publishers")
                .await
                .json()
                .unwrap();
            assert!(seen.insert((p, i)), "({p}, {i}) arrived twice");
        }
        seen
    });
    let publishers = (0..50u32).map(|p| {
        let topic = bus.topic(&name);
        tokio::spawn(async move {
            for i in 0..20u32 {
                topic.publish(&(p, i)).await.expect("publish");
            }
        })
    });
    for publisher in futures::future::join_all(publishers).await {
        publisher.expect("publisher task");
    }
    let seen = within("reading 1000 messages", reader)
        .await
        .expect("reader task");
    assert_eq!(seen.len(), 1000);
}

/// Twenty topics used in parallel: each subscriber gets only its own topic's messages.
pub async fn topics_are_isolated(factory: &dyn BusFactory) {
    let bus = factory.bus().await;
    let base = unique("isolated");
    let mut tasks = Vec::new();
    for t in 0..20 {
        let name = format!("{base}.t{t}");
        let mut sub = bus.topic(&name).subscribe().await.expect("subscribe");
        let topic = bus.topic(&name);
        tasks.push(tokio::spawn(async move {
            for i in 0..10 {
                topic.publish(&(t, i)).await.expect("publish");
            }
            for i in 0..10 {
                let got = next(&mut sub, &name).await;
                assert_eq!(got.topic(), name);
                assert_eq!(got.json::<(i32, i32)>().unwrap(), (t, i));
            }
        }));
    }
    for task in tasks {
        within("twenty topics", task).await.expect("topic task");
    }
}

/// Messages from one publisher to one topic arrive in order, also with four
/// publishers interleaving.
pub async fn per_publisher_order(factory: &dyn BusFactory) {
    let bus = factory.bus().await;
    let name = unique("order");
    let mut sub = bus.topic(&name).subscribe().await.expect("subscribe");
    let publishers: Vec<_> = (0..4u32)
        .map(|p| {
            let topic = bus.topic(&name);
            tokio::spawn(async move {
                for i in 0..200u32 {
                    topic.publish(&(p, i)).await.expect("publish");
                }
            })
        })
        .collect();
    let mut last = [None::<u32>; 4];
    for _ in 0..800 {
        let (p, i): (u32, u32) = next(&mut sub, "ordered messages").await.json().unwrap();
        let expected = last[p as usize].map_or(0, |l| l + 1);
        assert_eq!(i, expected, "publisher {p} out of order");
        last[p as usize] = Some(i);
    }
    for publisher in publishers {
        publisher.await.expect("publisher task");
    }
}

/// `*` matches exactly one segment: `a.*` gets `a.b`, never `a.b.c` or `a`.
pub async fn star_pattern(factory: &dyn BusFactory) {
    let bus = factory.bus().await;
    let base = unique("star");
    let mut sub = bus
        .topic(format!("{base}.*"))
        .subscribe()
        .await
        .expect("subscribe");
    for t in [format!("{base}.x.y"), base.clone(), format!("{base}.x")] {
        bus.topic(&t).publish(&t).await.expect("publish");
    }
    let got = next(&mut sub, "star pattern").await;
    assert_eq!(
        got.topic(),
        format!("{base}.x"),
        "only the one-segment topic matches"
    );
    let mut sub2 = bus
        .topic(format!("*.{}", &base[base.len() - 12..]))
        .subscribe()
        .await
        .expect("subscribe");
    let tail = &base[base.len() - 12..];
    bus.topic(format!("star.{tail}"))
        .publish(&1)
        .await
        .expect("publish");
    assert_eq!(
        next(&mut sub2, "leading star").await.topic(),
        format!("star.{tail}")
    );
}

/// `#` matches zero or more segments, at the end, in the middle and alone.
pub async fn hash_pattern(factory: &dyn BusFactory) {
    let bus = factory.bus().await;
    let base = unique("hash");
    let mut tail = bus
        .topic(format!("{base}.#"))
        .subscribe()
        .await
        .expect("subscribe");
    let mut middle = bus
        .topic(format!("{base}.#.end"))
        .subscribe()
        .await
        .expect("subscribe");
    let topics = [
        base.clone(),
        format!("{base}.a"),
        format!("{base}.a.b.c"),
        format!("{base}.end"),
        format!("{base}.a.b.end"),
        format!("{base}.a.end.no"),
    ];
    for t in &topics {
        bus.topic(t).publish(t).await.expect("publish");
    }
    for t in &topics {
        assert_eq!(&next(&mut tail, "trailing #").await.topic(), t);
    }
    for t in [&topics[3], &topics[4]] {
        assert_eq!(&next(&mut middle, "middle #").await.topic(), t);
    }
    // A last message proves nothing else was queued before it.
    let last = format!("{base}.last.end");
    bus.topic(&last).publish(&1).await.expect("publish");
    assert_eq!(next(&mut middle, "middle # sentinel").await.topic(), last);
}

/// `?`, `[`, `]` and `\` in names are literal on every backend: no glob matching.
pub async fn glob_characters_are_literal(factory: &dyn BusFactory) {
    let bus = factory.bus().await;
    let base = unique("glob");
    let literal = format!("{base}.a?[bc]\\d");
    let mut exact = bus.topic(&literal).subscribe().await.expect("subscribe");
    let mut question = bus
        .topic(format!("{base}.?"))
        .subscribe()
        .await
        .expect("subscribe");
    for t in [
        format!("{base}.axbd"),
        format!("{base}.ab\\d"),
        format!("{base}.x"),
        literal.clone(),
    ] {
        bus.topic(&t).publish(&t).await.expect("publish");
    }
    let literal_question = format!("{base}.?");
    bus.topic(&literal_question)
        .publish(&1)
        .await
        .expect("publish");
    assert_eq!(next(&mut exact, "literal name").await.topic(), literal);
    assert_eq!(
        next(&mut question, "literal ?").await.topic(),
        literal_question
    );
}

/// Glob characters stay literal inside a pattern's other segments.
pub async fn glob_characters_in_patterns_are_literal(factory: &dyn BusFactory) {
    let bus = factory.bus().await;
    let base = unique("glob.pattern");
    let mut star = bus
        .topic(format!("{base}.[ab]*.*"))
        .subscribe()
        .await
        .expect("subscribe");
    bus.topic(format!("{base}.a.x"))
        .publish(&1)
        .await
        .expect("publish");
    let hit = format!("{base}.[ab]*.x");
    bus.topic(&hit).publish(&2).await.expect("publish");
    assert_eq!(next(&mut star, "literal [ab]* segment").await.topic(), &hit);
}

/// When `subscribe` returns, the subscription is live: a message published right
/// after it, from another bus, arrives.
pub async fn subscribe_is_a_barrier(factory: &dyn BusFactory) {
    let bus = factory.bus().await;
    for round in 0..20 {
        let name = unique("barrier");
        let mut sub = bus.topic(&name).subscribe().await.expect("subscribe");
        bus.topic(&name).publish(&round).await.expect("publish");
        assert_eq!(
            next(&mut sub, "right after subscribe")
                .await
                .json::<i32>()
                .unwrap(),
            round
        );
    }
}

/// The barrier holds for pattern subscriptions too.
pub async fn pattern_subscribe_is_a_barrier(factory: &dyn BusFactory) {
    let bus = factory.bus().await;
    for round in 0..20 {
        let name = unique("barrier.pattern");
        let mut sub = bus
            .topic(format!("{name}.*"))
            .subscribe()
            .await
            .expect("subscribe");
        bus.topic(format!("{name}.x"))
            .publish(&round)
            .await
            .expect("publish");
        assert_eq!(
            next(&mut sub, "pattern right after subscribe")
                .await
                .json::<i32>()
                .unwrap(),
            round
        );
    }
}

/// A broadcast subscriber gets nothing published before it subscribed.
pub async fn no_replay_for_late_subscriber(factory: &dyn BusFactory) {
    let bus = factory.bus().await;
    let name = unique("late");
    let mut early = bus.topic(&name).subscribe().await.expect("subscribe");
    bus.topic(&name).publish(&"before").await.expect("publish");
    drop(next(&mut early, "early subscriber").await);
    let mut late = bus.topic(&name).subscribe().await.expect("subscribe");
    bus.topic(&name).publish(&"after").await.expect("publish");
    assert_eq!(
        next(&mut late, "late subscriber")
            .await
            .json::<String>()
            .unwrap(),
        "after"
    );
}

/// After `unsubscribe`, the subscription is gone and the others still receive.
pub async fn unsubscribe_stops_delivery(factory: &dyn BusFactory) {
    let bus = factory.bus().await;
    let name = unique("unsubscribe");
    let gone = bus.topic(&name).subscribe().await.expect("subscribe");
    let mut stays = bus.topic(&name).subscribe().await.expect("subscribe");
    gone.unsubscribe().await.expect("unsubscribe");
    bus.topic(&name).publish(&1).await.expect("publish");
    assert_eq!(
        next(&mut stays, "remaining subscriber")
            .await
            .json::<i32>()
            .unwrap(),
        1
    );
    stays.unsubscribe().await.expect("unsubscribe");
}

/// After the last `unsubscribe`, the broker knows nobody listens any more.
pub async fn unsubscribe_leaves_no_listener(factory: &dyn BusFactory) {
    let bus = factory.bus().await;
    let name = unique("unsubscribe.last");
    let sub = bus.topic(&name).subscribe().await.expect("subscribe");
    sub.unsubscribe().await.expect("unsubscribe");
    assert_nobody_listens(&bus, &name).await;
}

/// Dropping a subscription ends it like `unsubscribe` (the backend may finish the
/// release in the background).
pub async fn drop_stops_delivery(factory: &dyn BusFactory) {
    let bus = factory.bus().await;
    let name = unique("drop");
    drop(bus.topic(&name).subscribe().await.expect("subscribe"));
    assert_nobody_listens(&bus, &name).await;
}

/// Dropping a pattern subscription releases it too.
pub async fn drop_releases_a_pattern(factory: &dyn BusFactory) {
    let bus = factory.bus().await;
    let name = unique("drop.pattern");
    drop(
        bus.topic(format!("{name}.#"))
            .subscribe()
            .await
            .expect("subscribe"),
    );
    assert_nobody_listens(&bus, &name).await;
}

/// Waits until a request to `name` fails with `NoResponders`.
async fn assert_nobody_listens(bus: &PubSub, name: &str) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let topic = bus.topic(name);
        match topic
            .request_message(Message::new("probe"), Duration::from_millis(500))
            .await
        {
            Err(Error::NoResponders { .. }) => return,
            other => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "still a listener on {name}: {other:?}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

/// Where groups are unsupported, `subscribe_group` says so at once with
/// `Unsupported` and a sentence on what to use instead.
pub async fn groups_unsupported_say_so(factory: &dyn BusFactory) {
    let bus = factory.bus().await;
    match bus.topic(unique("no.groups")).subscribe_group("g").await {
        Err(Error::Unsupported(why)) => assert!(!why.is_empty()),
        other => panic!("a backend without groups must answer Unsupported, got {other:?}"),
    }
}

/// In a group, each message goes to exactly one member.
pub async fn group_delivers_each_message_once(factory: &dyn BusFactory) {
    let bus = factory.bus().await;
    let name = unique("group.once");
    let group = unique("workers");
    let topic = bus.topic(&name);
    let options = SubscribeOptions::new().group(&group).prefetch(1);
    let mut members = Vec::new();
    for _ in 0..3 {
        members.push(
            topic
                .subscribe_with(options.clone())
                .await
                .expect("subscribe_group"),
        );
    }
    let (seen, mut counts) = tokio::sync::mpsc::unbounded_channel();
    let workers: Vec<_> = members
        .into_iter()
        .enumerate()
        .map(|(m, mut member)| {
            let seen = seen.clone();
            tokio::spawn(async move {
                while let Some(Received::Message(d)) = member.next().await {
                    let i: u32 = d.json().unwrap();
                    d.ack().await.expect("ack");
                    if seen.send((m, i)).is_err() {
                        return;
                    }
                }
            })
        })
        .collect();
    for i in 0..90u32 {
        bus.topic(&name).publish(&i).await.expect("publish");
    }
    let mut got = HashSet::new();
    while got.len() < 90 {
        let (_, i) = within("group deliveries", counts.recv())
            .await
            .expect("workers alive");
        assert!(got.insert(i), "message {i} delivered twice in one group");
    }
    // A sentinel round proves no duplicate was still on its way.
    bus.topic(&name).publish(&1000u32).await.expect("publish");
    let (_, i) = within("sentinel", counts.recv())
        .await
        .expect("workers alive");
    assert_eq!(i, 1000);
    workers.iter().for_each(|w| w.abort());
}

/// Every group receives every message; broadcast subscribers too.
pub async fn every_group_gets_every_message(factory: &dyn BusFactory) {
    let bus = factory.bus().await;
    let name = unique("group.every");
    let mut a = bus
        .topic(&name)
        .subscribe_group(&unique("ga"))
        .await
        .expect("group a");
    let mut b = bus
        .topic(&name)
        .subscribe_group(&unique("gb"))
        .await
        .expect("group b");
    let mut broadcast = bus.topic(&name).subscribe().await.expect("subscribe");
    for i in 0..10 {
        bus.topic(&name).publish(&i).await.expect("publish");
    }
    for sub in [&mut a, &mut b, &mut broadcast] {
        let mut got = Vec::new();
        for _ in 0..10 {
            let d = next(sub, "every group").await;
            got.push(d.json::<i32>().unwrap());
            d.ack().await.expect("ack");
        }
        got.sort();
        assert_eq!(got, (0..10).collect::<Vec<_>>());
    }
}

/// A group message nacked with requeue comes again, its attempt counted; one nacked
/// without requeue does not.
pub async fn nack_with_requeue_redelivers(factory: &dyn BusFactory) {
    let bus = factory.bus().await;
    let name = unique("nack");
    let mut member = bus
        .topic(&name)
        .subscribe_group(&unique("g"))
        .await
        .expect("subscribe_group");
    bus.topic(&name).publish(&"again").await.expect("publish");
    let first = next(&mut member, "first delivery").await;
    assert_eq!(first.attempt(), 1);
    assert!(first.needs_ack());
    first.nack(true).await.expect("nack");
    let second = next(&mut member, "redelivery").await;
    assert_eq!(second.json::<String>().unwrap(), "again");
    assert_eq!(second.attempt(), 2);
    second.nack(false).await.expect("nack without requeue");
    bus.topic(&name).publish(&"next").await.expect("publish");
    let third = next(&mut member, "after a dropped message").await;
    assert_eq!(
        third.json::<String>().unwrap(),
        "next",
        "a nack without requeue came back"
    );
    third.ack().await.expect("ack");
}

/// Messages a group member held unacked when it went away go to another member.
pub async fn dropped_member_gives_back_unacked(factory: &dyn BusFactory) {
    let bus = factory.bus().await;
    let name = unique("member.dies");
    let group = unique("g");
    let mut dying = bus
        .topic(&name)
        .subscribe_with(SubscribeOptions::new().group(&group).prefetch(1))
        .await
        .expect("subscribe_group");
    bus.topic(&name).publish(&"held").await.expect("publish");
    let held = next(&mut dying, "held message").await;
    let mut heir = bus
        .topic(&name)
        .subscribe_group(&group)
        .await
        .expect("subscribe_group");
    drop(held);
    drop(dying);
    let again = next(&mut heir, "message of the dead member").await;
    assert_eq!(again.json::<String>().unwrap(), "held");
    assert!(
        again.attempt() >= 2,
        "a redelivery counts as another attempt"
    );
    again.ack().await.expect("ack");
}

/// Waiting group messages are delivered highest priority first.
pub async fn priorities_in_a_group(factory: &dyn BusFactory) {
    let bus = factory.bus().await;
    let name = unique("priority");
    let mut member = bus
        .topic(&name)
        .subscribe_with(SubscribeOptions::new().group(unique("g")).prefetch(1))
        .await
        .expect("subscribe_group");
    let sent = [0u8, 1, 5, 9, 3, 7, 2, 9, 0, 4];
    for (i, p) in sent.iter().enumerate() {
        bus.topic(&name)
            .publish_message(Message::json(&i).unwrap().with_priority(*p))
            .await
            .expect("publish");
    }
    let mut got = Vec::new();
    for _ in sent {
        let d = next(&mut member, "prioritised message").await;
        got.push(d.priority());
        d.ack().await.expect("ack");
    }
    // The first may have gone out before the others arrived; the rest waited.
    let waited = &got[1..];
    assert!(
        waited.windows(2).all(|w| w[0] >= w[1]),
        "not in priority order: {got:?}"
    );
    let mut all = got.clone();
    all.sort();
    let mut expected = sent.to_vec();
    expected.sort();
    assert_eq!(all, expected);
}

/// A priority over 9 is `InvalidPriority`.
pub async fn invalid_priority_is_rejected(factory: &dyn BusFactory) {
    let bus = factory.bus().await;
    let err = bus
        .topic(unique("prio"))
        .publish_message(Message::new("x").with_priority(10))
        .await
        .expect_err("priority 10");
    assert!(matches!(err, Error::InvalidPriority(10)), "{err:?}");
}

/// Bad names are `InvalidTopic` before any I/O; publishing to a pattern too.
pub async fn invalid_names_are_rejected(factory: &dyn BusFactory) {
    let bus = factory.bus().await;
    let long = "a".repeat(256);
    for name in ["", "has space", "tab\there", "nl\n", "nul\0", long.as_str()] {
        let err = bus.topic(name).publish(&1).await.expect_err(name);
        assert!(
            matches!(err, Error::InvalidTopic { .. }),
            "{name:?}: {err:?}"
        );
        let err = bus.topic(name).subscribe().await.expect_err(name);
        assert!(
            matches!(err, Error::InvalidTopic { .. }),
            "{name:?}: {err:?}"
        );
    }
    for pattern in ["a.*", "#", "a.#.b"] {
        let err = bus.topic(pattern).publish(&1).await.expect_err(pattern);
        assert!(
            matches!(err, Error::InvalidTopic { .. }),
            "{pattern}: {err:?}"
        );
        let err = bus
            .topic(pattern)
            .request::<_, i32>(&1, Duration::from_secs(1))
            .await
            .expect_err(pattern);
        assert!(
            matches!(err, Error::InvalidTopic { .. }),
            "{pattern}: {err:?}"
        );
    }
    let err = bus
        .topic("ok")
        .subscribe_group("bad group")
        .await
        .expect_err("group name with a space");
    assert!(matches!(err, Error::InvalidTopic { .. }), "{err:?}");
}

/// A payload that is not JSON is an `Err` from `json()` for that message only; the
/// stream goes on, typed streams too.
pub async fn undecodable_payload_is_an_error_for_that_message(factory: &dyn BusFactory) {
    let bus = factory.bus().await;
    let name = unique("decode");
    let mut sub = bus.topic(&name).subscribe().await.expect("subscribe");
    bus.topic(&name)
        .publish_message(Message::new("{not json"))
        .await
        .expect("publish");
    bus.topic(&name).publish(&42).await.expect("publish");
    let bad = next(&mut sub, "bad payload").await;
    assert!(matches!(bad.json::<i32>(), Err(Error::Decode { .. })));
    assert_eq!(
        next(&mut sub, "good payload").await.json::<i32>().unwrap(),
        42
    );
}

/// Typed events route by type and decode on the way in; a bad one is an `Err` item.
pub async fn typed_events(factory: &dyn BusFactory) {
    let bus = factory.bus().await;
    let mut events = bus.subscribe_to::<Probe>().await.expect("subscribe_to");
    bus.topic(Probe::TOPIC)
        .publish_message(Message::new("[]"))
        .await
        .expect("publish");
    let probe = Probe {
        seq: 7,
        note: "typed".into(),
    };
    bus.send(&probe).await.expect("send");
    let item = within("typed event", events.next())
        .await
        .expect("stream open");
    assert!(
        matches!(item, Received::Message(Err(Error::Decode { .. }))),
        "{item:?}"
    );
    let item = within("typed event", events.next())
        .await
        .expect("stream open");
    match item {
        Received::Message(decoded) => assert_eq!(decoded.expect("decodes"), probe),
        Received::Signal(signal) => panic!("unexpected signal {signal}"),
    }
}

/// The typed event of [`typed_events`].
#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Probe {
    seq: u32,
    note: String,
}

impl crate::Event for Probe {
    const TOPIC: &'static str = "testkit.probe.typed";
    const PRIORITY: u8 = 3;
}

/// A subscriber that reads nothing while many messages go by loses none in silence:
/// what it receives plus what it is told it missed is everything, and it goes on.
pub async fn slow_subscriber_is_told_what_it_missed(factory: &dyn BusFactory) {
    let bus = factory.bus().await;
    let name = unique("slow");
    let mut slow = bus
        .topic(&name)
        .subscribe_with(SubscribeOptions::new().buffer(16))
        .await
        .expect("subscribe");
    let mut fast = bus.topic(&name).subscribe().await.expect("subscribe");
    let total = 2000u64;
    for i in 0..total {
        bus.topic(&name).publish(&i).await.expect("publish");
        // The fast one keeps up, which also paces the publisher to the broker.
        assert_eq!(
            next(&mut fast, "fast subscriber")
                .await
                .json::<u64>()
                .unwrap(),
            i
        );
    }
    let (mut received, mut missed, mut last) = (0u64, 0u64, None);
    while received + missed < total {
        match next_item(&mut slow, "slow subscriber").await {
            Received::Message(d) => {
                let i: u64 = d.json().unwrap();
                assert!(last.is_none_or(|l| i > l), "out of order after lag");
                last = Some(i);
                received += 1;
            }
            Received::Signal(Signal::Lagged { missed: n }) => missed += n,
            Received::Signal(other) => panic!("unexpected signal {other}"),
        }
    }
    assert_eq!(received + missed, total);
    assert_eq!(
        last,
        Some(total - 1),
        "the newest message arrives after a lag"
    );
    bus.topic(&name).publish(&total).await.expect("publish");
    assert_eq!(
        next(&mut slow, "after the lag")
            .await
            .json::<u64>()
            .unwrap(),
        total
    );
}

/// Request/reply: a responder's reply comes back to the requester.
pub async fn request_reply(factory: &dyn BusFactory) {
    let bus = factory.bus().await;
    let name = unique("echo");
    let mut responder = bus.topic(&name).subscribe().await.expect("subscribe");
    let task = tokio::spawn(async move {
        while let Some(Received::Message(request)) = responder.next().await {
            let text: String = request.json().unwrap();
            request
                .reply(&format!("echo: {text}"))
                .await
                .expect("reply");
        }
    });
    for i in 0..20 {
        let reply: String = bus
            .topic(&name)
            .request(&format!("ping {i}"), PATIENCE)
            .await
            .expect("request");
        assert_eq!(reply, format!("echo: ping {i}"));
    }
    let topic = bus.topic(&name);
    let requests: Vec<String> = (0..20).map(|i| format!("p{i}")).collect();
    let replies = futures::future::join_all(
        requests
            .iter()
            .map(|r| topic.request::<_, String>(r, PATIENCE)),
    )
    .await;
    for (i, reply) in replies.into_iter().enumerate() {
        assert_eq!(reply.expect("concurrent request"), format!("echo: p{i}"));
    }
    task.abort();
}

/// A request nobody answers is `Timeout` after its timeout.
pub async fn request_times_out(factory: &dyn BusFactory) {
    let bus = factory.bus().await;
    let name = unique("silent");
    let _listener = bus.topic(&name).subscribe().await.expect("subscribe");
    let started = tokio::time::Instant::now();
    let err = bus
        .topic(&name)
        .request::<_, String>(&"anyone?", Duration::from_millis(300))
        .await
        .expect_err("nobody replies");
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert!(started.elapsed() < PATIENCE);
}

/// A request to a topic without subscribers is `NoResponders` at once, where the
/// backend can tell, and `Timeout` elsewhere.
pub async fn request_without_responders(factory: &dyn BusFactory) {
    let bus = factory.bus().await;
    let started = tokio::time::Instant::now();
    let err = bus
        .topic(unique("nobody"))
        .request::<_, String>(&"hello?", Duration::from_secs(3))
        .await
        .expect_err("nobody listens");
    if bus.capabilities().no_responders {
        assert!(matches!(err, Error::NoResponders { .. }), "{err:?}");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "NoResponders must come before the timeout"
        );
    } else {
        assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    }
}

/// `reply` on a message that is not a request is `NotARequest`.
pub async fn reply_needs_a_request(factory: &dyn BusFactory) {
    let bus = factory.bus().await;
    let name = unique("not.request");
    let mut sub = bus.topic(&name).subscribe().await.expect("subscribe");
    bus.topic(&name).publish(&1).await.expect("publish");
    let d = next(&mut sub, "plain message").await;
    assert!(matches!(d.reply(&2).await, Err(Error::NotARequest { .. })));
}

/// `topic.on(handler)` runs the handler for each message; in a group, `Ok` acks and
/// `Err` with a retry policy runs it again, then dead-letters.
pub async fn handler_acks_retries_and_dead_letters(factory: &dyn BusFactory) {
    let bus = factory.bus().await;
    let name = unique("handler");
    let dead = format!("{name}.dead");
    let mut dead_letters = bus.topic(&dead).subscribe().await.expect("subscribe");
    let (seen, mut calls) = tokio::sync::mpsc::unbounded_channel();
    let mut options = crate::HandlerOptions::new().concurrency(2).retry(
        crate::RetryPolicy::attempts(3)
            .delay(Duration::from_millis(10))
            .dead_letter(&dead),
    );
    if bus.capabilities().groups {
        options = options.group(unique("g"));
    }
    let mut handler = bus
        .topic(&name)
        .on_with(options, move |d: crate::Delivery| {
            let seen = seen.clone();
            async move {
                let n: i32 = d.json()?;
                seen.send(n).map_err(|e| e.to_string())?;
                if n < 0 {
                    return Err("negative numbers are refused".into());
                }
                Ok(())
            }
        });
    within("handler ready", handler.ready())
        .await
        .expect("handler subscribed");
    bus.topic(&name).publish(&-1).await.expect("publish");
    for _ in 0..3 {
        assert_eq!(within("handler call", calls.recv()).await, Some(-1));
    }
    let dead_letter = next(&mut dead_letters, "dead letter").await;
    assert_eq!(dead_letter.json::<i32>().unwrap(), -1);
    if bus.capabilities().headers {
        assert_eq!(
            dead_letter.header(crate::ORIGINAL_TOPIC),
            Some(name.as_str())
        );
        assert_eq!(
            dead_letter.header(crate::LAST_ERROR),
            Some("negative numbers are refused")
        );
    }
    bus.topic(&name).publish(&5).await.expect("publish");
    assert_eq!(within("handler call", calls.recv()).await, Some(5));
    handler.stop();
}

/// `forward` publishes on this bus, then on the other.
pub async fn forward_publishes_here_and_there(factory: &dyn BusFactory) {
    let local = factory.bus().await;
    let global = factory.bus().await;
    let name = unique("message:stored");
    let mut here = local.topic(&name).subscribe().await.expect("subscribe");
    let mut there = global.topic(&name).subscribe().await.expect("subscribe");
    local
        .topic(&name)
        .forward(&global, &serde_json::json!({"_id": 456}))
        .await
        .expect("forward");
    assert_eq!(
        next(&mut here, "local")
            .await
            .json::<serde_json::Value>()
            .unwrap()["_id"],
        456
    );
    assert_eq!(
        next(&mut there, "global")
            .await
            .json::<serde_json::Value>()
            .unwrap()["_id"],
        456
    );
}

/// A name and a pattern that both match: each subscription gets the message once.
pub async fn overlapping_subscriptions_each_get_one_copy(factory: &dyn BusFactory) {
    let bus = factory.bus().await;
    let name = unique("overlap");
    let mut exact = bus.topic(&name).subscribe().await.expect("subscribe");
    let mut wide = bus.topic("#").subscribe().await.expect("subscribe");
    let mut narrow = bus
        .topic(format!("{}.*", &name[..name.rfind('.').unwrap()]))
        .subscribe()
        .await
        .expect("subscribe");
    let mut twice = bus.topic(&name).subscribe().await.expect("subscribe");
    bus.topic(&name).publish(&1).await.expect("publish");
    let sentinel = format!("{name}.end");
    bus.topic(&sentinel).publish(&2).await.expect("publish");
    for sub in [&mut exact, &mut narrow, &mut twice] {
        assert_eq!(next(sub, "overlapping").await.json::<i32>().unwrap(), 1);
    }
    // `#` sees every topic of the broker: skip other cases' traffic.
    let mut mine = Vec::new();
    while mine.len() < 2 {
        let d = next(&mut wide, "#").await;
        if d.topic() == name || d.topic() == sentinel {
            mine.push(d.json::<i32>().unwrap());
        }
    }
    assert_eq!(mine, [1, 2]);
}

/// Subscribing from many tasks while the bus closes: each subscribe either succeeds
/// (and its stream then ends) or fails with `Closed`; nothing hangs, and the closed
/// bus refuses publishes.
pub async fn concurrent_subscribe_and_close(factory: &dyn BusFactory) {
    let bus = factory.bus().await;
    let name = unique("closing");
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let topic = bus.topic(format!("{name}.s{i}"));
            tokio::spawn(async move {
                match topic.subscribe().await {
                    Ok(mut sub) => {
                        while let Some(item) = sub.next().await {
                            assert!(item.signal().is_some(), "nothing was published");
                        }
                    }
                    Err(e) => assert!(
                        matches!(e, Error::Closed | Error::Connection { .. }),
                        "{e:?}"
                    ),
                }
            })
        })
        .collect();
    tokio::task::yield_now().await;
    within("close", bus.close()).await.expect("close");
    for task in tasks {
        within("subscription ends after close", task)
            .await
            .expect("subscriber task");
    }
    let err = bus
        .topic(&name)
        .publish(&1)
        .await
        .expect_err("publish after close");
    assert!(matches!(err, Error::Closed), "{err:?}");
    let err = bus
        .topic(&name)
        .subscribe()
        .await
        .expect_err("subscribe after close");
    assert!(matches!(err, Error::Closed), "{err:?}");
}

/// `close` ends the streams of live subscriptions.
pub async fn close_ends_subscriptions(factory: &dyn BusFactory) {
    let bus = factory.bus().await;
    let name = unique("close");
    let mut sub = bus.topic(&name).subscribe().await.expect("subscribe");
    bus.topic(&name).publish(&1).await.expect("publish");
    drop(next(&mut sub, "before close").await);
    bus.close().await.expect("close");
    loop {
        match within("stream end after close", sub.next()).await {
            None => break,
            Some(Received::Signal(_)) => {}
            Some(Received::Message(d)) => panic!("delivery after close: {d:?}"),
        }
    }
}

/// A group delivery dropped without being settled goes back to its group: the member
/// is not stalled with its prefetch slots held, and the message comes again.
pub async fn dropped_delivery_goes_back_to_its_group(factory: &dyn BusFactory) {
    let bus = factory.bus().await;
    let name = unique("dropped.delivery");
    let mut member = bus
        .topic(&name)
        .subscribe_with(SubscribeOptions::new().group(unique("g")).prefetch(2))
        .await
        .expect("subscribe_group");
    for i in 0..2 {
        bus.topic(&name).publish(&i).await.expect("publish");
    }
    for _ in 0..2 {
        drop(next(&mut member, "first delivery").await);
    }
    bus.topic(&name).publish(&2).await.expect("publish");
    let mut got = Vec::new();
    for _ in 0..3 {
        let d = next(&mut member, "after two dropped deliveries").await;
        let i: i32 = d.json().unwrap();
        if i < 2 {
            assert!(d.attempt() >= 2, "a redelivery counts as another attempt");
        }
        got.push(i);
        d.ack().await.expect("ack");
    }
    got.sort();
    assert_eq!(got, [0, 1, 2]);
}

/// Members waiting for work take turns: with two idle members, neither gets (nearly)
/// everything.
pub async fn waiting_members_take_turns(factory: &dyn BusFactory) {
    let bus = factory.bus().await;
    let name = unique("turns");
    let options = SubscribeOptions::new().group(unique("g")).prefetch(1);
    let (seen, mut deliveries) = tokio::sync::mpsc::unbounded_channel();
    let mut workers = Vec::new();
    for m in 0..2usize {
        let mut member = bus
            .topic(&name)
            .subscribe_with(options.clone())
            .await
            .expect("subscribe_group");
        let seen = seen.clone();
        workers.push(tokio::spawn(async move {
            while let Some(Received::Message(d)) = member.next().await {
                d.ack().await.expect("ack");
                if seen.send(m).is_err() {
                    return;
                }
            }
        }));
    }
    let total = 100;
    let mut counts = [0usize; 2];
    for i in 0..total {
        bus.topic(&name).publish(&i).await.expect("publish");
        // One at a time: both members are idle when each message arrives.
        let m = within("a member's delivery", deliveries.recv())
            .await
            .expect("workers alive");
        counts[m] += 1;
    }
    assert!(
        counts.iter().all(|&c| c >= total / 5),
        "members did not take turns: {counts:?}"
    );
    workers.iter().for_each(|w| w.abort());
}

crate::testkit::suite::cases! {
    round_trip;
    typed_headers_round_trip needs Headers;
    binary_payload;
    large_payload;
    oversized_payload_is_rejected;
    fan_out_to_50_subscribers;
    concurrent_publishers_lose_nothing;
    topics_are_isolated;
    per_publisher_order;
    star_pattern needs Patterns;
    hash_pattern needs Patterns;
    glob_characters_are_literal;
    glob_characters_in_patterns_are_literal needs Patterns;
    subscribe_is_a_barrier;
    pattern_subscribe_is_a_barrier needs Patterns;
    no_replay_for_late_subscriber;
    unsubscribe_stops_delivery;
    unsubscribe_leaves_no_listener needs NoResponders, Headers;
    drop_stops_delivery needs NoResponders, Headers;
    drop_releases_a_pattern needs NoResponders, Headers, Patterns;
    groups_unsupported_say_so needs NoGroups;
    group_delivers_each_message_once needs Groups;
    every_group_gets_every_message needs Groups;
    waiting_members_take_turns needs Groups;
    nack_with_requeue_redelivers needs Groups, Acks;
    dropped_member_gives_back_unacked needs Groups, Acks;
    dropped_delivery_goes_back_to_its_group needs Groups, Acks;
    priorities_in_a_group needs Groups, Priorities;
    invalid_priority_is_rejected;
    invalid_names_are_rejected;
    undecodable_payload_is_an_error_for_that_message;
    typed_events;
    slow_subscriber_is_told_what_it_missed;
    request_reply needs Headers;
    request_times_out needs Headers;
    request_without_responders needs Headers;
    reply_needs_a_request;
    handler_acks_retries_and_dead_letters;
    forward_publishes_here_and_there;
    overlapping_subscriptions_each_get_one_copy needs Patterns;
    concurrent_subscribe_and_close;
    close_ends_subscriptions;
}
