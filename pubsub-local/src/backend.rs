//! `LocalBackend`: the registry of subscriptions, and the publishers that read routes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock, RwLockWriteGuard, Weak};

use async_trait::async_trait;
use pubsub_core::backend::{system, Backend, Capabilities, PublishOptions, Publisher, Publishing};
use pubsub_core::ring;
use pubsub_core::{Error, Message, Pattern, Result, SubscribeOptions, Subscription, TopicName};

use crate::group::{GroupQueue, Membership};
use crate::routes::{Registry, Route, Sink};

/// Buffer sizes and limits of a [`LocalBackend`].
///
/// ```
/// use pubsub_local::{LocalBackend, LocalOptions};
///
/// let backend = LocalBackend::with_options(LocalOptions::new().buffer(4096).prefetch(8));
/// # drop(backend);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LocalOptions {
    /// Messages a broadcast subscriber may fall behind before it lags (default 1024).
    pub buffer: usize,
    /// Messages a group queue holds before publishes to it fail with
    /// [`Error::QueueFull`] (default 100,000).
    pub group_capacity: usize,
    /// Unacknowledged messages a group member may hold (default 64).
    pub prefetch: u16,
}

impl LocalOptions {
    /// The defaults.
    pub fn new() -> Self {
        LocalOptions {
            buffer: 1024,
            group_capacity: 100_000,
            prefetch: 64,
        }
    }

    /// Sets [`buffer`](Self::buffer).
    pub fn buffer(mut self, messages: usize) -> Self {
        self.buffer = messages.max(1);
        self
    }

    /// Sets [`group_capacity`](Self::group_capacity).
    pub fn group_capacity(mut self, messages: usize) -> Self {
        self.group_capacity = messages.max(1);
        self
    }

    /// Sets [`prefetch`](Self::prefetch).
    pub fn prefetch(mut self, messages: u16) -> Self {
        self.prefetch = messages.max(1);
        self
    }
}

impl Default for LocalOptions {
    fn default() -> Self {
        Self::new()
    }
}

/// The in-process backend. Clones share one bus.
#[derive(Debug, Clone, Default)]
pub struct LocalBackend {
    shared: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    registry: RwLock<Registry>,
    closed: AtomicBool,
    options: LocalOptions,
}

impl Shared {
    fn registry(&self) -> RwLockWriteGuard<'_, Registry> {
        self.registry.write().unwrap_or_else(|e| e.into_inner())
    }
}

impl LocalBackend {
    /// A new, empty bus with the default options.
    pub fn new() -> Self {
        Self::with_options(LocalOptions::new())
    }

    /// A new, empty bus with these options.
    pub fn with_options(options: LocalOptions) -> Self {
        LocalBackend {
            shared: Arc::new(Shared {
                registry: RwLock::default(),
                closed: AtomicBool::new(false),
                options,
            }),
        }
    }

    fn subscribe_group(
        &self,
        pattern: &Pattern,
        group: String,
        options: &SubscribeOptions,
    ) -> Result<Subscription> {
        let defaults = &self.shared.options;
        let queue = {
            let mut registry = self.shared.registry();
            // Under the lock: a close that came first has emptied the registry, and a
            // queue made now would never be closed.
            if self.shared.closed.load(Ordering::Acquire) {
                return Err(Error::Closed);
            }
            match registry.group(&group, pattern) {
                Some(queue) => queue,
                None => {
                    let capacity = options.buffer.unwrap_or(defaults.group_capacity).max(1);
                    let queue = Arc::new(GroupQueue::new(group, pattern.clone(), capacity));
                    registry.add(pattern.clone(), |_| Sink::Group(Arc::clone(&queue)));
                    queue
                }
            }
        };
        let (id, receiver) = queue.join(options.prefetch.unwrap_or(defaults.prefetch))?;
        Ok(Subscription::new(receiver).with_guard(Membership { queue, id }))
    }
}

