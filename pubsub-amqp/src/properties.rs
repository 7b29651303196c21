//! A [`Message`] as AMQP properties and back, so foreign AMQP clients see normal
//! properties: the id is `message-id`, the priority `priority`, the headers
//! `reply-to`, `correlation-id`, `content-type` and `content-encoding` the properties
//! of those names, everything else an AMQP header. A foreign priority above ours
//! arrives as [`MAX_PRIORITY`] with the value it came with in [`ORIGINAL_PRIORITY`].
//! Header values keep their types both ways ([`HeaderValue`]).

use lapin::types::{AMQPValue, FieldArray, FieldTable, ShortString};
use lapin::BasicProperties;
use pubsub_core::{
    Bytes, Error, HeaderValue, Message, Result, CONTENT_ENCODING, CONTENT_TYPE, CORRELATION_ID,
    MAX_PRIORITY, ORIGINAL_PRIORITY, REPLY_TO,
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
            REPLY_TO => properties = properties.with_reply_to(property("reply-to", value)?),
            CORRELATION_ID => {
                properties = properties.with_correlation_id(property("correlation id", value)?)
            }
            CONTENT_TYPE => {
                properties = properties.with_content_type(property("content type", value)?)
            }
            CONTENT_ENCODING => {
                properties = properties.with_content_encoding(property("content encoding", value)?)
            }
            _ => {
                headers.insert(short("header name", key)?, to_amqp(value)?);
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
                (TOPIC, value) => topic = from_amqp(value).as_str().map(str::to_owned),
                // A quorum queue counts its earlier deliveries of the message.
                (DELIVERY_COUNT, value) => {
                    delivered_before = integer(value)
                        .and_then(|n| u32::try_from(n).ok())
                        .unwrap_or(0)
                }
                (key, value) => message = message.with_header(key, from_amqp(value)),
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

/// The text of a header that AMQP sends as a property, or an error naming it.
fn property(what: &str, value: &HeaderValue) -> Result<ShortString> {
    match value.as_str() {
        Some(text) => short(what, text),
        None => Err(Error::Unsupported(format!(
            "AMQP sends the {what} as text; this one is {value}"
        ))),
    }
}

/// `value` as a field-table value of its kind. Integers take the narrowest signed
/// type that holds them, from 16 bits up, as aio-pika (pamqp) sends them: a headers
/// binding Infrahub declares then sees the very type it was declared with.
pub(crate) fn to_amqp(value: &HeaderValue) -> Result<AMQPValue> {
    Ok(match value {
        HeaderValue::Text(text) => AMQPValue::LongString(text.as_str().into()),
        HeaderValue::Bool(b) => AMQPValue::Boolean(*b),
        HeaderValue::Int(n) => match (i16::try_from(*n), i32::try_from(*n)) {
            (Ok(short), _) => AMQPValue::ShortInt(short),
            (_, Ok(long)) => AMQPValue::LongInt(long),
            _ => AMQPValue::LongLongInt(*n),
        },
        HeaderValue::Float(x) => AMQPValue::Double(*x),
        HeaderValue::Timestamp(t) => AMQPValue::Timestamp(*t),
        HeaderValue::Bytes(bytes) => AMQPValue::ByteArray(bytes.as_ref().into()),
        HeaderValue::List(items) => AMQPValue::FieldArray(FieldArray::from(
            items.iter().map(to_amqp).collect::<Result<Vec<_>>>()?,
        )),
        HeaderValue::Table(entries) => AMQPValue::FieldTable(to_table(entries)?),
        HeaderValue::Null => AMQPValue::Void,
    })
}

/// `entries` as a field table (queue and binding arguments, nested tables).
pub(crate) fn to_table(entries: &[(String, HeaderValue)]) -> Result<FieldTable> {
    let mut table = FieldTable::default();
    for (key, value) in entries {
        table.insert(short("table key", key)?, to_amqp(value)?);
    }
    Ok(table)
}

/// A field-table value as the [`HeaderValue`] of its kind; a long string that is not
/// UTF-8 stays bytes rather than lose any.
fn from_amqp(value: &AMQPValue) -> HeaderValue {
    match value {
        AMQPValue::LongString(s) => match std::str::from_utf8(s.as_bytes()) {
            Ok(text) => HeaderValue::Text(text.to_owned()),
            Err(_) => HeaderValue::Bytes(Bytes::copy_from_slice(s.as_bytes())),
        },
        AMQPValue::ShortString(s) => HeaderValue::Text(s.as_str().to_owned()),
        AMQPValue::Boolean(b) => HeaderValue::Bool(*b),
        AMQPValue::Float(x) => HeaderValue::Float((*x).into()),
        AMQPValue::Double(x) => HeaderValue::Float(*x),
        AMQPValue::DecimalValue(d) => {
            HeaderValue::Float(f64::from(d.value) / 10f64.powi(d.scale.into()))
        }
        AMQPValue::Timestamp(t) => HeaderValue::Timestamp(*t),
        AMQPValue::ByteArray(bytes) => HeaderValue::Bytes(Bytes::copy_from_slice(bytes.as_slice())),
        AMQPValue::FieldArray(items) => {
            HeaderValue::List(items.as_slice().iter().map(from_amqp).collect())
        }
        AMQPValue::FieldTable(table) => HeaderValue::Table(
            table
                .inner()
                .iter()
                .map(|(key, value)| (key.as_str().to_owned(), from_amqp(value)))
                .collect(),
        ),
        AMQPValue::Void => HeaderValue::Null,
        other => integer(other).map_or(HeaderValue::Null, HeaderValue::Int),
    }
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
    fn header_values_keep_their_types_both_ways() {
        let table = HeaderValue::Table(vec![("x-match".into(), "all".into())]);
        let message = Message::new("x")
            .with_header("delay", 5000)
            .with_header("big", 70_000)
            .with_header("huge", i64::MAX)
            .with_header("ok", true)
            .with_header("ratio", 0.5)
            .with_header("at", HeaderValue::Timestamp(1_700_000_000))
            .with_header("raw", Bytes::from_static(&[0xff, 0]))
            .with_header("list", vec![HeaderValue::Int(1), HeaderValue::Null])
            .with_header("table", table);
        let properties = to_properties(&message, false).unwrap();
        let headers = properties.headers().clone().unwrap();
        // A short int, as pamqp encodes Infrahub's `delay`.
        assert_eq!(headers.inner()["delay"], AMQPValue::ShortInt(5000));
        assert_eq!(headers.inner()["big"], AMQPValue::LongInt(70_000));
        assert_eq!(headers.inner()["huge"], AMQPValue::LongLongInt(i64::MAX));
        let received = to_message(Vec::new(), &properties, false).message;
        let mut sent: Vec<_> = message.headers().collect();
        let mut came: Vec<_> = received.headers().collect();
        // A field table keeps its keys sorted, not in the order they were added.
        sent.sort_by_key(|(k, _)| *k);
        came.sort_by_key(|(k, _)| *k);
        assert_eq!(came, sent);
    }

    #[test]
    fn foreign_values_of_every_amqp_type_arrive_typed() {
        let mut nested = FieldTable::default();
        nested.insert("count".into(), AMQPValue::LongLongInt(1));
        let mut headers = FieldTable::default();
        headers.insert("n".into(), AMQPValue::ShortShortUInt(200));
        headers.insert("f".into(), AMQPValue::Float(1.5));
        headers.insert(
            "d".into(),
            AMQPValue::DecimalValue(lapin::types::DecimalValue {
                scale: 2,
                value: 125,
            }),
        );
        headers.insert("s".into(), AMQPValue::ShortString("short".into()));
        headers.insert("bin".into(), AMQPValue::LongString(vec![0xff].into()));
        headers.insert(
            "x-death".into(),
            AMQPValue::FieldArray(vec![nested.into()].into()),
        );
        headers.insert("v".into(), AMQPValue::Void);
        let properties = BasicProperties::default().with_headers(headers);
        let message = to_message(Vec::new(), &properties, false).message;
        let value = |key| message.header_value(key).cloned();
        assert_eq!(value("n"), Some(HeaderValue::Int(200)));
        assert_eq!(value("f"), Some(HeaderValue::Float(1.5)));
        assert_eq!(value("d"), Some(HeaderValue::Float(1.25)));
        assert_eq!(message.header("s"), Some("short"));
        assert_eq!(
            value("bin"),
            Some(HeaderValue::Bytes(Bytes::from_static(&[0xff])))
        );
        let death = HeaderValue::Table(vec![("count".into(), HeaderValue::Int(1))]);
        assert_eq!(value("x-death"), Some(HeaderValue::List(vec![death])));
        assert_eq!(value("v"), Some(HeaderValue::Null));
    }

    #[test]
    fn a_property_header_that_is_not_text_is_unsupported() {
        let err = to_properties(&Message::new("x").with_header(REPLY_TO, 7), false).unwrap_err();
        assert!(
            matches!(err, Error::Unsupported(ref m) if m.contains("reply-to")),
            "{err}"
        );
    }

    #[test]
    fn overlong_short_strings_are_unsupported_not_panics() {
        let err = to_properties(&Message::new("x").with_id("i".repeat(256)), false).unwrap_err();
        assert!(matches!(err, Error::Unsupported(_)), "{err}");
    }
}
