//! Per-exchange access policies: may this user bind to this key?
//!
//! A key may hold `*` and `#`. A policy must hold for every topic the pattern can
//! match, not just for one, so wildcards are judged before anything else:
//! - `literal_segments = n`: the first `n` segments must be literal, so an HTTP check
//!   that answers for `task.<id>.#` is never asked about `task.*.#` or `#`.
//! - `claim`: the checked segment must be a literal found in the claim, and no `#`
//!   may come before it (a `#` there would let the segment slide to another place).
//!
//! Messages are then only those the requested pattern matches, so a bind never sees
//! more than the key that was checked.

use std::time::Duration;

use pubsub_core::name::Segment;
use pubsub_core::Pattern;

use crate::auth::Identity;
use crate::config::{AccessKind, ExchangeConfig};

/// What an exchange checks.
#[derive(Debug)]
enum Rule {
    Public,
    Claim { claim: String, segment: usize },
    Http { url: reqwest::Url },
}

/// The access policy of one exchange.
#[derive(Debug)]
pub(crate) struct Policy {
    rule: Rule,
    literal_segments: usize,
}

/// Why a bind was refused: a code for programs and a sentence for people.
#[derive(Debug)]
pub(crate) struct Denial {
    pub(crate) code: &'static str,
    pub(crate) message: String,
}

impl Denial {
    fn new(code: &'static str, message: impl Into<String>) -> Self {
        Denial {
            code,
            message: message.into(),
        }
    }
}

impl Policy {
    /// The policy an exchange's configuration describes.
    pub(crate) fn new(name: &str, config: &ExchangeConfig) -> Result<Policy, String> {
        let rule = match config.access {
            AccessKind::Public => Rule::Public,
            AccessKind::Claim => Rule::Claim {
                claim: config.claim.clone().unwrap_or_default(),
                segment: config.segment,
            },
            AccessKind::Http => {
                let url = config.url.as_deref().unwrap_or_default();
                let url = reqwest::Url::parse(url)
                    .ok()
                    .filter(|u| !u.cannot_be_a_base())
                    .ok_or_else(|| {
                        format!("exchange {name:?}: url {url:?} is not an http(s) URL")
                    })?;
                Rule::Http { url }
            }
        };
        Ok(Policy {
            rule,
            literal_segments: config.literal_segments,
        })
    }

    /// A short description for the startup banner.
    pub(crate) fn describe(&self) -> String {
        match &self.rule {
            Rule::Public => "public".to_owned(),
            Rule::Claim { claim, segment } => format!("claim {claim} at segment {segment}"),
            Rule::Http { url } => format!("http check {url}"),
        }
    }

    /// Whether `who` may bind to `key`.
    pub(crate) async fn check(
        &self,
        http: &reqwest::Client,
        timeout: Duration,
        who: &Identity,
        key: &Pattern,
    ) -> Result<(), Denial> {
        let segments = key.segments();
        let literal = |s: &Segment| matches!(s, Segment::Literal(_));
        if !segments.iter().take(self.literal_segments).all(literal) {
            return Err(Denial::new(
                "denied",
                format!(
                    "the first {} segments of a key on this exchange must be literal, not `*` or `#`",
                    self.literal_segments
                ),
            ));
        }
        match &self.rule {
            Rule::Public => Ok(()),
            Rule::Claim { claim, segment } => check_claim(who, segments, claim, *segment),
            Rule::Http { url } => check_http(http, timeout, url, who, key).await,
        }
    }
}

fn check_claim(who: &Identity, segments: &[Segment], claim: &str, at: usize) -> Result<(), Denial> {
    let slides = segments.iter().take(at).any(|s| *s == Segment::Many);
    match segments.get(at) {
        Some(Segment::Literal(value)) if !slides => {
            if who.claim_holds(claim, value) {
                Ok(())
            } else {
                Err(Denial::new(
                    "denied",
                    format!("{value:?} is not in your token's `{claim}`"),
                ))
            }
        }
        _ => Err(Denial::new(
            "denied",
            format!("key segment {at} must be a literal value of your `{claim}` claim"),
        )),
    }
}

/// brainlife's `checkaccess`: GET `<url>/<key>` with the user's token; allowed when
/// the answer is 200 with `{"status":"ok"}`.
async fn check_http(
    http: &reqwest::Client,
    timeout: Duration,
    base: &reqwest::Url,
    who: &Identity,
    key: &Pattern,
) -> Result<(), Denial> {
    // A URL cannot carry these as a path segment (they mean "here" and "up", written
    // plainly or as %2E): asked, the check would be asked about its bare URL.
    if matches!(key.as_str(), "." | "..") {
        return Err(Denial::new(
            "denied",
            format!(
                "the key {:?} cannot be put to the exchange's access check",
                key.as_str()
            ),
        ));
    }
    let mut url = base.clone();
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty().push(key.as_str());
    }
    let failed =
        |e: reqwest::Error| Denial::new("check_failed", format!("access check failed: {e}"));
    let response = http
        .get(url)
        .bearer_auth(&who.token)
        .timeout(timeout)
        .send()
        .await
        .map_err(failed)?;
    let status = response.status();
    let body: serde_json::Value = if status.is_success() {
        response.json().await.map_err(failed)?
    } else {
        serde_json::Value::Null
    };
    if body["status"] == "ok" {
        Ok(())
    } else {
        Err(Denial::new(
            "denied",
            format!("the exchange's access check refused this key (HTTP {status})"),
        ))
    }
}
