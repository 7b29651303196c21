//! The configured exchanges, each a bus of its own over the one backend.
//!
//! On AMQP an exchange is a broker exchange (`AmqpBackend::exchange`), so brainlife's
//! publishers reach us unchanged. On the in-process backend every exchange is an
//! in-process bus of its own. Either way a subscription sees keys without the
//! exchange, so a pattern bound on one exchange can never match another's messages,
//! and a dotted name is safe: Amaretti's current `wf.task` key `<instance>.<task>`
//! and its 2016 `wf` key `task.<instance>.<task>` never meet, though joined they
//! would read the same (a prefix on one bus would have merged them).

use std::collections::HashMap;
use std::sync::Arc;

use pubsub_core::PubSub;

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

    /// Closes the broker connection (on AMQP: its channels and exclusive queues go at
    /// once, not when the broker notices the process is gone).
    pub(crate) async fn close(&self) {
        // On AMQP the exchanges share one backend: closing one bus closes it. The
        // in-process buses hold nothing outside this process.
        if let Some(exchange) = self.by_name.values().next() {
            if let Err(e) = exchange.bus.close().await {
                tracing::warn!(error = %e, "closing the broker connection");
            }
        }
    }
}

/// The backend of the exchanges: one AMQP connection they share, or in-process.
enum Broker {
    Local,
    Amqp(pubsub_amqp::AmqpBackend),
}

impl Broker {
    async fn connect(url: &str) -> Result<Broker, String> {
        let shown = pubsub_connect::without_password(url);
        if url == "memory://" {
            Ok(Broker::Local)
        } else if url.starts_with("amqp://") || url.starts_with("amqps://") {
            let amqp = pubsub_amqp::AmqpBackend::connect(url)
                .await
                .map_err(|e| format!("backend {shown}: {e}"))?;
            Ok(Broker::Amqp(amqp))
        } else {
            Err(format!(
                "backend {shown:?}: use memory:// or an amqp:// URL"
            ))
        }
    }

    /// The bus of exchange `name`.
    fn bus(&self, name: &str) -> Result<PubSub, String> {
        match self {
            Broker::Local => Ok(PubSub::new(pubsub_local::LocalBackend::new())),
            Broker::Amqp(amqp) => Ok(PubSub::new(amqp.exchange(name))),
        }
    }
}
