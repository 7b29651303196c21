//! Spans and W3C trace context on the in-process bus (feature `otel`): one trace from
//! a publish through a group handler's reply, the messaging attributes, a foreign
//! producer's `traceparent` continued, and nothing added where nobody records spans.

use std::time::Duration;

use pubsub_core::backend::PublishOptions;
use pubsub_core::testkit::spans::{attribute, named, span_id, trace_id, SpanKind, Spans, TraceId};
use pubsub_core::testkit::support::{next, unique};
use pubsub_core::{Delivery, HandlerOptions, Message, PubSub, Received, TopicName};

fn bus() -> PubSub {
    pubsub_local::LocalBackend::new().into()
}

#[tokio::test]
async fn a_publish_its_group_handler_and_the_reply_make_one_trace_with_the_right_parents() {
    let spans = Spans::install();
    let bus = bus();
    let (jobs, replies) = (unique("jobs"), unique("replies"));
    let mut answers = bus.topic(&replies).subscribe().await.expect("subscribe");
    let reply_topic = bus.topic(&replies);
    let mut worker = bus.topic(&jobs).on_with(
        HandlerOptions::new().group("workers"),
        move |job: Delivery| {
            let reply_topic = reply_topic.clone();
            async move {
                reply_topic
                    .publish(&format!("done {}", job.json::<u32>()?))
                    .await?;
                Ok(())
            }
        },
    );
    worker.ready().await.expect("the handler subscribed");

    let root = tracing::info_span!("test");
    let trace = trace_id(&root);
    let jobs_topic = bus.topic(&jobs);
    root.in_scope(|| jobs_topic.publish(&7))
        .await
        .expect("publish");
    let answer = next(&mut answers, "the reply").await;
    assert_eq!(answer.json::<String>().expect("JSON"), "done 7");
    drop(answer);
    drop(root);

    // test, publish, receive, process, ack, publish (reply), receive (reply).
    let all = spans.wait_for(trace, 7).await;
    let id = |name: &str| named(&all, name).span_context.span_id();
    let parent = |name: &str| named(&all, name).parent_span_id;
    let (publish, reply) = (format!("publish {jobs}"), format!("publish {replies}"));
    assert_eq!(parent(&publish), id("test"));
    assert_eq!(parent(&format!("receive {jobs}")), id(&publish));
    assert_eq!(
        parent(&format!("process {jobs}")),
        id(&format!("receive {jobs}"))
    );
    assert_eq!(
        parent(&format!("ack {jobs}")),
        id(&format!("receive {jobs}"))
    );
    assert_eq!(parent(&reply), id(&format!("process {jobs}")));
    assert_eq!(parent(&format!("receive {replies}")), id(&reply));
    worker.stop();
}

#[tokio::test]
async fn spans_carry_the_messaging_conventions_attributes_and_kinds() {
    let spans = Spans::install();
    let bus = bus();
    let topic = unique("orders");
    let mut members = bus
        .topic(&topic)
        .subscribe_group("billing")
        .await
        .expect("subscribe");
    let root = tracing::info_span!("test");
    let trace = trace_id(&root);
    let message = Message::new("{}")
        .with_id("m-1")
        .with_header("correlation-id", "c-9");
    let orders = bus.topic(&topic);
    root.in_scope(|| orders.publish_message(message))
        .await
        .expect("publish");
    let order = next(&mut members, "the order").await;
    order.nack(false).await.expect("nack");
    drop(root);

    let all = spans.wait_for(trace, 4).await;
    let system = bus.capabilities().system;
    let publish = named(&all, &format!("publish {topic}"));
    assert_eq!(publish.span_kind, SpanKind::Producer);
    for (key, value) in [
        ("messaging.system", system),
        ("messaging.destination.name", topic.as_str()),
        ("messaging.operation.name", "publish"),
        ("messaging.operation.type", "send"),
        ("messaging.message.id", "m-1"),
        ("messaging.message.conversation_id", "c-9"),
    ] {
        assert_eq!(
            attribute(publish, key).as_deref(),
            Some(value),
            "publish {key}"
        );
    }
    let receive = named(&all, &format!("receive {topic}"));
    assert_eq!(receive.span_kind, SpanKind::Consumer);
    for (key, value) in [
        ("messaging.system", system),
        ("messaging.destination.name", topic.as_str()),
        ("messaging.consumer.group.name", "billing"),
        ("messaging.operation.type", "receive"),
        ("messaging.message.id", "m-1"),
    ] {
        assert_eq!(
            attribute(receive, key).as_deref(),
            Some(value),
            "receive {key}"
        );
    }
    let nack = named(&all, &format!("nack {topic}"));
    assert_eq!(
        attribute(nack, "messaging.operation.type").as_deref(),
        Some("settle")
    );
}

#[tokio::test]
async fn a_foreign_producers_traceparent_is_continued() {
    let spans = Spans::install();
    let bus = bus();
    let topic = unique("foreign");
    let mut sub = bus.topic(&topic).subscribe().await.expect("subscribe");
    // What an OpenTelemetry-instrumented producer of another language sends.
    let (trace, parent) = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");
    let traceparent = format!("00-{trace}-{parent}-01");
    // Straight to the broker, as another client publishes.
    let name = TopicName::new(topic.as_str()).expect("a topic name");
    let message = Message::new("x").with_header("traceparent", traceparent.clone());
    let publisher = bus.backend().publisher(&name).expect("a publisher");
    publisher
        .publish(message, PublishOptions::default())
        .await
        .expect("publish");
    let delivery = next(&mut sub, "the message").await;
    assert_eq!(delivery.header("traceparent"), Some(traceparent.as_str()));
    assert_eq!(trace_id(delivery.span()).to_string(), trace);
    let receive = span_id(delivery.span());
    drop(delivery);
    let trace = TraceId::from_hex(trace).expect("a trace id");
    let all = spans.wait_for(trace, 1).await;
    let span = named(&all, &format!("receive {topic}"));
    assert_eq!(span.span_context.span_id(), receive);
    assert_eq!(span.parent_span_id.to_string(), parent);
    assert!(span.parent_span_is_remote);
}

#[test]
fn without_a_subscriber_nothing_is_added_to_messages() {
    // A thread of its own with a runtime of its own, and no subscriber there even if
    // another test installed the global one: set_default overrides it on this thread.
    std::thread::spawn(|| {
        let _none = tracing::subscriber::set_default(tracing::subscriber::NoSubscriber::default());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        runtime.block_on(async {
            let bus = bus();
            let topic = unique("plain");
            let mut sub = bus.topic(&topic).subscribe().await.expect("subscribe");
            bus.topic(&topic).publish(&1).await.expect("publish");
            let Some(Received::Message(delivery)) =
                tokio::time::timeout(Duration::from_secs(5), sub.next())
                    .await
                    .expect("in time")
            else {
                panic!("a message")
            };
            assert!(!delivery.has_metadata(), "{delivery:?}");
            assert!(delivery.span().is_disabled());
        });
    })
    .join()
    .expect("the thread");
}
