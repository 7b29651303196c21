//! Where a replay starts ([`RedisBackend::replay`](crate::RedisBackend::replay)).

use std::time::{SystemTime, UNIX_EPOCH};

/// Where a Streams-mode replay starts reading.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use pubsub_redis::Replay;
///
/// let from_an_hour_ago = Replay::Since(SystemTime::now() - Duration::from_secs(3600));
/// let after_an_entry = Replay::After("1700000000000-0".into());
/// # let _ = (from_an_hour_ago, after_an_entry, Replay::All);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Replay {
    /// Every entry the stream still holds.
    All,
    /// The entries added at or after this time (entry ids are millisecond times).
    Since(SystemTime),
    /// The entries after the one of this stream id (`<ms>-<seq>`).
    After(String),
}

impl Replay {
    /// The id to read after (`XREAD` returns entries with greater ids).
    pub(crate) fn start_id(&self) -> String {
        match self {
            Replay::All => "0-0".to_owned(),
            Replay::Since(time) => {
                let ms = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
                // Entries of millisecond `ms` have ids `ms-0` and up: read after the
                // last one of the millisecond before.
                match ms.checked_sub(1) {
                    Some(before) => format!("{before}-18446744073709551615"),
                    None => "0-0".to_owned(),
                }
            }
            Replay::After(id) => id.clone(),
        }
    }
}
