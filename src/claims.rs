//! JWT compact serialisation and claim access, before and after the signature is checked.
//!
//! Decoding is strict on purpose: exactly three parts, unpadded canonical base64url, JSON objects
//! with no duplicate member names at any depth (two `sub`s is an attack on whichever parser picks
//! the other one), and NumericDates that are non-negative numbers before year 10000. Nothing here
//! trusts a claim: `verify` decides what is true. Nothing here may log the token.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use std::fmt;

/// The latest NumericDate accepted: 9999-12-31T23:59:59Z. Larger values are parser attacks.
const MAX_NUMERIC_DATE: f64 = 253_402_300_799.0;

/// A token split and decoded, signature not yet checked.
#[derive(Debug)]
pub struct Parts<'t> {
    /// `header.payload`, the bytes the signature covers.
    pub signing_input: &'t str,
    /// The signature part, still base64url.
    pub signature: &'t str,
    /// The signature part decoded: what the key checks.
    pub signature_bytes: Vec<u8>,
    pub header: JoseHeader,
    pub claims: Claims,
}

/// The protected header fields tokengate acts on. `jku`, `x5u`, `jwk` and `x5c` are deliberately
/// absent: keys come only from the issuer's configured key set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoseHeader {
    pub alg: String,
    pub kid: Option<String>,
    pub typ: Option<String>,
    /// Any `crit` at all: tokengate implements no JWS extension, so every `crit` is unknown.
    pub has_crit: bool,
}

/// Splits and decodes a compact JWS. The error text is safe to show the client.
pub fn split(token: &str) -> Result<Parts<'_>, &'static str> {
    // memchr finds the dots a word or a vector at a time; `str::split` steps through the token.
    let dots = || memchr::memchr_iter(b'.', token.as_bytes());
    let mut it = dots();
    let (h, p, s) = match (it.next(), it.next(), it.next()) {
        (Some(a), Some(b), None) => (&token[..a], &token[a + 1..b], &token[b + 1..]),
        // Five parts: a JWE.
        _ if dots().count() == 4 => return Err("encrypted tokens (JWE) are not accepted"),
        _ => return Err("token must have three dot-separated parts"),
    };
    if s.is_empty() {
        return Err("token has no signature");
    }
    let header = decode_object(h, "header")?;
    let claims = decode_object(p, "payload")?;
    let signature_bytes = URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| "signature is not base64url")?;
    Ok(Parts {
        signing_input: &token[..h.len() + 1 + p.len()],
        signature: s,
        signature_bytes,
        header: header_fields(header)?,
        claims: Claims(claims),
    })
}

/// Decodes one part into its members, in order. The object's own members are read straight into
/// a list rather than a map: a token has a handful of them, and each one a map node would hold is
/// an allocation and ordered compares that every uncached token pays for. Members nested deeper
/// are read as [`Strict`] values.
fn decode_object(part: &str, what: &'static str) -> Result<Members, &'static str> {
    let bytes = URL_SAFE_NO_PAD.decode(part).map_err(|_| match what {
        "header" => "header is not base64url",
        _ => "payload is not base64url",
    })?;
    match serde_json::from_slice::<Object>(&bytes) {
        Ok(Object(members)) => Ok(members),
        // Only a rejected token gets here: read it again to say which rule it broke.
        Err(_) => Err(
            match (serde_json::from_slice::<Strict>(&bytes).is_ok(), what) {
                (true, "header") => "header is not a JSON object",
                (true, _) => "payload is not a JSON object",
                (false, "header") => "header is not valid JSON (or repeats a member)",
                (false, _) => "payload is not valid JSON (or repeats a claim)",
            },
        ),
    }
}

/// Reads the header's members, moving out the values it keeps.
fn header_fields(members: Members) -> Result<JoseHeader, &'static str> {
    let (mut alg, mut kid, mut typ, mut has_crit) = (None, None, None, false);
    for (name, value) in members {
        let slot = match name.as_str() {
            "alg" => &mut alg,
            "kid" => &mut kid,
            "typ" => &mut typ,
            "crit" => {
                has_crit = true;
                continue;
            }
            _ => continue,
        };
        match value {
            Value::String(s) => *slot = Some(s),
            _ => return Err("header member has the wrong type"),
        }
    }
    Ok(JoseHeader {
        alg: alg.ok_or("header has no alg")?,
        kid,
        typ,
        has_crit,
    })
}

