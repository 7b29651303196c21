//! The wire protocol: what clients send and what the gateway sends back. The same
//! JSON frames travel over WebSocket and as SSE `data:`.

use pubsub_core::Delivery;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// A frame from a client.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "lowercase")]
pub(crate) enum ClientFrame {
    /// `{"bind":{"ex":"wf","key":"task.1.#"}}`
    Bind(BindRequest),
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

/// `{"headers":{..},"dinfo":{"exchange":..,"routing_key":..},"msg":..}`, brainlife's
/// frame. A payload that is not JSON is sent as a string of its (lossy) UTF-8 text.
pub(crate) fn message(exchange: &str, delivery: &Delivery) -> String {
    let headers: Map<String, Value> = delivery
        .headers()
        .map(|(k, v)| (k.to_owned(), Value::from(v)))
        .collect();
    let msg = serde_json::from_slice::<Value>(delivery.payload())
        .unwrap_or_else(|_| Value::from(String::from_utf8_lossy(delivery.payload())));
    json!({
        "headers": headers,
        "dinfo": {"exchange": exchange, "routing_key": delivery.topic()},
        "msg": msg,
    })
    .to_string()
}

/// `{"bound":{"ex":..,"key":..}}`: the bind is live, later messages arrive.
pub(crate) fn bound(bind: &BindRequest) -> String {
    json!({ "bound": bind }).to_string()
}

/// `{"error":{"code":..,"message":..,"bind":..}}`.
pub(crate) fn error(code: &str, message: &str, bind: Option<&BindRequest>) -> String {
    json!({ "error": {"code": code, "message": message, "bind": bind} }).to_string()
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
