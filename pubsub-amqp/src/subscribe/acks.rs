//! Acknowledging broadcast deliveries on the channel their subscriptions share.
//!
//! Delivery tags number a channel's deliveries one by one, whichever consumer they
//! went to, and a `multiple` ack settles every unacknowledged delivery up to its tag.
//! RabbitMQ keeps a channel's unacknowledged deliveries in a queue that a single ack
//! walks from the oldest to find its tag, so single acks of many subscriptions on one
//! channel cost the broker in proportion to what all of them hold (a fan-out to 10
//! subscriptions went at a fifth of raw lapin's rate with one ack per delivery).
//!
//! So the channel keeps one ledger of its deliveries, and once every delivery from
//! the oldest unsettled one up to some tag has been read by its subscriber, one
//! `multiple` ack settles them all. A `multiple` ack never covers a delivery whose
//! subscriber has not read it (the broker would send that subscriber more than its
//! prefetch), nor one the ledger has not seen yet: it may still wait in lapin's
//! buffer for its subscription's pump. A subscriber does not wait for a slow
//! neighbour either: what it has read and no `multiple` ack can cover yet, it acks
//! one by one once that is a batch, or once it was held back over two of the
//! subscriber's waits for more.
//!
//! Every decision and the frames it sends are made under one lock, as the broker
//! must see them in that order: an ack of a tag that an earlier `multiple` ack
//! settled is a channel error.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use futures::FutureExt;
use lapin::options::BasicAckOptions;
use lapin::Channel;

/// How many deliveries may follow one that the ledger has not seen before it is
/// taken as settled. Only a pump that ended without reading what lapin held for it
/// leaves such a hole for good; a live pump reads its deliveries long before.
const HOLE_PATIENCE: usize = 1 << 16;

/// The acknowledging on one shared channel.
#[derive(Debug, Default)]
pub(crate) struct ChannelAcks {
    ledger: Mutex<Ledger>,
    seats: AtomicU32,
}

/// The channel's deliveries that are not settled yet.
#[derive(Debug, Default)]
struct Ledger {
    /// Every delivery up to this tag is settled.
    settled_through: u64,
    /// The deliveries after it, by tag; `None` for one not seen yet.
    unsettled: VecDeque<Option<Entry>>,
    /// The newest settled delivery that no ack has named yet, and how many
    /// deliveries the `multiple` ack naming it settles.
    unsent: Option<(u64, usize)>,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    seat: u32,
    state: State,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// In its subscription's buffer.
    Unread,
    /// Read by its subscriber (or its subscription has gone), not acknowledged.
    Read,
    /// Acknowledged on its own.
    Acked,
}

impl Ledger {
    fn entry(&mut self, tag: u64) -> Option<&mut Option<Entry>> {
        let index = usize::try_from(tag.checked_sub(self.settled_through + 1)?).ok()?;
        if index >= self.unsettled.len() {
            self.unsettled.resize(index + 1, None);
        }
        self.unsettled.get_mut(index)
    }

    fn delivered(&mut self, tag: u64, seat: u32) {
        if let Some(slot) = self.entry(tag) {
            *slot = Some(Entry {
                seat,
                state: State::Unread,
            });
        }
    }

    fn state(&self, tag: u64) -> Option<State> {
        let index = usize::try_from(tag.checked_sub(self.settled_through + 1)?).ok()?;
        Some(self.unsettled.get(index)?.as_ref()?.state)
    }

    fn set(&mut self, tag: u64, state: State) {
        if let Some(Some(entry)) = self.entry(tag) {
            entry.state = state;
        }
    }

    /// Settles the longest run of read deliveries from the oldest unsettled one,
    /// for the next `multiple` ack.
    fn settle(&mut self) {
        loop {
            let state = match self.unsettled.front() {
                Some(Some(entry)) => entry.state,
                Some(None) if self.unsettled.len() > HOLE_PATIENCE => State::Acked,
                _ => break,
            };
            match state {
                State::Unread => break,
                State::Read => {
                    let count = self.unsent.map_or(0, |(_, count)| count);
                    self.unsent = Some((self.settled_through + 1, count + 1));
                }
                State::Acked => {}
            }
            self.unsettled.pop_front();
            self.settled_through += 1;
        }
    }
}

