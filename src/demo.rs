//! `tokengate demo`: the gateway on its embedded config, with a demo issuer and an echo upstream
//! served in-process on loopback, and curl commands that show each kind of decision.
//!
//! The demo key is generated fresh at every start and never written anywhere. The printed tokens
//! are demo credentials minted for this process only; the gateway itself still never logs tokens.

use crate::app::{self, App};
use crate::config;
use crate::metrics::Metrics;
use async_trait::async_trait;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use http::{Response, StatusCode};
use jsonwebtoken::jwk::{Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use pingora::services::listening::Service;
use pingora::services::ServiceWithDependents;
use serde_json::json;
use std::path::Path;
use std::sync::Arc;

/// The embedded demo config (`conf/demo.toml`).
pub const CONFIG: &str = include_str!("../conf/demo.toml");
/// Where the demo serves its issuer's JWKS; must match `jwks_uri` in the demo config.
pub const ISSUER_ADDR: &str = "127.0.0.1:9081";
/// Where the demo echo upstream listens; must match the `echo` upstream in the demo config.
pub const ECHO_ADDR: &str = "127.0.0.1:9082";
const JWKS_PATH: &str = "/.well-known/jwks.json";
const ISS: &str = "https://demo-issuer.tokengate.local/";
const AUD: &str = "https://api.demo.local";

/// Builds the demo server and prints how to use it.
pub fn prepare(metrics: Arc<Metrics>) -> Result<App, String> {
    let runtime = config::load_str(
        CONFIG,
        "conf/demo.toml (embedded)",
        Path::new("."),
        &metrics,
    )
    .map_err(|e| e.to_string())?;
    let listen = runtime.settings.listen.first().cloned().unwrap_or_default();
    let admin = runtime.settings.admin_listen.clone().unwrap_or_default();
    ports_free(&[&listen, &admin, ISSUER_ADDR, ECHO_ADDR])?;
    let (key, jwks) = demo_key()?;
    let now = crate::proxy::unix_now();
    let mint = |scope: &str, lifetime: i64| -> Result<String, String> {
        let claims = json!({
            "iss": ISS, "aud": [AUD], "sub": "demo-user", "azp": "demo-cli",
            "scope": scope, "iat": now, "exp": now + lifetime,
        });
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some("demo".into());
        header.typ = Some("at+jwt".into());
        jsonwebtoken::encode(&header, &claims, &key).map_err(|e| e.to_string())
    };
    let read = mint("accounts:read", 3600)?;
    let profile = mint("profile", 3600)?;
    let transfer_long = mint("transfers:write", 3600)?;
    let transfer_short = mint("transfers:write", 300)?;
    let base = format!("http://{listen}");
    println!(
        "\ntokengate demo: gateway on {base}, admin on http://{admin}, demo issuer on http://{ISSUER_ADDR}, echo upstream on http://{ECHO_ADDR}\n\
         Tokens below are valid for up to an hour. Try:\n\n\
         # 200: allowed; the echo upstream shows the x-auth-* identity headers the gateway set\n\
         curl -si {base}/api/accounts/42 -H 'Authorization: Bearer {read}'\n\n\
         # 401: no token (WWW-Authenticate: Bearer realm=\"tokengate\")\n\
         curl -si {base}/api/accounts/42\n\n\
         # 403 insufficient_scope: the token has scope 'profile', the route needs accounts:read\n\
         curl -si {base}/api/accounts/42 -H 'Authorization: Bearer {profile}'\n\n\
         # 401 invalid_token: a one-hour token on a route that accepts tokens living at most 10 minutes\n\
         curl -si -X POST {base}/api/transfers -H 'Authorization: Bearer {transfer_long}'\n\n\
         # 200: the same route with a five-minute token\n\
         curl -si -X POST {base}/api/transfers -H 'Authorization: Bearer {transfer_short}'\n\n\
         # 404: no route, never forwarded\n\
         curl -si {base}/admin\n\n\
         # metrics and readiness\n\
         curl -s http://{admin}/metrics | grep tokengate_requests_total\n\
         curl -si http://{admin}/readyz\n",
    );
    let mut issuer = Service::new(
        "demo issuer".to_string(),
        Static {
            path: JWKS_PATH,
            body: jwks,
        },
    );
    issuer.add_tcp(ISSUER_ADDR);
    let mut echo = Service::new("demo echo".to_string(), Echo);
    echo.add_tcp(ECHO_ADDR);
    let extra: Vec<Box<dyn ServiceWithDependents>> = vec![Box::new(issuer), Box::new(echo)];
    Ok(app::build(runtime, None, false, metrics, extra))
}

/// Fails when any of `addrs` is taken. A second demo would otherwise print tokens signed by its
/// own fresh key while pingora retries the bind, and the curl lines would reach the first demo,
/// which rejects them as badly signed.
fn ports_free(addrs: &[&str]) -> Result<(), String> {
    for addr in addrs {
        std::net::TcpListener::bind(addr).map_err(|e| {
            format!("{addr} is not free ({e}); is another tokengate demo running? Stop it first")
        })?;
    }
    Ok(())
}

/// A fresh RSA-2048 key and its public JWKS (kid `demo`).
fn demo_key() -> Result<(EncodingKey, Vec<u8>), String> {
    use aws_lc_rs::encoding::AsDer;
    let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
        .map_err(|e| e.to_string())?;
    let der = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&pair).map_err(|e| e.to_string())?;
    let b64 = STANDARD.encode(der.as_ref());
    let body: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap_or_default())
        .collect();
    let pem = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        body.join("\n")
    );
    let key = EncodingKey::from_rsa_pem(pem.as_bytes()).map_err(|e| e.to_string())?;
    let mut jwk = Jwk::from_encoding_key(&key, Algorithm::RS256).map_err(|e| e.to_string())?;
    jwk.common.key_id = Some("demo".into());
    jwk.common.key_algorithm = Some(KeyAlgorithm::RS256);
    jwk.common.public_key_use = Some(PublicKeyUse::Signature);
    let jwks = serde_json::to_vec(&json!({ "keys": [jwk] })).map_err(|e| e.to_string())?;
    Ok((key, jwks))
}

