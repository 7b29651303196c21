//! Who is asking: the verified token, and the sockets-per-user limit.

mod jwt;
mod users;

pub(crate) use jwt::{now, sign_hs256, Verifier};
pub(crate) use users::{UserSlot, Users};

use std::sync::Arc;

use serde_json::{Map, Value};

/// A user whose token was verified.
#[derive(Debug)]
pub(crate) struct Identity {
    /// The value of the configured user claim.
    pub(crate) user: String,
    /// All claims of the token.
    pub(crate) claims: Map<String, Value>,
    /// The token itself, passed on to HTTP access checks.
    pub(crate) token: Arc<str>,
}

impl Identity {
    /// Whether claim `name` is `value`, or is an array that holds `value`. Numbers
    /// compare by their decimal text, since group ids arrive as either.
    pub(crate) fn claim_holds(&self, name: &str, value: &str) -> bool {
        let same = |v: &Value| match v {
            Value::String(s) => s == value,
            Value::Number(n) => n.to_string() == value,
            _ => false,
        };
        match self.claims.get(name) {
            Some(Value::Array(items)) => items.iter().any(same),
            Some(other) => same(other),
            None => false,
        }
    }
}
