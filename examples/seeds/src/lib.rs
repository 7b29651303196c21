//! The seed systems of `pubsub-core` as runnable programs, and what they share: the
//! typed message catalogs of the four seeds and the one place a program picks its
//! backend from a URL.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> pubsub_core::Result<()> {
//! let bus = pubsub_examples::connect("memory://").await?;
//! bus.topic("__general__").publish(&"hello").await?;
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

pub mod brainlife;
pub mod catalog;
pub mod cli;
mod connect;
pub mod demo;
pub mod esn;
pub mod infrahub;
pub mod intheam;

pub use connect::connect;
