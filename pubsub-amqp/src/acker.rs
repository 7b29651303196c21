//! Settling a group delivery, counting attempts.
//!
//! Classic queues do not count deliveries (only quorum queues have
//! `x-delivery-count`, and they lack the per-message priorities groups need), so a
//! nack with requeue is done here as: publish a copy to the same queue with the
//! attempt counted in a header, wait for its confirm, then ack the original. The copy
//! keeps its priority but goes behind messages of the same priority that wait.
//! A delivery the broker requeued by itself (its member died) carries the broker's
//! `redelivered` flag, counted as one more attempt.

use std::sync::Arc;

use async_trait::async_trait;
use lapin::options::{BasicAckOptions, BasicNackOptions, BasicRejectOptions};
use lapin::{BasicProperties, ExchangeKind};
use pubsub_core::{Acker, Bytes, Result};

use crate::connection::Shared;
use crate::errors::lapin_error;
use crate::properties::requeued;
use crate::publish::{publish, Outgoing};

/// The broker's acker of one delivery, and what a requeue needs.
pub(crate) struct GroupAcker {
    pub(crate) acker: lapin::Acker,
    pub(crate) shared: Arc<Shared>,
    pub(crate) queue: Arc<str>,
    pub(crate) topic: Arc<str>,
    pub(crate) payload: Bytes,
    pub(crate) properties: BasicProperties,
    pub(crate) attempt: u32,
}

#[async_trait]
impl Acker for GroupAcker {
    async fn ack(&self) -> Result<()> {
        self.acker
            .ack(BasicAckOptions::default())
            .await
            .map(drop)
            .map_err(|e| lapin_error("ack", e))
    }

    async fn nack(&self, requeue: bool) -> Result<()> {
        if !requeue {
            // Dropped, or dead-lettered where the queue has a dead-letter exchange.
            return self
                .acker
                .reject(BasicRejectOptions { requeue: false })
                .await
                .map(drop)
                .map_err(|e| lapin_error("nack", e));
        }
        let copy = Outgoing {
            exchange: "",
            kind: ExchangeKind::Direct,
            routing_key: &self.queue,
            payload: &self.payload,
            properties: requeued(&self.properties, &self.topic, self.attempt + 1),
            mandatory: false,
            topic: &self.topic,
        };
        match publish(&self.shared, copy).await {
            Ok(()) => self.ack().await,
            Err(error) => {
                tracing::debug!(%error, queue = &*self.queue, "requeue by copy failed; the broker requeues instead");
                self.acker
                    .nack(BasicNackOptions {
                        multiple: false,
                        requeue: true,
                    })
                    .await
                    .map(drop)
                    .map_err(|e| lapin_error("nack", e))
            }
        }
    }
}
