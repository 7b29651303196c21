//! The Redis envelope: any received bytes read as a message without panicking, a
//! message read from bytes that are no envelope is exactly those bytes, and every
//! message the writer encodes reads back the same.

#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use pubsub_core::{Bytes, Message, MAX_PRIORITY};
use pubsub_redis::fuzzing::{decode, encode};

/// The envelope's first bytes (in the crate docs).
const MAGIC: [u8; 4] = [0x00, b'P', b'S', 0x01];

#[derive(Debug, Arbitrary)]
struct Input {
    /// Bytes as a foreign client or a damaged envelope would send them.
    received: Vec<u8>,
    /// A message to send: payload, headers, id, priority.
    payload: Vec<u8>,
    headers: Vec<(String, String)>,
    id: Option<String>,
    priority: u8,
}

fuzz_target!(|input: Input| {
    let received = Bytes::from(input.received);
    let read = decode(received.clone(), false);
    // Either the bytes arrive unchanged, or they were an envelope around the payload.
    if read.payload() == &received {
        assert!(!read.has_metadata(), "{read:?}");
    } else {
        assert!(received.starts_with(&MAGIC) && received.ends_with(read.payload()));
    }
    assert!(read.priority() <= MAX_PRIORITY, "{read:?}");
    // Raw mode never looks inside.
    let raw = decode(received.clone(), true);
    assert!(!raw.has_metadata() && raw.payload() == &received);
    // What we receive can be sent on as it is.
    assert_same(&decode(encode(&read, false).unwrap(), false), &read);

    // Publishing refuses a priority above the maximum before encoding.
    let mut message =
        Message::new(input.payload).with_priority(input.priority % (MAX_PRIORITY + 1));
    for (key, value) in input.headers {
        message = message.with_header(key, value);
    }
    if let Some(id) = input.id {
        message = message.with_id(id);
    }
    let sent = encode(&message, false).unwrap();
    assert_same(&decode(sent, false), &message);
    let bare = encode(&message, true).unwrap();
    assert_eq!(&bare, message.payload(), "raw mode sends the bare payload");
});

/// Equal in all a receiver can see. (`Message`'s `==` also tells a message whose
/// priority was set back to 0 from one that never had any.)
fn assert_same(got: &Message, sent: &Message) {
    assert_eq!(got.payload(), sent.payload());
    assert_eq!(
        got.headers().collect::<Vec<_>>(),
        sent.headers().collect::<Vec<_>>()
    );
    assert_eq!((got.id(), got.priority()), (sent.id(), sent.priority()));
}
