//! Who receives what: the subscriptions of a bus, and one route per concrete topic
//! that lists the subscriptions it reaches, kept up to date as they come and go.
//!
//! A publish reads only its topic's route (resolved once per `Topic` handle): no
//! hashing, no pattern matching and no lock on the hot path.

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use arc_swap::ArcSwap;

use pubsub_core::ring::{self, RingReceiver, RingSender};
use pubsub_core::{Delivery, Message, Pattern, Result, TopicName};

use crate::group::GroupQueue;

/// Where a publish goes.
#[derive(Debug, Clone)]
pub(crate) enum Sink {
    /// The subscribers of one name with one buffer size: one ring they all read, so a
    /// publish stores the message once however many subscribers there are.
    Channel {
        id: u64,
        buffer: usize,
        ring: RingSender<Message>,
    },
    /// A pattern subscriber's own ring, whose deliveries carry the concrete topic.
    Pattern {
        id: u64,
        ring: RingSender<Delivery>,
        /// The route's topic, in an allocation of this subscriber's own: each delivery
        /// carries a clone, and a reference count shared by subscribers on other
        /// threads would be contended on every message.
        topic: Option<TopicName>,
    },
    /// A group's queue.
    Group(Arc<GroupQueue>),
}

impl Sink {
    fn id(&self) -> Option<u64> {
        match self {
            Sink::Channel { id, .. } | Sink::Pattern { id, .. } => Some(*id),
            Sink::Group(_) => None,
        }
    }

    /// This sink as listed in the route of `topic`.
    fn for_route(&self, topic: &TopicName) -> Sink {
        match self {
            Sink::Pattern { id, ring, .. } => Sink::Pattern {
                id: *id,
                ring: ring.clone(),
                topic: Some(topic.unshared()),
            },
            other => other.clone(),
        }
    }
}

/// The subscriptions one concrete topic reaches.
#[derive(Debug)]
pub(crate) struct Route {
    topic: TopicName,
    /// Read by every publish without a lock; replaced whole, under the registry's
    /// lock, when a subscription comes or goes.
    sinks: ArcSwap<Vec<Sink>>,
}

impl Route {
    pub(crate) fn topic(&self) -> &TopicName {
        &self.topic
    }

    /// Replaces the sink list with `change` applied to a copy of it. Only the registry,
    /// under its write lock, changes routes, so no change is lost between load and store.
    fn change_sinks(&self, change: impl FnOnce(&mut Vec<Sink>)) {
        let mut sinks = Vec::clone(&self.sinks.load());
        change(&mut sinks);
        self.sinks.store(Arc::new(sinks));
    }

    /// Hands `message` to every subscription of the topic; returns how many took it.
    /// Group queues are reserved first, so a full queue refuses the message before any
    /// subscriber has it: a publish is delivered everywhere or nowhere.
    pub(crate) fn deliver(&self, message: Message) -> Result<usize> {
        let sinks = self.sinks.load();
        match sinks.as_slice() {
            // The common case takes the message without a copy.
            [Sink::Channel { ring, .. }] => return Ok(usize::from(ring.push(message).is_ok())),
            [] => return Ok(0),
            _ => {}
        }
        let groups = || {
            sinks.iter().filter_map(|sink| match sink {
                Sink::Group(queue) => Some(queue),
                Sink::Channel { .. } | Sink::Pattern { .. } => None,
            })
        };
        for (reserved, queue) in groups().enumerate() {
            if let Err(full) = queue.reserve() {
                groups().take(reserved).for_each(|q| q.unreserve());
                return Err(full);
            }
        }
        let mut receivers = 0;
        for sink in sinks.iter() {
            match sink {
                Sink::Channel { ring, .. } => {
                    receivers += usize::from(ring.push(message.clone()).is_ok());
                }
                Sink::Pattern { ring, topic, .. } => {
                    let topic = topic.as_ref().unwrap_or(&self.topic).clone();
                    let delivery = Delivery::new(topic, message.clone());
                    receivers += usize::from(ring.push(delivery).is_ok());
                }
                Sink::Group(queue) => {
                    queue.push_reserved(&self.topic, message.clone());
                    receivers += 1;
                }
            }
        }
        Ok(receivers)
    }
}

/// Every subscription of a bus, and the routes of the topics published to.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    routes: HashMap<Arc<str>, Weak<Route>>,
    /// Dead routes are swept when the map reaches this size.
    sweep_at: usize,
    subscriptions: Vec<(Pattern, Sink)>,
    next_id: u64,
}

