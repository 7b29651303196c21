//! A message as the fields of a stream entry, readable by any Redis client (the names
//! are in the crate docs, under Streams mode).

use std::collections::HashMap;

use pubsub_core::{Bytes, HeaderValue, Message, MAX_PRIORITY};
use redis::{Cmd, Value};

use crate::header_json::{from_json, to_json};

/// The payload, as is.
pub(crate) const PAYLOAD: &str = "payload";
/// The message id, when it has one.
pub(crate) const ID: &str = "id";
/// The priority, `1` to `9`, when it is not 0.
pub(crate) const PRIORITY: &str = "priority";
/// Each text header is a field of this prefix and its name.
pub(crate) const HEADER: &str = "h:";
/// Each header of another type is a field of this prefix and its name, its value the
/// JSON that keeps the type (crate docs, "Header values").
pub(crate) const TYPED_HEADER: &str = "t:";

/// Appends `message`'s fields to an `XADD`. In raw mode only the payload goes.
pub(crate) fn append(command: &mut Cmd, message: &Message, raw: bool) {
    command.arg(PAYLOAD).arg(&message.payload()[..]);
    if raw {
        return;
    }
    if let Some(id) = message.id() {
        command.arg(ID).arg(id);
    }
    if message.priority() > 0 {
        command.arg(PRIORITY).arg(message.priority());
    }
    for (key, value) in message.headers() {
        match value.as_str() {
            Some(text) => command.arg(format!("{HEADER}{key}")).arg(text),
            None => command
                .arg(format!("{TYPED_HEADER}{key}"))
                .arg(to_json(value).to_string()),
        };
    }
}

/// The message of an entry's fields. An entry without a `payload` field (written by
/// another program) is delivered as a JSON object of its fields, so nothing is lost.
pub(crate) fn decode(mut fields: HashMap<String, Value>, raw: bool) -> Message {
    let Some(payload) = fields.remove(PAYLOAD) else {
        let object: serde_json::Map<String, serde_json::Value> = fields
            .into_iter()
            .map(|(k, v)| (k, serde_json::Value::String(text(&v).unwrap_or_default())))
            .collect();
        return Message::new(serde_json::Value::Object(object).to_string());
    };
    let mut message = Message::new(bytes(payload));
    if raw {
        return message;
    }
    let mut headers: Vec<(String, HeaderValue)> = Vec::new();
    for (key, value) in fields {
        let Some(value) = text(&value) else { continue };
        match key.as_str() {
            ID => message = message.with_id(value),
            PRIORITY => {
                if let Some(p) = value.parse::<u8>().ok().filter(|p| *p <= MAX_PRIORITY) {
                    message = message.with_priority(p);
                }
            }
            _ => {
                if let Some(name) = key.strip_prefix(HEADER) {
                    headers.push((name.to_owned(), value.into()));
                } else if let Some(name) = key.strip_prefix(TYPED_HEADER) {
                    // A value that does not read stays as the text it is.
                    let typed = serde_json::from_str(&value).ok().and_then(from_json);
                    headers.push((name.to_owned(), typed.unwrap_or(HeaderValue::Text(value))));
                }
            }
        }
    }
    // Fields come back in no particular order: headers are given in name order.
    headers.sort_by(|(a, _), (b, _)| a.cmp(b));
    for (key, value) in headers {
        message = message.with_header(key, value);
    }
    message
}

fn bytes(value: Value) -> Bytes {
    match value {
        Value::BulkString(bytes) => bytes.into(),
        Value::SimpleString(text) => text.into(),
        other => text(&other).unwrap_or_default().into(),
    }
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
        Value::SimpleString(text) | Value::VerbatimString { text, .. } => Some(text.clone()),
        Value::Int(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fields an `XADD` of `message` carries, as a server hands them back.
    fn stored(message: &Message, raw: bool) -> HashMap<String, Value> {
        let mut command = redis::cmd("XADD");
        append(&mut command, message, raw);
        let args: Vec<Vec<u8>> = command
            .args_iter()
            .skip(1)
            .map(|a| match a {
                redis::Arg::Simple(bytes) => bytes.to_vec(),
                _ => panic!("an XADD has plain arguments only"),
            })
            .collect();
        args.chunks(2)
            .map(|kv| {
                let key = String::from_utf8(kv[0].clone()).unwrap();
                (key, Value::BulkString(kv[1].clone()))
            })
            .collect()
    }

    #[test]
    fn metadata_round_trips_in_fields() {
        // Headers come back in name order.
        let m = Message::new("body")
            .with_header("delay", 5000)
            .with_header("k", "v")
            .with_header("reply-to", "x.y")
            .with_header("x-death", vec![HeaderValue::Bool(true)])
            .with_id("id-1")
            .with_priority(7);
        let fields = stored(&m, false);
        assert!(fields.contains_key("h:k") && fields.contains_key("t:delay"));
        assert_eq!(decode(fields, false), m);
        let raw = decode(stored(&m, true), false);
        assert!(!raw.has_metadata());
    }

    #[test]
    fn a_foreign_entry_arrives_as_a_json_object_of_its_fields() {
        let fields = HashMap::from([("sensor".to_owned(), Value::BulkString(b"t1".to_vec()))]);
        let back = decode(fields, false);
        let json: serde_json::Value = serde_json::from_slice(back.payload()).unwrap();
        assert_eq!(json, serde_json::json!({"sensor": "t1"}));
    }
}
