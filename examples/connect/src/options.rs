//! The options of a broker URL's query that are ours, not the client's.

use pubsub_core::{Error, Result};

/// Our options from a broker URL's query, and the URL without them (the rest of the
/// query is the client's: lapin's `heartbeat`, redis' `protocol`...).
pub(crate) struct Options {
    /// The URL for the broker's client.
    pub(crate) url: String,
    pub(crate) lazy: bool,
    pub(crate) routing_fanout: bool,
    pub(crate) exchange: Option<String>,
    /// As written; the AMQP side parses it.
    pub(crate) connect_timeout: Option<String>,
}

impl Options {
    pub(crate) fn take(url: &str) -> Result<Self> {
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
                Some(("exchange", "")) => {
                    return Err(Error::InvalidUrl("exchange= needs a name".into()))
                }
                Some(("exchange", name)) => options.exchange = Some(name.to_owned()),
                Some(("connect_timeout", value)) => {
                    options.connect_timeout = Some(value.to_owned())
                }
                _ => rest.push(pair),
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
        } else if self.exchange.is_some() {
            Some("exchange")
        } else if self.connect_timeout.is_some() {
            Some("connect_timeout")
        } else {
            None
        }
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
