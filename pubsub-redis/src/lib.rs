//! Redis PubSub backend of pubsub-core (in progress).
