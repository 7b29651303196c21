//! The local subscriptions of a bus, by the Redis subscription (a channel or a glob)
//! they share, and the dispatch of what arrives on it to their rings.

use std::collections::hash_map::Entry::{Occupied, Vacant};
use std::collections::HashMap;
use std::sync::{Arc, MutexGuard};

use pubsub_core::ring::RingSender;
use pubsub_core::{Bytes, Delivery, Message, Pattern, TopicName};

use redis::{PushInfo, PushKind, Value};

use crate::{envelope, glob};

/// A Redis subscription: a channel (SUBSCRIBE) or a glob (PSUBSCRIBE), prefix
/// included. The name is shared with the registry's map, the driver and the
/// subscriptions' registrations, so each Redis subscription holds it once.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Key {
    Channel(Arc<str>),
    Glob(Arc<str>),
}

/// One local subscription.
struct Entry {
    id: u64,
    /// The pattern to check arrivals against, for globs (which over-match).
    filter: Option<Pattern>,
    ring: RingSender<Delivery>,
}

/// The local subscriptions of one Redis subscription: while there is one, Redis keeps
/// the subscription.
struct Listeners {
    /// A channel's topic, built once here rather than for every message.
    topic: Option<TopicName>,
    entries: Vec<Entry>,
}

/// What a new local subscription listens to.
pub(crate) struct Listener {
    pub(crate) key: Key,
    /// The topic of a channel.
    pub(crate) topic: Option<TopicName>,
    /// The pattern of a glob.
    pub(crate) filter: Option<Pattern>,
    pub(crate) ring: RingSender<Delivery>,
}

impl Listener {
    /// A subscription to `pattern` under `prefix`: a channel for a name, a glob that
    /// over-matches it (filtered on arrival) for a wildcard pattern.
    pub(crate) fn new(prefix: &str, pattern: &Pattern, ring: RingSender<Delivery>) -> Self {
        match pattern.as_name() {
            Some(topic) => Listener {
                key: Key::Channel(format!("{prefix}{topic}").into()),
                topic: Some(topic),
                filter: None,
                ring,
            },
            None => Listener {
                key: Key::Glob(glob::glob(prefix, pattern).into()),
                topic: None,
                filter: Some(pattern.clone()),
                ring,
            },
        }
    }
}

/// Every local subscription of a bus.
#[derive(Default)]
pub(crate) struct Registry {
    channels: HashMap<Arc<str>, Listeners>,
    globs: HashMap<Arc<str>, Listeners>,
    next_id: u64,
    pub(crate) closed: bool,
    /// The driver has a connection with every key subscribed.
    pub(crate) live: bool,
}