/// A NumericDate claim that is present but unusable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidDate;

/// Reads a NumericDate claim: `Ok(None)` when absent, `Err` when present but unusable.
/// Fractions are floored; negative, non-numeric and far-future values are rejected.
pub fn numeric_date(claims: &Claims, name: &str) -> Result<Option<i64>, InvalidDate> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => {
            let v = n.as_f64().ok_or(InvalidDate)?;
            if v.is_finite() && (0.0..=MAX_NUMERIC_DATE).contains(&v) {
                // In range by the check above, so the cast is exact after floor.
                Ok(Some(v.floor() as i64))
            } else {
                Err(InvalidDate)
            }
        }
        Some(_) => Err(InvalidDate),
    }
}

/// A claim name as configured: tried first as a literal member name (namespaced claims such as
/// `https://example.com/roles` contain dots), then as a dotted path into nested objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimPath {
    full: String,
    segments: Vec<String>,
}

impl ClaimPath {
    pub fn new(name: &str) -> Self {
        ClaimPath {
            full: name.to_string(),
            segments: name.split('.').map(str::to_string).collect(),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.full
    }

    /// The top-level claim names a lookup may read: the literal name and the first segment.
    pub fn roots(&self) -> [&str; 2] {
        [
            self.full.as_str(),
            self.segments.first().map_or("", String::as_str),
        ]
    }

    /// Finds the claim in `claims`.
    pub fn lookup<'c>(&self, claims: &'c Claims) -> Option<&'c Value> {
        if let Some(v) = claims.get(&self.full) {
            return Some(v);
        }
        if self.segments.len() < 2 {
            return None;
        }
        let (first, rest) = self.segments.split_first()?;
        rest.iter()
            .try_fold(claims.get(first)?, |v, seg| v.as_object()?.get(seg))
    }
}

/// A token's claims (its payload's top-level members), kept as a short list in token order. A
/// token has a handful of claims, and after pruning to what routes use a cached one holds two or
/// three: a list costs a fraction of a map's nodes to build, search and keep (this is per cached
/// token, so it bounds the cache's memory). Names are unique: decoding rejects repeats.
#[derive(Debug, Clone, Default)]
pub struct Claims(Members);

/// An object's members in order, names checked unique.
type Members = Vec<(String, Value)>;

impl Claims {
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// Keeps only the claims whose names satisfy `keep`, releasing the rest of the memory.
    pub fn retain(&mut self, mut keep: impl FnMut(&str) -> bool) {
        self.0.retain(|(n, _)| keep(n));
        self.0.shrink_to_fit();
    }
}

/// The same claims, in whatever order: names are unique, so equal lengths and every claim found
/// with an equal value in the other is equality.
impl PartialEq for Claims {
    fn eq(&self, other: &Self) -> bool {
        self.0.len() == other.0.len() && self.0.iter().all(|(n, v)| other.get(n) == Some(v))
    }
}

impl From<Map<String, Value>> for Claims {
    fn from(map: Map<String, Value>) -> Self {
        Claims(map.into_iter().collect())
    }
}

impl From<Claims> for Map<String, Value> {
    fn from(c: Claims) -> Self {
        c.0.into_iter().collect()
    }
}

impl std::ops::Index<&str> for Claims {
    type Output = Value;

    /// `Value::Null` for an absent claim, like indexing a `serde_json::Value`.
    fn index(&self, name: &str) -> &Value {
        static NULL: Value = Value::Null;
        self.get(name).unwrap_or(&NULL)
    }
}

