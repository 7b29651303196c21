//! `LocalBackend`: the registry of channels and queues that publishes walk.

use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use async_trait::async_trait;
use pubsub_core::{Backend, Capabilities, Error, Message, Pattern, PublishNow, Result};
use pubsub_core::{SubscribeOptions, Subscription};

use crate::broadcast::Channels;
use crate::group::GroupQueue;

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
pub(crate) struct Shared {
    state: RwLock<State>,
    options: LocalOptions,
}

#[derive(Debug, Default)]
pub(crate) struct State {
    closed: bool,
    pub(crate) channels: Channels,
    groups: Vec<Arc<GroupQueue>>,
}

impl Shared {
    pub(crate) fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
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
                state: RwLock::default(),
                options,
            }),
        }
    }

    /// Hands `message` to every matching subscription and group; returns how many
    /// took it.
    fn deliver(&self, message: Message) -> Result<usize> {
        let state = self.shared.read();
        if state.closed {
            return Err(Error::Closed);
        }
        if state.groups.is_empty() {
            return Ok(state.channels.send(message));
        }
        let mut receivers = state.channels.send(message.clone());
        for queue in &state.groups {
            if queue.accepts(message.topic()) {
                queue.push(message.clone())?;
                receivers += 1;
            }
        }
        Ok(receivers)
    }
}

#[async_trait]
impl Backend for LocalBackend {
    fn capabilities(&self) -> Capabilities {
        Capabilities::new()
            .groups(true)
            .acks(true)
            .priorities(true)
            .patterns(true)
            .headers(true)
            .no_responders(true)
    }

    fn publish_now(&self, message: Message) -> PublishNow {
        PublishNow::Done(self.deliver(message).map(drop))
    }

    async fn publish(&self, message: Message) -> Result<()> {
        self.deliver(message).map(drop)
    }

    async fn publish_mandatory(&self, message: Message) -> Result<()> {
        let topic = message.topic().to_owned();
        match self.deliver(message)? {
            0 => Err(Error::NoResponders { topic }),
            _ => Ok(()),
        }
    }

    async fn subscribe(&self, topic: &str, options: SubscribeOptions) -> Result<Subscription> {
        let pattern = Pattern::parse(topic)?;
        let mut state = self.shared.write();
        if state.closed {
            return Err(Error::Closed);
        }
        let Some(group) = options.group else {
            let buffer = options.buffer.unwrap_or(self.shared.options.buffer).max(1);
            let receiver = state.channels.subscribe(pattern.clone(), buffer);
            return Ok(crate::broadcast::subscription(
                receiver,
                pattern,
                Arc::downgrade(&self.shared),
            ));
        };
        let queue = match state
            .groups
            .iter()
            .find(|q| q.name() == group && q.pattern() == &pattern)
        {
            Some(queue) => Arc::clone(queue),
            None => {
                let capacity = options.buffer.unwrap_or(self.shared.options.group_capacity);
                let queue = Arc::new(GroupQueue::new(group, pattern, capacity.max(1)));
                state.groups.push(Arc::clone(&queue));
                queue
            }
        };
        let prefetch = options.prefetch.unwrap_or(self.shared.options.prefetch);
        Ok(crate::group::subscription(queue, prefetch.max(1)))
    }

    async fn close(&self) -> Result<()> {
        let mut state = self.shared.write();
        state.closed = true;
        state.channels = Channels::default();
        for queue in state.groups.drain(..) {
            queue.close();
        }
        Ok(())
    }
}

#[cfg(test)]
impl LocalBackend {
    pub(crate) fn channels_are_empty(&self) -> bool {
        self.shared.read().channels.is_empty()
    }
}
