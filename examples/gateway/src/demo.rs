//! The demo: the page the gateway serves, the sample token and the ticker.

use std::time::Duration;

use axum::http::header;
use axum::response::IntoResponse;
use serde_json::{json, Value};

use crate::auth::{now, sign_hs256};
use crate::config::Config;
use crate::exchanges::Exchanges;

const PAGE: &str = include_str!("../index.html");
const SCRIPT: &str = include_str!("../app.js");

/// How long the sample token is valid.
const TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// `GET /`: the demo page.
pub(crate) async fn page() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], PAGE)
}

/// `GET /app.js`: the page's script.
pub(crate) async fn script() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        SCRIPT,
    )
}

/// The sample token of the demo section, signed with the HS256 secret.
pub(crate) fn sample_token(config: &Config) -> Option<Result<String, String>> {
    let demo = config.demo.as_ref()?;
    let Some(secret) = &config.auth.hs256_secret else {
        return Some(Err("the demo token needs [auth] hs256_secret".to_owned()));
    };
    let mut claims = demo.claims.clone();
    claims.insert("exp".into(), Value::from(now() + TOKEN_LIFETIME.as_secs()));
    Some(sign_hs256(secret, &claims))
}

/// Publishes `{"n":..,"at":..}` to the demo's tick key, so the page has something to show.
pub(crate) fn start_ticker(config: &Config, exchanges: &Exchanges) -> Result<(), String> {
    let Some(demo) = &config.demo else {
        return Ok(());
    };
    let Some(tick) = &demo.tick else {
        return Ok(());
    };
    let (ex, key) = tick
        .split_once(':')
        .ok_or_else(|| format!("demo tick {tick:?} is not exchange:key"))?;
    let exchange = exchanges
        .get(ex)
        .ok_or_else(|| format!("demo tick: unknown exchange {ex:?}"))?;
    let topic = exchange.bus.topic(key);
    let mut every = tokio::time::interval(Duration::from_secs(demo.tick_seconds.max(1)));
    tokio::spawn(async move {
        for n in 0u64.. {
            every.tick().await;
            if let Err(e) = topic.publish(&json!({"n": n, "at": now()})).await {
                tracing::warn!(error = %e, "demo tick not published");
            }
        }
    });
    Ok(())
}
