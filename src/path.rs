//! Request-path normalisation: the path the router matches is the path the upstream receives.
//!
//! Rules, applied to the path part of the request target (the query is left alone):
//! - percent-encoded characters that a path may hold unescaped (unreserved `A-Z a-z 0-9 - . _ ~`
//!   and the sub-delimiters `! $ & ' ( ) * + , = : @`) are decoded, other escapes are kept with
//!   upper-case hex, so `%2e%2E` becomes `..` before dot segments are resolved and each path has
//!   one spelling;
//! - an encoded `/` (`%2F`), `\` (`%5C`), NUL or other control byte is refused, as is a raw `\`,
//!   a raw `;` (servlet containers treat `;` as a path-parameter separator, which would let
//!   `/admin;x` match a public route here and reach `/admin` there; `%3B` likewise), a control byte, a malformed
//!   escape, or escapes that do not decode to valid UTF-8 (overlong `%C0%AE` and friends);
//! - runs of `/` are merged, `.` and `..` segments are resolved per RFC 3986 §5.2.4, and `..`
//!   above the root is refused instead of being clamped;
//! - a trailing `/` is kept.
//!
//! This module must never guess: anything it cannot normalise unambiguously is an error, and the
//! caller answers 400.

use std::fmt;

/// Why a path was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    NotAbsolute,
    BadEscape,
    EncodedSeparator,
    ForbiddenByte,
    InvalidUtf8,
    AboveRoot,
}

