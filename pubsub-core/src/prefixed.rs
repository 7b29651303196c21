//! A decorator that puts every topic of a bus under a namespace.

use std::sync::Arc;

use async_trait::async_trait;

use crate::{name, Backend, Capabilities, Error, Message, PublishNow, Result};
use crate::{SubscribeOptions, Subscription};

/// A backend whose topics all live under `<prefix>.`, so that several applications or
/// test runs share one broker without seeing each other. Subscribers see the names
/// without the prefix.
///
/// ```
/// use pubsub_core::{Prefixed, PubSub};
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
/// assert_eq!(raw.next().await.unwrap()?.topic(), "staging.message:stored");
/// assert_eq!(mine.next().await.unwrap()?.topic(), "message:stored");
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

#[async_trait]
impl<B: Backend> Backend for Prefixed<B> {
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    async fn publish(&self, message: Message) -> Result<()> {
        let topic = self.outer_to_inner(message.topic())?;
        self.inner.publish(message.with_topic(topic)).await
    }

    fn publish_now(&self, message: Message) -> PublishNow {
        let topic = match self.outer_to_inner(message.topic()) {
            Ok(topic) => topic,
            Err(invalid) => return PublishNow::Done(Err(invalid)),
        };
        let outer = message.topic_arc().cloned();
        match self.inner.publish_now(message.with_topic(topic)) {
            // Handed back for `publish`, which adds the prefix itself.
            PublishNow::Later(message) => match outer {
                Some(outer) => PublishNow::Later(message.with_topic(outer)),
                None => PublishNow::Later(message),
            },
            done => done,
        }
    }

    async fn publish_mandatory(&self, message: Message) -> Result<()> {
        let topic = self.outer_to_inner(message.topic())?;
        match self
            .inner
            .publish_mandatory(message.with_topic(topic))
            .await
        {
            Err(Error::NoResponders { topic }) => Err(Error::NoResponders {
                topic: topic
                    .strip_prefix(&*self.prefix)
                    .unwrap_or(&topic)
                    .to_owned(),
            }),
            other => other,
        }
    }

    async fn subscribe(&self, topic: &str, options: SubscribeOptions) -> Result<Subscription> {
        let inner = self.outer_to_inner(topic)?;
        let prefix = Arc::clone(&self.prefix);
        let subscription = self.inner.subscribe(&inner, options).await?;
        Ok(subscription.map_deliveries(move |delivery| {
            delivery.map_message(|message| {
                let outer = message.topic().strip_prefix(&*prefix).map(Arc::<str>::from);
                match outer {
                    Some(outer) => message.with_topic(outer),
                    None => message,
                }
            })
        }))
    }

    async fn close(&self) -> Result<()> {
        self.inner.close().await
    }
}
