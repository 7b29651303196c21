//! The options of a broker URL's query that are ours, not the client's.

use pubsub_core::{Error, Result};

/// Our options from a broker URL's query, and the URL without them (the rest of the
/// query is the client's: lapin's `heartbeat`, redis' `protocol`...). A key that is
/// neither ours nor the client's is refused by name: a typo must not pass in silence.
pub(crate) struct Options {
    /// The URL for the broker's client.
    pub(crate) url: String,
    pub(crate) lazy: bool,
    pub(crate) routing_fanout: bool,
    /// AMQP: the broker is a cluster (quorum-queue groups).
    pub(crate) cluster: bool,
    pub(crate) exchange: Option<String>,
    /// As written; the AMQP side parses it.
    pub(crate) connect_timeout: Option<String>,
    /// `mode=streams`: Redis Streams instead of PubSub.
    pub(crate) streams: bool,
}

/// The query keys that are ours, whatever the broker.
const OURS: &[&str] = &[
    "lazy",
    "routing",
    "exchange",
    "connect_timeout",
    "cluster",
    "mode",
];

impl Options {
    /// Takes our options out of `url`'s query, leaving the keys in `client_keys` (the
    /// broker client's own) for the client.
    pub(crate) fn take(url: &str, client_keys: &[&str]) -> Result<Self> {
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let mut options = Options {
            url: base.to_owned(),
            lazy: false,
            routing_fanout: false,
            cluster: false,
            exchange: None,
            connect_timeout: None,
            streams: false,
        };
        let mut rest = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("lazy", value)) => options.lazy = flag("lazy", value)?,
                Some(("cluster", value)) => options.cluster = flag("cluster", value)?,
                Some(("routing", "fanout")) => options.routing_fanout = true,
                Some(("routing", "topic")) => options.routing_fanout = false,
                Some(("routing", other)) => {
                    return Err(Error::InvalidUrl(format!(
                        "routing={other}: use routing=topic or routing=fanout"
                    )))
                }
                Some(("exchange", "")) => {
                    return Err(Error::InvalidUrl("exchange= needs a name".into()))
                }
                Some(("exchange", name)) => options.exchange = Some(name.to_owned()),
                Some(("mode", "streams")) => options.streams = true,
                Some(("mode", "pubsub")) => options.streams = false,
                Some(("mode", other)) => {
                    return Err(Error::InvalidUrl(format!(
                        "mode={other}: use mode=pubsub or mode=streams"
                    )))
                }
                Some(("connect_timeout", value)) => {
                    options.connect_timeout = Some(value.to_owned())
                }
                _ => {
                    let key = pair.split_once('=').map_or(pair, |(key, _)| key);
                    if !client_keys.contains(&key) {
                        return Err(unknown_key(url, key, client_keys));
                    }
                    rest.push(pair)
                }
            }
        }
        if !rest.is_empty() {
            options.url = format!("{base}?{}", rest.join("&"));
        }
        Ok(options)
    }

    /// The first option given that only AMQP has.
    #[cfg(feature = "redis")]
    pub(crate) fn amqp_only(&self) -> Option<&'static str> {
        if self.routing_fanout {
            Some("routing")
        } else if self.cluster {
            Some("cluster")
        } else if self.exchange.is_some() {
            Some("exchange")
        } else if self.connect_timeout.is_some() {
            Some("connect_timeout")
        } else {
            None
        }
    }
}

/// The error for a query key nobody takes, naming the key (a key is no secret; the
/// URL's credentials are never quoted) and the keys there are.
fn unknown_key(url: &str, key: &str, client_keys: &[&str]) -> Error {
    let scheme = url.split_once("://").map_or("", |(scheme, _)| scheme);
    let shown: String = key.chars().take(64).collect();
    Error::InvalidUrl(format!(
        "unknown option `{shown}` in the query of a {scheme}:// URL: the options are {} \
         (ours) and {} (the client's)",
        OURS.join(", "),
        client_keys.join(", ")
    ))
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
