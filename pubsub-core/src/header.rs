//! Header values: text, as most headers are, or the typed values AMQP tables carry.

use std::fmt;

use bytes::Bytes;
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};

/// The value of a message header.
///
/// Most headers are text, and text is what [`Message::header`](crate::Message::header)
/// reads. AMQP clients also send numbers, booleans, timestamps, byte strings, arrays
/// and nested tables; a message keeps each as it came, so a program reads it typed
/// with [`Message::header_value`](crate::Message::header_value), and a header goes
/// back on the wire with the type it has.
///
/// Values convert from the Rust types they stand for, so
/// [`with_header`](crate::Message::with_header) takes them directly:
///
/// ```
/// use pubsub_core::{HeaderValue, Message};
///
/// let m = Message::new("retry")
///     .with_header("delay", 5000)
///     .with_header("urgent", true)
///     .with_header("origin", "git-agent");
/// assert_eq!(m.header_value("delay"), Some(&HeaderValue::Int(5000)));
/// assert_eq!(m.header_value("delay").and_then(HeaderValue::as_int), Some(5000));
/// assert_eq!(m.header("origin"), Some("git-agent"));
/// // `header` reads text only: a number is not stringified.
/// assert_eq!(m.header("delay"), None);
/// ```
///
/// How each backend carries them: AMQP as the field-table type of the same kind
/// (integers as the narrowest signed type that holds them, as aio-pika sends them), Redis in its envelope with the type kept, in-process as they are.
#[derive(Clone, Debug)]
pub enum HeaderValue {
    /// UTF-8 text.
    Text(String),
    /// A boolean.
    Bool(bool),
    /// An integer, whatever width it had on the wire.
    Int(i64),
    /// A floating-point number (AMQP's decimals arrive as one too).
    Float(f64),
    /// A point in time, in seconds since the Unix epoch (AMQP's `timestamp`).
    Timestamp(u64),
    /// Bytes that are not text: an AMQP byte array, or a string that is not UTF-8.
    Bytes(Bytes),
    /// An array of values.
    List(Vec<HeaderValue>),
    /// A nested table, in the order its keys came.
    Table(Vec<(String, HeaderValue)>),
    /// A key with no value (AMQP's `void`).
    Null,
}

impl HeaderValue {
    /// The text, if this is [`Text`](Self::Text).
    pub fn as_str(&self) -> Option<&str> {
        match self {
            HeaderValue::Text(text) => Some(text),
            _ => None,
        }
    }

    /// The integer, if this is [`Int`](Self::Int).
    pub fn as_int(&self) -> Option<i64> {
        match *self {
            HeaderValue::Int(n) => Some(n),
            _ => None,
        }
    }

    /// The boolean, if this is [`Bool`](Self::Bool).
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            HeaderValue::Bool(b) => Some(b),
            _ => None,
        }
    }
}

/// Floats compare by their bits, so that equality is an equivalence (a `NaN` header
/// equals itself) and a message that round-trips compares equal to the one sent.
impl PartialEq for HeaderValue {
    fn eq(&self, other: &Self) -> bool {
        use HeaderValue::*;
        match (self, other) {
            (Text(a), Text(b)) => a == b,
            (Bool(a), Bool(b)) => a == b,
            (Int(a), Int(b)) => a == b,
            (Float(a), Float(b)) => a.to_bits() == b.to_bits(),
            (Timestamp(a), Timestamp(b)) => a == b,
            (Bytes(a), Bytes(b)) => a == b,
            (List(a), List(b)) => a == b,
            (Table(a), Table(b)) => a == b,
            (Null, Null) => true,
            _ => false,
        }
    }
}

impl Eq for HeaderValue {}

/// Text as it is; every other value as JSON.
impl fmt::Display for HeaderValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeaderValue::Text(text) => f.write_str(text),
            other => {
                let json = serde_json::to_string(other).map_err(|_| fmt::Error)?;
                f.write_str(&json)
            }
        }
    }
}

/// As JSON would show it: text a string, numbers and timestamps numbers, bytes an
/// array of numbers, a table an object, `Null` null.
impl Serialize for HeaderValue {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            HeaderValue::Text(text) => serializer.serialize_str(text),
            HeaderValue::Bool(b) => serializer.serialize_bool(*b),
            HeaderValue::Int(n) => serializer.serialize_i64(*n),
            HeaderValue::Float(x) => serializer.serialize_f64(*x),
            HeaderValue::Timestamp(t) => serializer.serialize_u64(*t),
            HeaderValue::Bytes(bytes) => serializer.serialize_bytes(bytes),
            HeaderValue::List(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            HeaderValue::Table(entries) => {
                let mut map = serializer.serialize_map(Some(entries.len()))?;
                for (key, value) in entries {
                    map.serialize_entry(key, value)?;
                }
                map.end()
            }
            HeaderValue::Null => serializer.serialize_unit(),
        }
    }
}

impl From<String> for HeaderValue {
    fn from(text: String) -> Self {
        HeaderValue::Text(text)
    }
}

impl From<&str> for HeaderValue {
    fn from(text: &str) -> Self {
        HeaderValue::Text(text.to_owned())
    }
}

impl From<&String> for HeaderValue {
    fn from(text: &String) -> Self {
        HeaderValue::Text(text.clone())
    }
}

impl From<Box<str>> for HeaderValue {
    fn from(text: Box<str>) -> Self {
        HeaderValue::Text(text.into())
    }
}

impl From<bool> for HeaderValue {
    fn from(b: bool) -> Self {
        HeaderValue::Bool(b)
    }
}

macro_rules! from_integer {
    ($($int:ty),*) => {$(
        impl From<$int> for HeaderValue {
            fn from(n: $int) -> Self {
                HeaderValue::Int(n.into())
            }
        }
    )*};
}

from_integer!(i8, i16, i32, i64, u8, u16, u32);

impl From<f64> for HeaderValue {
    fn from(x: f64) -> Self {
        HeaderValue::Float(x)
    }
}

impl From<Bytes> for HeaderValue {
    fn from(bytes: Bytes) -> Self {
        HeaderValue::Bytes(bytes)
    }
}

impl From<Vec<HeaderValue>> for HeaderValue {
    fn from(items: Vec<HeaderValue>) -> Self {
        HeaderValue::List(items)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_text_as_is_and_other_values_as_json() {
        let table = HeaderValue::Table(vec![
            ("n".into(), HeaderValue::Int(-3)),
            (
                "l".into(),
                vec![HeaderValue::Bool(true), HeaderValue::Null].into(),
            ),
        ]);
        assert_eq!(HeaderValue::from("a \"b\"").to_string(), "a \"b\"");
        assert_eq!(table.to_string(), r#"{"n":-3,"l":[true,null]}"#);
        assert_eq!(
            HeaderValue::Bytes(Bytes::from_static(&[1, 2])).to_string(),
            "[1,2]"
        );
    }

    #[test]
    fn a_nan_float_equals_itself() {
        assert_eq!(HeaderValue::Float(f64::NAN), HeaderValue::Float(f64::NAN));
        assert_ne!(HeaderValue::Float(0.0), HeaderValue::Float(-0.0));
    }
}
