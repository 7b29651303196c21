//! A [`Message`] as AMQP properties and back, so foreign AMQP clients see normal
//! properties: the id is `message-id`, the priority `priority`, the headers
//! `reply-to`, `correlation-id`, `content-type` and `content-encoding` the properties
//! of those names, everything else an AMQP header. A foreign priority above ours
//! arrives as [`MAX_PRIORITY`] with the value it came with in [`ORIGINAL_PRIORITY`].

use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::BasicProperties;
use pubsub_core::{
    Bytes, Error, Message, Result, CONTENT_ENCODING, CONTENT_TYPE, CORRELATION_ID, MAX_PRIORITY,
    ORIGINAL_PRIORITY, REPLY_TO,
};

/// Header that carries the delivery attempt of a message this crate requeued.
pub(crate) const ATTEMPT: &str = "x-pubsub-attempt";
/// Header in which a quorum queue counts a message's earlier deliveries.
const DELIVERY_COUNT: &str = "x-delivery-count";
/// Header that keeps the topic of a message requeued through the default exchange
/// (where the routing key is the queue's name).
pub(crate) const TOPIC: &str = "x-pubsub-topic";

const PERSISTENT: u8 = 2;

/// The AMQP properties of `message`.
pub(crate) fn to_properties(message: &Message, persistent: bool) -> Result<BasicProperties> {
    let mut properties = BasicProperties::default();
    if persistent {
        properties = properties.with_delivery_mode(PERSISTENT);
    }
    if message.priority() > 0 {
        properties = properties.with_priority(message.priority());
    }
    if let Some(id) = message.id() {
        properties = properties.with_message_id(short("message id", id)?);
    }
    let mut headers = FieldTable::default();
    for (key, value) in message.headers() {
        match key {
            REPLY_TO => properties = properties.with_reply_to(short("reply-to", value)?),
            CORRELATION_ID => {
                properties = properties.with_correlation_id(short("correlation id", value)?)
            }
            CONTENT_TYPE => {
                properties = properties.with_content_type(short("content type", value)?)
            }
            CONTENT_ENCODING => {
                properties = properties.with_content_encoding(short("content encoding", value)?)
            }
            _ => {
                headers.insert(
                    short("header name", key)?,
                    AMQPValue::LongString(value.into()),
                );
            }
        }
    }
    if !headers.inner().is_empty() {
        properties = properties.with_headers(headers);
    }
    Ok(properties)
}

/// `properties` as they go back to the queue on a nack with requeue: the attempt
/// counted, and the topic kept (the routing key becomes the queue's name).
pub(crate) fn requeued(properties: &BasicProperties, topic: &str, attempt: u32) -> BasicProperties {
    let mut headers = properties.headers().clone().unwrap_or_default();
    headers.insert(ATTEMPT.into(), AMQPValue::LongLongInt(attempt.into()));
    headers.insert(TOPIC.into(), AMQPValue::LongString(topic.into()));
    properties.clone().with_headers(headers)
}

/// What a delivery carries: the message, the topic a requeued copy kept, and which
/// attempt this is.
pub(crate) struct Incoming {
    pub(crate) message: Message,
    /// The topic of a message this crate requeued through the default exchange.
    pub(crate) topic: Option<String>,
    pub(crate) attempt: u32,
}

/// The message a delivery carries. `redelivered` is the broker's flag, counted as one
/// more attempt.
pub(crate) fn to_message(
    payload: Vec<u8>,
    properties: &BasicProperties,
    redelivered: bool,
) -> Incoming {
    let mut message = Message::new(Bytes::from(payload));
    let mut topic = None;
    let mut attempt = 1;
    let mut delivered_before = 0u32;
    if let Some(headers) = properties.headers() {
        for (key, value) in headers.inner() {
            match (key.as_str(), value) {
                (ATTEMPT, value) => {
                    attempt = integer(value)
                        .and_then(|n| u32::try_from(n).ok())
                        .unwrap_or(1)
                }
                (TOPIC, value) => topic = text(value),
                // A quorum queue counts its earlier deliveries of the message.
                (DELIVERY_COUNT, value) => {
                    delivered_before = integer(value)
                        .and_then(|n| u32::try_from(n).ok())
                        .unwrap_or(0)
                }
                (key, value) => {
                    if let Some(value) = text(value) {
                        message = message.with_header(key, value);
                    }
                }
            }
        }
    }
    if let Some(reply_to) = properties.reply_to() {
        message = message.with_header(REPLY_TO, reply_to.as_str());
    }
    if let Some(correlation_id) = properties.correlation_id() {
        message = message.with_header(CORRELATION_ID, correlation_id.as_str());
    }
    if let Some(content_type) = properties.content_type() {
        message = message.with_content_type(content_type.as_str());
    }
    if let Some(content_encoding) = properties.content_encoding() {
        message = message.with_content_encoding(content_encoding.as_str());
    }
    if let Some(id) = properties.message_id() {
        message = message.with_id(id.as_str());
    }
    match *properties.priority() {
        // AMQP's priorities go to 255; ours stop at 9, which is where the broker
        // ranks any higher one anyway (a queue's highest).
        Some(priority) if priority > MAX_PRIORITY => {
            message = message
                .with_priority(MAX_PRIORITY)
                .with_header(ORIGINAL_PRIORITY, priority.to_string());
        }
        Some(priority) => message = message.with_priority(priority),
        None => {}
    }
    Incoming {
        message,
        topic,
        attempt: attempt
            .saturating_add(u32::from(redelivered))
            .max(delivered_before.saturating_add(1)),
    }
}

