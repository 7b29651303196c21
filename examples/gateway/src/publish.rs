//! `POST /publish`: lets holders of the configured claim publish through the gateway,
//! so that the demo and the tests can feed an in-process bus from outside.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use pubsub_core::Message;
use serde::Deserialize;

use crate::state::AppState;
use crate::ws::TokenQuery;

/// One message to publish.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Publication {
    ex: String,
    key: String,
    msg: serde_json::Value,
    #[serde(default)]
    headers: BTreeMap<String, String>,
}

/// One publication or an array of them, published in order.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum Batch {
    One(Publication),
    Many(Vec<Publication>),
}

/// Publishes the batch in order: 204 when all were accepted, otherwise the error and
/// how many went out before it.
pub(crate) async fn publish(
    State(state): State<Arc<AppState>>,
    Query(query): Query<TokenQuery>,
    Json(batch): Json<Batch>,
) -> Response {
    let identity = match state.verifier.verify(query.jwt.as_deref()) {
        Ok(identity) => identity,
        Err(reason) => return (StatusCode::UNAUTHORIZED, reason).into_response(),
    };
    let allowed = state
        .publishers
        .as_ref()
        .is_some_and(|p| identity.claim_holds(&p.claim, &p.value));
    if !allowed {
        let message = "publishing needs the claim named in the [publish] section";
        return (StatusCode::FORBIDDEN, message).into_response();
    }
    let batch = match batch {
        Batch::One(one) => vec![one],
        Batch::Many(many) => many,
    };
    for (done, p) in batch.into_iter().enumerate() {
        let Some(exchange) = state.exchanges.get(&p.ex) else {
            let message = format!("unknown exchange {:?} after {done} published", p.ex);
            return (StatusCode::BAD_REQUEST, message).into_response();
        };
        let mut message = match Message::json(&p.msg) {
            Ok(message) => message,
            Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
        };
        for (k, v) in p.headers {
            message = message.with_header(k, v);
        }
        if let Err(e) = exchange.bus.topic(&p.key).publish_message(message).await {
            let status = match e {
                pubsub_core::Error::InvalidTopic { .. }
                | pubsub_core::Error::PayloadTooLarge { .. } => StatusCode::BAD_REQUEST,
                _ => StatusCode::BAD_GATEWAY,
            };
            return (status, format!("{e} (after {done} published)")).into_response();
        }
    }
    StatusCode::NO_CONTENT.into_response()
}
