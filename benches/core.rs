//! Criterion benchmarks for the hot path, one group per stage: route matching, bearer
//! extraction, signature verification per algorithm, policy evaluation, and the full decision.
//!
//! Run with `make bench` (or `cargo bench --bench core`). Keys are the test fixtures; tokens are
//! minted once per group, outside the timed loop.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;
use std::hint::black_box;
use std::path::Path;
use tokengate::config;
use tokengate::metrics::Metrics;
use tokengate::runtime::Runtime;

const ISS: &str = "https://issuer.bench/";
const AUD: &str = "https://api.bench";

struct Fixture {
    alg: Algorithm,
    kid: &'static str,
    pem: &'static [u8],
}

const FIXTURES: [Fixture; 4] = [
    Fixture {
        alg: Algorithm::RS256,
        kid: "rs",
        pem: include_bytes!("../tests/fixtures/rsa_a.pem"),
    },
    Fixture {
        alg: Algorithm::PS256,
        kid: "ps",
        pem: include_bytes!("../tests/fixtures/rsa_b.pem"),
    },
    Fixture {
        alg: Algorithm::ES256,
        kid: "es",
        pem: include_bytes!("../tests/fixtures/ec256.pem"),
    },
    Fixture {
        alg: Algorithm::EdDSA,
        kid: "ed",
        pem: include_bytes!("../tests/fixtures/ed25519.pem"),
    },
];

fn encoding_key(f: &Fixture) -> EncodingKey {
    let key = match f.alg {
        Algorithm::ES256 => EncodingKey::from_ec_pem(f.pem),
        Algorithm::EdDSA => EncodingKey::from_ed_pem(f.pem),
        _ => EncodingKey::from_rsa_pem(f.pem),
    };
    key.expect("fixture key")
}

fn now() -> i64 {
    tokengate::proxy::unix_now()
}

fn mint(f: &Fixture, scope: &str) -> String {
    let mut header = Header::new(f.alg);
    header.kid = Some(f.kid.to_string());
    let t = now();
    let claims = json!({"iss": ISS, "aud": AUD, "sub": "bench-user", "azp": "bench-client",
        "scope": scope, "iat": t, "exp": t + 600});
    jsonwebtoken::encode(&header, &claims, &encoding_key(f)).expect("mint")
}

/// A runtime with one issuer holding every fixture key and `routes` extra routes before the
/// benchmarked `api` route (so `find` scans them all: the worst case for first-match order).
fn runtime(dir: &Path, routes: usize) -> Runtime {
    runtime_with_cache(dir, routes, 100_000)
}

fn runtime_with_cache(dir: &Path, routes: usize, cache: u64) -> Runtime {
    let keys: Vec<Jwk> = FIXTURES
        .iter()
        .map(|f| {
            let mut jwk = Jwk::from_encoding_key(&encoding_key(f), f.alg).expect("jwk");
            jwk.common.key_id = Some(f.kid.to_string());
            jwk
        })
        .collect();
    let jwks = dir.join("jwks.json");
    std::fs::write(
        &jwks,
        serde_json::to_vec(&json!({ "keys": keys })).expect("json"),
    )
    .expect("write");
    let mut toml = format!(
        "[server]\nlisten = [\"127.0.0.1:1\"]\ntoken_cache_capacity = {cache}\n[[issuer]]\nname = \"bench\"\nissuer = \"{ISS}\"\n\
         audiences = [\"{AUD}\"]\njwks_file = \"{}\"\nalgorithms = [\"RS256\", \"PS256\", \"ES256\", \"EdDSA\"]\n\
         [[upstream]]\nname = \"u\"\ntargets = [\"127.0.0.1:1\"]\n",
        jwks.display()
    );
    for i in 0..routes {
        toml.push_str(&format!(
            "[[route]]\nname = \"r{i}\"\npath_prefix = \"/svc{i}\"\nmethods = [\"GET\"]\nupstream = \"u\"\nauth = \"none\"\n"
        ));
    }
    toml.push_str(
        "[[route]]\nname = \"api\"\npath_prefix = \"/api\"\nupstream = \"u\"\nscopes_all = [\"read:data\"]\n\
         max_token_lifetime = \"1h\"\nforward_claims = { \"x-auth-sub\" = \"sub\", \"x-auth-client\" = \"azp\" }\n",
    );
    config::load_str(&toml, "bench.toml", dir, &Metrics::new().expect("metrics"))
        .expect("bench config")
}

fn request(token: &str) -> http::request::Parts {
    http::Request::builder()
        .method("GET")
        .uri("/api/accounts/42?page=2")
        .header("host", "api.bench")
        .header("authorization", format!("Bearer {token}"))
        .body(())
        .expect("request")
        .into_parts()
        .0
}

fn route_find(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut g = c.benchmark_group("route_find");
    for n in [10, 100, 1000] {
        let rt = runtime(dir.path(), n);
        g.bench_with_input(BenchmarkId::from_parameter(n), &rt, |b, rt| {
            b.iter(|| {
                rt.router.find(
                    Some("api.bench"),
                    &http::Method::GET,
                    black_box("/api/accounts/42"),
                )
            })
        });
    }
    g.finish();
}

fn extract_bearer(c: &mut Criterion) {
    let token = mint(&FIXTURES[0], "read:data");
    let value = format!("Bearer {token}");
    c.bench_function("extract_bearer", |b| {
        b.iter(|| tokengate::token::extract_bearer([black_box(value.as_bytes())], 16 * 1024))
    });
}