impl Registry {
    /// The route of `topic`, made from the subscriptions that match it.
    pub(crate) fn route(&mut self, topic: &TopicName) -> Arc<Route> {
        if let Some(route) = self.routes.get(topic.as_str()).and_then(Weak::upgrade) {
            return route;
        }
        let sinks = self
            .subscriptions
            .iter()
            .filter(|(pattern, _)| pattern.matches(topic))
            .map(|(_, sink)| sink.for_route(topic))
            .collect();
        let route = Arc::new(Route {
            topic: topic.clone(),
            sinks: ArcSwap::from_pointee(sinks),
        });
        if self.routes.len() >= self.sweep_at {
            self.routes.retain(|_, route| route.strong_count() > 0);
            self.sweep_at = (self.routes.len() * 2).max(64);
        }
        self.routes
            .insert(Arc::clone(topic.as_arc()), Arc::downgrade(&route));
        route
    }

    /// A reader of the ring that subscribers of the name `pattern` with `buffer` share,
    /// made and routed if it is the first; returns the channel's id with it.
    pub(crate) fn channel(
        &mut self,
        pattern: &Pattern,
        buffer: usize,
    ) -> (u64, RingReceiver<Message>) {
        let shared = self.subscriptions.iter().find_map(|(p, sink)| match sink {
            Sink::Channel {
                id,
                buffer: b,
                ring,
            } if p == pattern && *b == buffer => Some((*id, ring.subscribe())),
            _ => None,
        });
        shared.unwrap_or_else(|| {
            let (ring, receiver) = ring::channel(buffer);
            let id = self.add(pattern.clone(), |id| Sink::Channel { id, buffer, ring });
            (id, receiver)
        })
    }

    /// Adds the subscription `make` builds from its new id to the routes it matches,
    /// now and later; returns the id.
    pub(crate) fn add(&mut self, pattern: Pattern, make: impl FnOnce(u64) -> Sink) -> u64 {
        self.next_id += 1;
        let sink = make(self.next_id);
        self.for_routes(&pattern, |route| {
            route.change_sinks(|sinks| sinks.push(sink.for_route(&route.topic)));
        });
        self.subscriptions.push((pattern, sink));
        self.next_id
    }

    /// Removes subscription `id` from everywhere, unless it is a channel that another
    /// subscriber still reads.
    pub(crate) fn release(&mut self, pattern: &Pattern, id: u64) {
        let still_read = self.subscriptions.iter().any(|(_, sink)| {
            matches!(sink, Sink::Channel { id: mine, ring, .. }
                if *mine == id && ring.receiver_count() > 0)
        });
        if still_read {
            return;
        }
        let other = |sink: &Sink| sink.id() != Some(id);
        self.subscriptions.retain(|(_, sink)| other(sink));
        self.for_routes(pattern, |route| {
            route.change_sinks(|sinks| sinks.retain(other))
        });
    }

    /// The group queue of `group` on `pattern`, if the group has joined it before.
    pub(crate) fn group(&self, group: &str, pattern: &Pattern) -> Option<Arc<GroupQueue>> {
        self.subscriptions.iter().find_map(|(p, sink)| match sink {
            Sink::Group(queue) if p == pattern && queue.name() == group => Some(Arc::clone(queue)),
            _ => None,
        })
    }

    fn for_routes(&self, pattern: &Pattern, mut f: impl FnMut(&Route)) {
        if !pattern.is_wildcard() {
            if let Some(route) = self.routes.get(pattern.as_str()).and_then(Weak::upgrade) {
                f(&route);
            }
            return;
        }
        for (topic, route) in &self.routes {
            if pattern.matches(topic) {
                if let Some(route) = route.upgrade() {
                    f(&route);
                }
            }
        }
    }

    /// Ends every subscription: rings and queues are closed, routes emptied.
    pub(crate) fn close(&mut self) {
        for (_, sink) in self.subscriptions.drain(..) {
            match sink {
                Sink::Channel { ring, .. } => ring.close(),
                Sink::Pattern { ring, .. } => ring.close(),
                Sink::Group(queue) => queue.close(),
            }
        }
        for route in self.routes.drain().filter_map(|(_, r)| r.upgrade()) {
            route.change_sinks(Vec::clear);
        }
    }

    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.subscriptions.is_empty()
            && self
                .routes
                .values()
                .filter_map(Weak::upgrade)
                .all(|r| r.sinks.load().is_empty())
    }
}
