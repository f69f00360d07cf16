//! Unit tests for `reject`: every denial's status, challenge, body and metric reason.
#![allow(clippy::unwrap_used)]

use super::*;
use serde_json::Value;
use std::collections::HashSet;

/// What the challenge of a response must look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Challenge {
    None,
    /// Exactly `Bearer realm="tokengate"`.
    Bare,
    /// `Bearer realm="tokengate", error="<code>", error_description="..."`.
    Error(&'static str),
}

/// One of every variant, with its expected status, challenge, body `error` and reason.
fn table() -> Vec<(Rejection, u16, Challenge, &'static str, Reason)> {
    use Challenge as C;
    use Rejection::*;
    vec![
        (
            BadPath(PathError::AboveRoot),
            400,
            C::None,
            "invalid_request",
            Reason::InvalidRequest,
        ),
        (
            BadTarget("more than one Host header"),
            400,
            C::None,
            "invalid_request",
            Reason::InvalidRequest,
        ),
        (
            HeadersTooLarge("too many header fields"),
            431,
            C::None,
            "invalid_request",
            Reason::InvalidRequest,
        ),
        (NoRoute, 404, C::None, "not_found", Reason::NoRoute),
        (
            MissingToken,
            401,
            C::Bare,
            "unauthorized",
            Reason::MissingToken,
        ),
        (
            BadAuthorization("Authorization scheme must be Bearer"),
            400,
            C::Error("invalid_request"),
            "invalid_request",
            Reason::InvalidRequest,
        ),
        (
            TokenTooLarge,
            400,
            C::Error("invalid_request"),
            "invalid_request",
            Reason::InvalidRequest,
        ),
        (
            MalformedToken("token has no signature"),
            401,
            C::Error("invalid_token"),
            "invalid_token",
            Reason::MalformedToken,
        ),
        (
            AlgorithmNotAllowed,
            401,
            C::Error("invalid_token"),
            "invalid_token",
            Reason::BadSignature,
        ),
        (
            BadSignature,
            401,
            C::Error("invalid_token"),
            "invalid_token",
            Reason::BadSignature,
        ),
        (
            UnknownKey,
            401,
            C::Error("invalid_token"),
            "invalid_token",
            Reason::UnknownKey,
        ),
        (
            WrongIssuer,
            401,
            C::Error("invalid_token"),
            "invalid_token",
            Reason::WrongIssuer,
        ),
        (
            WrongAudience,
            401,
            C::Error("invalid_token"),
            "invalid_token",
            Reason::WrongAudience,
        ),
        (
            WrongType,
            401,
            C::Error("invalid_token"),
            "invalid_token",
            Reason::WrongType,
        ),
        (
            Expired,
            401,
            C::Error("invalid_token"),
            "invalid_token",
            Reason::Expired,
        ),
        (
            NotYetValid,
            401,
            C::Error("invalid_token"),
            "invalid_token",
            Reason::NotYetValid,
        ),
        (
            IssuedInFuture,
            401,
            C::Error("invalid_token"),
            "invalid_token",
            Reason::NotYetValid,
        ),
        (
            LifetimeExceeded("token lifetime exceeds this route's limit"),
            401,
            C::Error("invalid_token"),
            "invalid_token",
            Reason::LifetimeExceeded,
        ),
        (
            TooOld("token is older than this route allows"),
            401,
            C::Error("invalid_token"),
            "invalid_token",
            Reason::TooOld,
        ),
        (
            KeysUnavailable,
            503,
            C::None,
            "temporarily_unavailable",
            Reason::KeysUnavailable,
        ),
        (
            InsufficientScope("read:data write:data".into()),
            403,
            C::Error("insufficient_scope"),
            "insufficient_scope",
            Reason::InsufficientScope,
        ),
        (
            ClientNotAllowed,
            403,
            C::None,
            "access_denied",
            Reason::ClientNotAllowed,
        ),
        (
            ClaimMismatch,
            403,
            C::None,
            "access_denied",
            Reason::ClaimMismatch,
        ),
        (
            UpstreamUnavailable,
            502,
            C::None,
            "bad_gateway",
            Reason::UpstreamError,
        ),
        (
            UpstreamTimeout,
            504,
            C::None,
            "gateway_timeout",
            Reason::UpstreamError,
        ),
        (
            HeaderTimeout,
            408,
            C::None,
            "invalid_request",
            Reason::HeaderTimeout,
        ),
    ]
}

