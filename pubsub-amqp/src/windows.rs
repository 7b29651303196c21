//! How confirmed publishes share a connection's publishing channels: each channel
//! has a confirm window, a number of publishes it may have waiting for their confirm,
//! and a publish takes the first channel whose window has room.
//!
//! RabbitMQ runs each channel as one process that routes its publishes and confirms
//! them in batches. A few publishes in flight go fastest on one channel, where they
//! share the batches (four publishers of 64 each into one group queue went 5 to 10%
//! slower over four channels than over one); many outgrow what one process does on one core,
//! and then go faster over several. Filling the first channel's window before the
//! next gives each case what suits it.

use std::sync::atomic::{AtomicUsize, Ordering};

/// The publishes in flight on each publishing channel, and the window of each.
#[derive(Debug)]
pub(crate) struct ConfirmWindows {
    in_flight: Box<[AtomicUsize]>,
    size: usize,
}

impl ConfirmWindows {
    /// Windows of `size` publishes on `channels` channels.
    pub(crate) fn new(channels: usize, size: usize) -> Self {
        ConfirmWindows {
            in_flight: (0..channels.max(1)).map(|_| AtomicUsize::new(0)).collect(),
            size: size.max(1),
        }
    }

    /// The channel a confirmed publish takes, counted in flight there until
    /// [`release`](Self::release): the first whose window has room, else the one with
    /// the fewest in flight. The windows are soft: publishes that take a channel at
    /// the same moment may each see its last free place.
    pub(crate) fn take(&self) -> usize {
        let mut least = (0, usize::MAX);
        for (channel, in_flight) in self.in_flight.iter().enumerate() {
            let count = in_flight.load(Ordering::Relaxed);
            if count < self.size {
                least = (channel, count);
                break;
            }
            if count < least.1 {
                least = (channel, count);
            }
        }
        self.in_flight[least.0].fetch_add(1, Ordering::Relaxed);
        least.0
    }

    /// A publish on `channel` was confirmed, refused or lost.
    pub(crate) fn release(&self, channel: usize) {
        self.in_flight[channel].fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publishes_fill_the_first_window_then_the_next() {
        let windows = ConfirmWindows::new(3, 2);
        let taken: Vec<usize> = (0..6).map(|_| windows.take()).collect();
        assert_eq!(taken, [0, 0, 1, 1, 2, 2]);
    }

    #[test]
    fn a_confirm_frees_a_place_in_its_window() {
        let windows = ConfirmWindows::new(2, 2);
        for _ in 0..3 {
            windows.take();
        }
        windows.release(0);
        assert_eq!(windows.take(), 0, "channel 0 has room again");
        assert_eq!(windows.take(), 1);
    }

    #[test]
    fn when_every_window_is_full_the_least_loaded_channel_takes_more() {
        let windows = ConfirmWindows::new(2, 1);
        assert_eq!([windows.take(), windows.take()], [0, 1]);
        windows.take(); // Both full: the first of the least loaded.
        assert_eq!(windows.take(), 1, "channel 0 holds two, channel 1 one");
    }

    #[test]
    fn one_channel_takes_everything() {
        let windows = ConfirmWindows::new(1, 4);
        assert!((0..10).all(|_| windows.take() == 0));
    }
}
