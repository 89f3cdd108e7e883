//! `my2pg demo --size small` as a user runs it: the binary, its own servers, exit code 0 and
//! a verify that finds the target identical, in under two minutes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn the_small_demo_runs_end_to_end_and_verifies_identical() {
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_my2pg"))
        .args(["demo", "--size", "small"])
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let took = started.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    for needle in [
        "[6/6] my2pg verify",
        "verify       identical",
        "lag          p50",
        "the target equals the source, row for row.",
    ] {
        assert!(
            stdout.contains(needle),
            "{needle:?} missing from:\n{stdout}"
        );
    }
    assert!(
        took < Duration::from_secs(120),
        "the small demo took {took:?}"
    );
}
