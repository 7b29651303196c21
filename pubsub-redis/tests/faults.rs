//! Faults against real servers, each test with a server of its own: restarts, kills,
//! a broker that is down, wrong passwords, killed connections.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pubsub_brokers::RedisServer;
use pubsub_core::testkit::support::{next, next_item, text, within};
use pubsub_core::{Error, Message, PubSub, Received, Signal, Subscription};
use pubsub_redis::RedisBackend;

async fn bus(server: &RedisServer, buffer: usize) -> PubSub {
    RedisBackend::builder(&server.url())
        .buffer(buffer)
        .publish_timeout(Duration::from_secs(10))
        .reconnect_backoff(Duration::from_millis(10), Duration::from_millis(200))
        .connect()
        .await
        .expect("connect")
        .into()
}

/// Reads `sub` until the message `"end"`; returns the other payloads and how many gap
/// signals came.
async fn collect_until_end(mut sub: Subscription) -> (HashSet<String>, usize) {
    let (mut seen, mut gaps) = (HashSet::new(), 0);
    loop {
        match next_item(&mut sub, "collect").await {
            Received::Message(d) => {
                let text = text(&d);
                if text == "end" {
                    return (seen, gaps);
                }
                seen.insert(text);
            }
            Received::Signal(Signal::Gap { .. }) => gaps += 1,
            Received::Signal(signal) => panic!("unexpected signal {signal}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_while_10_000_messages_are_published() {
    let server = Arc::new(RedisServer::start());
    let bus = bus(&server, 32 * 1024).await;
    let subs = [
        bus.topic("load.run").subscribe().await.unwrap(),
        bus.topic("load.*").subscribe().await.unwrap(),
        bus.topic("#").subscribe().await.unwrap(),
    ];
    let readers: Vec<_> = subs
        .into_iter()
        .map(|s| tokio::spawn(collect_until_end(s)))
        .collect();

    // The publisher that completes the 1000th publish kills the server on the spot
    // (SIGKILL: a SIGTERM is acted on only at redis' next cron tick), so the other
    // 9000 publishes are still to come, however the machine schedules the tasks.
    let published = Arc::new(AtomicUsize::new(0));
    let (killed, restart) = tokio::sync::oneshot::channel::<()>();
    let killed = Arc::new(Mutex::new(Some(killed)));
    let restarter = {
        let server = server.clone();
        tokio::spawn(async move {
            restart.await.expect("the server was killed");
            tokio::task::spawn_blocking(move || server.start_again())
                .await
                .unwrap();
            Instant::now()
        })
    };
    let publishers: Vec<_> = (0..10)
        .map(|task| {
            let (bus, published) = (bus.clone(), published.clone());
            let (server, killed) = (server.clone(), killed.clone());
            tokio::spawn(async move {
                let mut done = Vec::new();
                for seq in 0..1000 {
                    let text = format!("{task}:{seq}");
                    let result = bus
                        .topic("load.run")
                        .publish_message(Message::new(text.clone()))
                        .await;
                    done.push((text, result.is_ok(), Instant::now()));
                    if published.fetch_add(1, Ordering::Relaxed) + 1 == 1000 {
                        tokio::task::block_in_place(|| server.kill());
                        let _ = killed.lock().unwrap().take().map(|k| k.send(()));
                    }
                }
                done
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for p in publishers {
        outcomes.extend(within("publishers", p).await.unwrap());
    }
    let restarted = within("restart", restarter).await.unwrap();
    bus.topic("load.run")
        .publish_message(Message::new("end"))
        .await
        .expect("publish end");

    let must_arrive: Vec<&String> = outcomes
        .iter()
        .filter(|(_, ok, at)| *ok && *at > restarted)
        .map(|(text, ..)| text)
        .collect();
    assert!(
        !must_arrive.is_empty(),
        "the restart happened after every publish"
    );
    for reader in readers {
        let (seen, gaps) = within("readers", reader).await.unwrap();
        assert_eq!(gaps, 1, "one gap signal per subscription");
        let lost: Vec<_> = must_arrive.iter().filter(|t| !seen.contains(**t)).collect();
        assert!(
            lost.is_empty(),
            "{} of {} lost, e.g. {:?}",
            lost.len(),
            must_arrive.len(),
            &lost[..lost.len().min(5)]
        );
    }
}

/// Resumes after `trouble`: the subscription gets a gap signal, then new messages.
async fn survives(trouble: impl FnOnce(&RedisServer)) {
    let server = RedisServer::start();
    let bus = bus(&server, 64).await;
    let mut sub = bus.topic("idle.one").subscribe().await.unwrap();
    trouble(&server);
    match next_item(&mut sub, "gap signal").await {
        Received::Signal(Signal::Gap { reason }) => assert!(reason.contains("missed"), "{reason}"),
        other => panic!("expected a gap, got {other:?}"),
    }
    bus.topic("idle.one")
        .publish_message(Message::new("after"))
        .await
        .expect("publish");
    let d = next(&mut sub, "after the fault").await;
    assert_eq!(d.payload().as_ref(), b"after");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_subscriber_survives_a_killed_server() {
    survives(|server| {
        server.kill();
        server.start_again();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriber_survives_client_kill() {
    survives(|server| {
        let reply = server.command(&["CLIENT", "KILL", "TYPE", "pubsub"]);
        assert_eq!(reply, ":1\r\n", "one subscriber connection killed");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_during_an_outage_fails_after_its_timeout() {
    let server = RedisServer::start();
    let backend = RedisBackend::builder(&server.url())
        .publish_timeout(Duration::from_millis(500))
        .connect()
        .await
        .unwrap();
    let bus = PubSub::new(backend);
    let _sub = bus.topic("outage").subscribe().await.unwrap();
    server.kill();
    let started = Instant::now();
    let err = bus
        .topic("outage")
        .publish(&1)
        .await
        .expect_err("nobody to publish to");
    assert!(matches!(err, Error::Connection { .. }), "{err:?}");
    assert!(err.to_string().contains("unreachable"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_down_at_connect_is_refused_at_once() {
    let server = RedisServer::start();
    server.kill();
    let started = Instant::now();
    let err = RedisBackend::builder(&server.url())
        .connect_budget(Duration::from_secs(5))
        .connect()
        .await
        .expect_err("nobody listens");
    assert!(matches!(err, Error::Connection { .. }), "{err:?}");
    assert!(err.to_string().contains("refused"), "{err}");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(1), "{took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lazy_connect_keeps_what_was_asked_before_the_broker_came() {
    let server = RedisServer::start();
    server.kill();
    let bus = PubSub::new(RedisBackend::connect_lazy(&server.url()).unwrap());
    // A subscribe, then a publish, both before the broker is there (ESN's start-up).
    // The subscribe returns, and its stream says that Redis is unreachable.
    let mut sub = within("lazy subscribe", bus.topic("early.bird").subscribe())
        .await
        .expect("subscribed");
    match next_item(&mut sub, "the outage").await {
        Received::Signal(Signal::Gap { reason }) => {
            assert!(reason.contains("unreachable"), "{reason}")
        }
        other => panic!("expected word of the outage, got {other:?}"),
    }
    let publishing = {
        let bus = bus.clone();
        tokio::spawn(async move {
            let message = Message::new("published before the broker came");
            bus.topic("early.bird").publish_message(message).await
        })
    };
    server.start_again();
    within("lazy publish", publishing)
        .await
        .unwrap()
        .expect("published");
    // The publish waited for the subscription to be made, so it arrives (after the
    // gap of the connection's coming).
    let d = loop {
        match next_item(&mut sub, "lazy").await {
            Received::Message(d) => break d,
            Received::Signal(Signal::Gap { .. }) => {}
            Received::Signal(other) => panic!("unexpected signal {other}"),
        }
    };
    assert_eq!(d.payload().as_ref(), b"published before the broker came");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_is_an_auth_error_without_the_password() {
    let server = RedisServer::start_with(&["--requirepass", "s3cret-pw"]);
    let url = |credentials: &str| format!("redis://{credentials}@127.0.0.1:{}/", server.port());
    for wrong in [":not-it-pw", "default:not-it-pw"] {
        let err = RedisBackend::connect(&url(wrong))
            .await
            .expect_err("wrong password");
        assert!(matches!(err, Error::Auth(_)), "{err:?}");
        assert!(!format!("{err} {err:?}").contains("not-it-pw"), "{err:?}");
    }
    let backend = RedisBackend::connect(&url("default:s3cret-pw"))
        .await
        .expect("right password");
    assert!(!format!("{backend:?}").contains("s3cret-pw"), "{backend:?}");
    let bus = PubSub::new(backend);
    let mut sub = bus.topic("authed").subscribe().await.unwrap();
    bus.topic("authed")
        .publish_message(Message::new("ok"))
        .await
        .unwrap();
    assert_eq!(text(&next(&mut sub, "authed").await), "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_urls_are_invalid_url_errors() {
    for url in [
        "http://127.0.0.1/",
        "redis://",
        "not a url",
        "redis://u:pw-x@127.0.0.1:99999/",
    ] {
        let err = RedisBackend::connect(url).await.expect_err(url);
        assert!(matches!(err, Error::InvalidUrl(_)), "{url}: {err:?}");
        assert!(!err.to_string().contains("pw-x"), "{err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rediss_speaks_tls_and_fails_cleanly_against_a_plain_server() {
    let server = RedisServer::start();
    let url = format!("rediss://127.0.0.1:{}/", server.port());
    let err = RedisBackend::builder(&url)
        .connect_budget(Duration::from_millis(200))
        .connect()
        .await
        .expect_err("the server does not speak TLS");
    assert!(matches!(err, Error::Connection { .. }), "{err:?}");
}
