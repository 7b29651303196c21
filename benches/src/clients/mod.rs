//! The clients under test: our library (over any backend) and the raw clients the
//! backends wrap. A new raw client is one more module here implementing
//! [`Client`](crate::client::Client).

pub mod broadcast;
pub mod bus;
pub mod lapin;
pub mod redis;
pub mod redis_cluster;
pub mod redis_streams;