fn json_reply(status: StatusCode, body: Vec<u8>) -> Response<Vec<u8>> {
    let mut r = Response::new(body);
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    let len = r.body().len();
    r.headers_mut()
        .insert(http::header::CONTENT_LENGTH, len.into());
    r
}

/// Serves one fixed document at one path.
struct Static {
    path: &'static str,
    body: Vec<u8>,
}

#[async_trait]
impl ServeHttp for Static {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        if session.req_header().uri.path() == self.path {
            json_reply(StatusCode::OK, self.body.clone())
        } else {
            json_reply(StatusCode::NOT_FOUND, b"{}".to_vec())
        }
    }
}

/// Answers every request with what it received, so the demo shows the forwarded identity.
struct Echo;

#[async_trait]
impl ServeHttp for Echo {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let req = session.req_header();
        let headers: serde_json::Map<String, serde_json::Value> = req
            .headers
            .iter()
            .filter(|(n, _)| n.as_str() != "authorization")
            .map(|(n, v)| (n.to_string(), json!(String::from_utf8_lossy(v.as_bytes()))))
            .collect();
        let body = json!({
            "echo": "demo upstream",
            "method": req.method.as_str(),
            "path": req.uri.to_string(),
            "headers": headers,
        });
        json_reply(
            StatusCode::OK,
            serde_json::to_vec_pretty(&body).unwrap_or_default(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_config_points_at_the_demo_services() {
        assert!(CONFIG.contains(&format!("http://{ISSUER_ADDR}{JWKS_PATH}")));
        assert!(CONFIG.contains(&format!("\"{ECHO_ADDR}\"")));
        assert!(CONFIG.contains(ISS) && CONFIG.contains(AUD));
    }

    #[test]
    fn a_taken_port_stops_the_demo_before_it_prints_tokens() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = taken.local_addr().expect("addr").to_string();
        let err = ports_free(&[&addr]).expect_err("a bound port is not free");
        assert!(
            err.contains(&addr) && err.contains("another tokengate demo"),
            "{err}"
        );
        drop(taken);
        ports_free(&[&addr]).expect("a released port is free again");
    }

    #[test]
    fn demo_key_yields_a_usable_key_set() {
        let (_, jwks) = demo_key().expect("demo key");
        let (set, skipped) =
            crate::jwks::parse(&jwks, std::time::SystemTime::now()).expect("parse");
        assert_eq!(set.keys.len(), 1);
        assert!(skipped.is_empty());
    }
}
