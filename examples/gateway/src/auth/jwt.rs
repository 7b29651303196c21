//! JWT verification with HS256 and RS256 keys from the configuration.

use std::sync::Arc;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::{Map, Value};

use super::Identity;
use crate::config::AuthConfig;

/// Checks tokens: signature with the key of the token's algorithm, then expiry.
pub(crate) struct Verifier {
    keys: Vec<(Algorithm, DecodingKey)>,
    user_claim: String,
    leeway: u64,
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
        validation.validate_aud = false;
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, key, &validation)
            .map_err(|e| explain(e.kind()))?;
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
        ErrorKind::ImmatureSignature => "not valid yet".to_owned(),
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
