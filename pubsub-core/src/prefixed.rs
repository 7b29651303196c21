//! A decorator that puts every topic of a bus under a namespace.

use std::sync::Arc;

use async_trait::async_trait;

use crate::backend::{Backend, Capabilities, PublishOptions, Publisher, Publishing};
use crate::{name, Error, Message, Pattern, Result, SubscribeOptions, Subscription, TopicName};

/// A backend whose topics all live under `<prefix>.`, so that several applications or
/// test runs share one broker without seeing each other. Subscribers see the names
/// without the prefix.
///
/// ```
/// use pubsub_core::{Prefixed, PubSub, Received};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> pubsub_core::Result<()> {
/// let broker = pubsub_local::LocalBackend::new();
/// let staging = PubSub::new(Prefixed::new(broker.clone(), "staging")?);
/// let everything = PubSub::new(broker);
///
/// let mut raw = everything.topic("staging.#").subscribe().await?;
/// let mut mine = staging.topic("message:stored").subscribe().await?;
/// staging.topic("message:stored").publish(&1).await?;
///
/// let Some(Received::Message(seen)) = raw.next().await else { panic!() };
/// assert_eq!(seen.topic(), "staging.message:stored");
/// let Some(Received::Message(seen)) = mine.next().await else { panic!() };
/// assert_eq!(seen.topic(), "message:stored");
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Prefixed<B> {
    inner: B,
    /// The prefix with its trailing dot.
    prefix: Arc<str>,
}

impl<B: Backend> Prefixed<B> {
    /// Wraps `inner` so that topic `t` is `prefix.t` on the broker. The prefix must be
    /// a valid concrete name.
    pub fn new(inner: B, prefix: &str) -> Result<Self> {
        name::validate_concrete(prefix)?;
        Ok(Prefixed {
            inner,
            prefix: format!("{prefix}.").into(),
        })
    }

    fn outer_to_inner(&self, topic: &str) -> Result<String> {
        let full = format!("{}{topic}", self.prefix);
        if full.len() > name::MAX_NAME_LEN {
            return Err(Error::invalid_topic(
                topic,
                "with the bus's prefix the name is over 255 bytes",
            ));
        }
        Ok(full)
    }
}

#[deny(clippy::missing_trait_methods)]
#[async_trait]
impl<B: Backend> Backend for Prefixed<B> {
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    fn publisher(&self, topic: &TopicName) -> Result<Arc<dyn Publisher>> {
        let inner = TopicName::new(self.outer_to_inner(topic)?)?;
        Ok(Arc::new(PrefixedPublisher {
            inner: self.inner.publisher(&inner)?,
            outer: topic.clone(),
        }))
    }

    async fn subscribe(
        &self,
        pattern: &Pattern,
        options: SubscribeOptions,
    ) -> Result<Subscription> {
        let inner = Pattern::parse(self.outer_to_inner(pattern.as_str())?)?;
        let prefix = Arc::clone(&self.prefix);
        let subscription = self.inner.subscribe(&inner, options).await?;
        Ok(subscription.map_deliveries(move |delivery| {
            let outer = delivery
                .topic()
                .strip_prefix(&*prefix)
                .and_then(|outer| TopicName::new(outer).ok());
            match outer {
                Some(outer) => delivery.with_topic(outer),
                None => delivery,
            }
        }))
    }

    /// Addresses are the inner backend's own, made for a prefixed inbox already.
    fn reply_publisher(&self, address: &str) -> Result<Arc<dyn Publisher>> {
        self.inner.reply_publisher(address)
    }

    async fn close(&self) -> Result<()> {
        self.inner.close().await
    }
}

/// The inner backend's publisher, with errors naming the topic as the user wrote it.
#[derive(Debug)]
struct PrefixedPublisher {
    inner: Arc<dyn Publisher>,
    outer: TopicName,
}

impl Publisher for PrefixedPublisher {
    fn publish(&self, message: Message, options: PublishOptions) -> Publishing<'_> {
        let publishing = self.inner.publish(message, options);
        if !options.mandatory {
            return publishing;
        }
        Publishing::pending(async move {
            match publishing.await {
                Err(Error::NoResponders { .. }) => Err(Error::NoResponders {
                    topic: self.outer.to_string(),
                }),
                other => other,
            }
        })
    }
}
