//! The conformance cases: one async function per behaviour, each taking a
//! [`BusFactory`]. [`conformance_tests!`](crate::conformance_tests) turns them into
//! one `#[tokio::test]` each.

use super::support::*;
use super::BusFactory;
use crate::Message;

/// A message published to a topic reaches its subscriber with payload and headers
/// intact.
pub async fn round_trip(factory: &dyn BusFactory) {
    let bus = factory.bus().await;
    let name = unique("round.trip");
    let mut sub = bus.topic(&name).subscribe().await.expect("subscribe");
    let mut message = Message::new("hello");
    if bus.capabilities().headers {
        message = message.with_header("kind", "greeting").with_id("m-1");
    }
    bus.topic(&name).publish_message(message).await.expect("publish");
    let got = next(&mut sub, "round trip").await;
    assert_eq!(got.topic(), name);
    assert_eq!(text(&got), "hello");
    if bus.capabilities().headers {
        assert_eq!(got.header("kind"), Some("greeting"));
        assert_eq!(got.id(), Some("m-1"));
    }
}

/// Expands to one `#[tokio::test]` per conformance case, each calling the case with
/// `$factory` (an `async fn() -> PubSub` or a closure returning such a future).
///
/// The calling crate needs `tokio` (with `macros` and `rt-multi-thread`) among its
/// dev-dependencies.
#[macro_export]
macro_rules! conformance_tests {
    ($factory:expr) => {
        $crate::conformance_tests!(@cases $factory;
            round_trip,
        );
    };
    (@cases $factory:expr; $($case:ident),* $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                $crate::testkit::cases::$case(&$factory).await;
            }
        )*
    };
}
