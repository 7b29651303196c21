//! A private `rabbitmq-server` for tests (in progress).
