//! Fuzzes `token::extract_bearer`: the input is split at NUL bytes (which a header value cannot
//! contain) into up to four `Authorization` values, and the first byte picks the size cap.
//!
//! Oracles, besides "never panics": a token is only returned for exactly one value; it is
//! non-empty, within the cap, a `b64token` (RFC 6750 §2.1), and a substring of that value after
//! a case-insensitive `Bearer` scheme.
#![no_main]

use libfuzzer_sys::fuzz_target;

fn is_b64token(t: &[u8]) -> bool {
    let end = t.len() - t.iter().rev().take_while(|&&b| b == b'=').count();
    end > 0
        && t[..end]
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
}

fuzz_target!(|data: &[u8]| {
    let Some((&cap, rest)) = data.split_first() else {
        return;
    };
    let max = match cap % 4 {
        0 => 1,
        1 => 32,
        2 => 1024,
        _ => 16 * 1024,
    };
    let values: Vec<&[u8]> = if rest.is_empty() {
        Vec::new()
    } else {
        rest.split(|&b| b == 0).take(4).collect()
    };
    let Ok(token) = tokengate::token::extract_bearer(values.iter().copied(), max) else {
        return;
    };
    assert_eq!(values.len(), 1, "a token from several Authorization values");
    assert!(
        !token.is_empty() && token.len() <= max,
        "{token:?} (cap {max})"
    );
    assert!(is_b64token(token.as_bytes()), "not a b64token: {token:?}");
    let value = values[0];
    let trimmed = value.trim_ascii();
    assert!(trimmed.len() > 6 && trimmed[..6].eq_ignore_ascii_case(b"bearer"));
    assert!(
        trimmed.ends_with(token.as_bytes()),
        "{token:?} is not the end of {value:?}"
    );
});
