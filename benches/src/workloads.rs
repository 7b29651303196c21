//! The workloads, each written once over [`Client`], so our library and the raw
//! client it wraps run exactly the same code.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{Stream, StreamExt};
use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::task::JoinHandle;

use crate::client::{BenchResult, Client, Publisher, Receive, Recv, Subscriber};
use crate::flow::{Flow, Share, Tally, PUBLISH_BATCH};
use crate::measure::{self, Outcome, Percentiles};
use pubsub_core::testkit::support::resident_bytes;

/// One workload of the comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Workload {
    /// One publisher, one subscriber, payloads of this many bytes.
    OneToOne {
        /// Payload size in bytes.
        payload: usize,
    },
    /// One publisher, this many subscribers to the same topic, 64-byte payloads.
    FanOut {
        /// Subscribers.
        subscribers: usize,
    },
    /// Publishers into one group of acking workers.
    Group {
        /// Publishers.
        publishers: usize,
        /// Group members.
        workers: usize,
    },
    /// This many one-to-one pairs at once, each on a topic of its own, 64-byte
    /// payloads: what a broker that spreads topics (a cluster's shards) gains.
    Parallel {
        /// Publisher and subscriber pairs.
        pairs: usize,
    },
    /// One subscriber with a `*` pattern while one publisher cycles through this
    /// many topics, one in ten of which match.
    Pattern {
        /// Topic names published to.
        topics: usize,
    },
    /// Sequential request/reply round trips against an echo responder.
    RequestReply,
    /// Delivery latency at a fixed publish rate.
    Latency {
        /// Messages per second.
        rate: u64,
    },
    /// Full-speed publishing of 4 KiB messages while one of two subscribers reads
    /// nothing; reports resident memory growth.
    Stalled,
    /// Many subscriptions to distinct topics, none of which receives anything;
    /// reports resident memory per subscription (a gateway holds one per bound socket).
    Idle,
}

impl Workload {
    /// Every workload of the issue, in table order.
    pub fn all() -> Vec<Workload> {
        let mut all: Vec<Workload> = [64, 4096, 65536]
            .into_iter()
            .map(|payload| Workload::OneToOne { payload })
            .collect();
        all.extend([1, 10, 100].map(|subscribers| Workload::FanOut { subscribers }));
        all.extend([
            Workload::Group {
                publishers: 4,
                workers: 4,
            },
            Workload::Parallel { pairs: 12 },
            Workload::Pattern { topics: 1000 },
            Workload::RequestReply,
            Workload::Latency { rate: 10_000 },
            Workload::Stalled,
            Workload::Idle,
        ]);
        all
    }

    /// The short name used in the table, the JSON and the chart.
    pub fn label(&self) -> String {
        match self {
            Workload::OneToOne { payload } => format!("1→1 {}", size(*payload)),
            Workload::FanOut { subscribers } => format!("fan-out {subscribers}"),
            Workload::Group {
                publishers,
                workers,
            } => format!("{publishers} pub → group of {workers}"),
            Workload::Parallel { pairs } => format!("{pairs} topics 1→1 at once"),
            Workload::Pattern { topics } => format!("pattern, {topics} topics"),
            Workload::RequestReply => "request/reply".into(),
            Workload::Latency { rate } => format!("latency @ {rate}/s"),
            Workload::Stalled => "stalled subscriber".into(),
            Workload::Idle => "idle subscriptions".into(),
        }
    }
}

fn size(bytes: usize) -> String {
    match bytes {
        b if b >= 1024 => format!("{} KiB", b / 1024),
        b => format!("{b} B"),
    }
}

/// How long each run lasts.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Scale {
    /// Publishing time of a throughput run.
    pub throughput: Duration,
    /// Length of the fixed-rate latency run.
    pub latency: Duration,
    /// How long the subscriber stays stalled.
    pub stall: Duration,
    /// Rounds of each throughput run; the median is reported.
    pub rounds: usize,
    /// Idle subscriptions to distinct topics whose memory is measured.
    pub idle: usize,
}

impl Scale {
    /// The full comparison.
    pub const FULL: Scale = Scale {
        throughput: Duration::from_secs(1),
        latency: Duration::from_secs(5),
        stall: Duration::from_secs(10),
        rounds: 3,
        idle: 5_000,
    };
    /// The smoke test: every workload, briefly.
    pub const QUICK: Scale = Scale {
        throughput: Duration::from_millis(300),
        latency: Duration::from_secs(1),
        stall: Duration::from_secs(1),
        rounds: 1,
        idle: 500,
    };
}

