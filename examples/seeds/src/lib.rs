//! The seed systems of `pubsub-core` as runnable programs (OpenPaaS ESN, Inthe.AM,
//! Infrahub, brainlife.io), and the typed message catalogs of the four seeds. Each
//! program picks its backend from a URL with [`pubsub_connect::connect`].
//!
//! ```
//! use futures::StreamExt;
//! use pubsub_core::Received;
//! use pubsub_seeds::catalog::{esn::MessageStored, Document};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> pubsub_core::Result<()> {
//! let bus = pubsub_connect::connect("memory://").await?;
//! let mut stored = bus.subscribe_to::<MessageStored>().await?;
//! let mut message = Document::new();
//! message.insert("_id".into(), 456.into());
//! bus.send(&MessageStored(message)).await?;
//! match stored.next().await {
//!     Some(Received::Message(Ok(MessageStored(message)))) => assert_eq!(message["_id"], 456),
//!     other => panic!("expected the stored message, got {other:?}"),
//! }
//! # Ok(())
//! # }
//! ```

pub mod brainlife;
pub mod catalog;
pub mod demo;
pub mod esn;
pub mod footprint;
pub mod infrahub;
pub mod intheam;
