//! Unit tests for `policy`: exact scope, client and claim matching, lifetime and age boundaries,
//! and the order in which rules are applied.
#![allow(clippy::unwrap_used)]

use super::*;
use crate::issuer::{Issuer, KeySource};
use crate::jwks::KeyStore;
use crate::verify::Rendered;
use serde_json::{json, Map};
use std::path::PathBuf;
use std::time::Duration;

const NOW: i64 = 1_700_000_000;

fn issuer() -> Arc<Issuer> {
    Arc::new(Issuer {
        name: "t".into(),
        iss: "https://issuer.example/".into(),
        audiences: vec!["api".into()],
        algorithms: vec![jsonwebtoken::Algorithm::RS256],
        leeway: 30,
        scope_claims: vec!["scope".into()],
        client_claims: vec!["azp".into()],
        require_typ: None,
        source: KeySource::File(PathBuf::new()),
        refresh: Duration::from_secs(3600),
        fetch_timeout: Duration::from_secs(5),
        keys: Arc::new(KeyStore::default()),
        metrics: crate::metrics::Metrics::new().unwrap().issuer("t"),
    })
}

/// A verified token issued 10 s ago for 10 minutes, with these scopes (sorted here, as `verify`
/// guarantees), client and claims.
fn token(scopes: &[&str], client: Option<&str>, claims: Value) -> Verified {
    let scopes = scopes.iter().copied().collect();
    let claims: Map<String, Value> = match claims {
        Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    };
    Verified {
        issuer: issuer(),
        claims: claims.into(),
        exp: NOW + 590,
        iat: Some(NOW - 10),
        nbf: None,
        scopes,
        client: client.map(str::to_string),
        rendered: Rendered::default(),
    }
}

fn plain() -> Verified {
    token(&[], None, json!({}))
}

