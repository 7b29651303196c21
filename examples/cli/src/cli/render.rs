//! How the tool prints a delivery: one pretty JSON document with its metadata, the
//! payload losslessly (JSON as JSON, text as a string, other bytes in base64).

use std::io::Write;

use base64::Engine as _;
use clap::{Args, ValueEnum};
use pubsub_core::{Delivery, Error};

use super::{CliError, Result};
use serde_json::{json, Value};

/// How payloads are printed.
#[derive(Debug, Clone, Copy, Args)]
pub(crate) struct Encoding {
    /// `auto`: JSON as JSON, UTF-8 text as a string, other bytes as `payload_base64`;
    /// `base64` or `hex`: every payload as `payload_base64` or `payload_hex`.
    #[arg(long = "payload", value_enum, default_value_t = PayloadAs::Auto)]
    payload: PayloadAs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum PayloadAs {
    Auto,
    Base64,
    Hex,
}

impl Encoding {
    /// A delivery as the tool prints it.
    pub(crate) fn render(&self, delivery: &Delivery) -> Value {
        let headers: serde_json::Map<String, Value> = delivery
            .headers()
            .map(|(k, v)| (k.to_owned(), serde_json::to_value(v).unwrap_or(Value::Null)))
            .collect();
        let mut document = json!({
            "topic": delivery.topic(),
            "priority": delivery.priority(),
            "attempt": delivery.attempt(),
            "id": delivery.id(),
            "headers": headers,
        });
        let (key, payload) = self.payload(delivery.payload());
        document[key] = payload;
        document
    }

    fn payload(&self, bytes: &[u8]) -> (&'static str, Value) {
        let base64 = || Value::String(base64::engine::general_purpose::STANDARD.encode(bytes));
        match self.payload {
            PayloadAs::Base64 => ("payload_base64", base64()),
            PayloadAs::Hex => ("payload_hex", Value::String(hex::encode(bytes))),
            PayloadAs::Auto => match serde_json::from_slice(bytes) {
                Ok(value) => ("payload", value),
                Err(_) => match std::str::from_utf8(bytes) {
                    Ok(text) => ("payload", Value::String(text.to_owned())),
                    Err(_) => ("payload_base64", base64()),
                },
            },
        }
    }
}

/// Writes one pretty JSON document. A closed stdout (`| head`) is an error whose cause
/// is [`std::io::ErrorKind::BrokenPipe`]: `main` ends quietly on it.
pub(crate) fn print(out: &mut impl Write, value: &Value) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(Error::Encode)?;
    writeln!(out, "{text}")
        .and_then(|()| out.flush())
        .map_err(|e| CliError::io("writing the output", e))
}
