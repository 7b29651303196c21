//! `connect(url)`: a [`PubSub`] bus on the backend a URL names, so that a program (or
//! its configuration file) picks its broker without code of its own.
//!
//! | URL | backend | feature |
//! |---|---|---|
//! | `memory://`, `memory://NAME` | the in-process bus | always |
//! | `redis://HOST[:PORT][/DB]`, `rediss://` | Redis PubSub | `redis` (default) |
//! | `amqp://USER:PASS@HOST:PORT/VHOST`, `amqps://` | RabbitMQ | `amqp` (default) |
//!
//! Each broker is a cargo feature, so a program compiles only the clients it uses:
//!
//! ```toml
//! pubsub-connect = { version = "0.1", default-features = false, features = ["redis"] }
//! ```
//!
//! A URL whose scheme needs a feature that is off is [`Error::InvalidUrl`] naming the
//! feature. No error this crate makes holds the URL's user name or password.
//!
//! ```
//! use pubsub_core::Received;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> pubsub_core::Result<()> {
//! let url = std::env::var("PUBSUB_URL").unwrap_or_else(|_| "memory://".into());
//! let bus = pubsub_connect::connect(&url).await?;
//!
//! let mut stored = bus.topic("message:stored").subscribe().await?;
//! bus.topic("message:stored").publish(&456).await?;
//! if let Some(Received::Message(message)) = stored.next().await {
//!     println!("{} <- {}", message.topic(), String::from_utf8_lossy(message.payload()));
//! }
//! # Ok(())
//! # }
//! ```

#[cfg(feature = "amqp")]
mod amqp;
#[cfg(feature = "logging")]
pub mod logging;
mod memory;
#[cfg(any(feature = "redis", feature = "amqp"))]
mod options;
#[cfg(feature = "redis")]
mod redis;

use pubsub_core::{Error, PubSub, Result};

/// Opens a bus on the backend the URL's scheme names.
///
/// - `memory://` is a new in-process bus; `memory://NAME` is the in-process bus of
///   that name, shared by every `connect` of this process with the same name (two
///   "nodes" of a demo on one global bus).
/// - `redis://[USER:PASS@]HOST[:PORT][/DB]` (or `rediss://`, TLS) connects to Redis.
/// - `amqp://USER:PASS@HOST:PORT/VHOST` (or `amqps://`, TLS) connects to RabbitMQ. In
///   the query, `routing=fanout` selects ESN's exchange-per-topic layout,
///   `exchange=NAME` another topic exchange than `pubsub`, and `connect_timeout=30s`
///   how long a use waits for the broker.
/// - On both brokers, `lazy=true` in the query returns at once and connects on first
///   use, so a program may start before its broker. The client's own keys go to it as
///   they are (lapin's `heartbeat`, `connection_timeout`, `channel_max`, `frame_max`,
///   `auth_mechanism`; redis' `protocol`); any other key is refused by name.
///
/// A malformed URL, an unknown scheme, a scheme whose cargo feature is off, or an
/// option the backend does not have is [`Error::InvalidUrl`]; a broker that cannot be
/// reached is the backend's error.
///
/// ```
/// use pubsub_core::{Error, Received};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> pubsub_core::Result<()> {
/// let node_a = pubsub_connect::connect("memory://global").await?;
/// let node_b = pubsub_connect::connect("memory://global").await?;
/// let mut stored = node_b.topic("message:stored").subscribe().await?;
/// node_a.topic("message:stored").publish(&1).await?;
/// let Some(Received::Message(message)) = stored.next().await else { panic!("a message") };
/// assert_eq!(message.json::<i32>()?, 1);
///
/// let unknown = pubsub_connect::connect("kafka://localhost").await;
/// assert!(matches!(unknown, Err(Error::InvalidUrl(_))));
/// # Ok(())
/// # }
/// ```
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> pubsub_core::Result<()> {
/// // ESN's global bus: one fanout exchange per topic, on a broker that may start later.
/// let global = pubsub_connect::connect(
///     "amqp://guest:guest@127.0.0.1:5672/%2f?routing=fanout&lazy=true",
/// )
/// .await?;
/// # drop(global);
/// # Ok(())
/// # }
/// ```
///
/// # Cancel safety
///
/// Cancel safe: a cancelled connect leaves no connection behind.
pub async fn connect(url: &str) -> Result<PubSub> {
    // Only the scheme is ever quoted back: the rest may hold a password.
    let (scheme, rest) = url.split_once("://").ok_or_else(|| {
        Error::InvalidUrl(
            "a URL starts with a scheme: memory://, redis://HOST or amqp://HOST".into(),
        )
    })?;
    match scheme {
        "memory" => memory::connect(rest),
        "redis" | "rediss" => {
            #[cfg(feature = "redis")]
            return redis::connect(url).await;
            #[cfg(not(feature = "redis"))]
            return Err(feature_off(scheme, "redis"));
        }
        "amqp" | "amqps" => {
            #[cfg(feature = "amqp")]
            return amqp::connect(url).await;
            #[cfg(not(feature = "amqp"))]
            return Err(feature_off(scheme, "amqp"));
        }
        other if is_scheme(other) => Err(Error::InvalidUrl(format!(
            "unknown scheme {other}://: use memory://, redis:// or amqp://"
        ))),
        _ => Err(Error::InvalidUrl(
            "the text before :// is not a scheme: use memory://, redis:// or amqp://".into(),
        )),
    }
}

/// `url` with its password, if it has one, replaced by `***`: what a program may print
/// or log to say which broker it uses.
///
/// ```
/// use pubsub_connect::without_password;
///
/// assert_eq!(
///     without_password("amqp://app:s3cret@rabbit:5672/%2f?cluster=true"),
///     "amqp://app:***@rabbit:5672/%2f?cluster=true"
/// );
/// assert_eq!(without_password("redis://:s3cret@cache/0"), "redis://:***@cache/0");
/// assert_eq!(without_password("redis://cache/0"), "redis://cache/0");
/// ```
pub fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_owned();
    };
    match rest[..at].split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***{}", &rest[at..]),
        None => url.to_owned(),
    }
}

/// Whether `text` is a URL scheme (RFC 3986), and so safe to quote in an error.
fn is_scheme(text: &str) -> bool {
    let mut chars = text.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
}

#[cfg(not(all(feature = "redis", feature = "amqp")))]
fn feature_off(scheme: &str, feature: &str) -> Error {
    Error::InvalidUrl(format!(
        "{scheme}:// URLs need the `{feature}` feature of pubsub-connect, which this \
         build was compiled without"
    ))
}

/// The workspace README's Rust blocks, compiled as doctests so that its API screen
/// cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;
