//! AMQP 0-9-1 backend of pubsub-core (in progress).
