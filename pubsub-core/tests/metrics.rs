//! The metrics of a scripted run on the in-process bus (feature `metrics`), counted
//! exactly: publishes, deliveries, acks, nacks, redeliveries, lag, dead letters and
//! requests.

use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use metrics_util::MetricKind;
use pubsub_core::telemetry::names;
use pubsub_core::testkit::support::{next, next_item, within};
use pubsub_core::{
    Delivery, HandlerOptions, PubSub, Received, RetryPolicy, Signal, SubscribeOptions,
};

/// Everything recorded so far. The recorder's snapshots drain its counters and
/// gauges, so the totals add them up.
struct Totals {
    snapshotter: Snapshotter,
    seen: Vec<(MetricKind, String, Labels, DebugValue)>,
}

type Labels = Vec<(String, String)>;

impl Totals {
    fn refresh(&mut self) {
        for (key, _, _, value) in self.snapshotter.snapshot().into_vec() {
            let (kind, key) = key.into_parts();
            let name = key.name().to_owned();
            let labels = key
                .labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect();
            match self
                .seen
                .iter_mut()
                .find(|(k, n, l, _)| *k == kind && *n == name && *l == labels)
            {
                Some((_, _, _, total)) => match (total, value) {
                    (DebugValue::Counter(total), DebugValue::Counter(more)) => *total += more,
                    // A gauge's snapshot is what it moved since the last one.
                    (DebugValue::Gauge(total), DebugValue::Gauge(more)) => *total += more,
                    (DebugValue::Histogram(total), DebugValue::Histogram(more)) => {
                        total.extend(more)
                    }
                    (total, value) => *total = value,
                },
                None => self.seen.push((kind, name, labels, value)),
            }
        }
    }

    /// The value of metric `name` whose labels include `labels`.
    fn get(&mut self, name: &str, labels: &[(&str, &str)]) -> Option<&DebugValue> {
        self.refresh();
        self.seen.iter().find_map(|(_, n, l, value)| {
            let all = labels
                .iter()
                .all(|(k, v)| l.iter().any(|(lk, lv)| lk == k && lv == v));
            (n == name && all).then_some(value)
        })
    }

    fn counter(&mut self, name: &str, destination: &str) -> u64 {
        match self.get(name, &[("destination", destination)]) {
            Some(DebugValue::Counter(n)) => *n,
            None => 0,
            other => panic!("{name} is not a counter: {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_scripted_run_is_counted_exactly() {
    let recorder = DebuggingRecorder::new();
    let mut totals = Totals {
        snapshotter: recorder.snapshotter(),
        seen: Vec::new(),
    };
    recorder
        .install()
        .expect("the only recorder of this test binary");
    let bus: PubSub = pubsub_local::LocalBackend::new().into();
    let system = bus.capabilities().system;

    // N published to a slow broadcast subscriber with a buffer of B: M = N - B lagged.
    let (n, buffer) = (10u64, 4usize);
    let mut slow = bus
        .topic("metrics.feed")
        .subscribe_with(SubscribeOptions::new().buffer(buffer))
        .await
        .expect("subscribe");
    for i in 0..n {
        bus.topic("metrics.feed")
            .publish(&i)
            .await
            .expect("publish");
    }
    let lagged = match next_item(&mut slow, "the lag").await {
        Received::Signal(Signal::Lagged { missed }) => missed,
        other => panic!("a lag first, got {other:?}"),
    };
    assert_eq!(lagged, n - buffer as u64);
    for _ in 0..buffer {
        drop(next(&mut slow, "a buffered message").await);
    }

    // K jobs a handler always fails, twice each, then dead-letters.
    let k = 3u64;
    let mut dead = bus
        .topic("metrics.dead")
        .subscribe()
        .await
        .expect("subscribe");
    let mut failing = bus.topic("metrics.jobs").on_with(
        HandlerOptions::new()
            .group("workers")
            .retry(RetryPolicy::attempts(2).dead_letter("metrics.dead")),
        |_job: Delivery| async { Err("always fails".into()) },
    );
    failing.ready().await.expect("the handler subscribed");
    for i in 0..k {
        bus.topic("metrics.jobs")
            .publish(&i)
            .await
            .expect("publish");
    }
    for _ in 0..k {
        drop(next(&mut dead, "a dead letter").await);
    }

    // One nack with requeue: a redelivery, then an ack.
    let mut members = bus
        .topic("metrics.retry")
        .subscribe_group("g")
        .await
        .expect("subscribe");
    bus.topic("metrics.retry")
        .publish(&1)
        .await
        .expect("publish");
    next(&mut members, "the first delivery")
        .await
        .nack(true)
        .await
        .expect("nack");
    let again = next(&mut members, "the redelivery").await;
    assert_eq!(again.attempt(), 2);
    again.ack().await.expect("ack");

    // A request nobody answers, and one that is answered.
    let unanswered = bus
        .topic("metrics.nobody")
        .request::<_, u32>(&1, Duration::from_secs(5))
        .await;
    assert!(unanswered.is_err());
    let mut responder = bus
        .topic("metrics.echo")
        .subscribe()
        .await
        .expect("subscribe");
    let echo = tokio::spawn(async move {
        let request = next(&mut responder, "the request").await;
        request.reply(&2).await.expect("reply");
    });
    let answer: u32 = bus
        .topic("metrics.echo")
        .request(&1, Duration::from_secs(5))
        .await
        .expect("a reply");
    assert_eq!(answer, 2);
    echo.await.expect("the responder");

    // The dead letters are acked after they are published: wait for the last ack.
    within("the handler's acks", async {
        while totals.counter(names::ACKED, "metrics.jobs") < k {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    failing.stop();

    assert_eq!(totals.counter(names::PUBLISHED, "metrics.feed"), n);
    assert_eq!(
        totals.counter(names::DELIVERED, "metrics.feed"),
        buffer as u64
    );
    assert_eq!(
        totals.counter(names::LAGGED, "metrics.feed"),
        n - buffer as u64
    );
    assert_eq!(totals.counter(names::PUBLISHED, "metrics.jobs"), k);
    assert_eq!(totals.counter(names::DELIVERED, "metrics.jobs"), k);
    assert_eq!(totals.counter(names::DEAD_LETTERED, "metrics.jobs"), k);
    assert_eq!(totals.counter(names::PUBLISHED, "metrics.dead"), k);
    assert_eq!(totals.counter(names::DELIVERED, "metrics.retry"), 2);
    assert_eq!(totals.counter(names::REDELIVERED, "metrics.retry"), 1);
    assert_eq!(totals.counter(names::NACKED, "metrics.retry"), 1);
    assert_eq!(totals.counter(names::ACKED, "metrics.retry"), 1);
    assert_eq!(totals.counter(names::GAPS, "metrics.feed"), 0);
    match totals.get(names::IN_FLIGHT, &[("destination", "metrics.jobs")]) {
        Some(DebugValue::Gauge(g)) => assert_eq!(g.into_inner(), 0.0),
        other => panic!("an in-flight gauge, got {other:?}"),
    }
    for (destination, outcome) in [("metrics.nobody", "no_responders"), ("metrics.echo", "ok")] {
        let labels = [
            ("destination", destination),
            ("outcome", outcome),
            ("system", system),
        ];
        match totals.get(names::REQUEST_DURATION, &labels) {
            Some(DebugValue::Histogram(took)) => {
                assert_eq!(took.len(), 1, "{outcome} on {destination}")
            }
            other => panic!("one {outcome} request on {destination}, got {other:?}"),
        }
    }
}