/// Fails to compile when a variant is added, so that `table` is extended with it.
fn _every_variant_is_in_the_table(r: &Rejection) {
    use Rejection::*;
    match r {
        BadPath(_) | BadTarget(_) | HeadersTooLarge(_) | HeaderTimeout | NoRoute | MissingToken
        | BadAuthorization(_) | TokenTooLarge | MalformedToken(_) | AlgorithmNotAllowed
        | BadSignature | UnknownKey | WrongIssuer | WrongAudience | WrongType | Expired
        | NotYetValid | IssuedInFuture | LifetimeExceeded(_) | TooOld(_) | KeysUnavailable
        | InsufficientScope(_) | ClientNotAllowed | ClaimMismatch | UpstreamUnavailable
        | UpstreamTimeout => {}
    }
}

fn body_json(resp: &Response) -> serde_json::Map<String, Value> {
    match serde_json::from_slice(&resp.body) {
        Ok(Value::Object(m)) => m,
        other => panic!("body is not a JSON object: {other:?}"),
    }
}

/// Parses `Bearer k="v", k="v"` into its attributes, failing on anything RFC 6750 would not
/// accept: a quote or backslash inside a value, or text outside the quotes.
fn parse_challenge(c: &str) -> Vec<(String, String)> {
    let rest = c
        .strip_prefix("Bearer ")
        .unwrap_or_else(|| panic!("not a Bearer challenge: {c}"));
    rest.split(", ")
        .map(|param| {
            let (k, v) = param
                .split_once('=')
                .unwrap_or_else(|| panic!("bad param {param:?} in {c}"));
            let inner = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or_else(|| panic!("unquoted value {v:?} in {c}"));
            assert!(
                !inner.contains('"') && !inner.contains('\\'),
                "unsafe value {inner:?} in {c}"
            );
            assert!(
                k.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "bad name {k:?}"
            );
            (k.to_string(), inner.to_string())
        })
        .collect()
}

#[test]
fn every_rejection_has_its_status_challenge_and_body() {
    for (rejection, status, challenge, error, _) in table() {
        let resp = rejection.respond();
        assert_eq!(resp.status, status, "{rejection:?}");
        let body = body_json(&resp);
        assert_eq!(body.len(), 2, "{rejection:?}: {body:?}");
        assert_eq!(body["error"], error, "{rejection:?}");
        let description = body["error_description"].as_str().unwrap();
        assert!(!description.is_empty(), "{rejection:?}");
        match challenge {
            Challenge::None => assert_eq!(resp.challenge, None, "{rejection:?}"),
            Challenge::Bare => assert_eq!(
                resp.challenge.as_deref(),
                Some("Bearer realm=\"tokengate\"")
            ),
            Challenge::Error(code) => {
                let c = resp
                    .challenge
                    .as_deref()
                    .unwrap_or_else(|| panic!("{rejection:?} has no challenge"));
                let params = parse_challenge(c);
                assert_eq!(params[0], ("realm".into(), "tokengate".into()), "{c}");
                assert_eq!(params[1], ("error".into(), code.into()), "{c}");
                assert_eq!(
                    params[2],
                    ("error_description".into(), description.into()),
                    "{c}"
                );
                assert!(c.contains(&format!("error=\"{code}\"")), "{c}");
                assert_eq!(code, error, "challenge and body disagree for {rejection:?}");
            }
        }
    }
}

#[test]
fn missing_token_challenge_is_exactly_the_realm() {
    let resp = Rejection::MissingToken.respond();
    assert_eq!(resp.status, 401);
    assert_eq!(
        resp.challenge.as_deref(),
        Some("Bearer realm=\"tokengate\"")
    );
    assert!(!resp.challenge.unwrap().contains("error="));
}

#[test]
fn insufficient_scope_challenge_names_the_required_scopes() {
    let resp = Rejection::InsufficientScope("read:data write:data".into()).respond();
    let c = resp.challenge.unwrap();
    assert!(c.ends_with(", scope=\"read:data write:data\""), "{c}");
    assert!(c.contains("error=\"insufficient_scope\""), "{c}");
    let params = parse_challenge(&c);
    assert_eq!(
        params.last().unwrap(),
        &("scope".to_string(), "read:data write:data".to_string())
    );
}

