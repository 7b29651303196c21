//! A master of a Redis Cluster killed while 10,000 numbered messages are published to
//! a Streams group and to a sharded subscription, with message accounting: every
//! subscription resumes with a `Gap`, and how many acknowledged publishes it did not
//! get is measured and printed. For the Streams group that is what the failover lost
//! (Redis replicates asynchronously, so an entry the dying master acknowledged may
//! not have reached its replica); for the sharded subscription, which delivers at
//! most once, it is also what was published while it was being made again. The test
//! has a cluster of its own.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use pubsub_brokers::RedisCluster;
use pubsub_core::testkit::support::unique;
use pubsub_core::{PubSub, Received, Signal, SubscribeOptions, Subscription};
use pubsub_redis::{RedisBackend, RedisBuilder};

const MESSAGES: u32 = 10_000;
/// The master dies once this many publishes were acknowledged.
const KILL_AT: usize = 2_000;
/// Publishes in flight at once.
const IN_FLIGHT: usize = 32;
/// How long the readers wait for the last messages after the last publish.
const DRAIN: Duration = Duration::from_secs(15);

fn builder(cluster: &RedisCluster) -> RedisBuilder {
    RedisBackend::builder(&cluster.url())
        .publish_timeout(Duration::from_secs(20))
        .reconnect_backoff(Duration::from_millis(20), Duration::from_millis(200))
}

/// How long the probes after the last publish go on at most.
const PROBE_FOR: Duration = Duration::from_secs(30);

/// What a subscription saw: the numbers (of `0..MESSAGES`), how many gap signals, and
/// whether a probe (a number past them) came.
struct Seen {
    numbers: HashSet<u32>,
    gaps: usize,
    probed: bool,
}

/// Reads `sub` (acking group deliveries) until it has every number or a probe came,
/// or nothing came for [`DRAIN`] once all were published.
async fn read(mut sub: Subscription, published: Arc<AtomicUsize>) -> Seen {
    let mut seen = Seen {
        numbers: HashSet::new(),
        gaps: 0,
        probed: false,
    };
    loop {
        let wait = if published.load(Ordering::Acquire) == MESSAGES as usize {
            DRAIN
        } else {
            Duration::from_secs(60)
        };
        match tokio::time::timeout(wait, sub.next()).await {
            Ok(Some(Received::Message(d))) => {
                let n: u32 = d.json().expect("a number");
                d.ack().await.expect("ack");
                if n >= MESSAGES {
                    seen.probed = true;
                    return seen;
                }
                seen.numbers.insert(n);
                if seen.numbers.len() == MESSAGES as usize {
                    return seen;
                }
            }
            Ok(Some(Received::Signal(Signal::Gap { .. }))) => seen.gaps += 1,
            Ok(Some(Received::Signal(signal))) => panic!("unexpected signal {signal}"),
            Ok(None) => panic!("the subscription ended"),
            Err(_) => return seen,
        }
    }
}

