//! Denials as values, and the one place each becomes a status, a challenge, a JSON body and a
//! metric reason.
//!
//! The mapping is one exhaustive `match`, so a new denial cannot ship without a response. Bodies
//! and challenges carry only static text and config-derived scope names: never the token, key
//! material, claim values or internals.

use crate::path::PathError;
use std::sync::Arc;

/// Why a request was not forwarded (or, for upstream errors, not answered by the upstream).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    BadPath(PathError),
    /// The request target or Host is unusable (not origin-form, two Host headers, ...).
    BadTarget(&'static str),
    /// The request head exceeds a configured limit (RFC 6585 §5).
    HeadersTooLarge(&'static str),
    /// The request head did not arrive within `header_timeout` (slowloris).
    HeaderTimeout,
    NoRoute,
    MissingToken,
    /// `Authorization` present but not a single well-formed bearer credential.
    BadAuthorization(&'static str),
    TokenTooLarge,
    MalformedToken(&'static str),
    AlgorithmNotAllowed,
    BadSignature,
    UnknownKey,
    WrongIssuer,
    WrongAudience,
    WrongType,
    Expired,
    NotYetValid,
    IssuedInFuture,
    LifetimeExceeded(&'static str),
    TooOld(&'static str),
    KeysUnavailable,
    InsufficientScope(Arc<str>),
    ClientNotAllowed,
    ClaimMismatch,
    UpstreamUnavailable,
    UpstreamTimeout,
}

/// The metric `reason` label: a fixed, low-cardinality set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Ok,
    NoRoute,
    MissingToken,
    InvalidRequest,
    HeaderTimeout,
    MalformedToken,
    BadSignature,
    Expired,
    NotYetValid,
    WrongIssuer,
    WrongAudience,
    UnknownKey,
    WrongType,
    InsufficientScope,
    ClientNotAllowed,
    ClaimMismatch,
    LifetimeExceeded,
    TooOld,
    KeysUnavailable,
    UpstreamError,
}

impl Reason {
    pub const ALL: [Reason; 20] = [
        Reason::Ok,
        Reason::NoRoute,
        Reason::MissingToken,
        Reason::InvalidRequest,
        Reason::HeaderTimeout,
        Reason::MalformedToken,
        Reason::BadSignature,
        Reason::Expired,
        Reason::NotYetValid,
        Reason::WrongIssuer,
        Reason::WrongAudience,
        Reason::UnknownKey,
        Reason::WrongType,
        Reason::InsufficientScope,
        Reason::ClientNotAllowed,
        Reason::ClaimMismatch,
        Reason::LifetimeExceeded,
        Reason::TooOld,
        Reason::KeysUnavailable,
        Reason::UpstreamError,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Reason::Ok => "ok",
            Reason::NoRoute => "no_route",
            Reason::MissingToken => "missing_token",
            Reason::InvalidRequest => "invalid_request",
            Reason::HeaderTimeout => "header_timeout",
            Reason::MalformedToken => "malformed_token",
            Reason::BadSignature => "bad_signature",
            Reason::Expired => "expired",
            Reason::NotYetValid => "not_yet_valid",
            Reason::WrongIssuer => "wrong_issuer",
            Reason::WrongAudience => "wrong_audience",
            Reason::UnknownKey => "unknown_key",
            Reason::WrongType => "wrong_type",
            Reason::InsufficientScope => "insufficient_scope",
            Reason::ClientNotAllowed => "client_not_allowed",
            Reason::ClaimMismatch => "claim_mismatch",
            Reason::LifetimeExceeded => "lifetime_exceeded",
            Reason::TooOld => "too_old",
            Reason::KeysUnavailable => "keys_unavailable",
            Reason::UpstreamError => "upstream_error",
        }
    }

    /// The metric `decision` label.
    pub fn decision(self) -> &'static str {
        match self {
            Reason::Ok => "allow",
            Reason::UpstreamError => "error",
            _ => "deny",
        }
    }

    /// Position in [`Reason::ALL`], for per-route arrays of pre-resolved counters.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// A response to send instead of forwarding, free of any HTTP library type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// `WWW-Authenticate` value, when the denial is about the bearer credential.
    pub challenge: Option<String>,
    /// `Retry-After` seconds, for temporary failures.
    pub retry_after: Option<u32>,
    /// JSON `{"error": ..., "error_description": ...}`.
    pub body: Vec<u8>,
}

/// Seconds a client should wait before retrying while keys are unavailable.
pub const KEYS_RETRY_AFTER: u32 = 5;

const REALM: &str = "tokengate";

impl Rejection {
    pub fn reason(&self) -> Reason {
        use Rejection::*;
        match self {
            BadPath(_) | BadTarget(_) | HeadersTooLarge(_) | BadAuthorization(_)
            | TokenTooLarge => Reason::InvalidRequest,
            HeaderTimeout => Reason::HeaderTimeout,
            NoRoute => Reason::NoRoute,
            MissingToken => Reason::MissingToken,
            MalformedToken(_) => Reason::MalformedToken,
            AlgorithmNotAllowed | BadSignature => Reason::BadSignature,
            UnknownKey => Reason::UnknownKey,
            WrongIssuer => Reason::WrongIssuer,
            WrongAudience => Reason::WrongAudience,
            WrongType => Reason::WrongType,
            Expired => Reason::Expired,
            NotYetValid | IssuedInFuture => Reason::NotYetValid,
            LifetimeExceeded(_) => Reason::LifetimeExceeded,
            TooOld(_) => Reason::TooOld,
            KeysUnavailable => Reason::KeysUnavailable,
            InsufficientScope(_) => Reason::InsufficientScope,
            ClientNotAllowed => Reason::ClientNotAllowed,
            ClaimMismatch => Reason::ClaimMismatch,
            UpstreamUnavailable | UpstreamTimeout => Reason::UpstreamError,
        }
    }

    /// The response for this denial.
    pub fn respond(&self) -> Response {
        use Rejection::*;
        let invalid_token = |d: &str| {
            (
                401,
                Some(challenge("invalid_token", d, None)),
                "invalid_token",
                d.to_string(),
            )
        };
        let (status, challenge_value, error, description): (u16, Option<String>, &str, String) =
            match self {
                BadPath(e) => (400, None, "invalid_request", e.describe().to_string()),
                BadTarget(d) => (400, None, "invalid_request", d.to_string()),
                HeadersTooLarge(d) => (431, None, "invalid_request", d.to_string()),
                HeaderTimeout => (
                    408,
                    None,
                    "invalid_request",
                    "the request head did not arrive in time".into(),
                ),
                NoRoute => (
                    404,
                    None,
                    "not_found",
                    "no route matches this request".into(),
                ),
                MissingToken => (
                    401,
                    Some(format!("Bearer realm=\"{REALM}\"")),
                    "unauthorized",
                    "a bearer token is required".into(),
                ),
                BadAuthorization(d) => (
                    400,
                    Some(challenge("invalid_request", d, None)),
                    "invalid_request",
                    d.to_string(),
                ),
                TokenTooLarge => {
                    let d = "bearer token exceeds the size limit";
                    (
                        400,
                        Some(challenge("invalid_request", d, None)),
                        "invalid_request",
                        d.into(),
                    )
                }
                MalformedToken(d) => invalid_token(d),
                AlgorithmNotAllowed => {
                    invalid_token("token algorithm is not allowed for its issuer")
                }
                BadSignature => invalid_token("token signature is invalid"),
                UnknownKey => invalid_token("token signing key is unknown"),
                WrongIssuer => invalid_token("token issuer is not accepted here"),
                WrongAudience => invalid_token("token audience is not accepted"),
                WrongType => invalid_token("token type is not an access token"),
                Expired => invalid_token("token has expired"),
                NotYetValid => invalid_token("token is not valid yet"),
                IssuedInFuture => invalid_token("token is issued in the future"),
                LifetimeExceeded(d) | TooOld(d) => invalid_token(d),
                KeysUnavailable => (
                    503,
                    None,
                    "temporarily_unavailable",
                    "signing keys are not available yet".into(),
                ),
                InsufficientScope(scope) => {
                    let d = "token lacks a required scope";
                    (
                        403,
                        Some(challenge("insufficient_scope", d, Some(scope))),
                        "insufficient_scope",
                        d.into(),
                    )
                }
                ClientNotAllowed => (
                    403,
                    None,
                    "access_denied",
                    "client is not allowed on this route".into(),
                ),
                ClaimMismatch => (
                    403,
                    None,
                    "access_denied",
                    "token lacks a required claim value".into(),
                ),
                UpstreamUnavailable => (502, None, "bad_gateway", "upstream is unavailable".into()),
                UpstreamTimeout => (504, None, "gateway_timeout", "upstream timed out".into()),
            };
        Response {
            status,
            challenge: challenge_value,
            retry_after: matches!(self, KeysUnavailable).then_some(KEYS_RETRY_AFTER),
            body: body(error, &description),
        }
    }
}

fn challenge(error: &str, description: &str, scope: Option<&str>) -> String {
    let mut c =
        format!("Bearer realm=\"{REALM}\", error=\"{error}\", error_description=\"{description}\"");
    if let Some(s) = scope {
        c.push_str(&format!(", scope=\"{s}\""));
    }
    c
}

fn body(error: &str, description: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({ "error": error, "error_description": description }))
        .map(|mut b| {
            b.push(b'\n');
            b
        })
        .unwrap_or_else(|_| b"{\"error\":\"server_error\"}\n".to_vec())
}

#[cfg(test)]
mod tests;
