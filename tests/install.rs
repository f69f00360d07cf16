//! `make install`: the binary, the unit and the reference config land under DESTDIR/PREFIX, and an
//! existing /etc/tokengate/tokengate.toml is never overwritten.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

fn install(destdir: &Path) -> std::process::Output {
    Command::new("make")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["--no-print-directory", "install-files", "PREFIX=/usr"])
        .arg(format!("DESTDIR={}", destdir.display()))
        .arg(format!("BIN={}", env!("CARGO_BIN_EXE_tokengate")))
        .output()
        .expect("run make")
}

#[test]
fn make_install_places_files_and_keeps_an_existing_config() {
    if Command::new("make").arg("--version").output().is_err() {
        eprintln!("skipping: make is not installed");
        return;
    }
    let dest = tempfile::tempdir().unwrap();
    let out = install(dest.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bin = dest.path().join("usr/bin/tokengate");
    let unit = dest.path().join("etc/systemd/system/tokengate.service");
    let conf = dest.path().join("etc/tokengate/tokengate.toml");
    for p in [&bin, &unit, &conf] {
        assert!(p.is_file(), "{} was not installed", p.display());
    }
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&bin).unwrap().permissions().mode() & 0o111,
        0o111
    );
    let shipped =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/conf/tokengate.toml"))
            .unwrap();
    assert_eq!(std::fs::read_to_string(&conf).unwrap(), shipped);

    std::fs::write(&conf, "# edited by the operator\n").unwrap();
    let again = install(dest.path());
    assert!(again.status.success());
    assert_eq!(
        std::fs::read_to_string(&conf).unwrap(),
        "# edited by the operator\n"
    );
    assert!(String::from_utf8_lossy(&again.stdout).contains("keeping existing"));
}