impl Workload {
    /// How many rounds to run: the stall, as long as the issue says, once.
    pub fn rounds(&self, scale: Scale) -> usize {
        match self {
            Workload::Stalled | Workload::Idle => 1,
            _ => scale.rounds,
        }
    }

    /// The figure whose median round is reported: p99 where latency is the
    /// point, throughput elsewhere.
    pub fn ranking(&self, outcome: &Outcome) -> f64 {
        match (self, outcome.latency_us) {
            (Workload::Latency { .. }, Some(latency)) => latency.p99,
            _ => outcome.msg_per_s,
        }
    }
}

/// How long a run may take beyond its publishing time before it counts as hung.
const GRACE: Duration = Duration::from_secs(30);

/// Runs `workload` on `client`; `None` when the client cannot do it.
pub async fn run<C: Client>(
    client: &C,
    workload: Workload,
    scale: Scale,
    topic: &str,
) -> BenchResult<Option<Outcome>> {
    match workload {
        Workload::OneToOne { payload } => broadcast(client, topic, 1, payload, scale).await,
        Workload::FanOut { subscribers } => broadcast(client, topic, subscribers, 64, scale).await,
        Workload::Group {
            publishers,
            workers,
        } => group(client, topic, publishers, workers, scale).await,
        Workload::Parallel { pairs } => parallel(client, topic, pairs, scale).await,
        Workload::Pattern { topics } => pattern(client, topic, topics, scale).await,
        Workload::RequestReply => request_reply(client, topic, scale).await,
        Workload::Latency { rate } => latency(client, topic, rate, scale).await,
        Workload::Stalled => stalled(client, topic, scale).await,
        Workload::Idle => idle(client, topic, scale).await,
    }
}

/// What one consumer saw.
#[derive(Debug)]
struct Consumed {
    received: u64,
    lost: u64,
    /// When the last message before the end marker arrived (the marker's arrival
    /// when there was none): a marker that waited says nothing of the throughput.
    end: Instant,
    latency: Option<Histogram<u64>>,
}

/// Reads until the end marker (an empty payload).
async fn consume<S: Subscriber>(
    mut sub: S,
    mut tally: Tally,
    timed: bool,
) -> BenchResult<Consumed> {
    let mut seen = Consumed {
        received: 0,
        lost: 0,
        end: Instant::now(),
        latency: timed.then(measure::histogram),
    };
    let mut last = None;
    loop {
        match sub.recv().await {
            Recv::Msg(payload) if payload.is_empty() => break,
            Recv::Msg(payload) => {
                last = Some(Instant::now());
                seen.received += 1;
                if let Some(histogram) = &mut seen.latency {
                    histogram.saturating_record(measure::age_ns(&payload).unwrap_or(0));
                }
                tally.add(1);
            }
            Recv::Lagged(missed) => {
                seen.lost += missed;
                tally.add(missed);
            }
            Recv::Closed => return Err("subscription ended before the end marker".into()),
        }
    }
    seen.end = last.unwrap_or_else(Instant::now);
    Ok(seen)
}

fn spawn_consumers<S: Subscriber>(
    subs: Vec<S>,
    flow: &Arc<Flow>,
    timed: bool,
) -> Vec<JoinHandle<BenchResult<Consumed>>> {
    subs.into_iter()
        .enumerate()
        .map(|(i, sub)| tokio::spawn(consume(sub, flow.tally(i), timed)))
        .collect()
}

async fn join_consumers(
    consumers: Vec<JoinHandle<BenchResult<Consumed>>>,
    limit: Duration,
) -> BenchResult<Vec<Consumed>> {
    let all = futures::future::try_join_all(consumers);
    let joined = tokio::time::timeout(limit, all)
        .await
        .map_err(|_| "subscribers did not see the end marker in time (messages lost?)")??;
    joined.into_iter().collect()
}

async fn subscribe_all<C: Client>(
    client: &C,
    topic: &str,
    how: Receive<'_>,
    count: usize,
) -> BenchResult<Option<Vec<C::Subscriber>>> {
    let mut subs = Vec::with_capacity(count);
    for _ in 0..count {
        match client.subscribe(topic, how).await? {
            Some(sub) => subs.push(sub),
            None => return Ok(None),
        }
    }
    Ok(Some(subs))
}

