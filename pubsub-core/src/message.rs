//! The message: a payload with headers, an id and a priority.

use std::sync::Arc;

use bytes::Bytes;
use serde::Serialize;

use crate::{Error, Result};

/// The largest priority; priorities go from 0 (the default) to 9.
pub const MAX_PRIORITY: u8 = 9;

/// Header that carries the topic a request wants its reply on.
pub const REPLY_TO: &str = "reply-to";
/// Header that ties a reply to its request.
pub const CORRELATION_ID: &str = "correlation-id";

/// A message: bytes plus metadata. Cheap to clone (reference counted).
///
/// ```
/// use pubsub_core::Message;
///
/// let m = Message::new("hello").with_header("k", "v").with_priority(5);
/// assert_eq!(m.payload(), "hello".as_bytes());
/// assert_eq!(m.header("k"), Some("v"));
/// assert_eq!(m.priority(), 5);
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Message {
    topic: Option<Arc<str>>,
    payload: Bytes,
    headers: Option<Arc<Vec<(String, String)>>>,
    id: Option<Arc<str>>,
    priority: u8,
    attempt: u32,
}

impl Message {
    /// A message with this payload, no headers and priority 0.
    pub fn new(payload: impl Into<Bytes>) -> Self {
        Message {
            topic: None,
            payload: payload.into(),
            headers: None,
            id: None,
            priority: 0,
            attempt: 1,
        }
    }

    /// A message whose payload is `value` as JSON.
    pub fn json<T: Serialize + ?Sized>(value: &T) -> Result<Self> {
        serde_json::to_vec(value)
            .map(Message::new)
            .map_err(Error::Encode)
    }

    /// Adds a header (a later one with the same key wins on [`header`](Self::header)).
    pub fn with_header(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        let (key, value) = (key.into(), value.into());
        let headers = Arc::make_mut(self.headers.get_or_insert_with(Default::default));
        headers.retain(|(k, _)| *k != key);
        headers.push((key, value));
        self
    }

    /// Sets the priority, 0 to 9; publishing checks the range.
    pub fn with_priority(mut self, priority: u8) -> Self {
        self.priority = priority;
        self
    }

    /// Sets the message id.
    pub fn with_id(mut self, id: impl Into<Arc<str>>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Sets the topic. The bus does this on publish; backends do it on receipt.
    pub fn with_topic(mut self, topic: impl Into<Arc<str>>) -> Self {
        self.topic = Some(topic.into());
        self
    }

    /// Sets the delivery attempt (1 for the first delivery). For backends.
    pub fn with_attempt(mut self, attempt: u32) -> Self {
        self.attempt = attempt;
        self
    }

    /// The concrete topic this message was published to (empty before publishing).
    pub fn topic(&self) -> &str {
        self.topic.as_deref().unwrap_or("")
    }

    /// The topic as a shared string, for backends that pass it on without copying.
    pub fn topic_arc(&self) -> Option<&Arc<str>> {
        self.topic.as_ref()
    }

    /// The payload bytes.
    pub fn payload(&self) -> &Bytes {
        &self.payload
    }

    /// All headers, in the order they were added.
    pub fn headers(&self) -> impl ExactSizeIterator<Item = (&str, &str)> {
        self.headers
            .as_deref()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Whether the message has any header.
    pub fn has_headers(&self) -> bool {
        self.headers.as_ref().is_some_and(|h| !h.is_empty())
    }

    /// The value of header `key`.
    pub fn header(&self, key: &str) -> Option<&str> {
        self.headers().find_map(|(k, v)| (k == key).then_some(v))
    }

    /// The message id, if the publisher or the broker gave one.
    pub fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }

    /// The priority, 0 to 9.
    pub fn priority(&self) -> u8 {
        self.priority
    }

    /// Which delivery of this message this is: 1 the first time, more after a nack
    /// with requeue or a consumer that died before acking.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Decodes the payload as JSON. A failure is [`Error::Decode`] for this message.
    pub fn json_as<T: serde::de::DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_slice(&self.payload).map_err(|source| Error::Decode {
            topic: self.topic().to_owned(),
            source,
        })
    }
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("Message");
        d.field("topic", &self.topic());
        match std::str::from_utf8(&self.payload) {
            Ok(text) if text.len() <= 256 => d.field("payload", &text),
            _ => d.field("payload_len", &self.payload.len()),
        };
        if self.has_headers() {
            d.field("headers", &self.headers().collect::<Vec<_>>());
        }
        d.field("id", &self.id)
            .field("priority", &self.priority)
            .field("attempt", &self.attempt)
            .finish()
    }
}

impl Default for Message {
    fn default() -> Self {
        Message::new(Bytes::new())
    }
}

impl From<Bytes> for Message {
    fn from(payload: Bytes) -> Self {
        Message::new(payload)
    }
}
