//! Route policy: what a verified token must also carry to use a route.
//!
//! Pure: takes the verified token and the current time, returns `Ok` or the rejection. Lifetime
//! and age rules come first because they make the token itself unacceptable (401); scope, client
//! and claim rules then decide authorisation (403). Matching is exact everywhere: `read:dat`
//! never satisfies `read:data`, and a claim rule never matches a prefix or a substring.

use crate::claims::ClaimPath;
use crate::reject::Rejection;
use crate::verify::Verified;
use serde_json::Value;
use std::sync::Arc;

/// A route's compiled policy.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// Every one of these scopes is required.
    pub scopes_all: Vec<String>,
    /// At least one of these scopes is required (when not empty).
    pub scopes_any: Vec<String>,
    /// The `scope` attribute of the 403 challenge, built once at compile time.
    pub scope_challenge: Arc<str>,
    /// Allowed client ids; `None` allows any client.
    pub clients: Option<Vec<String>>,
    /// Required claim values.
    pub claims: Vec<(ClaimPath, Value)>,
    /// Maximum `exp - iat`, seconds.
    pub max_lifetime: Option<i64>,
    /// Maximum `now - iat`, seconds.
    pub max_age: Option<i64>,
}

/// Applies `policy` to `token` at unix time `now`.
pub fn evaluate(policy: &Policy, token: &Verified, now: i64) -> Result<(), Rejection> {
    if let Some(max) = policy.max_lifetime {
        let iat = token.iat.ok_or(Rejection::LifetimeExceeded(
            "iat is required to bound token lifetime",
        ))?;
        if token.exp.saturating_sub(iat) > max {
            return Err(Rejection::LifetimeExceeded(
                "token lifetime exceeds this route's limit",
            ));
        }
    }
    if let Some(max) = policy.max_age {
        let iat = token
            .iat
            .ok_or(Rejection::TooOld("iat is required to bound token age"))?;
        if now.saturating_sub(iat) > max {
            return Err(Rejection::TooOld("token is older than this route allows"));
        }
    }
    let has = |s: &String| token.scopes.contains(s);
    let all_ok = policy.scopes_all.iter().all(has);
    let any_ok = policy.scopes_any.is_empty() || policy.scopes_any.iter().any(has);
    if !(all_ok && any_ok) {
        return Err(Rejection::InsufficientScope(Arc::clone(
            &policy.scope_challenge,
        )));
    }
    if let Some(allowed) = &policy.clients {
        match &token.client {
            Some(c) if allowed.iter().any(|a| a == c) => {}
            _ => return Err(Rejection::ClientNotAllowed),
        }
    }
    for (path, want) in &policy.claims {
        let ok = match path.lookup(&token.claims) {
            Some(Value::Array(items)) => items.contains(want),
            Some(v) => v == want,
            None => false,
        };
        if !ok {
            return Err(Rejection::ClaimMismatch);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