#[deny(clippy::missing_trait_methods)]
#[async_trait]
impl Backend for LocalBackend {
    fn capabilities(&self) -> Capabilities {
        Capabilities::new()
            .system(system::IN_PROCESS)
            .groups(true)
            .acks(true)
            .priorities(true)
            .patterns(true)
            .headers(true)
            .no_responders(true)
    }

    fn publisher(&self, topic: &TopicName) -> Result<Arc<dyn Publisher>> {
        Ok(Arc::new(LocalPublisher {
            route: self.shared.registry().route(topic),
            shared: Arc::clone(&self.shared),
        }))
    }

    async fn subscribe(
        &self,
        pattern: &Pattern,
        options: SubscribeOptions,
    ) -> Result<Subscription> {
        if let Some(group) = options.group.clone() {
            return self.subscribe_group(pattern, group, &options);
        }
        let buffer = options.buffer.unwrap_or(self.shared.options.buffer).max(1);
        let mut registry = self.shared.registry();
        // Checked under the lock, so a concurrent close cannot miss this one.
        if self.shared.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        let (id, subscription) = match pattern.as_name() {
            Some(name) => {
                let (id, receiver) = registry.channel(pattern, buffer);
                // A name of this subscription's own: see `Sink::Pattern::topic`.
                (id, Subscription::of_topic(name.unshared(), receiver))
            }
            None => {
                let (ring, receiver) = ring::channel(buffer);
                let id = registry.add(pattern.clone(), |id| Sink::Pattern {
                    id,
                    ring,
                    topic: None,
                });
                (id, Subscription::new(receiver))
            }
        };
        let registration = Registration {
            pattern: pattern.clone(),
            id,
            shared: Arc::downgrade(&self.shared),
        };
        let subscription = subscription.with_guard(registration);
        Ok(match options.inbox {
            // Replies are published to the topic the inbox subscribed.
            true => subscription.with_reply_address(pattern.as_str()),
            false => subscription,
        })
    }

    /// A reply address here is a topic name: the reply is a publish to it.
    fn reply_publisher(&self, address: &str) -> Result<Arc<dyn Publisher>> {
        self.publisher(&pubsub_core::name::reply_topic(address)?)
    }

    async fn close(&self) -> Result<()> {
        let mut registry = self.shared.registry();
        self.shared.closed.store(true, Ordering::Release);
        registry.close();
        Ok(())
    }
}

/// The publisher of one topic: its route, read on every publish.
#[derive(Debug)]
struct LocalPublisher {
    route: Arc<Route>,
    shared: Arc<Shared>,
}

impl Publisher for LocalPublisher {
    fn publish(&self, message: Message, options: PublishOptions) -> Publishing<'_> {
        if self.shared.closed.load(Ordering::Acquire) {
            return Publishing::done(Err(Error::Closed));
        }
        Publishing::done(match self.route.deliver(message) {
            Ok(0) if options.mandatory => Err(Error::NoResponders {
                topic: self.route.topic().to_string(),
            }),
            Ok(_) => Ok(()),
            Err(refused) => Err(refused),
        })
    }
}

/// A broadcast subscription's place in the registry, released when it ends (a shared
/// channel only when its last reader has gone).
struct Registration {
    pattern: Pattern,
    id: u64,
    shared: Weak<Shared>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Some(shared) = self.shared.upgrade() {
            shared.registry().release(&self.pattern, self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pubsub_core::PubSub;

    #[tokio::test]
    async fn ended_subscriptions_leave_nothing_behind() {
        let backend = LocalBackend::new();
        let bus = PubSub::new(backend.clone());
        let topic = bus.topic("a.b");
        topic.publish(&0).await.unwrap();
        let a = topic.subscribe().await.unwrap();
        let b = bus.topic("a.*").subscribe().await.unwrap();
        let c = topic.subscribe().await.unwrap();
        drop((a, b));
        assert!(!backend.shared.registry().is_empty());
        drop(c);
        assert!(backend.shared.registry().is_empty());
    }
}
