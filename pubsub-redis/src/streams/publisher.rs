//! The publisher of one topic in Streams mode: an `XADD` to its stream, trimmed to
//! about the configured length.

use std::sync::Arc;

use pubsub_core::backend::{PublishOptions, Publisher, Publishing};
use pubsub_core::{Error, Message, TopicName};
use redis::{Cmd, Value};

use super::Streams;
use crate::fields;

/// The publisher of one topic: its stream key, prefix included, built once.
#[derive(Debug)]
pub(crate) struct StreamPublisher {
    topic: TopicName,
    key: Box<str>,
    streams: Arc<Streams>,
}

impl StreamPublisher {
    pub(crate) fn new(streams: Arc<Streams>, topic: &TopicName) -> Self {
        StreamPublisher {
            key: streams.key(topic).into(),
            topic: topic.clone(),
            streams,
        }
    }

    /// `XADD key MAXLEN ~ n * payload ... [id ...] [priority ...] [h:name value]...`
    fn command(&self, message: &Message) -> Cmd {
        let mut add = redis::cmd("XADD");
        add.arg(&*self.key)
            .arg("MAXLEN")
            .arg("~")
            .arg(self.streams.settings.max_len)
            .arg("*");
        fields::append(&mut add, message, self.streams.raw);
        add
    }
}

impl Publisher for StreamPublisher {
    /// A stream cannot tell whether anybody will read an entry: a mandatory publish
    /// is an ordinary one (the capabilities say `no_responders: false`).
    fn publish(&self, message: Message, _options: PublishOptions) -> Publishing<'_> {
        if self.streams.is_closed() {
            return Publishing::done(Err(Error::Closed));
        }
        let add = self.command(&message);
        drop(message);
        Publishing::pending(async move {
            let what = format!("publish to {:?}", self.topic);
            self.streams.query::<Value>(&what, &add).await.map(drop)
        })
    }
}