impl Registry {
    fn map<'a>(&'a mut self, key: &'a Key) -> (&'a mut HashMap<Arc<str>, Listeners>, &'a Arc<str>) {
        match key {
            Key::Channel(name) => (&mut self.channels, name),
            Key::Glob(glob) => (&mut self.globs, glob),
        }
    }

    /// Adds a local subscription: its id, and its key as the registry holds it.
    pub(crate) fn add(&mut self, listener: Listener) -> (Key, u64) {
        self.next_id += 1;
        let id = self.next_id;
        let Listener {
            key,
            topic,
            filter,
            ring,
        } = listener;
        let (map, name) = self.map(&key);
        // The map's own copy of the name, so that every holder of the key shares it.
        let (name, listeners) = match map.entry(Arc::clone(name)) {
            Occupied(entry) => (Arc::clone(entry.key()), entry.into_mut()),
            Vacant(entry) => {
                let name = Arc::clone(entry.key());
                let listeners = Listeners {
                    topic,
                    // Most Redis subscriptions have one local subscription.
                    entries: Vec::with_capacity(1),
                };
                (name, entry.insert(listeners))
            }
        };
        listeners.entries.push(Entry { id, filter, ring });
        let key = match key {
            Key::Channel(_) => Key::Channel(name),
            Key::Glob(_) => Key::Glob(name),
        };
        (key, id)
    }

    /// Removes local subscription `id` of `key`, and the key with its last one.
    pub(crate) fn remove(&mut self, key: &Key, id: u64) {
        let (map, name) = self.map(key);
        if let Some(listeners) = map.get_mut(name) {
            listeners.entries.retain(|e| e.id != id);
            if listeners.entries.is_empty() {
                map.remove(name);
            }
        }
    }

    pub(crate) fn contains(&self, key: &Key) -> bool {
        match key {
            Key::Channel(name) => self.channels.contains_key(name),
            Key::Glob(glob) => self.globs.contains_key(glob),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.channels.is_empty() && self.globs.is_empty()
    }

    pub(crate) fn keys(&self) -> Vec<Key> {
        let channels = self.channels.keys().cloned().map(Key::Channel);
        channels
            .chain(self.globs.keys().cloned().map(Key::Glob))
            .collect()
    }

    /// Tells every subscription that messages may have been missed.
    pub(crate) fn gap(&self, reason: &str) {
        let entries = self.channels.values().chain(self.globs.values());
        for entry in entries.flat_map(|l| &l.entries) {
            entry.ring.gap(reason);
        }
    }

    /// Tells the subscriptions of `key` that messages may have been missed.
    pub(crate) fn gap_key(&self, key: &Key, reason: &str) {
        let listeners = match key {
            Key::Channel(name) => self.channels.get(name),
            Key::Glob(glob) => self.globs.get(glob),
        };
        for entry in listeners.into_iter().flat_map(|l| &l.entries) {
            entry.ring.gap(reason);
        }
    }

    /// Ends every subscription: dropping its ring's sender closes it.
    pub(crate) fn clear(&mut self) {
        self.channels.clear();
        self.globs.clear();
    }

    /// Hands a message on `channel` to the subscriptions of `glob` (PSUBSCRIBE), or of
    /// the channel itself when `glob` is `None`. `prefix` is stripped from the
    /// channel to make the topic; `raw` skips reading envelopes.
    pub(crate) fn dispatch(
        &self,
        glob: Option<&[u8]>,
        channel: &[u8],
        payload: Vec<u8>,
        prefix: &str,
        raw: bool,
    ) {
        let (listeners, topic) = match glob.map(std::str::from_utf8) {
            None => match std::str::from_utf8(channel).map(|c| self.channels.get(c)) {
                Ok(Some(listeners)) => (listeners, listeners.topic.clone()),
                _ => return,
            },
            Some(Ok(glob)) => match self.globs.get(glob) {
                Some(listeners) => match glob_topic(channel, prefix) {
                    Ok(topic) => (listeners, Some(topic)),
                    Err(why) => return listeners.skipped(channel, prefix, &why),
                },
                None => return,
            },
            Some(Err(_)) => return,
        };
        let Some(topic) = topic else {
            return;
        };
        let mut payload = Some(payload);
        let mut message: Option<Message> = None;
        for entry in &listeners.entries {
            if entry.filter.as_ref().is_some_and(|f| !f.matches(&topic)) {
                continue;
            }
            let message = message.get_or_insert_with(|| {
                let bytes = Bytes::from(payload.take().unwrap_or_default());
                envelope::decode(bytes, raw)
            });
            // An error means the subscriber is gone; its registration is on its way out.
            let _ = entry
                .ring
                .push(Delivery::new(topic.clone(), message.clone()));
        }
    }
}

/// Hands a push that carries a message (`message`, `smessage`, `pmessage`) to the
/// subscriptions, locking the registry only then; any other push's kind is returned
/// for the connection's own handling. Every connection's push sender starts here.
pub(crate) fn deliver_push<'a>(
    info: PushInfo,
    prefix: &str,
    raw: bool,
    registry: impl FnOnce() -> MutexGuard<'a, Registry>,
) -> Option<PushKind> {
    let mut data = info.data.into_iter().map(|v| match v {
        Value::BulkString(bytes) => Some(bytes),
        _ => None,
    });
    let mut next = || data.next().flatten();
    match info.kind {
        PushKind::Message | PushKind::SMessage => {
            if let (Some(channel), Some(payload)) = (next(), next()) {
                registry().dispatch(None, &channel, payload, prefix, raw);
            }
            None
        }
        PushKind::PMessage => {
            if let (Some(glob), Some(channel), Some(payload)) = (next(), next(), next()) {
                registry().dispatch(Some(&glob), &channel, payload, prefix, raw);
            }
            None
        }
        other => Some(other),
    }
}