impl PathError {
    /// Short text for the `error_description` of the 400 response.
    pub fn describe(self) -> &'static str {
        match self {
            PathError::NotAbsolute => "request path must start with '/'",
            PathError::BadEscape => "malformed percent-escape in path",
            PathError::EncodedSeparator => "encoded '/' or '\\' in path",
            PathError::ForbiddenByte => "forbidden character in path",
            PathError::InvalidUtf8 => "path escapes do not decode to UTF-8",
            PathError::AboveRoot => "path climbs above the root",
        }
    }
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Characters a path segment may hold unescaped (RFC 3986 `pchar` minus `;`, which is refused):
/// an escaped one means the same to any upstream that decodes, so it is decoded here to give each
/// path one spelling. `/v1/jobs%3Arun` must not dodge a rule for `/v1/jobs:run`.
fn decodes_in_path(b: u8) -> bool {
    is_unreserved(b) || b"!$&'()*+,=:@".contains(&b)
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Normalises `raw` (the path part of an origin-form target, without the query).
pub fn normalise(raw: &str) -> Result<String, PathError> {
    if already_normal(raw) {
        return Ok(raw.to_owned());
    }
    normalise_in_full(raw)
}

/// Whether `raw` is its own normal form, decided in one pass that allocates nothing: only bytes
/// that pass through unchanged (no escape, nothing refused) and no empty, `.` or `..` segment
/// except an empty last one (the trailing slash). Most requests look like this, and the full
/// normaliser would spend four allocations to return them unchanged.
fn already_normal(raw: &str) -> bool {
    let Some(rest) = raw.strip_prefix('/') else {
        return false;
    };
    // An empty segment other than the last is a `//`.
    rest.bytes()
        .all(|b| (0x21..0x7f).contains(&b) && !matches!(b, b'%' | b'\\' | b';'))
        && !raw.contains("//")
        && rest.split('/').all(|seg| seg != "." && seg != "..")
}

fn normalise_in_full(raw: &str) -> Result<String, PathError> {
    let bytes = raw.as_bytes();
    if bytes.first() != Some(&b'/') {
        return Err(PathError::NotAbsolute);
    }
    // Pass 1: canonical escapes. `decoded` collects every byte as it will finally be understood,
    // only to prove the whole path is valid UTF-8 once decoded by the upstream.
    let mut canon = String::with_capacity(raw.len());
    let mut decoded = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'%' => {
                let (h, l) = match (
                    bytes.get(i + 1).copied().and_then(hex),
                    bytes.get(i + 2).copied().and_then(hex),
                ) {
                    (Some(h), Some(l)) => (h, l),
                    _ => return Err(PathError::BadEscape),
                };
                let v = h << 4 | l;
                if v == b'/' || v == b'\\' {
                    return Err(PathError::EncodedSeparator);
                }
                if v < 0x20 || v == 0x7f || v == b';' {
                    return Err(PathError::ForbiddenByte);
                }
                if decodes_in_path(v) {
                    canon.push(v as char);
                } else {
                    canon.push('%');
                    canon.push(char::from(b"0123456789ABCDEF"[usize::from(h)]));
                    canon.push(char::from(b"0123456789ABCDEF"[usize::from(l)]));
                }
                decoded.push(v);
                i += 3;
            }
            b'\\' | b';' => return Err(PathError::ForbiddenByte),
            0..=0x20 | 0x7f..=0xff => return Err(PathError::ForbiddenByte),
            _ => {
                canon.push(b as char);
                decoded.push(b);
                i += 1;
            }
        }
    }
    if std::str::from_utf8(&decoded).is_err() {
        return Err(PathError::InvalidUtf8);
    }
    // Pass 2: segments. Empty segments (from `//`) and `.` vanish; `..` pops or fails.
    let mut out: Vec<&str> = Vec::new();
    let mut trailing_slash = false;
    for seg in canon[1..].split('/') {
        trailing_slash = false;
        match seg {
            "" => trailing_slash = true,
            "." => trailing_slash = true,
            ".." => {
                if out.pop().is_none() {
                    return Err(PathError::AboveRoot);
                }
                trailing_slash = true;
            }
            s => out.push(s),
        }
    }
    let mut path = String::with_capacity(canon.len());
    for seg in &out {
        path.push('/');
        path.push_str(seg);
    }
    if out.is_empty() || trailing_slash {
        path.push('/');
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        // The shortcut may only ever answer what the full normaliser answers.
        #[test]
        fn the_shortcut_agrees_with_the_full_normaliser(raw in "/[a/.%;\\\\ 2Ee\u{e9}\x00-\x1f~:@]{0,12}") {
            if already_normal(&raw) {
                prop_assert_eq!(normalise_in_full(&raw), Ok(raw.clone()));
            }
            prop_assert_eq!(normalise(&raw), normalise_in_full(&raw));
        }
    }

    #[test]
    fn the_shortcut_takes_plain_paths_and_only_those() {
        for plain in ["/", "/a", "/a/", "/v1/jobs:run", "/a.b/..c/.d/", "/~x/@y"] {
            assert!(already_normal(plain), "{plain:?}");
        }
        for other in [
            "",
            "a",
            "//",
            "/a//b",
            "/./a",
            "/a/.",
            "/a/..",
            "/a/../b",
            "/%41",
            "/a;b",
            "/a\\b",
            "/a b",
            "/caf\u{e9}",
            "/a\x7f",
        ] {
            assert!(!already_normal(other), "{other:?}");
        }
    }

    #[test]
    fn normalises_the_table() {
        let cases = [
            ("/", "/"),
            ("/a", "/a"),
            ("/a/", "/a/"),
            ("//a///b", "/a/b"),
            ("/a/./b", "/a/b"),
            ("/a/b/..", "/a/"),
            ("/a/b/../c", "/a/c"),
            ("/a/.", "/a/"),
            ("/%41%62c", "/Abc"),
            ("/%2e%2E/", "AboveRoot"),
            ("/a/%2e%2e/b", "/b"),
            ("/a%2fb", "EncodedSeparator"),
            ("/a%5Cb", "EncodedSeparator"),
            ("/a%00", "ForbiddenByte"),
            ("/a%0a", "ForbiddenByte"),
            ("/a\\b", "ForbiddenByte"),
            ("/admin;x", "ForbiddenByte"),
            ("/..", "AboveRoot"),
            ("/a/../..", "AboveRoot"),
            ("/%zz", "BadEscape"),
            ("/%4", "BadEscape"),
            ("/%C0%AE", "InvalidUtf8"),
            ("/caf%c3%a9", "/caf%C3%A9"),
            ("/a%20b", "/a%20b"),
            ("/%252e", "/%252e"),
            ("/v1/jobs%3Arun", "/v1/jobs:run"),
            ("/a%2Cb%40c%21", "/a,b@c!"),
            ("/admin%3Bx", "ForbiddenByte"),
            ("/a%3Fb%23c", "/a%3Fb%23c"),
            ("a/b", "NotAbsolute"),
            ("*", "NotAbsolute"),
        ];
        for (input, want) in cases {
            let got = match normalise(input) {
                Ok(p) => p,
                Err(e) => format!("{e:?}"),
            };
            assert_eq!(got, want, "input {input:?}");
        }
    }
}
