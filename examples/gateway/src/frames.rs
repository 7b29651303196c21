//! The wire protocol: what clients send and what the gateway sends back. The same
//! JSON frames travel over WebSocket and as SSE `data:`.
//!
//! A message goes out as `brainlife/event` relays it: `{"headers","dinfo","msg"}`,
//! `dinfo` being node-amqp's `deliveryInfo` (`exchange`, `routingKey`, `queue`,
//! `deliveryTag`, `redelivered`, `consumerTag` and the truthy properties).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use pubsub_core::{
    Delivery, HeaderValue, Message, CONTENT_ENCODING, CONTENT_TYPE, CORRELATION_ID, REPLY_TO,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// A frame from a client: `{"bind":{"ex":"wf.task","key":"1.#"}}`, or with
/// `"ack":true` for a `bound` (or `error`) answer to this bind.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ClientFrame {
    /// What to bind.
    pub(crate) bind: BindRequest,
    /// Whether the client wants to hear that the bind is live. brainlife's gateway
    /// never answers a bind, and its clients cannot parse an answer, so the default
    /// is no.
    #[serde(default)]
    pub(crate) ack: bool,
}

/// Which messages a client asks for.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq, Hash)]
#[serde(deny_unknown_fields)]
pub(crate) struct BindRequest {
    /// The exchange.
    pub(crate) ex: String,
    /// The routing key or pattern (`*` one segment, `#` any number).
    pub(crate) key: String,
}

/// Where one bind's messages come from: node-amqp's `exchange`, `queue` and
/// `consumerTag`. brainlife's gateway declares a server-named queue per bind; ours
/// have a name per bind too, though the bus may share one queue among them.
#[derive(Debug)]
pub(crate) struct Source {
    exchange: Arc<str>,
    queue: String,
    consumer_tag: String,
}

/// Numbers the binds of this process, for their queue names and consumer tags.
static BINDS: AtomicU64 = AtomicU64::new(1);

impl Source {
    /// The source of a new bind on `exchange`.
    pub(crate) fn new(exchange: &Arc<str>) -> Source {
        let n = BINDS.fetch_add(1, Ordering::Relaxed);
        Source {
            exchange: Arc::clone(exchange),
            queue: format!("gateway.bind-{n}"),
            consumer_tag: format!("pubsub-gateway-{}-{n}", std::process::id()),
        }
    }

    /// Bytes this source adds to a queued message.
    pub(crate) fn len(&self) -> usize {
        self.exchange.len() + self.queue.len() + self.consumer_tag.len()
    }
}

/// A Node.js Buffer as `JSON.stringify` writes it.
fn buffer(bytes: &[u8]) -> Value {
    json!({"type": "Buffer", "data": bytes})
}

/// A header value as node-amqp hands it to brainlife's gateway and `JSON.stringify`
/// then writes it: byte arrays as Buffers, timestamps as milliseconds (node-amqp's
/// `new Date().setTime(seconds * 1000)` returns the number), tables as objects.
fn node_amqp(value: &HeaderValue) -> Value {
    match value {
        HeaderValue::Bytes(bytes) => buffer(bytes),
        HeaderValue::Timestamp(seconds) => seconds.saturating_mul(1000).into(),
        HeaderValue::List(items) => items.iter().map(node_amqp).collect(),
        HeaderValue::Table(entries) => entries
            .iter()
            .map(|(key, value)| (key.clone(), node_amqp(value)))
            .collect::<Map<_, _>>()
            .into(),
        other => serde_json::to_value(other).unwrap_or(Value::Null),
    }
}

/// `{"headers":{..},"dinfo":{..},"msg":..}`, brainlife's relay frame; `delivery_tag`
/// counts the socket's messages (node-amqp's is the channel's, an 8-byte Buffer).
///
/// `msg` is what node-amqp hands over: for a message whose content type is
/// `application/json` or `text/json`, its body parsed (or null, with the body as
/// `dinfo.rawData`, when it does not parse); for any other content type,
/// `{"data":<Buffer>,"contentType":..}`. A message without a content type (the bus
/// sets none unless asked) is taken as its body suggests, as brainlife's publishers
/// (node-amqp) set it: a body that parses as JSON is `application/json`, any other
/// `application/octet-stream`.
pub(crate) fn message(source: &Source, delivery_tag: u64, delivery: &Delivery) -> String {
    let message = delivery.message();
    let mut dinfo = Map::new();
    let msg = msg(message, &mut dinfo);
    let mut headers = Map::new();
    for (key, value) in message.headers() {
        match key {
            REPLY_TO => dinfo.insert("replyTo".into(), node_amqp(value)),
            CORRELATION_ID => dinfo.insert("correlationId".into(), node_amqp(value)),
            CONTENT_TYPE => dinfo.insert("contentType".into(), node_amqp(value)),
            CONTENT_ENCODING => dinfo.insert("contentEncoding".into(), node_amqp(value)),
            _ => headers.insert(key.into(), node_amqp(value)),
        };
    }
    // node-amqp lists only the properties that were set and are truthy.
    if !headers.is_empty() {
        dinfo.insert("headers".into(), Value::Object(headers.clone()));
    }
    if message.priority() > 0 {
        dinfo.insert("priority".into(), message.priority().into());
    }
    if let Some(id) = message.id().filter(|id| !id.is_empty()) {
        dinfo.insert("messageId".into(), id.into());
    }
    dinfo.insert("queue".into(), source.queue.as_str().into());
    dinfo.insert("deliveryTag".into(), buffer(&delivery_tag.to_be_bytes()));
    dinfo.insert("redelivered".into(), (delivery.attempt() > 1).into());
    dinfo.insert("exchange".into(), (*source.exchange).into());
    dinfo.insert("routingKey".into(), delivery.topic().into());
    dinfo.insert("consumerTag".into(), source.consumer_tag.as_str().into());
    json!({"headers": headers, "dinfo": dinfo, "msg": msg}).to_string()
}