/// Publishes what `source` yields with `depth` publishes in flight; returns how many.
async fn drive<P: Publisher>(
    publisher: &P,
    depth: usize,
    source: impl Stream<Item = Bytes>,
) -> BenchResult<u64> {
    let mut count = 0;
    let source = std::pin::pin!(source);
    if depth <= 1 {
        let mut source = source;
        while let Some(payload) = source.next().await {
            publisher.publish(payload).await?;
            count += 1;
        }
    } else {
        let mut in_flight = std::pin::pin!(source.map(|p| publisher.publish(p)).buffered(depth));
        while let Some(done) = in_flight.next().await {
            done?;
            count += 1;
        }
    }
    Ok(count)
}

/// Payloads made by `make` until `length` has passed, held back by `flow`.
fn until<'a>(
    length: Duration,
    flow: &'a Flow,
    mut make: impl FnMut(u64) -> Bytes + Send + 'a,
) -> impl Stream<Item = Bytes> + Send + 'a {
    let deadline = Instant::now() + length;
    futures::stream::unfold(0u64, move |n| {
        let next = if n % PUBLISH_BATCH == 0 && n > 0 {
            Some(flow.produced(PUBLISH_BATCH))
        } else {
            None
        };
        let payload = make(n);
        async move {
            if let Some(wait) = next {
                wait.await;
                if Instant::now() >= deadline {
                    return None;
                }
            }
            Some((payload, n + 1))
        }
    })
}

/// Sends the end marker `copies` times.
async fn end<P: Publisher>(publisher: &P, copies: usize) -> BenchResult<()> {
    for _ in 0..copies {
        publisher.publish(Bytes::new()).await?;
    }
    Ok(())
}

fn elapsed(start: Instant, seen: &[Consumed]) -> Duration {
    seen.iter().map(|c| c.end).max().unwrap_or(start) - start
}

async fn broadcast<C: Client>(
    client: &C,
    topic: &str,
    subscribers: usize,
    payload: usize,
    scale: Scale,
) -> BenchResult<Option<Outcome>> {
    let Some(subs) = subscribe_all(client, topic, Receive::Broadcast, subscribers).await? else {
        return Ok(None);
    };
    let publisher = client.publisher(topic).await?;
    let flow = Flow::new(Share::Each, subscribers);
    let consumers = spawn_consumers(subs, &flow, false);
    // One shared buffer: in-process clients pass a reference, brokers copy it to
    // the socket, as they would with any payload.
    let template = Bytes::from(vec![0x5A; payload]);
    let start = Instant::now();
    let published = drive(
        &publisher,
        client.depth(),
        until(scale.throughput, &flow, |_| template.clone()),
    )
    .await?;
    end(&publisher, 1).await?;
    let seen = join_consumers(consumers, scale.throughput + GRACE).await?;
    let mut outcome = measure::throughput(
        published,
        subscribers as u64,
        payload,
        elapsed(start, &seen),
    );
    outcome.lost = lost(published, &seen);
    Ok(Some(outcome))
}

/// Messages some subscriber missed (told, or never delivered), summed.
fn lost(published: u64, seen: &[Consumed]) -> u64 {
    seen.iter()
        .map(|c| c.lost.max(published.saturating_sub(c.received)))
        .sum()
}

async fn parallel<C: Client>(
    client: &C,
    topic: &str,
    pairs: usize,
    scale: Scale,
) -> BenchResult<Option<Outcome>> {
    let topics: Vec<String> = (0..pairs).map(|i| format!("{topic}.{i}")).collect();
    let mut subs = Vec::with_capacity(pairs);
    let mut publishers = Vec::with_capacity(pairs);
    for topic in &topics {
        match client.subscribe(topic, Receive::Broadcast).await? {
            Some(sub) => subs.push(sub),
            None => return Ok(None),
        }
        publishers.push(client.publisher(topic).await?);
    }
    // The pairs run as fast as the broker lets them: the window is their sum.
    let flow = Flow::new(Share::Split, pairs);
    let consumers = spawn_consumers(subs, &flow, false);
    let template = Bytes::from(vec![0x5A; 64]);
    let (depth, length) = (client.depth(), scale.throughput);
    let start = Instant::now();
    let counts = futures::future::try_join_all(publishers.iter().map(|p| {
        let (flow, template) = (&flow, template.clone());
        drive(p, depth, until(length, flow, move |_| template.clone()))
    }))
    .await?;
    for publisher in &publishers {
        end(publisher, 1).await?;
    }
    let seen = join_consumers(consumers, length + GRACE).await?;
    let published: u64 = counts.iter().sum();
    let received: u64 = seen.iter().map(|c| c.received).sum();
    let mut outcome = measure::throughput(published, 1, 64, elapsed(start, &seen));
    outcome.lost = published.saturating_sub(received);
    Ok(Some(outcome))
}

