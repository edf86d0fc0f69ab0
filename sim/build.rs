//! The commit this build of the simulation was made from, for the replay
//! lines it prints (`seeds::revision`). Read when a line was printed, `git`
//! named the checkout's commit then, which a binary built before a later
//! commit (a sweep left running, a copy kept) was not.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn main() {
    let revision = git(&["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=TERN_SIM_REVISION={revision}");
    println!("cargo:rerun-if-changed=build.rs");
    // A commit or a checkout writes to HEAD's log.
    if let Some(log) = git(&["rev-parse", "--git-path", "logs/HEAD"]) {
        println!("cargo:rerun-if-changed={log}");
    }
}
