//! Picking a backend from a URL: the one place the programs choose one.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock, PoisonError};

use pubsub_amqp::AmqpBackend;
use pubsub_core::{Error, PubSub, Result};
use pubsub_local::LocalBackend;
use pubsub_redis::RedisBackend;

/// Opens a bus on the backend the URL's scheme names.
///
/// - `memory://` is a new in-process bus; `memory://NAME` is the in-process bus of
///   that name, shared by every `connect` of this process with the same name (two
///   "nodes" of a demo on one global bus).
/// - `redis://HOST[:PORT][/DB]` connects to Redis.
/// - `amqp://USER:PASS@HOST:PORT/VHOST` connects to RabbitMQ. In the query,
///   `routing=fanout` selects ESN's exchange-per-topic topology and `exchange=NAME`
///   another topic exchange than `pubsub`.
/// - On both brokers, `lazy=true` in the query returns at once and connects on first
///   use, so a program may start before its broker; on AMQP, `connect_timeout=30s`
///   sets how long a use waits for the broker.
///
/// Any other scheme, or an option the backend does not have, is
/// [`Error::InvalidUrl`].
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> pubsub_core::Result<()> {
/// let node_a = pubsub_examples::connect("memory://global").await?;
/// let node_b = pubsub_examples::connect("memory://global").await?;
/// let mut sub = node_b.topic("message:stored").subscribe().await?;
/// node_a.topic("message:stored").publish(&1).await?;
/// assert_eq!(sub.next().await.unwrap()?.json::<i32>()?, 1);
///
/// assert!(pubsub_examples::connect("kafka://localhost").await.is_err());
/// assert!(pubsub_examples::connect("redis://localhost/?routing=fanout").await.is_err());
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
        "redis" | "rediss" => {
            let options = Options::take(url)?;
            if options.routing_fanout
                || options.exchange.is_some()
                || options.connect_timeout.is_some()
            {
                return Err(Error::InvalidUrl(
                    "`routing`, `exchange` and `connect_timeout` are options of amqp:// URLs"
                        .into(),
                ));
            }
            let backend = if options.lazy {
                RedisBackend::connect_lazy(&options.url)?
            } else {
                RedisBackend::connect(&options.url).await?
            };
            Ok(backend.into())
        }
        "amqp" | "amqps" => {
            let options = Options::take(url)?;
            let mut builder = AmqpBackend::builder(&options.url);
            if options.routing_fanout {
                builder = builder.fanout_per_topic();
            }
            if let Some(exchange) = options.exchange {
                builder = builder.exchange(exchange);
            }
            if let Some(timeout) = options.connect_timeout {
                builder = builder.connect_timeout(timeout);
            }
            let backend = if options.lazy {
                builder.connect_lazy()?
            } else {
                builder.connect().await?
            };
            Ok(backend.into())
        }
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

/// Our options from a broker URL's query, and the URL without them (the rest of the
/// query is the client's: lapin's `heartbeat`, redis' `protocol`...).
struct Options {
    url: String,
    lazy: bool,
    routing_fanout: bool,
    exchange: Option<String>,
    connect_timeout: Option<std::time::Duration>,
}

impl Options {
    fn take(url: &str) -> Result<Self> {
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let mut options = Options {
            url: base.to_owned(),
            lazy: false,
            routing_fanout: false,
            exchange: None,
            connect_timeout: None,
        };
        let mut rest = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("lazy", value)) => options.lazy = flag("lazy", value)?,
                Some(("routing", "fanout")) => options.routing_fanout = true,
                Some(("routing", "topic")) => options.routing_fanout = false,
                Some(("routing", other)) => {
                    return Err(Error::InvalidUrl(format!(
                        "routing={other}: use routing=topic or routing=fanout"
                    )))
                }
                Some(("exchange", name)) => options.exchange = Some(name.to_owned()),
                Some(("connect_timeout", value)) => {
                    let timeout = humantime::parse_duration(value)
                        .map_err(|e| Error::InvalidUrl(format!("connect_timeout={value}: {e}")))?;
                    options.connect_timeout = Some(timeout);
                }
                _ => rest.push(pair),
            }
        }
        if !rest.is_empty() {
            options.url = format!("{base}?{}", rest.join("&"));
        }
        Ok(options)
    }
}

fn flag(name: &str, value: &str) -> Result<bool> {
    match value {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        other => Err(Error::InvalidUrl(format!(
            "{name}={other}: use true or false"
        ))),
    }
}
