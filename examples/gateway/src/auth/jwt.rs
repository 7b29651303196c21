//! JWT verification with HS256 and RS256 keys from the configuration.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::{Map, Value};

use super::Identity;
use crate::config::AuthConfig;

/// Checks tokens: signature with the key of the token's algorithm, then the times
/// (`exp`, `nbf`, `iat`) and, where configured, the audience.
pub(crate) struct Verifier {
    keys: Vec<(Algorithm, DecodingKey)>,
    user_claim: String,
    leeway: u64,
    audience: Option<String>,
}

impl Verifier {
    /// Loads the configured keys.
    pub(crate) fn new(config: &AuthConfig) -> Result<Verifier, String> {
        let mut keys = Vec::new();
        if let Some(secret) = &config.hs256_secret {
            keys.push((
                Algorithm::HS256,
                DecodingKey::from_secret(secret.as_bytes()),
            ));
        }
        if let Some(path) = &config.rs256_public_key {
            let pem = std::fs::read(path)
                .map_err(|e| format!("cannot read RS256 key {}: {e}", path.display()))?;
            let key = DecodingKey::from_rsa_pem(&pem)
                .map_err(|e| format!("RS256 key {}: {e}", path.display()))?;
            keys.push((Algorithm::RS256, key));
        }
        Ok(Verifier {
            keys,
            user_claim: config.user_claim.clone(),
            leeway: config.leeway_seconds,
            audience: config.audience.clone(),
        })
    }

    /// The identity in `token`, or why it is refused (a sentence for the client).
    pub(crate) fn verify(&self, token: Option<&str>) -> Result<Identity, String> {
        let token = token
            .filter(|t| !t.is_empty())
            .ok_or("missing token: pass it as ?jwt=")?;
        let header = jsonwebtoken::decode_header(token).map_err(|e| explain(e.kind()))?;
        // Only the algorithm a key was configured for: a token cannot pick HS256 with
        // the RSA public key as the secret.
        let (alg, key) = self
            .keys
            .iter()
            .find(|(alg, _)| *alg == header.alg)
            .ok_or_else(|| format!("invalid token: algorithm {:?} is not accepted", header.alg))?;
        let mut validation = Validation::new(*alg);
        validation.leeway = self.leeway;
        validation.set_required_spec_claims(&["exp"]);
        validation.validate_nbf = true;
        match &self.audience {
            Some(audience) => validation.set_audience(&[audience]),
            None => validation.validate_aud = false,
        }
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, key, &validation)
            .map_err(|e| explain(e.kind()))?;
        // jsonwebtoken leaves `iat` alone: a token issued in the future was made with a
        // wrong clock, or to outlive its `exp`'s intent.
        let issued = data.claims.get("iat").and_then(Value::as_u64);
        if issued.is_some_and(|iat| iat > now().saturating_add(self.leeway)) {
            return Err("invalid token: issued in the future (`iat`)".to_owned());
        }
        let user = match data.claims.get(&self.user_claim) {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => {
                return Err(format!(
                    "invalid token: no `{}` claim names the user",
                    self.user_claim
                ))
            }
        };
        Ok(Identity {
            user,
            claims: data.claims,
            token: Arc::from(token),
        })
    }
}

fn explain(kind: &ErrorKind) -> String {
    let why = match kind {
        ErrorKind::ExpiredSignature => "expired".to_owned(),
        ErrorKind::InvalidSignature => "bad signature".to_owned(),
        ErrorKind::ImmatureSignature => "not valid yet (`nbf`)".to_owned(),
        ErrorKind::InvalidAudience => "not for this audience (`aud`)".to_owned(),
        ErrorKind::MissingRequiredClaim(claim) => format!("no `{claim}` claim"),
        ErrorKind::InvalidAlgorithm => "algorithm does not match the key".to_owned(),
        _ => "malformed".to_owned(),
    };
    format!("invalid token: {why}")
}

/// Signs `claims` with HS256, for the demo's sample token.
pub(crate) fn sign_hs256(secret: &str, claims: &Map<String, Value>) -> Result<String, String> {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .map_err(|e| format!("cannot sign the demo token: {e}"))
}

/// Seconds since the Unix epoch, the unit of JWT times.
pub(crate) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verifier(audience: Option<&str>) -> Verifier {
        let config = AuthConfig {
            hs256_secret: Some("secret".to_owned()),
            rs256_public_key: None,
            user_claim: "sub".to_owned(),
            leeway_seconds: 0,
            audience: audience.map(str::to_owned),
        };
        Verifier::new(&config).expect("a verifier")
    }

    fn token(claims: Value) -> String {
        let mut claims = claims.as_object().cloned().unwrap_or_default();
        claims.insert("exp".into(), Value::from(now() + 60));
        sign_hs256("secret", &claims).expect("a token")
    }

    #[test]
    fn a_configured_audience_must_be_named() {
        let checked = verifier(Some("gateway"));
        let ours = token(serde_json::json!({"sub": "alice", "aud": "gateway"}));
        assert_eq!(checked.verify(Some(&ours)).expect("ours").user, "alice");
        let theirs = token(serde_json::json!({"sub": "alice", "aud": "billing"}));
        let Err(refused) = checked.verify(Some(&theirs)) else {
            panic!("a token for another audience was accepted");
        };
        assert!(refused.contains("not for this audience"), "{refused}");
        let unchecked = verifier(None);
        assert!(unchecked.verify(Some(&theirs)).is_ok());
    }
}
