//! Fuzzes `path::normalise` on arbitrary UTF-8.
//!
//! Oracles, besides "never panics": the result is a fixed point (normalising it again changes
//! nothing), and it is in the normal form the router and the upstream must agree on: absolute, no
//! `.`/`..`/empty segments (a trailing `/` aside), only visible ASCII, every escape upper-case
//! and never for an unreserved character, `/`, `\` or a control byte.
#![no_main]

use libfuzzer_sys::fuzz_target;

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(path) = tokengate::path::normalise(raw) else {
        return;
    };
    assert_eq!(
        tokengate::path::normalise(&path).as_deref(),
        Ok(path.as_str()),
        "not idempotent for {raw:?}"
    );
    assert!(path.starts_with('/'), "{raw:?} -> {path:?}");
    let body = &path[1..];
    let segments: Vec<&str> = body.split('/').collect();
    for (i, seg) in segments.iter().enumerate() {
        assert!(
            *seg != "." && *seg != "..",
            "dot segment in {path:?} from {raw:?}"
        );
        assert!(
            !seg.is_empty() || i == segments.len() - 1,
            "empty segment in {path:?} from {raw:?}"
        );
    }
    let bytes = path.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        assert!(
            b.is_ascii_graphic() && b != b'\\' && b != b';',
            "byte {b:#x} in {path:?} from {raw:?}"
        );
        if b == b'%' {
            let (h, l) = match (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            ) {
                (Some(h), Some(l)) => (h, l),
                _ => panic!("escape not in upper-case hex in {path:?} from {raw:?}"),
            };
            let v = h << 4 | l;
            assert!(
                !(v.is_ascii_alphanumeric() || matches!(v, b'-' | b'.' | b'_' | b'~')),
                "escaped unreserved character in {path:?} from {raw:?}"
            );
            assert!(
                v != b'/' && v != b'\\' && v >= 0x20 && v != 0x7f,
                "escaped separator or control byte in {path:?} from {raw:?}"
            );
            i += 3;
        } else {
            i += 1;
        }
    }
});