impl ChannelAcks {
    /// A seat on `channel` for a consumer about to be made, whose subscriber acks
    /// what no `multiple` ack covers once it has read `batch` such deliveries.
    pub(crate) fn seat(self: &Arc<Self>, channel: &Channel, batch: usize) -> Seat {
        Seat {
            id: self.seats.fetch_add(1, Ordering::Relaxed),
            acks: Arc::clone(self),
            channel: channel.clone(),
            batch: batch.max(1),
            leftovers: Leftovers::default(),
        }
    }

    fn ledger(&self) -> MutexGuard<'_, Ledger> {
        self.ledger.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A consumer's place on a shared channel. Dropped by the pump of a subscription
/// that has gone, it counts what the consumer left unread as read: the queue goes
/// with the subscription, and settling those deliveries with the rest is harmless.
#[derive(Debug)]
pub(crate) struct Seat {
    id: u32,
    acks: Arc<ChannelAcks>,
    channel: Channel,
    batch: usize,
    leftovers: Leftovers,
}

/// What a seat's subscriber read and no `multiple` ack covers yet: deliveries behind
/// a neighbour's unread one.
#[derive(Debug, Default)]
struct Leftovers {
    tags: Vec<u64>,
    /// Whether there were leftovers at the last flush too.
    stale: bool,
}

impl Leftovers {
    /// Keeps the ones that are still held back.
    fn retain(&mut self, ledger: &Ledger) {
        self.tags
            .retain(|&tag| ledger.state(tag) == Some(State::Read));
    }

    /// Acks each on its own.
    fn ack(&mut self, ledger: &mut Ledger, channel: &Channel) {
        for tag in self.tags.drain(..) {
            ledger.set(tag, State::Acked);
            send(channel, tag, false);
        }
        ledger.settle();
    }
}

impl Seat {
    /// The consumer received delivery `tag`.
    pub(crate) fn delivered(&self, tag: u64) {
        self.acks.ledger().delivered(tag, self.id);
    }

    /// The subscriber has read `tags`: settles what can be settled, and acks once a
    /// batch is settled, or once a batch is held back by a neighbour.
    pub(crate) fn read(&mut self, tags: &[u64]) {
        let mut ledger = self.acks.ledger();
        for &tag in tags {
            ledger.set(tag, State::Read);
        }
        ledger.settle();
        self.leftovers.tags.extend_from_slice(tags);
        self.leftovers.retain(&ledger);
        if self.leftovers.tags.len() >= self.batch {
            self.leftovers.ack(&mut ledger, &self.channel);
        }
        if ledger.unsent.is_some_and(|(_, count)| count >= self.batch) {
            send_unsent(&mut ledger, &self.channel);
        }
    }

