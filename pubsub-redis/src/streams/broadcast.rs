//! A broadcast subscription: a task that reads the stream with blocking `XREAD`s on a
//! connection of its own, from the newest entry at subscribe time (or a given id), and
//! fills the subscription's ring.

use std::sync::Arc;

use pubsub_core::ring::{self, RingSender};
use pubsub_core::{Delivery, Result, Subscription, TopicName};
use redis::streams::{StreamRangeReply, StreamReadReply};
use redis::{Cmd, Value};
use tokio::sync::oneshot;

use super::blocking::{Blocking, BLOCK};
use super::Streams;
use crate::errors::{convert, is_transient};
use crate::fields;

/// Entries one read takes at most.
const BATCH: usize = 512;

pub(super) async fn subscribe(
    streams: &Arc<Streams>,
    topic: TopicName,
    buffer: usize,
    from: Option<String>,
) -> Result<Subscription> {
    let key = streams.key(&topic);
    let cursor = match from {
        Some(id) => id,
        None => newest(streams, &key).await?,
    };
    let reader = match Blocking::open(streams, &key).await {
        Some(Ok(reader)) => reader,
        Some(Err(e)) => return Err(convert("cannot open a stream reader's connection", e)),
        None => return Err(pubsub_core::Error::Closed),
    };
    let (ring, receiver) = ring::channel(buffer);
    let (stop, stopped) = oneshot::channel::<()>();
    let task = Reader {
        streams: Arc::clone(streams),
        key,
        topic,
        cursor,
        ring,
    };
    tokio::spawn(task.run(reader, stopped));
    Ok(Subscription::new(receiver).with_guard(stop))
}

/// The id of the newest entry of `key`, or `0-0` for an empty or missing stream:
/// what is added after subscribing comes after it.
async fn newest(streams: &Streams, key: &str) -> Result<String> {
    let mut last = redis::cmd("XREVRANGE");
    last.arg(key).arg("+").arg("-").arg("COUNT").arg(1);
    let reply: StreamRangeReply = streams.query("XREVRANGE", &last).await?;
    Ok(reply
        .ids
        .into_iter()
        .next()
        .map_or_else(|| "0-0".to_owned(), |entry| entry.id))
}

struct Reader {
    streams: Arc<Streams>,
    key: String,
    topic: TopicName,
    /// The id of the last entry read.
    cursor: String,
    ring: RingSender<Delivery>,
}

impl Reader {
    /// Reads until the subscription is dropped (`stopped` resolves) or the bus closes.
    async fn run(mut self, mut reader: Blocking, mut stopped: oneshot::Receiver<()>) {
        let mut closed = self.streams.closed.subscribe();
        let mut failures = self.streams.backoff.clone();
        // Whether the subscription heard of the outage it is in: one gap per outage,
        // however many reconnections it takes (a gap takes a place in the ring).
        let mut told = false;
        loop {
            let read = self.command();
            let outcome = tokio::select! {
                outcome = reader.read(&read) => outcome,
                _ = &mut stopped => break,
                _ = super::closing(&mut closed) => break,
            };
            match outcome {
                Ok(value) => {
                    failures.reset();
                    told = false;
                    if !self.deliver(value) {
                        break;
                    }
                }
                Err(e) => {
                    if is_transient(&e) {
                        tracing::info!(error = %e, key = self.key, "redis stream reader lost its connection");
                    } else {
                        tracing::warn!(error = %e, key = self.key, "redis stream read failed");
                    }
                    match Blocking::reopen(
                        &self.streams,
                        &self.key,
                        &mut stopped,
                        "redis stream reader",
                        &mut failures,
                    )
                    .await
                    {
                        Some(fresh) => reader = fresh,
                        None => break,
                    }
                    if !std::mem::replace(&mut told, true) {
                        self.ring.gap(
                            "the stream reader's connection to Redis was lost and re-established; \
                             it resumed after the last entry it read, but entries that Redis lost \
                             (a failover) or trimmed meanwhile were missed",
                        );
                    }
                }
            }
        }
        // Wake the read we leave behind, so that its connection goes now.
        self.streams.unblock(reader.id(), reader.key()).await;
    }

    fn command(&self) -> Cmd {
        let mut read = redis::cmd("XREAD");
        read.arg("COUNT")
            .arg(BATCH)
            .arg("BLOCK")
            .arg(BLOCK.as_millis() as u64)
            .arg("STREAMS")
            .arg(&self.key)
            .arg(&self.cursor);
        read
    }

    /// Hands a read's entries to the ring; false once the subscription is gone.
    fn deliver(&mut self, value: Value) -> bool {
        if value == Value::Nil {
            return !self.ring.is_closed();
        }
        let reply: StreamReadReply = match redis::from_redis_value(value) {
            Ok(reply) => reply,
            Err(e) => {
                tracing::warn!(error = %e, "unexpected XREAD reply");
                return !self.ring.is_closed();
            }
        };
        for entry in reply.keys.into_iter().flat_map(|k| k.ids) {
            self.cursor = entry.id;
            let message = fields::decode(entry.map, self.streams.raw);
            if self
                .ring
                .push(Delivery::new(self.topic.clone(), message))
                .is_err()
            {
                return false;
            }
        }
        true
    }
}
