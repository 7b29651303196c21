//! The messages of the four seed systems as Rust types.
//!
//! Field names are the seeds' JSON keys, byte for byte, so that these types read
//! what the original systems publish and publish what they read. Each bus message
//! implements [`Event`](pubsub_core::Event): its `TOPIC` is the seed's channel or
//! routing key (a pattern where the name holds a username or id, with
//! [`topic`](pubsub_core::Event::topic) filling it in) and, for Infrahub, its
//! `PRIORITY` is the seed's.
//!
//! ```
//! use pubsub_core::Event;
//! use pubsub_seeds::catalog::inthe_am::LocalSync;
//!
//! let sync = LocalSync {
//!     username: "alice".into(),
//!     debounce_id: Some("1700000000.123456".into()),
//!     start: "abc".into(),
//!     head: "def".into(),
//! };
//! assert_eq!(LocalSync::TOPIC, "local_sync.#");
//! assert_eq!(sync.topic(), "local_sync.alice");
//! ```

pub mod brainlife;
pub mod esn;
pub mod infrahub;
pub mod inthe_am;

/// A JSON object whose keys the seed leaves open (a Mongo document, Taskwarrior's
/// task data).
pub type Document = serde_json::Map<String, serde_json::Value>;

/// Implements [`Event`](pubsub_core::Event) for each listed type and lists their
/// topics in `TOPICS`, so that the list cannot drift from the impls.
///
/// `Type => "topic"` for a fixed name; `, priority N` sets the priority; `, by field`
/// fills the `*` of the pattern with the value's `field` (a username); `, topic |v|
/// expr` computes the concrete name.
macro_rules! events {
    ($( $ty:ty => $topic:literal $(, priority $priority:literal)? $(, by $field:ident)? $(, topic |$v:ident| $name:expr)? ;)*) => {
        $(
            impl pubsub_core::Event for $ty {
                const TOPIC: &'static str = $topic;
                $(const PRIORITY: u8 = $priority;)?
                $(
                    fn topic(&self) -> std::borrow::Cow<'_, str> {
                        std::borrow::Cow::Owned($topic.replacen('*', &self.$field, 1))
                    }
                )?
                $(
                    fn topic(&self) -> std::borrow::Cow<'_, str> {
                        let $v = self;
                        std::borrow::Cow::Owned($name)
                    }
                )?
            }
        )*

        /// Every topic (or pattern) of this system's messages, in the seed's order.
        pub const TOPICS: &[&str] = &[$($topic),*];
    };
}
pub(crate) use events;