    /// Acks what is settled now, as the subscriber waits for more, and what a
    /// neighbour has held back since the last flush too. Whether some of what the
    /// subscriber read is still held back, for the next flush.
    pub(crate) fn flush(&mut self) -> bool {
        let mut ledger = self.acks.ledger();
        self.leftovers.retain(&ledger);
        if self.leftovers.stale {
            self.leftovers.ack(&mut ledger, &self.channel);
        }
        send_unsent(&mut ledger, &self.channel);
        self.leftovers.stale = !self.leftovers.tags.is_empty();
        self.leftovers.stale
    }
}

fn send_unsent(ledger: &mut Ledger, channel: &Channel) {
    if let Some((tag, _)) = ledger.unsent.take() {
        send(channel, tag, true);
    }
}

/// Hands the frame to lapin, which queues it when the call is first polled; its
/// writing is not waited for. An ack that fails means the channel went, and the
/// broker requeued the rest: the consumer ends with it and the subscription consumes
/// again, as it does when the connection is lost.
fn send(channel: &Channel, tag: u64, multiple: bool) {
    let ack = channel.basic_ack(tag, BasicAckOptions { multiple });
    drop(ack.now_or_never());
}

impl Drop for Seat {
    fn drop(&mut self) {
        let mut ledger = self.acks.ledger();
        for entry in ledger.unsettled.iter_mut().flatten() {
            if entry.seat == self.id && entry.state == State::Unread {
                entry.state = State::Read;
            }
        }
        ledger.settle();
        send_unsent(&mut ledger, &self.channel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ledger() -> Ledger {
        Ledger::default()
    }

    /// A ledger that has seen `tags`, delivered to seat 0.
    fn delivered(tags: std::ops::RangeInclusive<u64>) -> Ledger {
        let mut ledger = ledger();
        tags.for_each(|tag| ledger.delivered(tag, 0));
        ledger
    }

    /// Settles, and takes the tag a `multiple` ack would name now.
    fn settle(ledger: &mut Ledger) -> Option<u64> {
        ledger.settle();
        ledger.unsent.take().map(|(tag, _)| tag)
    }

    #[test]
    fn a_run_of_read_deliveries_settles_with_its_newest() {
        let mut ledger = delivered(1..=3);
        ledger.set(1, State::Read);
        ledger.set(2, State::Read);
        assert_eq!(settle(&mut ledger), Some(2));
        assert_eq!(settle(&mut ledger), None, "nothing more is read");
        ledger.set(3, State::Read);
        assert_eq!(settle(&mut ledger), Some(3));
    }

    #[test]
    fn runs_settled_one_after_the_other_wait_for_one_ack() {
        let mut ledger = ledger();
        for tag in 1..=3 {
            ledger.delivered(tag, 0);
            ledger.set(tag, State::Read);
            ledger.settle();
        }
        assert_eq!(
            ledger.unsent,
            Some((3, 3)),
            "one ack of 3 settles all three"
        );
    }

    #[test]
    fn an_unread_delivery_of_a_neighbour_holds_the_run() {
        let mut ledger = ledger();
        ledger.delivered(1, 0);
        ledger.delivered(2, 1);
        ledger.set(2, State::Read);
        assert_eq!(settle(&mut ledger), None);
        ledger.set(1, State::Read);
        assert_eq!(settle(&mut ledger), Some(2));
    }

    #[test]
    fn a_delivery_not_seen_yet_holds_the_run() {
        let mut ledger = ledger();
        ledger.delivered(2, 1);
        ledger.set(2, State::Read);
        assert_eq!(
            settle(&mut ledger),
            None,
            "tag 1 may wait in lapin's buffer"
        );
        ledger.delivered(1, 0);
        ledger.set(1, State::Read);
        assert_eq!(settle(&mut ledger), Some(2));
    }

    #[test]
    fn deliveries_acked_on_their_own_are_not_acked_again() {
        let mut ledger = delivered(1..=3);
        ledger.set(2, State::Acked);
        ledger.set(3, State::Acked);
        ledger.set(1, State::Read);
        assert_eq!(
            settle(&mut ledger),
            Some(1),
            "the multiple ack names a tag still held"
        );
        ledger.delivered(4, 0);
        ledger.set(4, State::Acked);
        assert_eq!(settle(&mut ledger), None, "settled without a frame");
        assert_eq!(ledger.settled_through, 4);
    }

    #[test]
    fn a_hole_is_given_up_only_after_many_later_deliveries() {
        let mut ledger = ledger();
        let last = HOLE_PATIENCE as u64;
        for tag in 2..=last {
            ledger.delivered(tag, 0);
            ledger.set(tag, State::Read);
        }
        assert_eq!(settle(&mut ledger), None, "tag 1 is not given up yet");
        ledger.delivered(last + 1, 0);
        ledger.set(last + 1, State::Read);
        assert_eq!(settle(&mut ledger), Some(last + 1));
        assert!(ledger.unsettled.is_empty());
        ledger.delivered(1, 0);
        ledger.set(1, State::Read);
        assert_eq!(settle(&mut ledger), None, "a late tag 1 counts as settled");
    }
}
