//! Mints bearer tokens for the load benchmark (`benches/load.sh`).
//!
//! ```text
//! mint_tokens --count N --out tokens.txt [--jwks jwks.json] [--lifetime SECS] [--threads T]
//! ```
//!
//! Signs N distinct RS256 tokens (each with its own `jti` and `sub`) with the fixture key
//! `tests/fixtures/rsa_a.pem` under kid `bench`: iss `https://issuer.bench/`, aud
//! `https://api.bench`, scope `read:data`, azp `bench-client`, iat now, exp now + lifetime
//! (default 3600 s). Writes one token per line, in order. `--jwks` also writes the public key set
//! the gateway needs to verify them. Signing is spread over `--threads` threads (default: every
//! CPU); build with `--release`, RSA signing in a debug build is slow.

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;
use std::io::Write;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

const PEM: &[u8] = include_bytes!("../tests/fixtures/rsa_a.pem");
const KID: &str = "bench";
const ISS: &str = "https://issuer.bench/";
const AUD: &str = "https://api.bench";

type Error = Box<dyn std::error::Error + Send + Sync>;

struct Args {
    count: usize,
    out: PathBuf,
    jwks: Option<PathBuf>,
    lifetime: i64,
    threads: usize,
}

const USAGE: &str =
    "usage: mint_tokens --count N --out tokens.txt [--jwks jwks.json] [--lifetime SECS] [--threads T]";

fn parse_args() -> Result<Args, Error> {
    let mut count = None;
    let mut out = None;
    let mut jwks = None;
    let mut lifetime = 3600;
    let mut threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))
        };
        match flag.as_str() {
            "--count" => count = Some(value()?.parse()?),
            "--out" => out = Some(PathBuf::from(value()?)),
            "--jwks" => jwks = Some(PathBuf::from(value()?)),
            "--lifetime" => lifetime = value()?.parse()?,
            "--threads" => threads = value()?.parse()?,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument '{other}'\n{USAGE}").into()),
        }
    }
    if lifetime <= 0 {
        return Err("--lifetime must be positive".into());
    }
    Ok(Args {
        count: count.ok_or_else(|| format!("--count is required\n{USAGE}"))?,
        out: out.ok_or_else(|| format!("--out is required\n{USAGE}"))?,
        jwks,
        lifetime,
        threads: threads.max(1),
    })
}

fn mint(key: &EncodingKey, run: u64, i: usize, iat: i64, lifetime: i64) -> Result<String, Error> {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(KID.to_string());
    let claims = json!({
        "iss": ISS,
        "aud": AUD,
        "sub": format!("bench-user-{i}"),
        "azp": "bench-client",
        "scope": "read:data",
        "jti": format!("bench-{run}-{i}"),
        "iat": iat,
        "exp": iat + lifetime,
    });
    Ok(jsonwebtoken::encode(&header, &claims, key)?)
}

fn main() -> Result<(), Error> {
    let args = parse_args()?;
    let key = EncodingKey::from_rsa_pem(PEM)?;

    if let Some(path) = &args.jwks {
        let mut jwk = Jwk::from_encoding_key(&key, Algorithm::RS256)?;
        jwk.common.key_id = Some(KID.to_string());
        std::fs::write(path, serde_json::to_vec_pretty(&json!({ "keys": [jwk] }))?)?;
    }

    let now = SystemTime::now().duration_since(UNIX_EPOCH)?;
    let iat = now.as_secs() as i64;
    // Distinguishes runs, so that two pools minted in the same second never share a token.
    let run = now.as_nanos() as u64;
    let chunk = args.count.div_ceil(args.threads).max(1);
    let key = &key;
    let lifetime = args.lifetime;
    let parts: Vec<Vec<String>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..args.count)
            .step_by(chunk)
            .map(|start| {
                let end = (start + chunk).min(args.count);
                s.spawn(move || {
                    (start..end)
                        .map(|i| mint(key, run, i, iat, lifetime))
                        .collect::<Result<Vec<_>, _>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .map_err(|_| Error::from("signing thread panicked"))?
            })
            .collect::<Result<Vec<_>, _>>()
    })?;

    let mut out = std::io::BufWriter::new(std::fs::File::create(&args.out)?);
    for token in parts.iter().flatten() {
        out.write_all(token.as_bytes())?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    eprintln!(
        "mint_tokens: {} tokens (kid {KID}, exp in {} s) -> {}",
        args.count,
        args.lifetime,
        args.out.display()
    );
    Ok(())
}
