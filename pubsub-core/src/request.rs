//! Request/reply over any backend: one private inbox per bus, replies matched to their
//! requests by correlation id. The inbox's reply address is the backend's: the topic it
//! subscribed, or one of the broker's own (AMQP's direct reply-to).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::message::{CORRELATION_ID, REPLY_TO};
use crate::sync::lock;
use crate::{Delivery, Error, Message, Pattern, PubSub, Received, Result, SubscribeOptions};

type Pending = Arc<Mutex<HashMap<String, oneshot::Sender<Delivery>>>>;

/// The bus's reply address and the requests waiting on it. One subscription serves
/// every request of the bus, so a request costs one publish, not a subscribe.
pub(crate) struct Inbox {
    address: Arc<str>,
    pending: Pending,
    task: JoinHandle<()>,
}

impl Inbox {
    pub(crate) async fn open(bus: &PubSub) -> Result<Self> {
        let topic: Arc<str> = format!("_inbox.{}", uuid::Uuid::new_v4().simple()).into();
        // Straight to the backend: a subscription that could reply would hold the bus,
        // and the bus holds this inbox.
        let mut replies = bus
            .backend()
            .subscribe(
                &Pattern::parse(Arc::clone(&topic))?,
                SubscribeOptions::new().inbox(),
            )
            .await?;
        let address = replies.reply_address().map_or(topic, Arc::from);
        let pending = Pending::default();
        let waiting = Arc::clone(&pending);
        let task = tokio::spawn(async move {
            while let Some(received) = replies.next().await {
                let Received::Message(reply) = received else {
                    continue;
                };
                let Some(id) = reply.header(CORRELATION_ID) else {
                    continue;
                };
                let waiter = lock(&waiting).remove(id);
                match waiter {
                    Some(waiter) => drop(waiter.send(reply)),
                    None => {
                        tracing::debug!(correlation_id = id, "reply came after its request ended")
                    }
                }
            }
        });
        Ok(Inbox {
            address,
            pending,
            task,
        })
    }

    /// Addresses `message` as a request to this inbox; the future is its reply.
    pub(crate) fn prepare(
        &self,
        message: Message,
    ) -> (Message, impl Future<Output = Result<Delivery>> + '_) {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let (sender, reply) = oneshot::channel();
        lock(&self.pending).insert(id.clone(), sender);
        let message = message
            .with_header(REPLY_TO, &*self.address)
            .with_header(CORRELATION_ID, &id);
        let forget = Forget {
            pending: &self.pending,
            id,
        };
        let reply = async move {
            let _forget = forget;
            reply.await.map_err(|_| Error::Closed)
        };
        (message, reply)
    }
}

impl Drop for Inbox {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Removes a request from the pending map however its wait ends (reply, error,
/// timeout, cancellation).
struct Forget<'a> {
    pending: &'a Pending,
    id: String,
}

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        lock(self.pending).remove(&self.id);
    }
}
