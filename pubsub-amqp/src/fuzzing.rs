//! The crate's readers for the fuzz targets in `fuzz/` (feature `fuzzing`): not an
//! API, and free to change with them.

use lapin::BasicProperties;
use pubsub_core::Message;

/// The header that carries the attempt of a message this crate requeued.
pub const ATTEMPT: &str = crate::properties::ATTEMPT;
/// The header that keeps the topic of a message this crate requeued.
pub const TOPIC: &str = crate::properties::TOPIC;

/// What a delivery with this body and these properties carries: the message, the
/// topic a requeued copy kept, and its attempt.
pub fn to_message(
    payload: Vec<u8>,
    properties: &BasicProperties,
    redelivered: bool,
) -> (Message, Option<String>, u32) {
    let incoming = crate::properties::to_message(payload, properties, redelivered);
    (incoming.message, incoming.topic, incoming.attempt)
}