/// A token's granted scopes: a set held as one sorted, deduplicated, space-separated string.
///
/// One allocation on purpose: a cached token's scopes are read on every request it makes, and
/// with thousands of tokens cached every separate allocation is one more CPU-cache miss. A scope
/// never contains a space (RFC 6749 §3.3 `scope-token`), so the separator is unambiguous.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scopes(Box<str>);

impl Scopes {
    /// Whether `scope` is granted: exact comparison, never a prefix.
    pub fn contains(&self, scope: &str) -> bool {
        self.iter().any(|s| s == scope)
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.split(' ').filter(|s| !s.is_empty())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    #[cfg(test)]
    pub fn to_vec(&self) -> Vec<&str> {
        self.iter().collect()
    }
}

impl<'a> FromIterator<&'a str> for Scopes {
    /// Drops empty items and any item with a space: it is not a scope token, and kept whole it
    /// would read as two scopes.
    fn from_iter<I: IntoIterator<Item = &'a str>>(items: I) -> Self {
        let mut v: Vec<&str> = items
            .into_iter()
            .filter(|s| !s.is_empty() && !s.contains(' '))
            .collect();
        v.sort_unstable();
        v.dedup();
        Scopes(v.join(" ").into_boxed_str())
    }
}

/// Scopes granted by a token: the union of every configured scope claim that is present, each
/// either a space-delimited string (OAuth `scope`) or an array of strings (`scp`, `permissions`).
pub fn scopes(claims: &Claims, scope_claims: &[String]) -> Scopes {
    let mut out: Vec<&str> = Vec::new();
    for name in scope_claims {
        match claims.get(name) {
            Some(Value::String(s)) => out.extend(s.split(' ')),
            Some(Value::Array(items)) => out.extend(items.iter().filter_map(Value::as_str)),
            _ => {}
        }
    }
    out.into_iter().collect()
}

/// The calling client: the first of `client_claims` present in the token, if it is a string.
pub fn client(claims: &Claims, client_claims: &[String]) -> Option<String> {
    client_claims
        .iter()
        .find_map(|n| claims.get(n))
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// `aud` as a string or an array of strings; anything else is an empty audience.
pub fn audiences(claims: &Claims) -> Vec<&str> {
    match claims.get("aud") {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// A JSON object's members, in order, with duplicate member names rejected at every depth.
struct Object(Members);

impl<'de> Deserialize<'de> for Object {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(ObjectVisitor).map(Object)
    }
}

struct ObjectVisitor;

impl<'de> Visitor<'de> for ObjectVisitor {
    type Value = Members;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members, A::Error> {
        let mut out = Members::new();
        while let Some(name) = map.next_key::<String>()? {
            let Strict(v) = map.next_value()?;
            out.push((name, v));
        }
        if repeats_a_name(&out) {
            return Err(de::Error::custom("duplicate member name"));
        }
        Ok(out)
    }
}

/// Whether two members share a name. Pairwise for a token-sized object; sorted beyond that, so
/// that an object of thousands of members costs O(n log n), not O(n²).
fn repeats_a_name(members: &[(String, Value)]) -> bool {
    const PAIRWISE: usize = 16;
    if members.len() <= PAIRWISE {
        return members
            .iter()
            .enumerate()
            .any(|(i, (n, _))| members[..i].iter().any(|(m, _)| m == n));
    }
    let mut names: Vec<&str> = members.iter().map(|(n, _)| n.as_str()).collect();
    names.sort_unstable();
    names.windows(2).any(|w| w[0] == w[1])
}

/// A JSON value decoded with duplicate member names rejected at every depth. serde_json alone
/// keeps the last duplicate silently.
struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("non-finite number"))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Strict(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Value, A::Error> {
        let members = ObjectVisitor.visit_map(map)?;
        Ok(Value::Object(members.into_iter().collect()))
    }
}

#[cfg(test)]
mod tests;
