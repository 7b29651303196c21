//! A private `redis-server` for tests (in progress).