fn scoped(scopes: &[&str]) -> Verified {
    token(scopes, None, json!({}))
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn scope_policy(all: &[&str], any: &[&str]) -> Policy {
    let challenge: Vec<&str> = all.iter().chain(any).copied().collect();
    Policy {
        scopes_all: strings(all),
        scopes_any: strings(any),
        scope_challenge: challenge.join(" ").into(),
        ..Policy::default()
    }
}

fn claim_policy(rules: &[(&str, Value)]) -> Policy {
    Policy {
        claims: rules
            .iter()
            .map(|(n, v)| (ClaimPath::new(n), v.clone()))
            .collect(),
        ..Policy::default()
    }
}

#[test]
fn empty_policy_allows_any_verified_token() {
    assert_eq!(evaluate(&Policy::default(), &plain(), NOW), Ok(()));
}

#[test]
fn scopes_all_requires_every_scope_exactly() {
    let policy = scope_policy(&["read:data", "write:data"], &[]);
    let cases: &[(&[&str], bool)] = &[
        (&["read:data", "write:data"], true),
        (&["admin", "read:data", "write:data"], true),
        (&["read:data"], false),
        (&["write:data"], false),
        (&[], false),
        (&["read:dat", "write:data"], false),
        (&["read:data:x", "write:data"], false),
        (&["READ:DATA", "write:data"], false),
        (&["read:data write:data"], false),
        (&["read", "data", "write:data"], false),
    ];
    for (scopes, ok) in cases {
        let got = evaluate(&policy, &scoped(scopes), NOW);
        if *ok {
            assert_eq!(got, Ok(()), "{scopes:?}");
        } else {
            assert_eq!(
                got,
                Err(Rejection::InsufficientScope("read:data write:data".into())),
                "{scopes:?}"
            );
        }
    }
}

#[test]
fn scopes_any_requires_one_scope_exactly() {
    let policy = scope_policy(&[], &["accounts:read", "accounts:admin"]);
    let cases: &[(&[&str], bool)] = &[
        (&["accounts:read"], true),
        (&["accounts:admin"], true),
        (&["accounts:admin", "accounts:read"], true),
        (&["x", "accounts:read"], true),
        (&[], false),
        (&["accounts:rea"], false),
        (&["accounts"], false),
        (&["accounts:readonly"], false),
        (&["Accounts:read"], false),
    ];
    for (scopes, ok) in cases {
        assert_eq!(
            evaluate(&policy, &scoped(scopes), NOW).is_ok(),
            *ok,
            "{scopes:?}"
        );
    }
}

#[test]
fn scopes_all_and_any_must_both_hold() {
    let policy = scope_policy(&["base"], &["a", "b"]);
    let cases: &[(&[&str], bool)] = &[
        (&["base", "a"], true),
        (&["base", "b"], true),
        (&["base"], false),
        (&["a", "b"], false),
        (&[], false),
    ];
    for (scopes, ok) in cases {
        let got = evaluate(&policy, &scoped(scopes), NOW);
        assert_eq!(got.is_ok(), *ok, "{scopes:?}");
        if !ok {
            assert_eq!(got, Err(Rejection::InsufficientScope("base a b".into())));
        }
    }
}

#[test]
fn insufficient_scope_carries_the_configured_challenge() {
    let mut policy = scope_policy(&["x"], &[]);
    policy.scope_challenge = "x y".into();
    match evaluate(&policy, &plain(), NOW) {
        Err(Rejection::InsufficientScope(c)) => assert_eq!(&*c, "x y"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn clients_allow_list_is_exact_and_requires_a_client() {
    let policy = Policy {
        clients: Some(strings(&["web", "mobile"])),
        ..Policy::default()
    };
    let cases: &[(Option<&str>, bool)] = &[
        (Some("web"), true),
        (Some("mobile"), true),
        (Some("Web"), false),
        (Some("web "), false),
        (Some("webapp"), false),
        (Some(""), false),
        (None, false),
    ];
    for (client, ok) in cases {
        let got = evaluate(&policy, &token(&[], *client, json!({})), NOW);
        if *ok {
            assert_eq!(got, Ok(()), "{client:?}");
        } else {
            assert_eq!(got, Err(Rejection::ClientNotAllowed), "{client:?}");
        }
    }
}

#[test]
fn no_clients_rule_allows_any_client_or_none() {
    for client in [None, Some("anything")] {
        assert_eq!(
            evaluate(&Policy::default(), &token(&[], client, json!({})), NOW),
            Ok(())
        );
    }
}

#[test]
fn claim_rules_match_values_exactly() {
    let cases: &[(Value, Value, bool)] = &[
        (json!("gold"), json!({"tier": "gold"}), true),
        (json!("gold"), json!({"tier": "Gold"}), false),
        (json!("gold"), json!({"tier": "golden"}), false),
        (json!("gold"), json!({"tier": "gol"}), false),
        (json!("gold"), json!({"tier": ["gold"]}), true),
        (json!("gold"), json!({"tier": ["silver", "gold"]}), true),
        (json!("gold"), json!({"tier": ["golden", "old"]}), false),
        (json!("gold"), json!({"tier": [["gold"]]}), false),
        (json!("gold"), json!({"tier": {"gold": true}}), false),
        (json!("gold"), json!({"tier": null}), false),
        (json!("gold"), json!({}), false),
        (json!(42), json!({"tier": 42}), true),
        (json!(42), json!({"tier": "42"}), false),
        (json!(42), json!({"tier": 420}), false),
        (json!(42), json!({"tier": [1, 42]}), true),
        (json!(-1), json!({"tier": -1}), true),
        (json!(true), json!({"tier": true}), true),
        (json!(true), json!({"tier": "true"}), false),
        (json!(true), json!({"tier": 1}), false),
        (json!(false), json!({"tier": false}), true),
        (json!(false), json!({}), false),
        (json!(false), json!({"tier": null}), false),
    ];
    for (want, claims, ok) in cases {
        let policy = claim_policy(&[("tier", want.clone())]);
        let got = evaluate(&policy, &token(&[], None, claims.clone()), NOW);
        if *ok {
            assert_eq!(got, Ok(()), "want {want} in {claims}");
        } else {
            assert_eq!(
                got,
                Err(Rejection::ClaimMismatch),
                "want {want} in {claims}"
            );
        }
    }
}

#[test]
fn every_claim_rule_must_hold() {
    let policy = claim_policy(&[("tier", json!("gold")), ("email_verified", json!(true))]);
    let both = json!({"tier": "gold", "email_verified": true});
    let one = json!({"tier": "gold", "email_verified": false});
    assert_eq!(evaluate(&policy, &token(&[], None, both), NOW), Ok(()));
    assert_eq!(
        evaluate(&policy, &token(&[], None, one), NOW),
        Err(Rejection::ClaimMismatch)
    );
}

#[test]
fn dotted_claim_path_reaches_nested_values() {
    let policy = claim_policy(&[("realm_access.roles", json!("admin"))]);
    let cases = [
        (json!({"realm_access": {"roles": ["user", "admin"]}}), true),
        (json!({"realm_access": {"roles": "admin"}}), true),
        (json!({"realm_access": {"roles": ["user"]}}), false),
        (json!({"realm_access": ["roles"]}), false),
        (json!({"realm_access": "roles"}), false),
        (json!({"roles": ["admin"]}), false),
        (json!({"realm_access": {"roles": {"admin": true}}}), false),
    ];
    for (claims, ok) in cases {
        let got = evaluate(&policy, &token(&[], None, claims.clone()), NOW);
        assert_eq!(got.is_ok(), ok, "{claims}");
    }
}

#[test]
fn literal_dotted_claim_name_takes_priority_over_the_path() {
    let name = "https://example.com/roles";
    let both = json!({
        name: ["literal"],
        "https://example": {"com/roles": ["nested"]},
    });
    let literal = claim_policy(&[(name, json!("literal"))]);
    let nested = claim_policy(&[(name, json!("nested"))]);
    assert_eq!(
        evaluate(&literal, &token(&[], None, both.clone()), NOW),
        Ok(())
    );
    assert_eq!(
        evaluate(&nested, &token(&[], None, both), NOW),
        Err(Rejection::ClaimMismatch)
    );
    let only_nested = json!({"https://example": {"com/roles": ["nested"]}});
    assert_eq!(
        evaluate(&nested, &token(&[], None, only_nested), NOW),
        Ok(())
    );
}

fn timed(iat: Option<i64>, exp: i64) -> Verified {
    let mut t = plain();
    t.iat = iat;
    t.exp = exp;
    t
}

#[test]
fn lifetime_limit_is_inclusive() {
    let max = 600;
    let policy = Policy {
        max_lifetime: Some(max),
        ..Policy::default()
    };
    let iat = NOW - 10;
    let cases = [
        (max - 1, true),
        (max, true),
        (max + 1, false),
        (i64::MAX / 2, false),
    ];
    for (lifetime, ok) in cases {
        let got = evaluate(&policy, &timed(Some(iat), iat + lifetime), NOW);
        if ok {
            assert_eq!(got, Ok(()), "lifetime {lifetime}");
        } else {
            assert!(
                matches!(got, Err(Rejection::LifetimeExceeded(_))),
                "lifetime {lifetime}: {got:?}"
            );
        }
    }
}

#[test]
fn lifetime_with_exp_before_iat_is_within_limit() {
    let policy = Policy {
        max_lifetime: Some(60),
        ..Policy::default()
    };
    assert_eq!(evaluate(&policy, &timed(Some(NOW), NOW - 5), NOW), Ok(()));
}

#[test]
fn lifetime_does_not_overflow_on_extreme_dates() {
    let policy = Policy {
        max_lifetime: Some(60),
        ..Policy::default()
    };
    let got = evaluate(&policy, &timed(Some(i64::MIN), i64::MAX), NOW);
    assert!(
        matches!(got, Err(Rejection::LifetimeExceeded(_))),
        "{got:?}"
    );
}

#[test]
fn age_limit_is_inclusive() {
    let max = 300;
    let policy = Policy {
        max_age: Some(max),
        ..Policy::default()
    };
    let cases = [(0, true), (max, true), (max + 1, false), (-20, true)];
    for (age, ok) in cases {
        let got = evaluate(&policy, &timed(Some(NOW - age), NOW + 3600), NOW);
        if ok {
            assert_eq!(got, Ok(()), "age {age}");
        } else {
            assert!(
                matches!(got, Err(Rejection::TooOld(_))),
                "age {age}: {got:?}"
            );
        }
    }
}

#[test]
fn missing_iat_fails_either_time_rule() {
    let lifetime = Policy {
        max_lifetime: Some(600),
        ..Policy::default()
    };
    let age = Policy {
        max_age: Some(600),
        ..Policy::default()
    };
    assert!(matches!(
        evaluate(&lifetime, &timed(None, NOW + 60), NOW),
        Err(Rejection::LifetimeExceeded(_))
    ));
    assert!(matches!(
        evaluate(&age, &timed(None, NOW + 60), NOW),
        Err(Rejection::TooOld(_))
    ));
    // Without time rules, iat is not needed.
    assert_eq!(
        evaluate(&Policy::default(), &timed(None, NOW + 60), NOW),
        Ok(())
    );
}

#[test]
fn lifetime_is_checked_before_age() {
    let policy = Policy {
        max_lifetime: Some(60),
        max_age: Some(60),
        ..Policy::default()
    };
    let got = evaluate(&policy, &timed(Some(NOW - 1000), NOW + 1000), NOW);
    assert!(
        matches!(got, Err(Rejection::LifetimeExceeded(_))),
        "{got:?}"
    );
}

#[test]
fn time_rules_come_before_scope_client_and_claim_rules() {
    let mut policy = scope_policy(&["needed"], &[]);
    policy.clients = Some(strings(&["web"]));
    policy.claims = vec![(ClaimPath::new("tier"), json!("gold"))];
    policy.max_lifetime = Some(60);
    let long_lived = timed(Some(NOW - 10), NOW + 3600);
    assert!(matches!(
        evaluate(&policy, &long_lived, NOW),
        Err(Rejection::LifetimeExceeded(_))
    ));
    policy.max_lifetime = None;
    policy.max_age = Some(60);
    let old = timed(Some(NOW - 61), NOW + 30);
    assert!(matches!(
        evaluate(&policy, &old, NOW),
        Err(Rejection::TooOld(_))
    ));
}

#[test]
fn scope_is_checked_before_client_and_client_before_claims() {
    let mut policy = scope_policy(&["needed"], &[]);
    policy.clients = Some(strings(&["web"]));
    policy.claims = vec![(ClaimPath::new("tier"), json!("gold"))];
    let nothing = token(&[], Some("other"), json!({}));
    assert!(matches!(
        evaluate(&policy, &nothing, NOW),
        Err(Rejection::InsufficientScope(_))
    ));
    let scoped_only = token(&["needed"], Some("other"), json!({}));
    assert_eq!(
        evaluate(&policy, &scoped_only, NOW),
        Err(Rejection::ClientNotAllowed)
    );
    let no_claim = token(&["needed"], Some("web"), json!({}));
    assert_eq!(
        evaluate(&policy, &no_claim, NOW),
        Err(Rejection::ClaimMismatch)
    );
    let all = token(&["needed"], Some("web"), json!({"tier": "gold"}));
    assert_eq!(evaluate(&policy, &all, NOW), Ok(()));
}
