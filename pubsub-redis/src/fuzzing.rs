//! The crate's readers and writers for the fuzz targets in `fuzz/` (feature
//! `fuzzing`): not an API, and free to change with them.

use pubsub_core::{Bytes, Message, Pattern, Result};

/// The bytes published for `message`.
pub fn encode(message: &Message, raw: bool) -> Result<Bytes> {
    crate::envelope::encode(message, raw)
}

/// The message that received `bytes` carry.
pub fn decode(bytes: Bytes, raw: bool) -> Message {
    crate::envelope::decode(bytes, raw)
}

/// The Redis glob subscribed for `pattern` under `prefix`.
pub fn glob(prefix: &str, pattern: &Pattern) -> String {
    crate::glob::glob(prefix, pattern)
}