#[test]
fn only_insufficient_scope_has_a_scope_attribute() {
    for (rejection, ..) in table() {
        let has_scope = rejection
            .respond()
            .challenge
            .is_some_and(|c| c.contains("scope=\""));
        assert_eq!(
            has_scope,
            matches!(rejection, Rejection::InsufficientScope(_)),
            "{rejection:?}"
        );
    }
}

#[test]
fn only_keys_unavailable_asks_for_a_retry() {
    for (rejection, ..) in table() {
        let want = matches!(rejection, Rejection::KeysUnavailable).then_some(KEYS_RETRY_AFTER);
        assert_eq!(rejection.respond().retry_after, want, "{rejection:?}");
    }
    assert_eq!(Rejection::KeysUnavailable.respond().retry_after, Some(5));
}

#[test]
fn detail_texts_reach_the_body_and_challenge() {
    let cases = [
        Rejection::MalformedToken("payload is not a JSON object"),
        Rejection::LifetimeExceeded("iat is required to bound token lifetime"),
        Rejection::TooOld("iat is required to bound token age"),
        Rejection::BadAuthorization("more than one Authorization header"),
    ];
    for r in cases {
        let detail = match &r {
            Rejection::MalformedToken(d)
            | Rejection::LifetimeExceeded(d)
            | Rejection::TooOld(d)
            | Rejection::BadAuthorization(d) => *d,
            _ => unreachable!(),
        };
        let resp = r.respond();
        assert_eq!(body_json(&resp)["error_description"], detail);
        assert!(resp
            .challenge
            .unwrap()
            .contains(&format!("error_description=\"{detail}\"")));
    }
}

#[test]
fn every_path_error_is_a_bad_request_with_its_description() {
    use PathError::*;
    for e in [
        NotAbsolute,
        BadEscape,
        EncodedSeparator,
        ForbiddenByte,
        InvalidUtf8,
        AboveRoot,
    ] {
        let resp = Rejection::BadPath(e).respond();
        assert_eq!(resp.status, 400);
        assert_eq!(resp.challenge, None);
        assert_eq!(body_json(&resp)["error_description"], e.describe());
    }
}

#[test]
fn body_is_json_even_with_awkward_descriptions() {
    let resp = Rejection::BadTarget("a \"quoted\" \\ detail\n").respond();
    assert_eq!(
        body_json(&resp)["error_description"],
        "a \"quoted\" \\ detail\n"
    );
}

#[test]
fn every_rejection_maps_to_its_reason() {
    for (rejection, _, _, _, reason) in table() {
        assert_eq!(rejection.reason(), reason, "{rejection:?}");
    }
}

#[test]
fn reason_labels_are_unique_snake_case_and_indexed() {
    let mut seen = HashSet::new();
    for (i, r) in Reason::ALL.iter().enumerate() {
        assert_eq!(r.index(), i, "{r:?}");
        let label = r.label();
        assert!(seen.insert(label), "duplicate label {label}");
        assert!(
            !label.is_empty() && label.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
            "{label}"
        );
    }
    assert_eq!(seen.len(), Reason::ALL.len());
}

#[test]
fn every_reason_a_rejection_produces_is_in_all() {
    for (rejection, ..) in table() {
        let r = rejection.reason();
        assert_eq!(Reason::ALL[r.index()], r, "{rejection:?}");
    }
}

#[test]
fn decision_labels() {
    for r in Reason::ALL {
        let want = match r {
            Reason::Ok => "allow",
            Reason::UpstreamError => "error",
            _ => "deny",
        };
        assert_eq!(r.decision(), want, "{r:?}");
    }
    assert_eq!(Reason::Ok.label(), "ok");
    assert_eq!(Reason::UpstreamError.label(), "upstream_error");
}

#[test]
fn responses_never_echo_more_than_static_text() {
    // The descriptions are static or config-derived; none should look like a token or a key.
    for (rejection, ..) in table() {
        let resp = rejection.respond();
        let text = String::from_utf8(resp.body).unwrap();
        assert!(!text.contains("eyJ"), "{text}");
        assert!(text.len() < 256, "{text}");
    }
}
