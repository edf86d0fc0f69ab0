//! The tern binary the bench measures: the one `cargo run --release` runs.
//!
//! Cargo's `CARGO_BIN_EXE_tern` is no such binary. A bench is built with
//! the package's dev-dependencies, and with them their features of tern:
//! the simulation's `sim` and `planted-bugs`. That build cost a QoS 0
//! message 11,900 instructions where the release binary cost 9,870
//! (`benches/instructions.sh`, 2026-12-03), and every tern column of this
//! bench before 17:30 that day measured it, unless `TERN_BENCH_BINARY`
//! named another. So the bench builds the release binary itself, as the
//! README's first command does, and runs that.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// `TERN_BENCH_BINARY` if set (the instrumented build benches/pgo.sh
/// trains, or another build to compare with), else the release binary,
/// built once a run.
pub fn path() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| match std::env::var_os("TERN_BENCH_BINARY") {
        Some(path) => {
            let path = PathBuf::from(path);
            refuse_test_build(&path);
            path
        }
        None => build_release(),
    })
    .clone()
}

/// What only a build with the simulation's features holds (the planted
/// bugs, `Broker::planted_clock` among them): `.ci/run` checks that the
/// release binary has no such string.
const TEST_BUILD_MARK: &[u8] = b"planted";

/// A `TERN_BENCH_BINARY` copied from target/release after a `cargo bench`
/// is that test build, since the bench's build links it there: on
/// 2026-12-05 the runs from 09:18 to 10:00 measured it by mistake
/// (11,961 instructions a QoS 0 message against the release binary's
/// 9,698).
/// `TERN_BENCH_TEST_BUILD=1` measures it anyway.
fn refuse_test_build(path: &std::path::Path) {
    let bytes =
        std::fs::read(path).unwrap_or_else(|e| panic!("TERN_BENCH_BINARY={}: {e}", path.display()));
    let test_build = bytes
        .windows(TEST_BUILD_MARK.len())
        .any(|w| w == TEST_BUILD_MARK);
    if test_build && std::env::var_os("TERN_BENCH_TEST_BUILD").is_none() {
        eprintln!(
            "TERN_BENCH_BINARY={} is a test build (it holds the planted bugs), not what `cargo run --release` runs; \
             run `cargo build --release --bin tern` after the bench is built and copy that, or set TERN_BENCH_TEST_BUILD=1",
            path.display()
        );
        std::process::exit(2);
    }
}

/// Set by cargo for the target it runs (besides CARGO_PKG_*), not by
/// whoever runs cargo.
const RUN_ONLY: &[&str] = &[
    "CARGO_MANIFEST_DIR",
    "CARGO_MANIFEST_PATH",
    "CARGO_CRATE_NAME",
    "CARGO_BIN_NAME",
    "CARGO_PRIMARY_PACKAGE",
    "CARGO_TARGET_TMPDIR",
    "OUT_DIR",
];

/// Builds `tern` as `cargo build --release` does (up to date, this takes a
/// second) and returns where cargo put it.
fn build_release() -> PathBuf {
    // The cargo that runs the bench, if it did; else the one that built it.
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
    eprintln!("building tern's release binary: cargo build --release --bin tern");
    let mut command = Command::new(cargo);
    // What cargo set for the bench's own run is not the build's: ring's
    // build script reruns when CARGO_MANIFEST_DIR changes, and with it
    // inherited here, this build and the next plain `cargo build` each
    // rebuilt tern (1 min 48 s).
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("CARGO_PKG_") || RUN_ONLY.contains(&&*name) {
            command.env_remove(&*name);
        }
    }
    let output = command
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["build", "--release", "--bin", "tern"])
        .arg("--message-format=json-render-diagnostics")
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("cannot run cargo to build tern: {e}"));
    assert!(
        output.status.success(),
        "cargo build --release --bin tern failed ({}): its errors are above",
        output.status
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "tern")
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .expect("cargo build --release --bin tern named no executable")
}
