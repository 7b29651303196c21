//! URLs `connect` refuses, and what its errors say (never a password), without a
//! broker: every case here fails before any I/O.

use pubsub_connect::connect;
use pubsub_core::Error;

/// The reason `connect(url)` gives for refusing `url`, which must be a bad URL.
async fn refusal(url: &str) -> String {
    match connect(url).await {
        Err(Error::InvalidUrl(reason)) => reason,
        Err(other) => panic!("{url}: expected InvalidUrl, got {other:?}"),
        Ok(bus) => panic!("{url}: expected InvalidUrl, got a bus {bus:?}"),
    }
}

#[tokio::test]
async fn a_url_without_a_scheme_is_refused() {
    for url in ["", "localhost", "127.0.0.1:6379", "memory:"] {
        assert!(refusal(url).await.contains("scheme"), "{url}");
    }
}

#[tokio::test]
async fn an_unknown_scheme_is_refused_by_name() {
    let reason = refusal("kafka://localhost:9092").await;
    assert!(reason.contains("kafka://"), "{reason}");
    assert!(reason.contains("amqp://"), "{reason}");
}

#[tokio::test]
async fn a_memory_url_takes_no_host_or_options() {
    for url in ["memory://host:1", "memory://a/b", "memory://?lazy=true"] {
        assert!(refusal(url).await.contains("memory://NAME"), "{url}");
    }
}

#[cfg(any(feature = "redis", feature = "amqp"))]
#[tokio::test]
async fn bad_options_are_refused_before_connecting() {
    // Port 1: were any of these to reach the network, it would fail differently.
    let amqp = "amqp://guest:guest@127.0.0.1:1/%2f";
    let redis = "redis://127.0.0.1:1/";
    let mut cases = vec![];
    if cfg!(feature = "amqp") {
        cases.extend([
            (format!("{amqp}?routing=direct"), "routing=fanout"),
            (format!("{amqp}?lazy=maybe"), "true or false"),
            (format!("{amqp}?exchange="), "needs a name"),
            (
                format!("{amqp}?connect_timeout=soon"),
                "connect_timeout=soon",
            ),
            (format!("{amqp}?routng=fanout"), "unknown option `routng`"),
            (format!("{amqp}?mode=streams"), "redis://"),
            (
                format!("{amqp}?heartbeat=10&protocol=resp3"),
                "unknown option `protocol`",
            ),
        ]);
    }
    if cfg!(feature = "redis") {
        cases.extend([
            (format!("{redis}?routing=fanout"), "amqp://"),
            (format!("{redis}?exchange=wf"), "amqp://"),
            (format!("{redis}?connect_timeout=1s"), "amqp://"),
            (format!("{redis}?lazy=yes"), "true or false"),
            (format!("{redis}?protocl=resp3"), "unknown option `protocl`"),
            (
                format!("{redis}?heartbeat=10"),
                "unknown option `heartbeat`",
            ),
        ]);
    }
    for (url, hint) in cases {
        let reason = refusal(&url).await;
        assert!(reason.contains(hint), "{url}: {reason}");
    }
}

#[tokio::test]
async fn errors_never_quote_a_password() {
    let mut urls = vec![
        "guest:s3cret@localhost".to_owned(),
        "kafka://guest:s3cret@localhost".to_owned(),
        "guest:s3cret@host://x".to_owned(),
        "memory://guest:s3cret@local".to_owned(),
    ];
    if cfg!(feature = "amqp") {
        urls.extend([
            "amqp://guest:s3cret@localhost/%2f?routing=direct".to_owned(),
            "amqp://guest:s3cret@localhost/%2f?lazy=maybe".to_owned(),
            "amqp://guest:s3cret@localhost/%2f?routng=fanout&pass=s3cret".to_owned(),
            "amqp://guest:s3cret@localhost:notaport/%2f".to_owned(),
        ]);
    }
    if cfg!(feature = "redis") {
        urls.extend([
            "redis://:s3cret@localhost/?exchange=wf".to_owned(),
            "redis://:s3cret@localhost:notaport/".to_owned(),
            "redis://user:s3cret@localhost/notadb".to_owned(),
        ]);
    }
    for url in urls {
        let error = connect(&url)
            .await
            .expect_err(&format!("{url} is not a usable URL"));
        for text in [error.to_string(), format!("{error:?}")] {
            assert!(!text.contains("s3cret"), "{url}: {text}");
        }
    }
}

#[cfg(not(feature = "redis"))]
#[tokio::test]
async fn redis_without_its_feature_names_the_feature() {
    let reason = refusal("redis://127.0.0.1/").await;
    assert!(reason.contains("`redis` feature"), "{reason}");
}

#[cfg(not(feature = "amqp"))]
#[tokio::test]
async fn amqp_without_its_feature_names_the_feature() {
    let reason = refusal("amqps://guest:guest@127.0.0.1/%2f").await;
    assert!(reason.contains("`amqp` feature"), "{reason}");
}
