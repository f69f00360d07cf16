//! Loading a config file: read, parse into the raw mirror, compile into runtime types.
//!
//! Every error names the file, the line and the field, e.g.
//! `conf/x.toml:14: route #2 'transfers': field 'upstream': unknown upstream 'bank'`.
//! Loading never panics and never returns a half-built config.

pub mod compile;
pub mod raw;

use crate::metrics::Metrics;
use crate::runtime::Runtime;
use std::fmt;
use std::path::{Path, PathBuf};

/// One problem in a config file, located precisely enough for an operator to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub line: usize,
    /// Which block the problem is in, e.g. `route #2 'transfers'` or `server`.
    pub context: String,
    pub message: String,
}

/// Why a config could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}", render(file, diagnostics))]
    Invalid {
        file: String,
        diagnostics: Vec<Diagnostic>,
    },
}

fn render(file: &str, diagnostics: &[Diagnostic]) -> String {
    diagnostics
        .iter()
        .map(|d| format!("{file}:{}: {}", d.line, DiagnosticBody(d)))
        .collect::<Vec<_>>()
        .join("\n")
}

struct DiagnosticBody<'a>(&'a Diagnostic);

impl fmt::Display for DiagnosticBody<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.context.is_empty() {
            write!(f, "{}", self.0.message)
        } else {
            write!(f, "{}: {}", self.0.context, self.0.message)
        }
    }
}

/// Reads and compiles the config at `path`.
pub fn load(path: &Path, metrics: &Metrics) -> Result<Runtime, ConfigError> {
    reload(path, metrics, None)
}

/// Reads and compiles the config at `path` to replace `previous`: issuers whose identity and key
/// location did not change keep their key stores, so a reload causes no refetch storm.
pub fn reload(
    path: &Path,
    metrics: &Metrics,
    previous: Option<&Runtime>,
) -> Result<Runtime, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    compile_text(
        &text,
        &path.display().to_string(),
        base_dir(path),
        metrics,
        previous,
    )
}

/// Compiles config text; `file` names it in errors and `base` resolves relative file paths in it.
pub fn load_str(
    text: &str,
    file: &str,
    base: &Path,
    metrics: &Metrics,
) -> Result<Runtime, ConfigError> {
    compile_text(text, file, base, metrics, None)
}

fn compile_text(
    text: &str,
    file: &str,
    base: &Path,
    metrics: &Metrics,
    previous: Option<&Runtime>,
) -> Result<Runtime, ConfigError> {
    let source = Source::new(text);
    let invalid = |diagnostics| ConfigError::Invalid {
        file: file.to_string(),
        diagnostics,
    };
    let raw: raw::RawConfig =
        toml::from_str(text).map_err(|e| invalid(vec![source.diagnose(&e)]))?;
    let mut runtime = compile::compile(raw, &source, base, metrics, previous).map_err(invalid)?;
    runtime.hash = hash(text);
    Ok(runtime)
}

/// A stable fingerprint of the config text, exported so operators can see which file is live.
fn hash(text: &str) -> u32 {
    use std::hash::{Hash, Hasher};
    // DefaultHasher::new() uses fixed keys, so the value is the same across processes.
    let mut h = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut h);
    h.finish() as u32
}

fn base_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// The config text, kept to turn byte offsets into line numbers and block names.
pub struct Source<'a> {
    text: &'a str,
}

impl<'a> Source<'a> {
    pub fn new(text: &'a str) -> Self {
        Source { text }
    }

    /// The 1-based line holding byte `offset`.
    pub fn line(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }

    /// Names the `[[route]]`, `[[issuer]]`, `[[upstream]]` or `[server]` block that line `line`
    /// is in, counting array-of-table headers the way TOML numbers them (from 1, in file order).
    fn block_at(&self, line: usize) -> String {
        let mut current = String::new();
        let mut counts = [0usize; 3];
        for (i, l) in self.text.lines().enumerate() {
            if i + 1 > line {
                break;
            }
            let t = l.trim();
            for (k, (header, label)) in [
                ("[[route]]", "route"),
                ("[[issuer]]", "issuer"),
                ("[[upstream]]", "upstream"),
            ]
            .iter()
            .enumerate()
            {
                if t.starts_with(header) {
                    counts[k] += 1;
                    current = format!("{label} #{}", counts[k]);
                }
            }
            if t.starts_with("[server]") {
                current = "server".to_string();
            }
        }
        current
    }

    fn diagnose(&self, e: &toml::de::Error) -> Diagnostic {
        let line = e.span().map(|s| self.line(s.start)).unwrap_or(1);
        let mut message = e.message().trim().replace('`', "'");
        // serde's type and custom errors do not name the key; the span points at the value.
        if let Some(key) = e.span().and_then(|s| self.key_before(s.start)) {
            if !message.contains(&format!("'{key}'")) {
                message = format!("field '{key}': {message}");
            }
        }
        Diagnostic {
            line,
            context: self.block_at(line),
            message,
        }
    }

    /// The key of a `key = value` line when `offset` lies in its value.
    fn key_before(&self, offset: usize) -> Option<&str> {
        let before = self.text.get(..offset)?;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let (key, _) = before[line_start..].split_once('=')?;
        let key = key.trim().trim_matches('"');
        (!key.is_empty()).then_some(key)
    }
}

#[cfg(test)]
mod tests;