/// A header value as text; foreign clients send numbers and booleans too.
fn text(value: &AMQPValue) -> Option<String> {
    Some(match value {
        AMQPValue::LongString(s) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        AMQPValue::ShortString(s) => s.as_str().to_owned(),
        AMQPValue::Boolean(b) => b.to_string(),
        AMQPValue::Float(f) => f.to_string(),
        AMQPValue::Double(f) => f.to_string(),
        other => integer(other)?.to_string(),
    })
}

fn integer(value: &AMQPValue) -> Option<i64> {
    Some(match *value {
        AMQPValue::ShortShortInt(n) => n.into(),
        AMQPValue::ShortShortUInt(n) => n.into(),
        AMQPValue::ShortInt(n) => n.into(),
        AMQPValue::ShortUInt(n) => n.into(),
        AMQPValue::LongInt(n) => n.into(),
        AMQPValue::LongUInt(n) => n.into(),
        AMQPValue::LongLongInt(n) => n,
        _ => return None,
    })
}

/// An AMQP short string (at most 255 bytes), or a typed error naming the field.
pub(crate) fn short(what: &str, value: &str) -> Result<ShortString> {
    ShortString::try_new(value).map_err(|_| {
        Error::Unsupported(format!(
            "AMQP limits a {what} to 255 bytes; this one has {} bytes",
            value.len()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_round_trips_through_amqp_properties() {
        // In the order a received message lists them: headers, then the properties.
        let message = Message::new("body")
            .with_header("k", "v")
            .with_header(REPLY_TO, "replies")
            .with_header(CORRELATION_ID, "c-1")
            .with_content_type("application/json")
            .with_content_encoding("gzip")
            .with_id("m-1")
            .with_priority(7);
        let properties = to_properties(&message, true).unwrap();
        assert_eq!(properties.delivery_mode(), &Some(PERSISTENT));
        assert_eq!(properties.reply_to().as_ref().unwrap().as_str(), "replies");
        let content_type = properties.content_type().as_ref().map(ShortString::as_str);
        assert_eq!(content_type, Some("application/json"));
        assert_eq!(properties.headers().as_ref().unwrap().inner().len(), 1);
        let incoming = to_message(b"body".to_vec(), &properties, false);
        assert_eq!(incoming.message, message);
        assert_eq!((incoming.topic, incoming.attempt), (None, 1));
    }

    #[test]
    fn a_bare_message_has_bare_properties() {
        let properties = to_properties(&Message::new("x"), false).unwrap();
        assert_eq!(properties, BasicProperties::default());
        let incoming = to_message(b"x".to_vec(), &properties, false);
        assert!(!incoming.message.has_metadata());
    }

    #[test]
    fn a_requeued_copy_counts_its_attempt_and_keeps_its_topic() {
        let original = to_properties(&Message::new("x").with_header("k", "v"), true).unwrap();
        let copy = requeued(&original, "task.9", 3);
        let incoming = to_message(b"x".to_vec(), &copy, false);
        assert_eq!(incoming.attempt, 3);
        assert_eq!(incoming.topic.as_deref(), Some("task.9"));
        assert_eq!(incoming.message.header("k"), Some("v"));
        assert_eq!(incoming.message.header(ATTEMPT), None);
        // The broker's redelivered flag is one more attempt.
        assert_eq!(to_message(b"x".to_vec(), &copy, true).attempt, 4);
    }

    #[test]
    fn a_foreign_priority_above_ours_arrives_as_ours_with_the_value_it_came_with() {
        for (sent, priority, original) in [(200, 9, Some("200")), (9, 9, None), (10, 9, Some("10"))]
        {
            let properties = BasicProperties::default().with_priority(sent);
            let message = to_message(Vec::new(), &properties, false).message;
            assert_eq!(message.priority(), priority);
            assert_eq!(message.header(ORIGINAL_PRIORITY), original);
        }
    }

    #[test]
    fn foreign_header_values_read_as_text() {
        let mut headers = FieldTable::default();
        headers.insert("n".into(), AMQPValue::LongInt(-3));
        headers.insert("b".into(), AMQPValue::Boolean(true));
        let properties = BasicProperties::default().with_headers(headers);
        let message = to_message(Vec::new(), &properties, false).message;
        assert_eq!(
            (message.header("n"), message.header("b")),
            (Some("-3"), Some("true"))
        );
    }

    #[test]
    fn overlong_short_strings_are_unsupported_not_panics() {
        let err = to_properties(&Message::new("x").with_id("i".repeat(256)), false).unwrap_err();
        assert!(matches!(err, Error::Unsupported(_)), "{err}");
    }
}