/// The frame's `msg`; adds `dinfo.contentType` when the body decides it, and
/// `dinfo.rawData` when a body declared JSON does not parse.
fn msg(message: &Message, dinfo: &mut Map<String, Value>) -> Value {
    let payload = message.payload();
    let content_type = match message.content_type() {
        Some("application/json" | "text/json") => {
            return serde_json::from_slice(payload).unwrap_or_else(|_| {
                dinfo.insert("rawData".into(), String::from_utf8_lossy(payload).into());
                Value::Null
            });
        }
        Some(declared) => declared,
        None => match serde_json::from_slice(payload) {
            Ok(parsed) => {
                dinfo.insert("contentType".into(), "application/json".into());
                return parsed;
            }
            Err(_) => {
                dinfo.insert("contentType".into(), "application/octet-stream".into());
                "application/octet-stream"
            }
        },
    };
    json!({"data": buffer(payload), "contentType": content_type})
}

/// `{"bound":{"ex":..,"key":..}}`: the bind is live, later messages arrive. Sent only
/// to a client that asked (`"ack":true`, and every SSE stream).
pub(crate) fn bound(bind: &BindRequest) -> String {
    json!({ "bound": bind }).to_string()
}

/// `{"error":"<text>","code":..,"bind":..}`: brainlife's clients test `error` and
/// show its text; `code` and `bind` are for programs.
pub(crate) fn error(code: &str, message: &str, bind: Option<&BindRequest>) -> String {
    json!({"error": message, "code": code, "bind": bind}).to_string()
}

/// A refused bind: brainlife's text, `Access denided <ex>` (sic), and the reason.
pub(crate) fn denied(code: &str, reason: &str, bind: &BindRequest) -> String {
    let text = format!("Access denided {}", bind.ex);
    json!({"error": text, "code": code, "reason": reason, "bind": bind}).to_string()
}

/// `{"lagged":{"missed":n}}`: this socket fell behind and `n` messages were dropped.
pub(crate) fn lagged(missed: u64) -> String {
    json!({ "lagged": {"missed": missed} }).to_string()
}

/// `{"gap":{"bind":..,"reason":..}}`: messages of `bind` may have been missed (the
/// broker connection was lost and restored); `bind` is null when the loss concerns
/// the whole socket.
pub(crate) fn gap(bind: Option<&BindRequest>, reason: &str) -> String {
    json!({ "gap": {"bind": bind, "reason": reason} }).to_string()
}

#[cfg(test)]
mod tests {
    use pubsub_core::{Message, TopicName};

    use super::*;

    fn delivery(topic: &str, message: Message) -> Delivery {
        Delivery::new(TopicName::new(topic).expect("a topic"), message)
    }

    /// The contract sheet's composed example of an Amaretti `wf.task` event, with our
    /// queue name and consumer tag in place of node-amqp's.
    #[test]
    fn a_task_event_is_relayed_in_brainlifes_shape() {
        let task = json!({"_id": "5f1a0c4a77e1", "instance_id": "5f1a0c3e9d2b",
            "status": "running", "status_msg": "", "service": "brainlife/app-foo",
            "config": {"_tid": 3}, "name": "foo"});
        let source = Source::new(&Arc::from("wf.task"));
        let event = delivery("5f1a0c3e9d2b.5f1a0c4a77e1", Message::json(&task).unwrap());
        let frame: Value = serde_json::from_str(&message(&source, 3, &event)).unwrap();
        let expected = json!({"headers": {}, "dinfo": {
                "contentType": "application/json", "queue": source.queue,
                "deliveryTag": {"type": "Buffer", "data": [0, 0, 0, 0, 0, 0, 0, 3]},
                "redelivered": false, "exchange": "wf.task",
                "routingKey": "5f1a0c3e9d2b.5f1a0c4a77e1", "consumerTag": source.consumer_tag},
            "msg": task});
        assert_eq!(frame, expected);
    }