async fn group<C: Client>(
    client: &C,
    topic: &str,
    publishers: usize,
    workers: usize,
    scale: Scale,
) -> BenchResult<Option<Outcome>> {
    let name = format!("{}-workers", topic.replace('.', "-"));
    let Some(subs) = subscribe_all(client, topic, Receive::Group(&name), workers).await? else {
        return Ok(None);
    };
    let mut handles = Vec::with_capacity(publishers);
    for _ in 0..publishers {
        handles.push(client.publisher(topic).await?);
    }
    let flow = Flow::new(Share::Split, workers);
    let consumers = spawn_consumers(subs, &flow, false);
    let template = Bytes::from(vec![0x5A; 64]);
    let (depth, length) = (client.depth(), scale.throughput);
    let start = Instant::now();
    let counts = futures::future::try_join_all(handles.iter().map(|p| {
        let (flow, template) = (&flow, template.clone());
        drive(p, depth, until(length, flow, move |_| template.clone()))
    }))
    .await?;
    // One marker per member, again until every member has stopped: a member stops at
    // its first, and one that read several at once holds the others' (the raw Streams
    // client reads 16 at a time and gives back nothing).
    let more = async {
        let mut sent = end(&handles[0], workers).await;
        while sent.is_ok() {
            tokio::time::sleep(Duration::from_millis(100)).await;
            sent = end(&handles[0], workers).await;
        }
        sent
    };
    let seen = tokio::select! {
        seen = join_consumers(consumers, length + GRACE) => seen?,
        failed = more => return failed.map(|()| None),
    };
    let published: u64 = counts.iter().sum();
    let received: u64 = seen.iter().map(|c| c.received).sum();
    let mut outcome = measure::throughput(published, 1, 64, elapsed(start, &seen));
    outcome.lost = published.saturating_sub(received);
    Ok(Some(outcome))
}

async fn pattern<C: Client>(
    client: &C,
    topic: &str,
    topics: usize,
    scale: Scale,
) -> BenchResult<Option<Outcome>> {
    let Some(sub) = client
        .subscribe(&format!("{topic}.*.hit"), Receive::Pattern)
        .await?
    else {
        return Ok(None);
    };
    let mut handles = Vec::with_capacity(topics);
    for i in 0..topics {
        let kind = if i % 10 == 0 { "hit" } else { "miss" };
        handles.push(client.publisher(&format!("{topic}.t{i}.{kind}")).await?);
    }
    let flow = Flow::new(Share::Each, 1);
    let consumers = spawn_consumers(vec![sub], &flow, false);
    let template = Bytes::from(vec![0x5A; 64]);
    let deadline = Instant::now() + scale.throughput;
    let start = Instant::now();
    let (mut published, mut hits) = (0u64, 0u64);
    // Round-robin over the topics, one publish in flight (the handles differ).
    'publishing: loop {
        for (i, handle) in handles.iter().enumerate() {
            handle.publish(template.clone()).await?;
            published += 1;
            if i % 10 == 0 {
                hits += 1;
                if hits % PUBLISH_BATCH == 0 {
                    flow.produced(PUBLISH_BATCH).await;
                    if Instant::now() >= deadline {
                        break 'publishing;
                    }
                }
            }
        }
    }
    end(&handles[0], 1).await?;
    let seen = join_consumers(consumers, scale.throughput + GRACE).await?;
    let mut outcome = measure::throughput(published, 1, 64, elapsed(start, &seen));
    outcome.mib_per_s *= 0.1;
    outcome.lost = lost(hits, &seen);
    Ok(Some(outcome))
}

async fn request_reply<C: Client>(
    client: &C,
    topic: &str,
    scale: Scale,
) -> BenchResult<Option<Outcome>> {
    let start = Instant::now();
    let Some(histogram) = client
        .round_trips(topic, Bytes::from(vec![0x5A; 64]), scale.throughput)
        .await?
    else {
        return Ok(None);
    };
    let mut outcome = measure::throughput(histogram.len(), 1, 64, start.elapsed());
    outcome.latency_us = Percentiles::of(&histogram);
    Ok(Some(outcome))
}