/// The verified-token cache's key for one token, against the SHA-256 it replaced: every request
/// that carries a token pays one of them before the cache lookup.
fn cache_key(c: &mut Criterion) {
    let token = mint(&FIXTURES[0], "read:data");
    let cache = tokengate::cache::TokenCache::new(1);
    let mut g = c.benchmark_group("cache_key");
    // Reported as bytes per second too, which also shows the token's length.
    g.throughput(criterion::Throughput::Bytes(token.len() as u64));
    g.bench_function("tag", |b| {
        b.iter(|| cache.key_of(black_box(token.as_bytes())))
    });
    g.bench_function("sha256_reference", |b| {
        b.iter(|| {
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, black_box(token.as_bytes()))
        })
    });
    g.finish();
}

fn verify(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = runtime(dir.path(), 0);
    let mut g = c.benchmark_group("verify");
    for f in &FIXTURES {
        let token = mint(f, "read:data");
        g.bench_function(format!("{:?}", f.alg), |b| {
            b.iter(|| {
                tokengate::verify::verify(black_box(&token), &rt.issuers, now()).expect("valid")
            })
        });
    }
    g.finish();
}

/// What parsing the RSA public key on every call costs: jsonwebtoken 11's `crypto::verify` (the
/// key rebuilt from `n` and `e` each time), against `jwks::Verifiers`, which tokengate's `verify`
/// uses: the same aws-lc-rs check with the key parsed once, when its set is loaded.
fn rsa_key(c: &mut Criterion) {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    let f = &FIXTURES[0];
    let token = mint(f, "read:data");
    let (message, signature) = token.rsplit_once('.').expect("three parts");
    // The same JWK read both ways: as jsonwebtoken reads it, and as tokengate loads a key set.
    let jwk = Jwk::from_encoding_key(&encoding_key(f), f.alg).expect("jwk");
    let decoding = jsonwebtoken::DecodingKey::from_jwk(&jwk).expect("decoding key");
    let body = json!({ "keys": [jwk] }).to_string();
    let (set, _) =
        tokengate::jwks::parse(body.as_bytes(), std::time::SystemTime::now()).expect("jwks");
    let parsed = &set.keys[0].verifiers;
    let mut g = c.benchmark_group("rsa_key");
    g.bench_function("parsed_per_call", |b| {
        b.iter(|| {
            let ok = jsonwebtoken::crypto::verify(
                black_box(signature),
                message.as_bytes(),
                &decoding,
                Algorithm::RS256,
            );
            assert!(ok.expect("verify"));
        })
    });
    g.bench_function("parsed_once", |b| {
        b.iter(|| {
            let sig = URL_SAFE_NO_PAD.decode(black_box(signature)).expect("b64");
            assert!(parsed.verify(Algorithm::RS256, message.as_bytes(), &sig));
        })
    });
    g.finish();
}

fn policy_evaluate(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = runtime(dir.path(), 0);
    let token = mint(&FIXTURES[0], "openid profile read:data write:data");
    let verified = tokengate::verify::verify(&token, &rt.issuers, now()).expect("valid");
    let route = rt
        .router
        .find(None, &http::Method::GET, "/api")
        .expect("route");
    let tokengate::route::Auth::Jwt { policy, .. } = &route.auth else {
        panic!("api route is a jwt route");
    };
    c.bench_function("policy_evaluate", |b| {
        b.iter(|| {
            tokengate::policy::evaluate(policy, black_box(&verified), now()).expect("allowed")
        })
    });
}

/// One request's decision and the identity headers its permit renders for the upstream request
/// (what the proxy does per request before forwarding).
fn decide_and_render(
    rt: &tokengate::runtime::Runtime,
    req: &http::request::Parts,
) -> tokengate::decision::IdentityHeaders {
    let d = tokengate::decision::decide(rt, black_box(req), now());
    let route = d.route.as_ref().expect("routed");
    d.outcome.as_ref().expect("allowed").identity_headers(route)
}

/// The full decision for one request (route, extract, verify or cache hit, policy, headers):
/// `cache_hit` repeats one token, `cache_hit_10k` cycles through 10,000 cached tokens (more than
/// the CPU caches hold, as in the load benchmark's J10k), and `uncached` has the cache disabled
/// so every request verifies the RS256 signature.
fn decide(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut g = c.benchmark_group("decide");
    let cached = runtime(dir.path(), 10);
    let one = request(&mint(&FIXTURES[0], "read:data"));
    g.bench_function("cache_hit", |b| b.iter(|| decide_and_render(&cached, &one)));
    // EdDSA signs in microseconds, RS256 in a millisecond; a hit does not depend on the algorithm.
    let pool: Vec<_> = (0..10_000)
        .map(|i| request(&mint(&FIXTURES[3], &format!("read:data n{i}"))))
        .collect();
    let mut i = 0;
    g.bench_function("cache_hit_10k", |b| {
        b.iter(|| {
            i = (i + 1) % pool.len();
            decide_and_render(&cached, &pool[i])
        })
    });
    let uncached = runtime_with_cache(dir.path(), 10, 0);
    g.bench_function("uncached", |b| {
        b.iter(|| decide_and_render(&uncached, &one))
    });
    g.finish();
}

criterion_group!(
    benches,
    route_find,
    extract_bearer,
    cache_key,
    verify,
    rsa_key,
    policy_evaluate,
    decide
);
criterion_main!(benches);
