//! Recovery of every connection and consumer, under load, on a private RabbitMQ
//! node of this test binary: the broker is stopped and started, its application
//! stopped and started (`stop_app`/`start_app`), and its VM killed, several times in
//! a row while publishers publish numbered messages with confirms. A broadcast
//! subscriber, a group member and the publishers each have a bus (a connection) of
//! their own; after each return of the broker every one of them must work again
//! within 10 s, the group must have every confirmed message, and the broadcast
//! subscriber every confirmed message published after its `Gap`.
//!
//! Tests hold `SERIAL`: they share the node.

use std::collections::{BTreeSet, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pubsub_amqp::AmqpBackend;
use pubsub_brokers::RabbitServer;
use pubsub_core::testkit::support::{self, unique};
use pubsub_core::{PubSub, Received, Signal, SubscribeOptions};

/// What a failing test shows of the library's logs.
const LOGS: &str = "pubsub_amqp=debug,lapin=warn";

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// How long each party may take to work again once the broker is back.
const RESUME_WITHIN: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy)]
enum Fault {
    StopStart,
    StopAppStartApp,
    Kill,
}

async fn bus(url: &str) -> PubSub {
    PubSub::new(AmqpBackend::connect(url).await.expect("connect"))
}

/// What each party saw, shared with the checks.
#[derive(Default)]
struct Seen {
    confirmed: Mutex<BTreeSet<u32>>,
    group: Mutex<HashSet<u32>>,
    group_deliveries: AtomicU32,
    /// Deliveries acknowledged: what the member receives on a live connection.
    group_acked: AtomicU32,
    broadcast: Mutex<HashSet<u32>>,
    /// For each `Gap`, the next id to be published when the subscriber saw it.
    gaps: Mutex<Vec<u32>>,
    /// Ids being published; the next id is taken under this lock.
    in_flight: Mutex<BTreeSet<u32>>,
    /// Any other signal (a lag would break the broadcast accounting).
    other_signals: Mutex<Vec<Signal>>,
    group_signals: Mutex<Vec<Signal>>,
}

fn max(set: &Mutex<HashSet<u32>>) -> Option<u32> {
    set.lock().unwrap().iter().max().copied()
}

