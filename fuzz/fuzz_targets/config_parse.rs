//! Fuzzes `config::load_str` on arbitrary UTF-8: loading a config must never panic, whatever the
//! text. Relative file names resolve in a temp dir holding a valid `jwks.json`, so the seeds can
//! reach the key-file path too. One `Metrics` is shared by every load, as across reloads.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;
use std::sync::OnceLock;
use tokengate::metrics::Metrics;

static STATE: OnceLock<(Metrics, PathBuf)> = OnceLock::new();

fn state() -> &'static (Metrics, PathBuf) {
    STATE.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("tokengate-fuzz-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create the fuzz temp dir");
        std::fs::write(dir.join("jwks.json"), include_str!("../fixtures/jwks.json"))
            .expect("write jwks.json");
        (Metrics::new().expect("metrics"), dir)
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Absolute paths could name devices (`/dev/zero`) that never end; they are not what this
    // target is about.
    if text.contains("/dev") || text.contains("/proc") || text.contains("/sys") {
        return;
    }
    let (metrics, dir) = state();
    let _ = tokengate::config::load_str(text, "fuzz.toml", dir, metrics);
});
