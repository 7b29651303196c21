//! Settling a group delivery, counting attempts.
//!
//! Classic queues do not count deliveries (only quorum queues have
//! `x-delivery-count`, and they lack the per-message priorities groups need), so a
//! nack with requeue is done here as: publish a copy to the same queue with the
//! attempt counted in a header, wait for its confirm, then ack the original. The copy
//! keeps its priority but goes behind messages of the same priority that wait.
//! A delivery the broker requeued by itself (its member died) carries the broker's
//! `redelivered` flag, counted as one more attempt.
//!
//! A delivery dropped unsettled is requeued the same way, in a task on the runtime
//! the subscription was made on. The member's channel is closed only once those
//! requeues are done, so a requeue never races the broker's own requeue of what the
//! member held (which would deliver the message twice).

use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use lapin::options::{BasicAckOptions, BasicNackOptions, BasicRejectOptions};
use lapin::types::ShortString;
use lapin::BasicProperties;
use pubsub_core::{Acker, Bytes, Error, Result, TopicName};
use tokio::runtime::Handle;
use tokio::sync::RwLock;

use crate::connection::Shared;
use crate::errors::lapin_error;
use crate::lost::Liveness;
use crate::properties::requeued;
use crate::publish::{publish, Exchange, Outgoing};

/// What the deliveries of one group member share: where a requeued copy goes, and
/// where a release runs.
#[derive(Debug)]
pub(crate) struct Member {
    pub(crate) shared: Arc<Shared>,
    /// The group queue: the routing key of a copy on the default exchange.
    pub(crate) queue: ShortString,
    pub(crate) default_exchange: Exchange,
    pub(crate) runtime: Handle,
    /// Held (shared) by each release under way; the member's channel closes after
    /// taking it exclusively.
    pub(crate) releasing: Arc<RwLock<()>>,
}

/// The broker's acker of one delivery, and what a requeue needs.
pub(crate) struct GroupAcker {
    pub(crate) acker: lapin::Acker,
    /// The connection the delivery came on.
    pub(crate) liveness: Liveness,
    pub(crate) member: Arc<Member>,
    pub(crate) topic: TopicName,
    pub(crate) payload: Bytes,
    pub(crate) properties: BasicProperties,
    pub(crate) attempt: u32,
}

impl GroupAcker {
    /// Runs `settling` (an ack, nack or reject of the delivery), unless the
    /// connection goes first. lapin does nothing, and says so, once the delivery's
    /// channel is closed: the broker then delivers the message again, which the
    /// caller is told, as the settling did not happen.
    async fn settle(
        &self,
        what: &str,
        settling: impl Future<Output = lapin::Result<bool>>,
    ) -> Result<()> {
        let settled = async { settling.await.map_err(|e| lapin_error(what, e)) };
        if self.liveness.unless_lost(what, settled).await? {
            return Ok(());
        }
        Err(Error::Connection {
            message: format!(
                "could not {what}: the channel the message came on was closed, so the \
                 broker delivers it again"
            ),
            source: None,
        })
    }

    async fn ack_original(&self) -> Result<()> {
        self.settle("ack", self.acker.ack(BasicAckOptions::default()))
            .await
    }

    async fn requeue(&self) -> Result<()> {
        if !self.acker.usable() {
            // The member's channel closed (a reconnect, an unsubscribe): the broker
            // has requeued the message itself, and a copy would deliver it twice.
            return Ok(());
        }
        let copy = Outgoing {
            exchange: &self.member.default_exchange,
            routing_key: &self.member.queue,
            payload: &self.payload,
            properties: requeued(&self.properties, &self.topic, self.attempt + 1),
            mandatory: false,
            topic: &self.topic,
        };
        match publish(&self.member.shared, copy).await {
            Ok(()) => self.ack_original().await,
            Err(error) => {
                tracing::debug!(%error, queue = self.member.queue.as_str(), "requeue by copy failed; the broker requeues instead");
                let nack = self.acker.nack(BasicNackOptions {
                    multiple: false,
                    requeue: true,
                });
                self.settle("nack", nack).await
            }
        }
    }
}

#[async_trait]
impl Acker for GroupAcker {
    async fn ack(self: Box<Self>) -> Result<()> {
        self.ack_original().await
    }

    async fn nack(self: Box<Self>, requeue: bool) -> Result<()> {
        if requeue {
            return self.requeue().await;
        }
        // Dropped, or dead-lettered where the queue has a dead-letter exchange.
        let reject = self.acker.reject(BasicRejectOptions { requeue: false });
        self.settle("nack", reject).await
    }

    fn release(self: Box<Self>) {
        // Fails once the member's channel is closing: the broker requeues then.
        let Ok(releasing) = Arc::clone(&self.member.releasing).try_read_owned() else {
            return;
        };
        let runtime = self.member.runtime.clone();
        runtime.spawn(async move {
            if let Err(error) = self.requeue().await {
                tracing::debug!(%error, "a dropped group delivery was not requeued; the broker requeues it when the member goes");
            }
            drop(releasing);
        });
    }
}