async fn latency<C: Client>(
    client: &C,
    topic: &str,
    rate: u64,
    scale: Scale,
) -> BenchResult<Option<Outcome>> {
    let Some(sub) = client.subscribe(topic, Receive::Broadcast).await? else {
        return Ok(None);
    };
    let publisher = client.publisher(topic).await?;
    let flow = Flow::new(Share::Each, 1);
    let consumers = spawn_consumers(vec![sub], &flow, true);
    // tokio's timer ticks each millisecond: publish that millisecond's share on
    // each tick, each message stamped just before its publish.
    let per_tick = (rate / 1000).max(1);
    let ticks = scale.latency.as_millis() as u64;
    let mut interval = tokio::time::interval(Duration::from_millis(1));
    let start = Instant::now();
    let mut published = 0;
    for _ in 0..ticks {
        interval.tick().await;
        let batch = futures::stream::iter(0..per_tick).map(|_| measure::stamped(64));
        published += drive(&publisher, client.depth(), batch).await?;
    }
    end(&publisher, 1).await?;
    let seen = join_consumers(consumers, scale.latency + GRACE).await?;
    let mut outcome = measure::throughput(published, 1, 64, elapsed(start, &seen));
    outcome.lost = lost(published, &seen);
    outcome.latency_us = seen[0].latency.as_ref().and_then(Percentiles::of);
    Ok(Some(outcome))
}

async fn stalled<C: Client>(client: &C, topic: &str, scale: Scale) -> BenchResult<Option<Outcome>> {
    const PAYLOAD: usize = 4096;
    let Some(mut subs) = subscribe_all(client, topic, Receive::Broadcast, 2).await? else {
        return Ok(None);
    };
    let stalled = subs.pop();
    let publisher = client.publisher(topic).await?;
    let flow = Flow::new(Share::Each, 1);
    let consumers = spawn_consumers(subs, &flow, false);
    measure::release_free_memory();
    let baseline = resident_bytes()?;
    let peak = Arc::new(AtomicU64::new(baseline));
    let sampler = tokio::spawn(sample_resident(Arc::clone(&peak)));
    let start = Instant::now();
    // Fresh buffers, as an application that serializes each message makes them, so
    // that whatever a client keeps for the stalled subscriber shows in memory.
    let source = until(scale.stall, &flow, |_| Bytes::from(vec![0x5A; PAYLOAD]));
    let published = drive(&publisher, client.depth(), source).await?;
    end(&publisher, 1).await?;
    let seen = join_consumers(consumers, scale.stall + GRACE).await?;
    peak.fetch_max(resident_bytes()?, Ordering::Relaxed);
    sampler.abort();
    drop(stalled);
    let mut outcome = measure::throughput(published, 1, PAYLOAD, elapsed(start, &seen));
    outcome.lost = lost(published, &seen);
    let growth = peak.load(Ordering::Relaxed).saturating_sub(baseline);
    outcome.rss_growth_mib = Some(growth as f64 / (1024.0 * 1024.0));
    Ok(Some(outcome))
}

/// Subscribes to `scale.idle` distinct topics and holds the subscriptions without
/// publishing: the resident memory they add, per subscription, is the figure. A client
/// whose broker caps its subscriptions holds as many as it may.
async fn idle<C: Client>(client: &C, topic: &str, scale: Scale) -> BenchResult<Option<Outcome>> {
    let count = client
        .max_subscriptions()
        .map_or(scale.idle, |cap| cap.min(scale.idle));
    let mut subscriptions = Vec::with_capacity(count);
    measure::release_free_memory();
    let baseline = resident_bytes()?;
    let start = Instant::now();
    for i in 0..count {
        match client
            .subscribe(&format!("{topic}.idle{i}"), Receive::Broadcast)
            .await?
        {
            Some(subscription) => subscriptions.push(subscription),
            None => return Ok(None),
        }
    }
    let seconds = start.elapsed();
    measure::release_free_memory();
    let growth = resident_bytes()?.saturating_sub(baseline);
    drop(subscriptions);
    let mut outcome = measure::throughput(count as u64, 1, 0, seconds);
    outcome.rss_growth_mib = Some(growth as f64 / (1024.0 * 1024.0));
    outcome.kib_per_subscription = Some(growth as f64 / 1024.0 / count as f64);
    Ok(Some(outcome))
}

/// Keeps the highest resident memory seen, every 50 ms, until aborted.
async fn sample_resident(peak: Arc<AtomicU64>) {
    let mut interval = tokio::time::interval(Duration::from_millis(50));
    loop {
        interval.tick().await;
        if let Ok(now) = resident_bytes() {
            peak.fetch_max(now, Ordering::Relaxed);
        }
    }
}
