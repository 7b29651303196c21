//! Acknowledging broadcast deliveries on the channel their subscriptions share.
//!
//! Delivery tags count a channel's deliveries, whichever consumer they went to, and a
//! `multiple` ack settles every unacknowledged delivery up to its tag. A subscription
//! alone on its channel therefore settles what its subscriber has read with one frame,
//! and the broker does one settlement instead of one per message, which is most of
//! what consuming with acks costs over consuming without. Beside others it acks each
//! delivery: a `multiple` ack would settle their unread deliveries too, letting the
//! broker send them past their prefetch, and make their own later acks name tags the
//! broker no longer knows (a channel error). Deliveries of a consumer that has gone
//! are never read: settling them with the rest is harmless.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use lapin::options::BasicAckOptions;
use lapin::Channel;
use tokio::sync::Mutex;

use crate::lost::Liveness;

/// The acknowledging on one shared channel: how many consumers have a seat on it.
#[derive(Debug, Default)]
pub(crate) struct ChannelAcks {
    seated: AtomicUsize,
    /// Held while deciding how to ack and handing the frames to lapin, so that every
    /// consumer's frames reach the broker in the order they were decided in: an ack
    /// of a tag that a `multiple` ack sent before it settled would be a channel error.
    sending: Mutex<()>,
}

impl ChannelAcks {
    /// A seat on `channel` for a consumer about to be made: taken before the consumer
    /// exists, so that nobody believes itself alone once deliveries can reach it.
    pub(crate) fn seat(self: &Arc<Self>, channel: &Channel) -> Seat {
        self.seated.fetch_add(1, Ordering::SeqCst);
        Seat {
            acks: Arc::clone(self),
            channel: channel.clone(),
        }
    }
}

/// A consumer's place on a shared channel, given up when it is dropped: by the pump
/// of a subscription that has gone, after its last ack was handed to lapin.
#[derive(Debug)]
pub(crate) struct Seat {
    acks: Arc<ChannelAcks>,
    channel: Channel,
}

impl Seat {
    /// Acknowledges `tags`, deliveries of this seat's consumer that its subscriber has
    /// read, oldest first: with one frame when this consumer is alone on the channel
    /// (every earlier delivery of its own is read, being older), else one each.
    pub(crate) async fn ack(&self, tags: &[u64], liveness: &Liveness) {
        let Some(&newest) = tags.last() else {
            return;
        };
        let _sending = self.acks.sending.lock().await;
        let acked = async {
            if self.acks.seated.load(Ordering::SeqCst) == 1 {
                let all = BasicAckOptions { multiple: true };
                let _ = self.channel.basic_ack(newest, all).await;
            } else {
                let each = tags
                    .iter()
                    .map(|&tag| self.channel.basic_ack(tag, BasicAckOptions::default()));
                futures::future::join_all(each).await;
            }
            Ok(())
        };
        // A failed ack means the channel went, and the broker requeued the rest; the
        // consumer ends with it and the subscription consumes again, as it does when
        // the connection is lost.
        let _ = liveness.unless_lost("ack", acked).await;
    }
}

impl Drop for Seat {
    fn drop(&mut self) {
        self.acks.seated.fetch_sub(1, Ordering::SeqCst);
    }
}
