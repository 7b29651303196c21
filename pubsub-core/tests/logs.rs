//! What the library logs where a person sees it (`warn` and `error`, shown at the
//! default `info`): a subscriber's lag, a gap, a dead letter, and a message a handler
//! gave up on.

use std::sync::{Arc, Mutex};

use pubsub_core::backend::{Backend, Capabilities, Publisher};
use pubsub_core::ring::{self, RingSender};
use pubsub_core::testkit::support::{next, next_item};
use pubsub_core::{
    async_trait, Delivery, Error, HandlerOptions, Pattern, PubSub, Received, Result, RetryPolicy,
    SubscribeOptions, Subscription, TopicName,
};
use tracing::field::{Field, Visit};
use tracing::Level;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

/// Every event: its level and its fields as text.
#[derive(Clone, Default)]
struct Events(Arc<Mutex<Vec<(Level, String)>>>);

impl<S: tracing::Subscriber> Layer<S> for Events {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        struct Text(String);
        impl Visit for Text {
            fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
                self.0 += &format!("{}={value:?} ", field.name());
            }
        }
        let mut text = Text(String::new());
        event.record(&mut text);
        let mut events = self.0.lock().unwrap_or_else(|e| e.into_inner());
        events.push((*event.metadata().level(), text.0));
    }
}

impl Events {
    /// The level of the one event whose text has `needle`.
    fn level_of(&self, needle: &str) -> Level {
        let events = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let found: Vec<_> = events.iter().filter(|(_, t)| t.contains(needle)).collect();
        match found.as_slice() {
            [(level, _)] => *level,
            _ => panic!("one event with {needle:?} among {events:?}"),
        }
    }
}

/// A backend whose subscription's ring the test holds, to put a gap in it.
#[derive(Debug, Default)]
struct Gappy {
    sender: Mutex<Option<RingSender<Delivery>>>,
}

#[deny(clippy::missing_trait_methods)]
#[async_trait]
impl Backend for Gappy {
    fn capabilities(&self) -> Capabilities {
        Capabilities::new()
    }
    fn publisher(&self, _topic: &TopicName) -> Result<Arc<dyn Publisher>> {
        Err(Error::Unsupported(
            "this test backend only subscribes".into(),
        ))
    }
    async fn subscribe(
        &self,
        _pattern: &Pattern,
        _options: SubscribeOptions,
    ) -> Result<Subscription> {
        let (sender, receiver) = ring::channel(8);
        *self.sender.lock().unwrap_or_else(|e| e.into_inner()) = Some(sender);
        Ok(Subscription::new(receiver))
    }
    fn reply_publisher(&self, _address: &str) -> Result<Arc<dyn Publisher>> {
        Err(Error::Unsupported(
            "this test backend only subscribes".into(),
        ))
    }
    async fn close(&self) -> Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn a_lag_a_gap_a_dead_letter_and_a_given_up_message_are_warnings_or_errors() {
    let events = Events::default();
    let _installed =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(events.clone()));
    let bus: PubSub = pubsub_local::LocalBackend::new().into();

    let mut slow = bus
        .topic("logs.feed")
        .subscribe_with(SubscribeOptions::new().buffer(1))
        .await
        .expect("subscribe");
    for i in 0..3 {
        bus.topic("logs.feed").publish(&i).await.expect("publish");
    }
    assert!(matches!(
        next_item(&mut slow, "the lag").await,
        Received::Signal(_)
    ));
    assert_eq!(events.level_of("subscriber lagged behind"), Level::WARN);

    let gappy = Arc::new(Gappy::default());
    let over_gappy = PubSub::from_arc(gappy.clone());
    let mut gapped = over_gappy
        .topic("logs.gapped")
        .subscribe()
        .await
        .expect("subscribe");
    let sender = gappy
        .sender
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take();
    sender
        .expect("the subscription's ring")
        .gap("the broker connection was lost");
    assert!(matches!(
        next_item(&mut gapped, "the gap").await,
        Received::Signal(_)
    ));
    assert_eq!(
        events.level_of("the broker connection was lost"),
        Level::WARN
    );

    let mut dead = bus.topic("logs.dead").subscribe().await.expect("subscribe");
    let failing = |_: Delivery| async { Err("no such user".into()) };
    let retry = RetryPolicy::none().dead_letter("logs.dead");
    let mut dead_lettering = bus
        .topic("logs.jobs")
        .on_with(HandlerOptions::new().retry(retry), failing);
    dead_lettering
        .ready()
        .await
        .expect("the handler subscribed");
    let mut giving_up = bus.topic("logs.sync").on(failing);
    giving_up.ready().await.expect("the handler subscribed");
    bus.topic("logs.jobs").publish(&1).await.expect("publish");
    drop(next(&mut dead, "the dead letter").await);
    // Nothing but the log line tells that a message was given up: wait for it.
    bus.topic("logs.sync").publish(&2).await.expect("publish");
    pubsub_core::testkit::support::within("the give-up", async {
        while !events
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .any(|(_, t)| t.contains("given up"))
        {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert_eq!(events.level_of("dead-lettered"), Level::WARN);
    assert_eq!(events.level_of("given up"), Level::ERROR);
    dead_lettering.stop();
    giving_up.stop();
}