async fn survive(fault: Fault, cycles: usize) {
    let _serial = SERIAL.lock().await;
    let server: &'static RabbitServer = tokio::task::spawn_blocking(RabbitServer::shared)
        .await
        .expect("start the RabbitMQ node");
    let url = server.url();
    let topic = unique("recovery");
    let (listener, worker, publisher) = (bus(&url).await, bus(&url).await, bus(&url).await);
    let mut broadcast = listener
        .topic(&topic)
        .subscribe_with(SubscribeOptions::new().buffer(1 << 20))
        .await
        .expect("subscribe");
    let mut member = worker
        .topic(&topic)
        .subscribe_with(SubscribeOptions::new().group(unique("g")).prefetch(100))
        .await
        .expect("subscribe_group");

    let seen = Arc::new(Seen::default());
    let next_id = Arc::new(AtomicU32::new(0));
    let stop = Arc::new(AtomicBool::new(false));

    let listening = tokio::spawn({
        let (seen, next_id) = (Arc::clone(&seen), Arc::clone(&next_id));
        async move {
            while let Some(item) = broadcast.next().await {
                match item {
                    Received::Message(d) => {
                        seen.broadcast
                            .lock()
                            .unwrap()
                            .insert(d.json().expect("an id"));
                    }
                    Received::Signal(Signal::Gap { .. }) => {
                        seen.gaps
                            .lock()
                            .unwrap()
                            .push(next_id.load(Ordering::SeqCst));
                    }
                    Received::Signal(other) => seen.other_signals.lock().unwrap().push(other),
                }
            }
        }
    });
    let working = tokio::spawn({
        let seen = Arc::clone(&seen);
        async move {
            while let Some(item) = member.next().await {
                match item {
                    Received::Message(d) => {
                        let id: u32 = d.json().expect("an id");
                        // An ack on a connection that broke fails; the broker then
                        // delivers again, which is the at-least-once checked here.
                        if d.ack().await.is_ok() {
                            seen.group_acked.fetch_add(1, Ordering::Relaxed);
                        }
                        seen.group_deliveries.fetch_add(1, Ordering::Relaxed);
                        seen.group.lock().unwrap().insert(id);
                    }
                    Received::Signal(signal) => seen.group_signals.lock().unwrap().push(signal),
                }
            }
        }
    });
    let publishers: Vec<_> = (0..8)
        .map(|_| {
            let topic = publisher.topic(&topic);
            let (seen, next_id, stop) =
                (Arc::clone(&seen), Arc::clone(&next_id), Arc::clone(&stop));
            tokio::spawn(async move {
                let mut failures = 0u32;
                while !stop.load(Ordering::Relaxed) {
                    let id = {
                        let mut in_flight = seen.in_flight.lock().unwrap();
                        let id = next_id.fetch_add(1, Ordering::SeqCst);
                        in_flight.insert(id);
                        id
                    };
                    match topic.publish(&id).await {
                        Ok(()) => drop(seen.confirmed.lock().unwrap().insert(id)),
                        Err(_) => failures += 1,
                    }
                    seen.in_flight.lock().unwrap().remove(&id);
                }
                failures
            })
        })
        .collect();

    for cycle in 0..cycles {
        // Load first: enough confirmed since the last cycle.
        let floor = next_id.load(Ordering::SeqCst) + 500;
        wait_for(
            "publishing before the fault",
            Duration::from_secs(60),
            || {
                seen.confirmed
                    .lock()
                    .unwrap()
                    .range(floor..)
                    .next()
                    .is_some()
            },
        )
        .await;
        if cycle > 0 {
            heard_everything_since_the_gap(&seen, cycle - 1, &next_id).await;
        }
        tokio::task::spawn_blocking(move || match fault {
            Fault::StopStart => {
                server.stop();
                server.start_again();
            }
            Fault::StopAppStartApp => {
                server.stop_app();
                server.start_app();
            }
            Fault::Kill => {
                server.kill();
                server.start_again();
            }
        })
        .await
        .expect("the fault");
        let back = next_id.load(Ordering::SeqCst);
        let group_before = seen.group_acked.load(Ordering::Relaxed);
        let resumed = |what: &'static str, done: Box<dyn Fn() -> bool + Send>| async move {
            let started = Instant::now();
            wait_for(what, RESUME_WITHIN, done).await;
            started.elapsed()
        };
        let seen2 = Arc::clone(&seen);
        let publisher_took = resumed(
            "the publisher to be confirmed again",
            Box::new(move || {
                seen2
                    .confirmed
                    .lock()
                    .unwrap()
                    .range(back..)
                    .next()
                    .is_some()
            }),
        )
        .await;
        let seen2 = Arc::clone(&seen);
        resumed(
            "the group member to receive again",
            // Any delivery acknowledged on the new connection: the member may have a
            // backlog to work through first.
            Box::new(move || seen2.group_acked.load(Ordering::Relaxed) > group_before),
        )
        .await;
        let seen2 = Arc::clone(&seen);
        resumed(
            "the broadcast subscriber to receive again",
            Box::new(move || max(&seen2.broadcast).is_some_and(|m| m >= back)),
        )
        .await;
        eprintln!("{fault:?} #{cycle}: publisher confirmed again after {publisher_took:?}");
    }
    stop.store(true, Ordering::Relaxed);
    let mut failed = 0;
    for p in publishers {
        failed += p.await.expect("publisher task");
    }

    let confirmed = seen.confirmed.lock().unwrap().clone();
    let deadline = Instant::now() + Duration::from_secs(30);
    let lost = loop {
        let lost: Vec<u32> = {
            let group = seen.group.lock().unwrap();
            confirmed
                .iter()
                .filter(|id| !group.contains(id))
                .copied()
                .collect()
        };
        if lost.is_empty() || Instant::now() > deadline {
            break lost;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let deliveries = seen.group_deliveries.load(Ordering::Relaxed);
    let distinct = seen.group.lock().unwrap().len() as u32;
    eprintln!(
        "{fault:?} x{cycles}: {} confirmed, {failed} publishes failed, group got {deliveries} \
         deliveries of {distinct} messages ({} duplicates)",
        confirmed.len(),
        deliveries - distinct,
    );
    assert!(
        lost.is_empty(),
        "the group lost {} confirmed messages: {:?}",
        lost.len(),
        &lost[..lost.len().min(20)]
    );
    assert!(
        seen.group_signals.lock().unwrap().is_empty(),
        "a group misses nothing, so it has nothing to signal: {:?}",
        seen.group_signals.lock().unwrap()
    );
    assert!(
        seen.other_signals.lock().unwrap().is_empty(),
        "{:?}",
        seen.other_signals.lock().unwrap()
    );

    heard_everything_since_the_gap(&seen, cycles - 1, &next_id).await;
    let gaps = seen.gaps.lock().unwrap().clone();
    assert_eq!(gaps.len(), cycles, "one gap per fault: {gaps:?}");
    listening.abort();
    working.abort();
}

/// The broadcast subscriber heard every message confirmed after its gap of `cycle`
/// and published before now: checked before the next fault, as a message confirmed
/// just before a fault may be lost with the connection, which the next gap says.
async fn heard_everything_since_the_gap(seen: &Seen, cycle: usize, next_id: &AtomicU32) {
    let gap = seen.gaps.lock().unwrap()[cycle];
    let until = {
        let _in_flight = seen.in_flight.lock().unwrap();
        next_id.load(Ordering::SeqCst)
    };
    wait_for(
        "the publishes before the check to settle",
        RESUME_WITHIN,
        || {
            seen.in_flight
                .lock()
                .unwrap()
                .first()
                .is_none_or(|&id| id >= until)
        },
    )
    .await;
    let missed = || -> Vec<u32> {
        let heard = seen.broadcast.lock().unwrap();
        let confirmed = seen.confirmed.lock().unwrap();
        confirmed
            .range(gap..until)
            .filter(|id| !heard.contains(id))
            .copied()
            .collect()
    };
    let deadline = Instant::now() + RESUME_WITHIN;
    while !missed().is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let missed = missed();
    assert!(
        missed.is_empty(),
        "after gap {cycle} (at id {gap}), {} confirmed messages were not heard: {:?}",
        missed.len(),
        &missed[..missed.len().min(20)]
    );
}

/// Waits until `done`, for at most `limit`.
async fn wait_for(what: &str, limit: Duration, done: impl Fn() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_party_resumes_after_stop_and_start_twice() {
    support::logs_in_test_output(LOGS);
    survive(Fault::StopStart, 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_party_resumes_after_stop_app_and_start_app_five_times() {
    support::logs_in_test_output(LOGS);
    survive(Fault::StopAppStartApp, 5).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_party_resumes_after_sigkill_twice() {
    support::logs_in_test_output(LOGS);
    survive(Fault::Kill, 2).await;
}
