//! A group member: a Redis consumer of the topic's consumer group, reading with
//! blocking `XREADGROUP`s on a connection of its own, at most `prefetch` messages
//! unsettled. Messages nacked with requeue, dropped unsettled, or held by a member
//! presumed dead (idle longer than the claim idle time) are taken back with
//! `XAUTOCLAIM`; past the maximum number of attempts they go to the dead-letter topic.

use std::sync::Arc;
use std::time::Duration;

use pubsub_core::ring::{self, RingSender};
use pubsub_core::{async_trait, Acker, Delivery, Error, Result, Subscription, TopicName};
use redis::streams::{StreamAutoClaimReply, StreamId, StreamPendingCountReply, StreamReadReply};
use redis::{Cmd, Value};
use tokio::sync::{oneshot, watch, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::blocking::{Blocking, BLOCK};
use super::Streams;
use crate::errors::convert;
use crate::fields;

/// The idle time a requeued message is given, so that the next `XAUTOCLAIM` of any
/// member takes it, whatever the claim idle time.
const REQUEUED_IDLE_MS: u64 = 1 << 40;

/// How long a member whose subscriber holds half its prefetch or more waits for acks
/// to free more places before it reads again.
const GATHER: Duration = Duration::from_millis(1);

/// The suffix of a topic's dead-letter topic.
pub(crate) const DEAD_LETTER: &str = ".dead-letter";

/// What a member's task and its deliveries' ackers share.
struct Member {
    streams: Arc<Streams>,
    key: String,
    group: String,
    consumer: String,
    topic: TopicName,
    /// One per message the member may hold unsettled.
    permits: Arc<Semaphore>,
    prefetch: usize,
    /// Bumped when a message goes back to the group, so that local members claim it.
    requeued: Arc<watch::Sender<u64>>,
}

pub(super) async fn subscribe(
    streams: &Arc<Streams>,
    topic: TopicName,
    group: &str,
    prefetch: usize,
) -> Result<Subscription> {
    let key = streams.key(&topic);
    create_group(streams, &key, group).await?;
    let reader = match Blocking::open(streams, &key).await {
        Some(Ok(reader)) => reader,
        Some(Err(e)) => return Err(convert("cannot open a group member's connection", e)),
        None => return Err(Error::Closed),
    };
    let prefetch = prefetch.max(1);
    let member = Arc::new(Member {
        streams: Arc::clone(streams),
        requeued: streams.requeued(&key, group),
        key,
        group: group.to_owned(),
        consumer: format!("pubsub-{}", uuid::Uuid::new_v4().simple()),
        topic,
        permits: Arc::new(Semaphore::new(prefetch)),
        prefetch,
    });
    // The ring never holds more than the permits allow, plus one gap, so it never
    // drops a delivery.
    let (ring, receiver) = ring::channel(prefetch + 1);
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(Arc::clone(&member).run(reader, ring, stopped));
    Ok(Subscription::new(receiver).with_guard(stop))
}

/// `XGROUP CREATE key group $ MKSTREAM`: the group gets what is added from now on.
/// A group that exists already is joined as it is.
async fn create_group(streams: &Streams, key: &str, group: &str) -> Result<()> {
    let mut create = redis::cmd("XGROUP");
    create
        .arg("CREATE")
        .arg(key)
        .arg(group)
        .arg("$")
        .arg("MKSTREAM");
    match streams.send(&create).await {
        Ok(_) => Ok(()),
        Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
        Err(e) => Err(convert(&format!("create group {group:?} of {key:?}"), e)),
    }
}

impl Member {
    async fn run(
        self: Arc<Self>,
        mut reader: Blocking,
        ring: RingSender<Delivery>,
        mut stopped: oneshot::Receiver<()>,
    ) {
        let mut closed = self.streams.closed.subscribe();
        let mut requeued = self.requeued.subscribe();
        let claim_every = self.streams.settings.claim_idle.min(BLOCK);
        let mut claim_at = Instant::now();
        // A message came back to the group while this member was blocked.
        let mut woken = false;
        let mut failures = self.streams.backoff.clone();
        // Whether the subscription heard of the outage it is in: one gap per outage,
        // however many reconnections it takes (a gap takes a place in the ring).
        let mut told = false;
        loop {
            let first = tokio::select! {
                permit = Arc::clone(&self.permits).acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => break,
                },
                _ = &mut stopped => break,
                _ = super::closing(&mut closed) => break,
            };
            let mut permits = self.gather(first).await;
            if std::mem::take(&mut woken)
                || requeued.has_changed().unwrap_or(false)
                || Instant::now() >= claim_at
            {
                requeued.borrow_and_update();
                claim_at = Instant::now() + claim_every;
                match self.claim(permits.len()).await {
                    Ok(claimed) if !claimed.is_empty() => {
                        if !self.deliver(claimed, &mut permits, &ring).await {
                            break;
                        }
                        continue;
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, key = self.key, "redis XAUTOCLAIM failed"),
                }
            }
            let block = claim_at
                .saturating_duration_since(Instant::now())
                .min(BLOCK);
            let read = self.read_command(permits.len(), block);
            let id = reader.id();
            let (outcome, stop) = {
                let read = reader.read(&read);
                tokio::pin!(read);
                tokio::select! {
                    outcome = &mut read => (outcome, false),
                    _ = requeued.changed() => {
                        woken = true;
                        self.streams.unblock(id, &self.key).await;
                        (read.await, false)
                    }
                    _ = &mut stopped => {
                        self.streams.unblock(id, &self.key).await;
                        (read.await, true)
                    }
                    _ = super::closing(&mut closed) => break,
                }
            };
            match outcome {
                Ok(value) => {
                    failures.reset();
                    told = false;
                    let entries = entries(value);
                    if stop {
                        for entry in entries {
                            self.requeue(&entry.id).await;
                        }
                        break;
                    }
                    let entries = entries.into_iter().map(|e| (e, 1)).collect();
                    if !self.deliver(entries, &mut permits, &ring).await {
                        break;
                    }
                }
                // Stopped while its read failed: nothing to resume, and `stopped` has
                // completed (a oneshot must not be polled again).
                Err(_) if stop => break,
                Err(e) => {
                    tracing::info!(error = %e, key = self.key, "redis group member lost its connection");
                    match Blocking::reopen(
                        &self.streams,
                        &self.key,
                        &mut stopped,
                        "redis group member",
                        &mut failures,
                    )
                    .await
                    {
                        Some(fresh) => reader = fresh,
                        None => break,
                    }
                    // A restarted server without persistence lost the group.
                    if let Err(e) = create_group(&self.streams, &self.key, &self.group).await {
                        tracing::warn!(error = %e, "redis group member cannot recreate its group");
                    }
                    if !std::mem::replace(&mut told, true) {
                        ring.gap(
                            "the group member's connection to Redis was lost and re-established; \
                             its unsettled messages stay pending and come again, but entries \
                             that Redis lost (a failover) were missed",
                        );
                    }
                }
            }
        }
    }

    /// The permits for the next read: `first` and those free now, and while the
    /// subscriber still holds half the prefetch or more, those its acks free within
    /// [`GATHER`]. A member that read again after every ack would send Redis an
    /// `XREADGROUP` for nearly every message once its subscriber is busy, where
    /// one read can fetch many; a subscriber that holds less than half waits no
    /// longer than it did.
    async fn gather(&self, first: OwnedSemaphorePermit) -> Vec<OwnedSemaphorePermit> {
        let mut permits = vec![first];
        self.take_free(&mut permits);
        let half = self.prefetch.div_ceil(2);
        if permits.len() < half {
            let deadline = tokio::time::sleep(GATHER);
            tokio::pin!(deadline);
            while permits.len() < half {
                tokio::select! {
                    permit = Arc::clone(&self.permits).acquire_owned() => match permit {
                        Ok(permit) => permits.push(permit),
                        Err(_) => break,
                    },
                    () = &mut deadline => break,
                }
            }
            self.take_free(&mut permits);
        }
        permits
    }

    /// Adds the permits free now, up to the prefetch.
    fn take_free(&self, permits: &mut Vec<OwnedSemaphorePermit>) {
        while permits.len() < self.prefetch {
            match Arc::clone(&self.permits).try_acquire_owned() {
                Ok(permit) => permits.push(permit),
                Err(_) => break,
            }
        }
    }

    fn read_command(&self, count: usize, block: Duration) -> Cmd {
        let mut read = redis::cmd("XREADGROUP");
        read.arg("GROUP")
            .arg(&self.group)
            .arg(&self.consumer)
            .arg("COUNT")
            .arg(count)
            .arg("BLOCK")
            .arg(block.as_millis().max(1) as u64)
            .arg("STREAMS")
            .arg(&self.key)
            .arg(">");
        read
    }

    /// Takes up to `count` messages that went back to the group or whose member is
    /// presumed dead, with the attempt each delivery is.
    async fn claim(&self, count: usize) -> Result<Vec<(StreamId, u32)>> {
        let mut claim = redis::cmd("XAUTOCLAIM");
        claim
            .arg(&self.key)
            .arg(&self.group)
            .arg(&self.consumer)
            .arg(self.streams.settings.claim_idle.as_millis() as u64)
            .arg("0-0")
            .arg("COUNT")
            .arg(count);
        let reply: StreamAutoClaimReply = self.streams.query("XAUTOCLAIM", &claim).await?;
        let (Some(first), Some(last)) = (reply.claimed.first(), reply.claimed.last()) else {
            return Ok(Vec::new());
        };
        let mut pending = redis::cmd("XPENDING");
        pending
            .arg(&self.key)
            .arg(&self.group)
            .arg(&first.id)
            .arg(&last.id)
            .arg(count.max(reply.claimed.len()) * 2)
            .arg(&self.consumer);
        let counts: StreamPendingCountReply = self.streams.query("XPENDING", &pending).await?;
        Ok(reply
            .claimed
            .into_iter()
            .map(|entry| {
                let attempt = counts
                    .ids
                    .iter()
                    .find(|p| p.id == entry.id)
                    .map_or(2, |p| u32::try_from(p.times_delivered).unwrap_or(u32::MAX));
                (entry, attempt)
            })
            .collect())
    }

    /// Hands entries to the subscription, each with one of `permits`; those past the
    /// maximum number of attempts go to the dead-letter topic instead. False once the
    /// subscription is gone (the entries left go back to the group).
    async fn deliver(
        self: &Arc<Self>,
        entries: Vec<(StreamId, u32)>,
        permits: &mut Vec<OwnedSemaphorePermit>,
        ring: &RingSender<Delivery>,
    ) -> bool {
        for (entry, attempt) in entries {
            if attempt > self.streams.settings.max_attempts {
                self.dead_letter(entry, attempt).await;
                continue;
            }
            let Some(permit) = permits.pop() else {
                // More than asked for: it stays pending with us and comes again.
                self.requeue(&entry.id).await;
                continue;
            };
            let acker = GroupAcker {
                member: Arc::clone(self),
                id: entry.id,
                _permit: permit,
            };
            let message = fields::decode(entry.map, self.streams.raw);
            let delivery = Delivery::new(self.topic.clone(), message)
                .with_attempt(attempt)
                .with_acker(acker);
            if ring.push(delivery).is_err() {
                return false;
            }
        }
        true
    }

    /// Moves an entry delivered too often to `<topic>.dead-letter`, then acks it.
    async fn dead_letter(&self, entry: StreamId, attempt: u32) {
        let mut add = redis::cmd("XADD");
        add.arg(format!("{}{DEAD_LETTER}", self.key))
            .arg("MAXLEN")
            .arg("~")
            .arg(self.streams.settings.max_len)
            .arg("*");
        let message = fields::decode(entry.map, self.streams.raw)
            .with_header(pubsub_core::ORIGINAL_TOPIC, self.topic.as_str())
            .with_header(
                pubsub_core::LAST_ERROR,
                format!("delivered {attempt} times without an ack"),
            );
        fields::append(&mut add, &message, self.streams.raw);
        match self
            .streams
            .query::<Value>("XADD a dead letter", &add)
            .await
        {
            Ok(_) => {
                if let Err(e) = self.settle(&entry.id).await {
                    tracing::warn!(error = %e, "cannot ack a dead-lettered redis stream entry");
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot dead-letter a redis stream entry"),
        }
    }

    async fn settle(&self, id: &str) -> Result<()> {
        let mut ack = redis::cmd("XACK");
        ack.arg(&self.key).arg(&self.group).arg(id);
        self.streams.query::<Value>("XACK", &ack).await.map(drop)
    }

    /// Gives entry `id` back to the group: it stays pending, marked idle for long, so
    /// that the next `XAUTOCLAIM` of any member takes it; the local members are told.
    async fn requeue(&self, id: &str) {
        let mut claim = redis::cmd("XCLAIM");
        claim
            .arg(&self.key)
            .arg(&self.group)
            .arg(&self.consumer)
            .arg(0)
            .arg(id)
            .arg("IDLE")
            .arg(REQUEUED_IDLE_MS)
            // The attempt is counted when it is claimed again, not now.
            .arg("JUSTID");
        if let Err(e) = self.streams.query::<Value>("XCLAIM", &claim).await {
            tracing::warn!(error = %e, "cannot requeue a redis stream entry; it comes again after the claim idle time");
        }
        self.requeued.send_modify(|n| *n = n.wrapping_add(1));
    }
}

/// The entries of an `XREADGROUP` reply (nil when the block timed out).
fn entries(value: Value) -> Vec<StreamId> {
    if value == Value::Nil {
        return Vec::new();
    }
    match redis::from_redis_value::<StreamReadReply>(value) {
        Ok(reply) => reply.keys.into_iter().flat_map(|k| k.ids).collect(),
        Err(e) => {
            tracing::warn!(error = %e, "unexpected XREADGROUP reply");
            Vec::new()
        }
    }
}

/// Settles one group delivery.
struct GroupAcker {
    member: Arc<Member>,
    id: String,
    /// Frees the member's slot when the delivery is settled.
    _permit: OwnedSemaphorePermit,
}

#[async_trait]
impl Acker for GroupAcker {
    async fn ack(self: Box<Self>) -> Result<()> {
        self.member.settle(&self.id).await
    }

    async fn nack(self: Box<Self>, requeue: bool) -> Result<()> {
        if requeue {
            self.member.requeue(&self.id).await;
            Ok(())
        } else {
            self.member.settle(&self.id).await
        }
    }

    fn release(self: Box<Self>) {
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { self.member.requeue(&self.id).await });
        }
    }
}