    #[test]
    fn a_body_that_is_not_json_comes_as_a_buffer_and_properties_go_to_dinfo() {
        let source = Source::new(&Arc::from("warehouse"));
        let message = Message::new(&b"\x00hi"[..])
            .with_header("origin", "test")
            .with_header(REPLY_TO, "replies")
            .with_id("m1")
            .with_priority(4);
        let frame = message_frame(&source, message);
        assert_eq!(
            frame["msg"],
            json!({"data": {"type": "Buffer", "data": [0, 104, 105]},
                   "contentType": "application/octet-stream"})
        );
        assert_eq!(frame["headers"], json!({"origin": "test"}));
        let dinfo = &frame["dinfo"];
        assert_eq!(dinfo["headers"], json!({"origin": "test"}));
        assert_eq!(dinfo["replyTo"], "replies");
        assert_eq!(dinfo["messageId"], "m1");
        assert_eq!(dinfo["priority"], 4);
        assert_eq!(dinfo["contentType"], "application/octet-stream");
        assert!(dinfo.get("routing_key").is_none(), "{frame}");
    }

    #[test]
    fn the_content_type_decides_msg_as_node_amqp_reads_it() {
        let source = Source::new(&Arc::from("wf.task"));
        let declared = Message::json(&json!({"a": 1}))
            .unwrap()
            .with_content_type("application/json")
            .with_content_encoding("utf-8");
        let frame = message_frame(&source, declared);
        assert_eq!(frame["msg"], json!({"a": 1}));
        assert_eq!(frame["dinfo"]["contentType"], "application/json");
        assert_eq!(frame["dinfo"]["contentEncoding"], "utf-8");
        assert_eq!(frame["headers"], json!({}), "properties are no headers");
        assert!(frame["dinfo"].get("headers").is_none(), "{frame}");

        // JSON in the body, but declared text: node-amqp hands over the bytes.
        let text = Message::new("[1]").with_content_type("text/plain");
        let frame = message_frame(&source, text);
        assert_eq!(
            frame["msg"],
            json!({"data": {"type": "Buffer", "data": [91, 49, 93]}, "contentType": "text/plain"})
        );
        assert_eq!(frame["dinfo"]["contentType"], "text/plain");

        // Declared JSON that does not parse: null, and the body as rawData.
        let broken = Message::new("{oops").with_content_type("text/json");
        let frame = message_frame(&source, broken);
        assert_eq!(frame["msg"], Value::Null);
        assert_eq!(frame["dinfo"]["rawData"], "{oops");
        assert_eq!(frame["dinfo"]["contentType"], "text/json");
    }

    #[test]
    fn typed_headers_are_relayed_as_node_amqp_parses_them() {
        let source = Source::new(&Arc::from("warehouse"));
        let death = HeaderValue::Table(vec![("count".into(), 2.into())]);
        let message = Message::json(&json!({}))
            .unwrap()
            .with_header("delay", 5000)
            .with_header("x-death", vec![death])
            .with_header("sent", HeaderValue::Timestamp(1_700_000_000))
            .with_header("raw", pubsub_core::Bytes::from_static(&[7]));
        let frame = message_frame(&source, message);
        assert_eq!(
            frame["headers"],
            json!({"delay": 5000, "x-death": [{"count": 2}],
                   "sent": 1_700_000_000_000_u64,
                   "raw": {"type": "Buffer", "data": [7]}})
        );
    }

    fn message_frame(source: &Source, message: Message) -> Value {
        let frame = super::message(source, 1, &delivery("dataset.create.1.2.3", message));
        serde_json::from_str(&frame).unwrap()
    }

    #[test]
    fn a_denied_bind_says_what_brainlife_says() {
        let bind = BindRequest {
            ex: "wf.task".into(),
            key: "1.#".into(),
        };
        let frame: Value = serde_json::from_str(&denied("denied", "no", &bind)).unwrap();
        assert_eq!(frame["error"], "Access denided wf.task");
    }

    #[test]
    fn a_bind_asks_for_an_answer_only_when_it_says_so() {
        let plain: ClientFrame = serde_json::from_str(r##"{"bind":{"ex":"wf.task","key":"#"}}"##)
            .expect("brainlife's bind frame");
        assert!(!plain.ack);
        let acked: ClientFrame =
            serde_json::from_str(r#"{"bind":{"ex":"a","key":"b"},"ack":true}"#).unwrap();
        assert!(acked.ack);
    }
}