/// The topic of a channel that matched a glob: the channel without the prefix, if it
/// is a valid topic name (a foreign publisher may use any channel name), or why not.
fn glob_topic(channel: &[u8], prefix: &str) -> Result<TopicName, String> {
    let channel = std::str::from_utf8(channel).map_err(|_| "it is not UTF-8".to_owned())?;
    let topic = channel
        .strip_prefix(prefix)
        .ok_or_else(|| format!("it does not start with the prefix {prefix:?}"))?;
    TopicName::new(topic).map_err(|error| error.to_string())
}

impl Listeners {
    /// A message on `channel`, which is no topic name (`why`), matched this glob:
    /// each subscription it was for is told with a gap, as it missed a message.
    fn skipped(&self, channel: &[u8], prefix: &str, why: &str) {
        let channel = String::from_utf8_lossy(channel);
        let unprefixed = channel.strip_prefix(prefix).unwrap_or(&channel);
        let shown: String = channel.chars().take(80).collect();
        tracing::debug!(channel = %shown, why, "redis message on a channel that is no topic name; skipped");
        let reason = format!(
            "a message on the Redis channel {shown:?}{} was skipped: the channel is no topic \
             name ({why})",
            if shown.len() < channel.len() {
                "..."
            } else {
                ""
            }
        );
        let wanted = |entry: &&Entry| entry.filter.as_ref().is_none_or(|f| f.matches(unprefixed));
        for entry in self.entries.iter().filter(wanted) {
            entry.ring.gap(reason.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use futures::FutureExt;
    use pubsub_core::ring::{self, RingReceiver};
    use pubsub_core::{Received, Signal};

    use super::*;

    fn add(registry: &mut Registry, pattern: &str) -> (Key, u64, RingReceiver<Delivery>) {
        let (ring, receiver) = ring::channel(8);
        let listener = Listener::new("p:", &Pattern::parse(pattern).unwrap(), ring);
        let (key, id) = registry.add(listener);
        (key, id, receiver)
    }

    fn topic_of(received: Option<Option<Received>>) -> Option<String> {
        match received {
            Some(Some(Received::Message(delivery))) => Some(delivery.topic().to_owned()),
            _ => None,
        }
    }

    #[test]
    fn subscriptions_of_one_channel_share_its_name_until_the_last_goes() {
        let mut registry = Registry::default();
        let (first, first_id, _a) = add(&mut registry, "a.b");
        let (second, second_id, _b) = add(&mut registry, "a.b");
        let (Key::Channel(x), Key::Channel(y)) = (&first, &second) else {
            panic!("channels expected: {first:?} {second:?}");
        };
        assert!(Arc::ptr_eq(x, y), "one copy of the name");
        registry.remove(&first, first_id);
        assert!(registry.contains(&second));
        registry.remove(&second, second_id);
        assert!(registry.is_empty());
    }

    #[test]
    fn a_glob_delivers_only_what_its_pattern_matches() {
        let mut registry = Registry::default();
        let (_, _, mut star) = add(&mut registry, "a.*");
        let glob = glob::glob("p:", &Pattern::parse("a.*").unwrap());
        let arrive = |registry: &Registry, channel: &str| {
            let payload = b"x".to_vec();
            registry.dispatch(
                Some(glob.as_bytes()),
                channel.as_bytes(),
                payload,
                "p:",
                false,
            );
        };
        // The glob `p:a.*` matches all of these; the pattern not `a.b.c`, and `a.b c`
        // is no topic name: a gap says it was skipped.
        arrive(&registry, "p:a.b.c");
        arrive(&registry, "p:a.b c");
        arrive(&registry, "p:a.b");
        let skipped = star.recv().now_or_never().flatten();
        assert!(
            matches!(&skipped, Some(Received::Signal(Signal::Gap { reason })) if reason.contains("\"p:a.b c\"")),
            "{skipped:?}"
        );
        assert_eq!(topic_of(star.recv().now_or_never()), Some("a.b".into()));
        assert_eq!(topic_of(star.recv().now_or_never()), None);
    }

    #[test]
    fn a_gap_reaches_every_subscription() {
        let mut registry = Registry::default();
        let (_, _, mut name) = add(&mut registry, "a.b");
        let (_, _, mut pattern) = add(&mut registry, "a.#");
        registry.gap("reconnected");
        for receiver in [&mut name, &mut pattern] {
            let received = receiver.recv().now_or_never().flatten();
            assert!(
                matches!(
                    received,
                    Some(Received::Signal(pubsub_core::Signal::Gap { .. }))
                ),
                "{received:?}"
            );
        }
    }
}
