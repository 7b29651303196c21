//! The AMQP reader: any properties a foreign client or a broker can send (headers
//! of every field type, nested, long strings of any bytes, priorities 0 to 255)
//! read as a message without panicking, what can be read as text arrives, and a
//! priority above ours arrives as ours with the value it came with.

#![no_main]

use arbitrary::{Arbitrary, Result, Unstructured};
use lapin::types::{AMQPValue, DecimalValue, FieldArray, FieldTable, LongString, ShortString};
use lapin::BasicProperties;
use libfuzzer_sys::fuzz_target;
use pubsub_amqp::fuzzing::{to_message, ATTEMPT, TOPIC};
use pubsub_core::{
    HeaderValue, CONTENT_ENCODING, CONTENT_TYPE, CORRELATION_ID, MAX_PRIORITY, ORIGINAL_PRIORITY,
    REPLY_TO,
};

/// The quorum queue's count of earlier deliveries, which the reader turns into the
/// attempt.
const DELIVERY_COUNT: &str = "x-delivery-count";
/// Header names the reader treats apart, which arbitrary text would seldom hit.
const KNOWN: [&str; 8] = [
    ATTEMPT,
    TOPIC,
    DELIVERY_COUNT,
    REPLY_TO,
    CORRELATION_ID,
    CONTENT_TYPE,
    CONTENT_ENCODING,
    ORIGINAL_PRIORITY,
];

#[derive(Debug)]
struct Delivery {
    payload: Vec<u8>,
    properties: BasicProperties,
    redelivered: bool,
}

impl<'a> Arbitrary<'a> for Delivery {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        let mut properties = BasicProperties::default();
        if u.arbitrary()? {
            properties = properties.with_headers(table(u, 0)?);
        }
        if let Some(priority) = u.arbitrary::<Option<u8>>()? {
            properties = properties.with_priority(priority);
        }
        if u.arbitrary()? {
            properties = properties.with_message_id(short(u)?);
        }
        if u.arbitrary()? {
            properties = properties.with_reply_to(short(u)?);
        }
        if u.arbitrary()? {
            properties = properties.with_correlation_id(short(u)?);
        }
        if u.arbitrary()? {
            properties = properties.with_content_type(short(u)?);
        }
        if u.arbitrary()? {
            properties = properties.with_content_encoding(short(u)?);
        }
        if u.arbitrary()? {
            properties = properties.with_delivery_mode(u.arbitrary()?);
        }
        Ok(Delivery {
            redelivered: u.arbitrary()?,
            payload: u.arbitrary()?,
            properties,
        })
    }
}

/// Text of at most 255 bytes, cut on a character boundary.
fn short(u: &mut Unstructured) -> Result<ShortString> {
    let mut text: String = u.arbitrary()?;
    let mut end = text.len().min(255);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    Ok(ShortString::try_new(text).expect("at most 255 bytes"))
}

fn table(u: &mut Unstructured, depth: u32) -> Result<FieldTable> {
    let mut table = FieldTable::default();
    for _ in 0..u.arbitrary_len::<u8>()?.min(16) {
        let key = match u.int_in_range(0..=KNOWN.len())? {
            i if i < KNOWN.len() => KNOWN[i].into(),
            _ => short(u)?,
        };
        table.insert(key, value(u, depth)?);
    }
    Ok(table)
}

/// A value of any AMQP field type; arrays and tables nest three deep at most.
fn value(u: &mut Unstructured, depth: u32) -> Result<AMQPValue> {
    let nest = depth < 3;
    Ok(match u.int_in_range(0..=17)? {
        0 => AMQPValue::Boolean(u.arbitrary()?),
        1 => AMQPValue::ShortShortInt(u.arbitrary()?),
        2 => AMQPValue::ShortShortUInt(u.arbitrary()?),
        3 => AMQPValue::ShortInt(u.arbitrary()?),
        4 => AMQPValue::ShortUInt(u.arbitrary()?),
        5 => AMQPValue::LongInt(u.arbitrary()?),
        6 => AMQPValue::LongUInt(u.arbitrary()?),
        7 => AMQPValue::LongLongInt(u.arbitrary()?),
        8 => AMQPValue::Float(u.arbitrary()?),
        9 => AMQPValue::Double(u.arbitrary()?),
        10 => AMQPValue::DecimalValue(DecimalValue {
            scale: u.arbitrary()?,
            value: u.arbitrary()?,
        }),
        11 => AMQPValue::ShortString(short(u)?),
        12 => AMQPValue::Timestamp(u.arbitrary()?),
        13 => AMQPValue::ByteArray(u.arbitrary::<Vec<u8>>()?.into()),
        14 if nest => {
            let mut array = FieldArray::default();
            for _ in 0..u.arbitrary_len::<u8>()?.min(8) {
                array.push(value(u, depth + 1)?);
            }
            AMQPValue::FieldArray(array)
        }
        15 if nest => AMQPValue::FieldTable(table(u, depth + 1)?),
        16 => AMQPValue::Void,
        // A long string holds any bytes, UTF-8 or not.
        _ => AMQPValue::LongString(LongString::from(u.arbitrary::<Vec<u8>>()?)),
    })
}

