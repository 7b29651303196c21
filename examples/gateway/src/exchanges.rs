//! The configured exchanges, each a bus of its own over the one backend.
//!
//! On AMQP an exchange is a broker exchange (`AmqpBackend::exchange`), so brainlife's
//! publishers reach us unchanged. On the in-process backend every exchange is a topic
//! prefix on one bus (`Prefixed`): key `task.1` of exchange `wf` is topic `wf.task.1`.
//! Either way a subscription sees keys without the exchange, so a pattern bound on
//! one exchange can never match another's messages.

use std::collections::HashMap;
use std::sync::Arc;

use pubsub_core::{Prefixed, PubSub};

use crate::config::Config;
use crate::policy::Policy;

/// One exchange: its bus and its policy.
#[derive(Debug)]
pub(crate) struct Exchange {
    pub(crate) name: Arc<str>,
    pub(crate) bus: PubSub,
    pub(crate) policy: Policy,
}

/// The exchanges by name.
#[derive(Debug)]
pub(crate) struct Exchanges {
    by_name: HashMap<String, Arc<Exchange>>,
}

impl Exchanges {
    /// Connects to the configured backend and builds every exchange on it.
    pub(crate) async fn connect(config: &Config) -> Result<Exchanges, String> {
        let broker = Broker::connect(&config.backend).await?;
        let mut by_name = HashMap::new();
        for (name, exchange) in &config.exchanges {
            let built = Exchange {
                name: Arc::from(name.as_str()),
                bus: broker.bus(name)?,
                policy: Policy::new(name, exchange)?,
            };
            by_name.insert(name.clone(), Arc::new(built));
        }
        Ok(Exchanges { by_name })
    }

    /// The exchange called `name`, if configured.
    pub(crate) fn get(&self, name: &str) -> Option<&Arc<Exchange>> {
        self.by_name.get(name)
    }

    /// All exchanges, for the banner.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Arc<Exchange>> {
        self.by_name.values()
    }
}

/// The one backend the exchanges share.
enum Broker {
    Local(pubsub_local::LocalBackend),
    Amqp(pubsub_amqp::AmqpBackend),
}

impl Broker {
    async fn connect(url: &str) -> Result<Broker, String> {
        if url == "memory://" {
            Ok(Broker::Local(pubsub_local::LocalBackend::new()))
        } else if url.starts_with("amqp://") || url.starts_with("amqps://") {
            let amqp = pubsub_amqp::AmqpBackend::connect(url)
                .await
                .map_err(|e| format!("backend {url}: {e}"))?;
            Ok(Broker::Amqp(amqp))
        } else {
            Err(format!("backend {url:?}: use memory:// or an amqp:// URL"))
        }
    }

    /// The bus of exchange `name`.
    fn bus(&self, name: &str) -> Result<PubSub, String> {
        match self {
            Broker::Local(local) => Prefixed::new(local.clone(), name)
                .map(PubSub::new)
                .map_err(|e| e.to_string()),
            Broker::Amqp(amqp) => Ok(PubSub::new(amqp.exchange(name))),
        }
    }
}
