//! External programs some tests need (QEMU, openssl, nginx, HAProxy, python3 with
//! `cryptography`). A test that finds one missing says so on a visible
//! `SKIPPED: <test>: <why>` line and returns; under CI (`CI=true`), where
//! tests/setup.sh installs them all, a missing one fails the test instead, so a
//! broken setup can never pass as a green run.
//!
//! Each skip is also appended to `target/tmp/skipped-tests.txt`, which tests/run.sh
//! prints after the Rust suites.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

/// True when every program in `programs` is on the PATH; otherwise skips (or fails
/// under CI) naming the missing ones.
pub fn have(programs: &[&str]) -> bool {
    let missing: Vec<&str> = programs.iter().copied().filter(|p| !on_path(p)).collect();
    missing.is_empty()
        || skip(&format!(
            "{} not installed (tests/setup.sh installs it)",
            missing.join(", ")
        ))
}

/// True when python3 is on the PATH and imports `module`; otherwise skips (or fails
/// under CI).
pub fn have_python_module(module: &str) -> bool {
    let imports = Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    imports
        || skip(&format!(
            "python3 cannot import {module} (tests/setup.sh installs it)"
        ))
}

/// Whether this run is CI's, where nothing may be skipped.
pub fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true"))
}

/// Reports a skip and returns false; under CI fails the test with `why` instead.
pub fn skip(why: &str) -> bool {
    let test = std::thread::current()
        .name()
        .unwrap_or("unnamed test")
        .to_string();
    assert!(!under_ci(), "{test}: {why}, and CI=true allows no skips");
    let line = format!("SKIPPED: {test}: {why}");
    // Straight to the process's stderr: the test harness captures `eprintln!` and
    // shows it only for failures, and a skip must be seen.
    let _ = writeln!(std::io::stderr(), "{line}");
    let record = Path::new(env!("CARGO_TARGET_TMPDIR")).join("skipped-tests.txt");
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(record)
    {
        let _ = writeln!(f, "{line}");
    }
    false
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            std::fs::metadata(dir.join(program)).is_ok_and(|m| {
                m.is_file()
                    && std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o111 != 0
            })
        })
    })
}
