//! The message: a payload, and metadata only when there is some.

use std::sync::Arc;

use bytes::Bytes;
use serde::Serialize;

use crate::{Error, HeaderValue, Result};

/// The largest priority; priorities go from 0 (the default) to 9.
pub const MAX_PRIORITY: u8 = 9;

/// Header that carries the topic a request wants its reply on.
pub const REPLY_TO: &str = "reply-to";
/// Header that ties a reply to its request.
pub const CORRELATION_ID: &str = "correlation-id";
/// Header that carries the payload's media type (AMQP's `content_type` property).
pub const CONTENT_TYPE: &str = "content-type";
/// Header that carries the payload's encoding (AMQP's `content_encoding` property).
pub const CONTENT_ENCODING: &str = "content-encoding";
/// Header that carries a foreign priority above [`MAX_PRIORITY`] as it came, in
/// decimal; the message itself then has priority [`MAX_PRIORITY`].
pub const ORIGINAL_PRIORITY: &str = "x-original-priority";

/// A message: bytes plus optional metadata (headers, an id, a priority).
///
/// As cheap to clone as [`Bytes`]: the payload is reference counted, and the metadata,
/// when there is any, sits behind one shared pointer. A message without headers, id or
/// priority carries no metadata at all.
///
/// ```
/// use pubsub_core::Message;
///
/// let m = Message::new("hello").with_header("k", "v").with_priority(5);
/// assert_eq!(m.payload(), "hello".as_bytes());
/// assert_eq!(m.header("k"), Some("v"));
/// assert_eq!(m.priority(), 5);
/// assert!(!Message::new("bare").has_metadata());
/// ```
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Message {
    payload: Bytes,
    meta: Option<Arc<Metadata>>,
}

/// What a message carries besides its payload.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Metadata {
    headers: Vec<(String, HeaderValue)>,
    id: Option<Box<str>>,
    priority: u8,
}

impl Message {
    /// A message with this payload, no headers and priority 0.
    pub fn new(payload: impl Into<Bytes>) -> Self {
        Message {
            payload: payload.into(),
            meta: None,
        }
    }

    /// A message whose payload is `value` as JSON.
    ///
    /// It sets no content type: a message with any header travels on Redis in an
    /// envelope, and Redis subscribers such as Inthe.AM's (and raw mode) need the bare
    /// JSON. Add [`with_content_type`](Self::with_content_type) for receivers that read
    /// it, as node-amqp does, which parses a body as JSON only when it says
    /// `application/json`.
    pub fn json<T: Serialize + ?Sized>(value: &T) -> Result<Self> {
        serde_json::to_vec(value)
            .map(Message::new)
            .map_err(Error::Encode)
    }

    fn meta_mut(&mut self) -> &mut Metadata {
        Arc::make_mut(self.meta.get_or_insert_with(Default::default))
    }

    /// Adds a header (a later one with the same key replaces it). The value is text
    /// or any other [`HeaderValue`].
    pub fn with_header(mut self, key: impl Into<String>, value: impl Into<HeaderValue>) -> Self {
        let (key, value) = (key.into(), value.into());
        let headers = &mut self.meta_mut().headers;
        headers.retain(|(k, _)| *k != key);
        headers.push((key, value));
        self
    }

    /// Sets the priority, 0 to 9; publishing checks the range.
    pub fn with_priority(mut self, priority: u8) -> Self {
        if priority != 0 || self.meta.is_some() {
            self.meta_mut().priority = priority;
        }
        self
    }

    /// Sets the payload's media type, carried as the [`CONTENT_TYPE`] header, which
    /// AMQP sends as its `content_type` property.
    ///
    /// ```
    /// use pubsub_core::Message;
    ///
    /// let m = Message::new("{}").with_content_type("application/json");
    /// assert_eq!(m.content_type(), Some("application/json"));
    /// assert_eq!(m.header(pubsub_core::CONTENT_TYPE), Some("application/json"));
    /// ```
    pub fn with_content_type(self, content_type: impl Into<String>) -> Self {
        self.with_header(CONTENT_TYPE, content_type.into())
    }

    /// Sets the payload's encoding (`gzip`, say), carried as the [`CONTENT_ENCODING`]
    /// header, which AMQP sends as its `content_encoding` property.
    pub fn with_content_encoding(self, content_encoding: impl Into<String>) -> Self {
        self.with_header(CONTENT_ENCODING, content_encoding.into())
    }

    /// Sets the message id.
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.meta_mut().id = Some(id.into().into_boxed_str());
        self
    }

    /// The payload bytes.
    pub fn payload(&self) -> &Bytes {
        &self.payload
    }

    /// Takes the payload out.
    pub fn into_payload(self) -> Bytes {
        self.payload
    }

    /// Whether the message has headers, an id or a priority.
    pub fn has_metadata(&self) -> bool {
        self.meta.is_some()
    }

    /// All headers, in the order they were added, text or not.
    pub fn headers(&self) -> impl ExactSizeIterator<Item = (&str, &HeaderValue)> {
        self.meta
            .as_deref()
            .map_or(&[][..], |m| m.headers.as_slice())
            .iter()
            .map(|(k, v)| (k.as_str(), v))
    }

    /// Whether the message has any header.
    pub fn has_headers(&self) -> bool {
        self.headers().len() > 0
    }

    /// The text of header `key`; `None` when there is no such header or its value is
    /// not text (read those with [`header_value`](Self::header_value)).
    pub fn header(&self, key: &str) -> Option<&str> {
        self.header_value(key)?.as_str()
    }

    /// The value of header `key`, whatever its type.
    pub fn header_value(&self, key: &str) -> Option<&HeaderValue> {
        self.headers().find_map(|(k, v)| (k == key).then_some(v))
    }

    /// The message id, if the publisher or the broker gave one.
    pub fn id(&self) -> Option<&str> {
        self.meta.as_deref()?.id.as_deref()
    }

    /// The priority, 0 to 9.
    ///
    /// A foreign AMQP message may carry up to 255: it arrives with priority 9, and
    /// the value it came with in the [`ORIGINAL_PRIORITY`] header.
    pub fn priority(&self) -> u8 {
        self.meta.as_deref().map_or(0, |m| m.priority)
    }

    /// The payload's media type, if the publisher gave one.
    pub fn content_type(&self) -> Option<&str> {
        self.header(CONTENT_TYPE)
    }

    /// The payload's encoding, if the publisher gave one.
    pub fn content_encoding(&self) -> Option<&str> {
        self.header(CONTENT_ENCODING)
    }

    /// Decodes the payload as JSON. A failure is [`Error::Decode`] naming `topic`.
    pub fn json_as<T: serde::de::DeserializeOwned>(&self, topic: &str) -> Result<T> {
        serde_json::from_slice(&self.payload).map_err(|source| Error::Decode {
            topic: topic.to_owned(),
            source,
        })
    }
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("Message");
        match std::str::from_utf8(&self.payload) {
            Ok(text) if text.len() <= 256 => d.field("payload", &text),
            _ => d.field("payload_len", &self.payload.len()),
        };
        if let Some(meta) = &self.meta {
            d.field("headers", &meta.headers)
                .field("id", &meta.id)
                .field("priority", &meta.priority);
        }
        d.finish()
    }
}

impl From<Bytes> for Message {
    fn from(payload: Bytes) -> Self {
        Message::new(payload)
    }
}

impl From<&'static str> for Message {
    fn from(payload: &'static str) -> Self {
        Message::new(payload)
    }
}

impl From<Vec<u8>> for Message {
    fn from(payload: Vec<u8>) -> Self {
        Message::new(payload)
    }
}
