//! Request/reply over any backend: one private reply topic per bus, replies matched
//! to their requests by correlation id.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::message::{CORRELATION_ID, REPLY_TO};
use crate::sync::lock;
use crate::{Delivery, Error, Message, PubSub, Result};

type Pending = Arc<Mutex<HashMap<String, oneshot::Sender<Delivery>>>>;

/// The bus's reply topic and the requests waiting on it. One subscription serves every
/// request of the bus, so a request costs one publish, not a subscribe.
pub(crate) struct Inbox {
    topic: Arc<str>,
    pending: Pending,
    task: JoinHandle<()>,
}

impl Inbox {
    pub(crate) async fn open(bus: &PubSub) -> Result<Self> {
        let topic: Arc<str> = format!("_inbox.{}", uuid::Uuid::new_v4().simple()).into();
        let mut replies = bus.topic(&topic).subscribe().await?;
        let pending = Pending::default();
        let waiting = Arc::clone(&pending);
        let task = tokio::spawn(async move {
            while let Some(item) = replies.next().await {
                let Ok(reply) = item else { continue };
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
            topic,
            pending,
            task,
        })
    }

    /// Publishes `message` as a request on `topic` and waits for its reply.
    pub(crate) async fn exchange(
        &self,
        bus: &PubSub,
        topic: &Arc<str>,
        message: Message,
    ) -> Result<Delivery> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let (sender, reply) = oneshot::channel();
        lock(&self.pending).insert(id.clone(), sender);
        let _forget = Forget {
            pending: &self.pending,
            id: &id,
        };
        let message = message
            .with_header(REPLY_TO, &*self.topic)
            .with_header(CORRELATION_ID, &id);
        bus.send_message(topic, message, true).await?;
        reply.await.map_err(|_| Error::Closed)
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
    id: &'a str,
}

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        lock(self.pending).remove(self.id);
    }
}