/// Publishes `0..MESSAGES` to `topic`, killing node `master` after [`KILL_AT`]
/// acknowledged publishes (unless the other publisher did); returns the numbers whose
/// publish was acknowledged.
async fn publish_through_a_failover(
    bus: &PubSub,
    topic: &str,
    cluster: &Arc<RedisCluster>,
    master: usize,
    killed: &Arc<AtomicUsize>,
    published: &Arc<AtomicUsize>,
) -> HashSet<u32> {
    let acked = Arc::new(AtomicUsize::new(0));
    let acknowledged: Vec<Option<u32>> = futures::stream::iter(0..MESSAGES)
        .map(|n| {
            let (bus, cluster, acked) = (bus.clone(), cluster.clone(), acked.clone());
            let killed = killed.clone();
            async move {
                let outcome = bus.topic(topic).publish(&n).await;
                // The first of the two publishers to get there kills the master.
                if acked.fetch_add(1, Ordering::AcqRel) + 1 == KILL_AT
                    && killed.fetch_add(1, Ordering::AcqRel) == 0
                {
                    // Killed, failed over, then restarted by its supervisor: it rejoins
                    // as a replica and answers MOVED to the new master.
                    tokio::task::spawn_blocking(move || {
                        cluster.kill_and_fail_over(master);
                        cluster.start_again(master);
                    })
                    .await
                    .unwrap();
                }
                match outcome {
                    Ok(()) => Some(n),
                    Err(e) => {
                        eprintln!("publish {n} failed: {e:?}");
                        None
                    }
                }
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    published.store(MESSAGES as usize, Ordering::Release);
    acknowledged.into_iter().flatten().collect()
}

/// Publishes numbers from [`MESSAGES`] on, every 100 ms, until `reader` is done or
/// [`PROBE_FOR`] passed.
async fn probe(bus: &PubSub, topic: &str, reader: &tokio::task::JoinHandle<Seen>) {
    let mut every = tokio::time::interval(Duration::from_millis(100));
    let deadline = tokio::time::Instant::now() + PROBE_FOR;
    for n in MESSAGES.. {
        every.tick().await;
        if reader.is_finished() || tokio::time::Instant::now() > deadline {
            return;
        }
        if let Err(e) = bus.topic(topic).publish(&n).await {
            eprintln!("probe {n} failed: {e:?}");
        }
    }
}

/// Prints and checks one subscription's account.
fn account(what: &str, acknowledged: &HashSet<u32>, seen: &Seen) -> usize {
    let mut lost: Vec<u32> = acknowledged.difference(&seen.numbers).copied().collect();
    lost.sort_unstable();
    if let (Some(first), Some(last)) = (lost.first(), lost.last()) {
        eprintln!("{what}: the lost acknowledged publishes are numbers {first} to {last}");
    }
    let lost = lost.len();
    eprintln!(
        "{what}: {} of {MESSAGES} publishes acknowledged, {} received, {lost} acknowledged ones lost, {} gap signal(s)",
        acknowledged.len(),
        seen.numbers.len(),
        seen.gaps,
    );
    assert!(seen.gaps >= 1, "{what}: no gap signal after the failover");
    let resumed = seen.probed || seen.numbers.len() == MESSAGES as usize;
    assert!(resumed, "{what}: nothing arrived after the failover");
    lost
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_killed_under_a_streams_group_and_a_sharded_subscription() {
    pubsub_core::testkit::support::logs_in_test_output("pubsub_redis=info,redis=warn");
    let cluster = Arc::new(RedisCluster::start());
    let streams: PubSub = builder(&cluster)
        .streams(true)
        .claim_idle(Duration::from_secs(1))
        .connect()
        .await
        .unwrap()
        .into();
    let sharded: PubSub = builder(&cluster).connect().await.unwrap().into();
    // Both topics on one master, so that one kill hits both.
    let group_topic = unique("fault.group");
    let master = cluster.master_of(&group_topic);
    let shard_topic = std::iter::repeat_with(|| unique("fault.shard"))
        .find(|t| cluster.master_of(t) == master)
        .expect("a name on the same master");
    let (group_published, shard_published) =
        (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let group = streams
        .topic(&group_topic)
        .subscribe_with(SubscribeOptions::new().group("g").prefetch(64))
        .await
        .unwrap();
    let broadcast = sharded
        .topic(&shard_topic)
        .subscribe_with(SubscribeOptions::new().buffer(MESSAGES as usize))
        .await
        .unwrap();
    let group_reader = tokio::spawn(read(group, group_published.clone()));
    let shard_reader = tokio::spawn(read(broadcast, shard_published.clone()));
    let killed = Arc::new(AtomicUsize::new(0));
    let (group_acked, shard_acked) = tokio::join!(
        publish_through_a_failover(
            &streams,
            &group_topic,
            &cluster,
            master,
            &killed,
            &group_published
        ),
        publish_through_a_failover(
            &sharded,
            &shard_topic,
            &cluster,
            master,
            &killed,
            &shard_published
        ),
    );
    // Publishing may end before a subscription is made again (the shard takes
    // publishes all through the failover): numbers past the last go out until each
    // reader saw one, or has every number, so that resuming is shown, not assumed.
    tokio::join!(
        probe(&streams, &group_topic, &group_reader),
        probe(&sharded, &shard_topic, &shard_reader),
    );
    let group_seen = group_reader.await.unwrap();
    let shard_seen = shard_reader.await.unwrap();
    let group_lost = account("streams group", &group_acked, &group_seen);
    let shard_lost = account("sharded broadcast", &shard_acked, &shard_seen);
    eprintln!(
        "lost acknowledged publishes: streams group {group_lost}, sharded broadcast {shard_lost}"
    );
}

/// A group member that dies mid-work (it took messages and never settles them, as a
/// crashed process would) loses nothing: another member claims them once they are
/// idle for its claim idle time, as the second delivery.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_member_killed_mid_work_loses_nothing() {
    const SENT: u32 = 50;
    const TAKEN: u16 = 5;
    let cluster = RedisCluster::start();
    let topic = unique("fault.crash");
    let options = SubscribeOptions::new().group("g").prefetch(TAKEN);
    let dying: PubSub = builder(&cluster)
        .streams(true)
        .connect()
        .await
        .unwrap()
        .into();
    let mut doomed = dying
        .topic(&topic)
        .subscribe_with(options.clone())
        .await
        .unwrap();
    for n in 0..SENT {
        dying.topic(&topic).publish(&n).await.unwrap();
    }
    for _ in 0..TAKEN {
        let taken = tokio::time::timeout(DRAIN, doomed.next()).await;
        let Ok(Some(Received::Message(d))) = taken else {
            panic!("the dying member got no message: {taken:?}");
        };
        // No ack, nack or release ever reaches Redis.
        std::mem::forget(d);
    }
    dying.close().await.unwrap();

    let living: PubSub = builder(&cluster)
        .streams(true)
        .claim_idle(Duration::from_millis(300))
        .connect()
        .await
        .unwrap()
        .into();
    let mut heir = living.topic(&topic).subscribe_with(options).await.unwrap();
    let (mut got, mut claimed) = (HashSet::new(), 0);
    while got.len() < SENT as usize {
        let next = tokio::time::timeout(DRAIN, heir.next()).await;
        let Ok(Some(Received::Message(d))) = next else {
            panic!(
                "the living member has {} of {SENT}, then: {next:?}",
                got.len()
            );
        };
        if d.attempt() == 2 {
            claimed += 1;
        }
        got.insert(d.json::<u32>().unwrap());
        d.ack().await.unwrap();
    }
    assert_eq!(got, (0..SENT).collect(), "every message, once");
    assert_eq!(
        claimed,
        usize::from(TAKEN),
        "the dead member's messages, claimed"
    );
}
