//! Fuzzes `jwks::parse`, the parser for the key set fetched from the network: it must never
//! panic, never keep more than `MAX_KEYS` keys, and account for every entry: each is either kept
//! or skipped with a reason. Entries past `MAX_KEYS` are skipped together with one reason, and
//! reasons past the first few are folded into one `"N more keys skipped"` line.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::time::SystemTime;

fuzz_target!(|data: &[u8]| {
    let Ok((set, skipped)) = tokengate::jwks::parse(data, SystemTime::UNIX_EPOCH) else {
        return;
    };
    assert!(!set.keys.is_empty(), "a parsed set without keys");
    assert!(set.keys.len() <= tokengate::jwks::MAX_KEYS);
    let doc: serde_json::Value = serde_json::from_slice(data).expect("parse accepted non-JSON");
    let entries = doc["keys"]
        .as_array()
        .expect("parse accepted a document without keys")
        .len();
    let mut accounted = set.keys.len();
    let mut truncated = false;
    for reason in &skipped {
        if reason.contains("and later") {
            truncated = true;
        } else if let Some(n) = reason
            .strip_suffix(" more keys skipped")
            .and_then(|n| n.parse::<usize>().ok())
        {
            accounted += n;
        } else {
            accounted += 1;
        }
    }
    if truncated {
        assert!(
            accounted <= entries,
            "{accounted} accounted for {entries} entries"
        );
    } else {
        assert_eq!(
            accounted, entries,
            "entries neither kept nor skipped: {skipped:?}"
        );
    }
});
