//! Header values as JSON that keeps their types, for the envelope and for stream
//! fields (the format is in the crate docs, under "Header values").
//!
//! Text is a JSON string, so the headers most messages carry read naturally in any
//! Redis client; every other value is an object of one key that names its type,
//! because JSON alone cannot tell an integer from a timestamp or a list from bytes.

use pubsub_core::{Bytes, HeaderValue};
use serde_json::{json, Value};

/// `value` as JSON: a string for text, `{"<type>": ...}` otherwise, `null` for null.
pub(crate) fn to_json(value: &HeaderValue) -> Value {
    match value {
        HeaderValue::Text(text) => Value::String(text.clone()),
        HeaderValue::Bool(b) => json!({ "bool": b }),
        HeaderValue::Int(n) => json!({ "int": n }),
        // JSON has no NaN or infinity: those go as text.
        HeaderValue::Float(x) if !x.is_finite() => json!({ "float": x.to_string() }),
        HeaderValue::Float(x) => json!({ "float": x }),
        HeaderValue::Timestamp(t) => json!({ "timestamp": t }),
        HeaderValue::Bytes(bytes) => json!({ "bytes": bytes.as_ref() }),
        HeaderValue::List(items) => {
            json!({ "list": items.iter().map(to_json).collect::<Vec<_>>() })
        }
        HeaderValue::Table(entries) => {
            let pairs: Vec<Value> = entries
                .iter()
                .map(|(key, value)| json!([key, to_json(value)]))
                .collect();
            json!({ "table": pairs })
        }
        HeaderValue::Null => Value::Null,
    }
}

/// The value `json` stands for, or `None` when it is not one [`to_json`] writes.
pub(crate) fn from_json(json: Value) -> Option<HeaderValue> {
    let object = match json {
        Value::String(text) => return Some(HeaderValue::Text(text)),
        Value::Null => return Some(HeaderValue::Null),
        Value::Object(object) if object.len() == 1 => object,
        _ => return None,
    };
    let (kind, value) = object.into_iter().next()?;
    Some(match (kind.as_str(), value) {
        ("bool", Value::Bool(b)) => HeaderValue::Bool(b),
        ("int", value) => HeaderValue::Int(value.as_i64()?),
        ("float", Value::String(text)) => HeaderValue::Float(text.parse().ok()?),
        ("float", value) => HeaderValue::Float(value.as_f64()?),
        ("timestamp", value) => HeaderValue::Timestamp(value.as_u64()?),
        ("bytes", Value::Array(items)) => HeaderValue::Bytes(Bytes::from(
            items
                .iter()
                .map(|b| u8::try_from(b.as_u64()?).ok())
                .collect::<Option<Vec<u8>>>()?,
        )),
        ("list", Value::Array(items)) => HeaderValue::List(
            items
                .into_iter()
                .map(from_json)
                .collect::<Option<Vec<_>>>()?,
        ),
        ("table", Value::Array(pairs)) => HeaderValue::Table(
            pairs
                .into_iter()
                .map(|pair| match pair {
                    Value::Array(pair) if pair.len() == 2 => {
                        let mut pair = pair.into_iter();
                        let key = pair.next()?.as_str()?.to_owned();
                        Some((key, from_json(pair.next()?)?))
                    }
                    _ => None,
                })
                .collect::<Option<Vec<_>>>()?,
        ),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_of_value_round_trips() {
        let values = [
            HeaderValue::from("text"),
            HeaderValue::Bool(false),
            HeaderValue::Int(i64::MIN),
            HeaderValue::Float(0.25),
            HeaderValue::Float(f64::NEG_INFINITY),
            HeaderValue::Float(f64::NAN),
            HeaderValue::Timestamp(u64::MAX),
            HeaderValue::Bytes(Bytes::from_static(&[0, 255])),
            HeaderValue::List(vec![HeaderValue::Int(1), HeaderValue::Null]),
            HeaderValue::Table(vec![("k".into(), HeaderValue::List(Vec::new()))]),
            HeaderValue::Null,
        ];
        for value in values {
            assert_eq!(from_json(to_json(&value)), Some(value.clone()), "{value:?}");
        }
    }

    #[test]
    fn text_is_a_plain_json_string() {
        assert_eq!(to_json(&"v".into()), json!("v"));
        assert_eq!(to_json(&HeaderValue::Int(5000)), json!({"int": 5000}));
    }

    #[test]
    fn json_of_no_known_shape_is_none() {
        for json in [
            json!(5),
            json!({"int": "x"}),
            json!({"int": 1, "bool": true}),
            json!({"bytes": [256]}),
        ] {
            assert_eq!(from_json(json.clone()), None, "{json}");
        }
    }
}
