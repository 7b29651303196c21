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
pub struct Exchange {
    pub name: Arc<str>,
    pub bus: PubSub,
    pub policy: Policy,
}

/// The exchanges by name.
#[derive(Debug)]
pub struct Exchanges {
    by_name: HashMap<String, Arc<Exchange>>,
}

impl Exchanges {
    /// Connects to the configured backend and builds every exchange on it.
    pub async fn connect(config: &Config) -> Result<Exchanges, String> {
        let backend = &config.backend;
        let bus_for: Box<dyn Fn(&str) -> Result<PubSub, String>> = if backend == "memory://" {
            let local = pubsub_local::LocalBackend::new();
            Box::new(move |name| {
                Prefixed::new(local.clone(), name)
                    .map(PubSub::new)
                    .map_err(|e| e.to_string())
            })
        } else if backend.starts_with("amqp://") || backend.starts_with("amqps://") {
            let amqp = pubsub_amqp::AmqpBackend::connect(backend)
                .await
                .map_err(|e| format!("backend {backend}: {e}"))?;
            Box::new(move |name| Ok(PubSub::new(amqp.exchange(name))))
        } else {
            return Err(format!(
                "backend {backend:?}: use memory:// or an amqp:// URL"
            ));
        };
        let mut by_name = HashMap::new();
        for (name, exchange) in &config.exchanges {
            let built = Exchange {
                name: Arc::from(name.as_str()),
                bus: bus_for(name)?,
                policy: Policy::new(name, exchange)?,
            };
            by_name.insert(name.clone(), Arc::new(built));
        }
        Ok(Exchanges { by_name })
    }

    /// The exchange called `name`, if configured.
    pub fn get(&self, name: &str) -> Option<&Arc<Exchange>> {
        self.by_name.get(name)
    }

    /// All exchanges, for the banner.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Exchange>> {
        self.by_name.values()
    }
}