fuzz_target!(|delivery: Delivery| {
    let Delivery {
        payload,
        properties,
        redelivered,
    } = delivery;
    let (message, topic, attempt) = to_message(payload.clone(), &properties, redelivered);
    assert_eq!(message.payload().as_ref(), &payload[..]);
    assert_eq!(
        message.id(),
        properties.message_id().as_ref().map(ShortString::as_str)
    );
    // Within ours, and one above it is told as it came.
    let sent = properties.priority().unwrap_or(0);
    assert_eq!(message.priority(), sent.min(MAX_PRIORITY));
    if sent > MAX_PRIORITY {
        assert_eq!(message.header(ORIGINAL_PRIORITY), Some(&*sent.to_string()));
    }
    assert!(attempt >= 1);

    let empty = FieldTable::default();
    let headers = properties.headers().as_ref().unwrap_or(&empty).inner();
    for (key, value) in headers {
        let key = key.as_str();
        let read = message.header_value(key);
        match key {
            ATTEMPT | TOPIC | DELIVERY_COUNT => assert_eq!(read, None, "{key} is no header"),
            REPLY_TO if properties.reply_to().is_some() => {}
            CORRELATION_ID if properties.correlation_id().is_some() => {}
            CONTENT_TYPE if properties.content_type().is_some() => {}
            CONTENT_ENCODING if properties.content_encoding().is_some() => {}
            ORIGINAL_PRIORITY if sent > MAX_PRIORITY => {}
            // Every value arrives, typed as it came.
            _ => assert!(
                read.is_some_and(|read| same_kind(value, read)),
                "{key}: {value:?} read as {read:?}"
            ),
        }
        if let (TOPIC, AMQPValue::LongString(bytes)) = (key, value) {
            assert_eq!(topic.as_deref(), std::str::from_utf8(bytes.as_bytes()).ok());
        }
        if let (DELIVERY_COUNT, AMQPValue::LongInt(n @ 0..)) = (key, value) {
            assert!(
                attempt > n.unsigned_abs(),
                "{n} deliveries before, attempt {attempt}"
            );
        }
    }
    if !headers.contains_key(TOPIC) {
        assert_eq!(topic, None);
    }
    let properties_as_headers = [
        (REPLY_TO, properties.reply_to()),
        (CORRELATION_ID, properties.correlation_id()),
        (CONTENT_TYPE, properties.content_type()),
        (CONTENT_ENCODING, properties.content_encoding()),
    ];
    for (key, _) in message.headers() {
        assert!(
            headers.contains_key(key)
                || properties_as_headers.iter().any(|(name, _)| *name == key)
                || (key == ORIGINAL_PRIORITY && sent > MAX_PRIORITY),
            "{key}"
        );
    }
    for (name, property) in properties_as_headers {
        if let Some(value) = property {
            assert_eq!(message.header(name), Some(value.as_str()), "{name}");
        }
    }
});

/// Whether `read` is the [`HeaderValue`] `value` stands for.
fn same_kind(value: &AMQPValue, read: &HeaderValue) -> bool {
    match (value, read) {
        (AMQPValue::LongString(bytes), HeaderValue::Text(text)) => text.as_bytes() == bytes.as_bytes(),
        (AMQPValue::LongString(bytes), HeaderValue::Bytes(read)) => {
            std::str::from_utf8(bytes.as_bytes()).is_err() && read.as_ref() == bytes.as_bytes()
        }
        (AMQPValue::ShortString(text), HeaderValue::Text(read)) => text.as_str() == read,
        (AMQPValue::Boolean(b), HeaderValue::Bool(read)) => b == read,
        (AMQPValue::Float(_) | AMQPValue::Double(_) | AMQPValue::DecimalValue(_), HeaderValue::Float(_)) => true,
        (AMQPValue::Timestamp(t), HeaderValue::Timestamp(read)) => t == read,
        (AMQPValue::ByteArray(bytes), HeaderValue::Bytes(read)) => bytes.as_slice() == read.as_ref(),
        (AMQPValue::FieldArray(items), HeaderValue::List(read)) => {
            items.as_slice().len() == read.len()
                && items.as_slice().iter().zip(read).all(|(v, r)| same_kind(v, r))
        }
        (AMQPValue::FieldTable(table), HeaderValue::Table(read)) => {
            table.inner().len() == read.len()
                && table
                    .inner()
                    .iter()
                    .zip(read)
                    .all(|((k, v), (rk, r))| k.as_str() == rk && same_kind(v, r))
        }
        (AMQPValue::Void, HeaderValue::Null) => true,
        (value, HeaderValue::Int(read)) => match *value {
            AMQPValue::ShortShortInt(n) => i64::from(n) == *read,
            AMQPValue::ShortShortUInt(n) => i64::from(n) == *read,
            AMQPValue::ShortInt(n) => i64::from(n) == *read,
            AMQPValue::ShortUInt(n) => i64::from(n) == *read,
            AMQPValue::LongInt(n) => i64::from(n) == *read,
            AMQPValue::LongUInt(n) => i64::from(n) == *read,
            AMQPValue::LongLongInt(n) => n == *read,
            _ => false,
        },
        _ => false,
    }
}
