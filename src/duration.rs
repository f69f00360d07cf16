//! Durations in the config: integer seconds (`90`) or human strings (`"90s"`, `"15m"`, `"2h"`).
//!
//! Parsing is delegated to `humantime`; this file only adds the integer form and the serde glue.

use serde::{Deserialize, Deserializer};
use std::time::Duration;

/// A config duration as written by the operator, parsed at deserialisation time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConfigDuration(pub Duration);

impl<'de> Deserialize<'de> for ConfigDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Form {
            Secs(i64),
            Text(String),
        }
        match Form::deserialize(d).map_err(|_| {
            serde::de::Error::custom(
                "expected a duration: integer seconds or a string like \"90s\", \"15m\", \"2h\"",
            )
        })? {
            Form::Secs(s) if s >= 0 => Ok(ConfigDuration(Duration::from_secs(s as u64))),
            Form::Secs(_) => Err(serde::de::Error::custom("a duration cannot be negative")),
            Form::Text(t) => parse(&t)
                .map(ConfigDuration)
                .map_err(serde::de::Error::custom),
        }
    }
}

/// Parses `"90s"`, `"15m"`, `"2h"`, `"1h 30m"` or a bare number of seconds.
pub fn parse(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    if let Ok(secs) = t.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(t).map_err(|e| format!("invalid duration {text:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_bare_seconds() {
        for (text, secs) in [
            ("90s", 90),
            ("15m", 900),
            ("2h", 7200),
            ("45", 45),
            ("1h 30m", 5400),
        ] {
            assert_eq!(parse(text), Ok(Duration::from_secs(secs)), "{text}");
        }
    }

    #[test]
    fn rejects_garbage() {
        for text in ["", "ten", "5 parsecs", "-3s"] {
            assert!(parse(text).is_err(), "{text}");
        }
    }
}
