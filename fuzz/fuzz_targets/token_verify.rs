//! Fuzzes token decoding and verification: `claims::split` and `verify::verify` on arbitrary
//! input, against a real issuer (RS256, PS256, ES256, ES384, EdDSA keys from the test fixtures)
//! compiled once through `config::load_str` with a `jwks_file`.
//!
//! Oracles, besides "never panics":
//! - a token `split` accepts re-joins to exactly the input (no part is silently dropped or
//!   re-encoded), and its signing input is the input up to the last dot;
//! - `verify` may only accept one of the genuine seed tokens, byte for byte: anything else that
//!   verifies is a forgery or a malleable encoding (lenient base64, duplicate members...).
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use tokengate::runtime::Runtime;

/// A fixed clock inside the seed tokens' validity window (iat/nbf 1799999000, exp 1900000000).
const NOW: i64 = 1_800_000_000;

const JWKS: &str = include_str!("../fixtures/jwks.json");

/// The only tokens that may verify: the genuine, issuer-signed seeds.
const GENUINE: [&str; 6] = [
    include_str!("../seeds/token_verify/rs256"),
    include_str!("../seeds/token_verify/ps256"),
    include_str!("../seeds/token_verify/es256"),
    include_str!("../seeds/token_verify/es384"),
    include_str!("../seeds/token_verify/eddsa"),
    include_str!("../seeds/token_verify/nokid"),
];

/// One issuer with every algorithm the seeds use, its keys from `jwks.json`; shared with the
/// proptest properties in `tests/fuzz_properties.rs`.
const CONFIG: &str = include_str!("../fixtures/token_verify.toml");

static RUNTIME: OnceLock<Runtime> = OnceLock::new();

fn runtime() -> &'static Runtime {
    RUNTIME.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("tokengate-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create the fuzz temp dir");
        std::fs::write(dir.join("jwks.json"), JWKS).expect("write jwks.json");
        let metrics = tokengate::metrics::Metrics::new().expect("metrics");
        let rt = tokengate::config::load_str(CONFIG, "fuzz.toml", &dir, &metrics)
            .unwrap_or_else(|e| panic!("fuzz config does not load: {e}"));
        assert!(rt.ready(), "the issuer has no keys");
        for token in GENUINE {
            if let Err(e) = tokengate::verify::verify(token, &rt.issuers, NOW) {
                panic!("a genuine seed token does not verify: {e:?}");
            }
        }
        rt
    })
}

fuzz_target!(|data: &[u8]| {
    let rt = runtime();
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(parts) = tokengate::claims::split(token) {
        let rejoined = format!("{}.{}", parts.signing_input, parts.signature);
        assert_eq!(rejoined, token, "split does not account for every byte");
        assert!(!parts.signature.is_empty());
        assert_eq!(token.matches('.').count(), 2);
    }
    if tokengate::verify::verify(token, &rt.issuers, NOW).is_ok() {
        assert!(
            GENUINE.contains(&token),
            "a token that is not a genuine seed verified: {token:?}"
        );
    }
});
