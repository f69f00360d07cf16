//! Bearer-token extraction from `Authorization` (RFC 6750 §2.1).
//!
//! Accepts exactly one `Authorization` header of the form `Bearer <b64token>`, the scheme matched
//! case-insensitively. It never looks at the query string or the body: tokens there leak into logs.
//! It must never log or copy the token; it only borrows it.

/// Why no token could be taken from a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtractError {
    /// No `Authorization` header: the client has not tried to authenticate.
    Missing,
    /// Present but unusable; the text is safe to show the client.
    Malformed(&'static str),
    /// Longer than the configured cap.
    TooLarge,
}

/// Returns the token from the `Authorization` values of a request: [`bearer_bytes`], then
/// [`check_syntax`].
pub fn extract_bearer<'a, I>(values: I, max_bytes: usize) -> Result<&'a str, ExtractError>
where
    I: IntoIterator<Item = &'a [u8]>,
{
    bearer_bytes(values, max_bytes).and_then(check_syntax)
}

/// The token's bytes from the `Authorization` values of a request, their syntax not yet checked:
/// exactly one header, the Bearer scheme, a token that is not empty and within `max_bytes`.
///
/// Split from [`check_syntax`] so that a verified-token cache hit can skip the scan of every
/// byte: only tokens that passed it are ever cached, under a keyed tag of these same bytes.
pub fn bearer_bytes<'a, I>(values: I, max_bytes: usize) -> Result<&'a [u8], ExtractError>
where
    I: IntoIterator<Item = &'a [u8]>,
{
    let mut values = values.into_iter();
    let value = values.next().ok_or(ExtractError::Missing)?;
    if values.next().is_some() {
        return Err(ExtractError::Malformed(
            "more than one Authorization header",
        ));
    }
    let value = value.trim_ascii();
    let split = value.iter().position(|&b| b == b' ');
    let (scheme, rest) = match split {
        Some(at) => (&value[..at], &value[at..]),
        None => (value, &value[value.len()..]),
    };
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return Err(ExtractError::Malformed(
            "Authorization scheme must be Bearer",
        ));
    }
    let token = rest.trim_ascii_start();
    if token.is_empty() {
        return Err(ExtractError::Malformed("empty bearer token"));
    }
    if token.len() > max_bytes {
        return Err(ExtractError::TooLarge);
    }
    Ok(token)
}

/// `token` as text if it is a b64token (RFC 6750 §2.1), the only form a bearer token may take.
pub fn check_syntax(token: &[u8]) -> Result<&str, ExtractError> {
    if !is_b64token(token) {
        return Err(ExtractError::Malformed(
            "bearer token has characters outside b64token",
        ));
    }
    // b64token is pure ASCII, so this cannot fail; mapping keeps the function panic-free.
    std::str::from_utf8(token).map_err(|_| ExtractError::Malformed("bearer token is not ASCII"))
}

/// `b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`
///
/// Every request on a JWT route pays this over the whole token (hundreds of bytes), so the
/// body check has no early exit and no table: a branch-free fold LLVM turns into SIMD compares.
fn is_b64token(t: &[u8]) -> bool {
    let body_end = t.len() - t.iter().rev().take_while(|&&b| b == b'=').count();
    body_end > 0
        && t[..body_end]
            .iter()
            .fold(true, |ok, &b| ok & is_b64token_char(b))
}

#[inline(always)]
fn is_b64token_char(b: u8) -> bool {
    let letter = (b | 0x20).wrapping_sub(b'a') < 26;
    let digit = b.wrapping_sub(b'0') < 10;
    // '+' 0x2B, '-' 0x2D, '.' 0x2E, '/' 0x2F; then '_' and '~'.
    let punct = (b == b'+') | (b.wrapping_sub(b'-') < 3) | (b == b'_') | (b == b'~');
    letter | digit | punct
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(values: &[&str]) -> Result<String, ExtractError> {
        extract_bearer(values.iter().map(|v| v.as_bytes()), 32).map(str::to_string)
    }

    #[test]
    fn extraction_is_bearer_bytes_then_syntax() {
        let values = |v: &'static str| [v.as_bytes()];
        assert_eq!(bearer_bytes(values("Bearer a*b"), 32), Ok(&b"a*b"[..]));
        assert_eq!(
            check_syntax(b"a*b"),
            Err(ExtractError::Malformed(
                "bearer token has characters outside b64token"
            ))
        );
        assert_eq!(check_syntax(b"a.b-c_d~e+f/g=="), Ok("a.b-c_d~e+f/g=="));
        assert_eq!(
            bearer_bytes(values("Basic a"), 32),
            Err(ExtractError::Malformed(
                "Authorization scheme must be Bearer"
            ))
        );
        assert_eq!(
            bearer_bytes(values("Bearer abc"), 2),
            Err(ExtractError::TooLarge)
        );
    }

    #[test]
    fn extracts_the_table() {
        use ExtractError::*;
        let cases: &[(&[&str], Result<&str, ExtractError>)] = &[
            (&[], Err(Missing)),
            (&["Bearer abc.def.ghi"], Ok("abc.def.ghi")),
            (&["bearer abc"], Ok("abc")),
            (&["BEARER   abc  "], Ok("abc")),
            (&["Bearer"], Err(Malformed("empty bearer token"))),
            (&["Bearer "], Err(Malformed("empty bearer token"))),
            (
                &["Basic dXNlcjpwYXNz"],
                Err(Malformed("Authorization scheme must be Bearer")),
            ),
            (
                &["Bearerabc"],
                Err(Malformed("Authorization scheme must be Bearer")),
            ),
            (
                &["Bearer a b"],
                Err(Malformed("bearer token has characters outside b64token")),
            ),
            (
                &["Bearer a\"b"],
                Err(Malformed("bearer token has characters outside b64token")),
            ),
            (
                &["Bearer ==="],
                Err(Malformed("bearer token has characters outside b64token")),
            ),
            (&["Bearer abc=="], Ok("abc==")),
            (
                &["Bearer a", "Bearer b"],
                Err(Malformed("more than one Authorization header")),
            ),
            (
                &["Bearer 0123456789012345678901234567890123"],
                Err(TooLarge),
            ),
        ];
        for (values, want) in cases {
            assert_eq!(run(values), want.map(str::to_string), "{values:?}");
        }
    }

    /// The branch-free classifier agrees with the grammar on every byte.
    #[test]
    fn b64token_chars_are_exactly_the_grammar() {
        for b in 0..=255u8 {
            let grammar =
                b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/');
            assert_eq!(is_b64token_char(b), grammar, "byte {b:#04x}");
        }
    }
}
