//! Bakes the git commit into a binary, for `/healthz` and image labels (factor V).
//!
//! Call [`emit`] from a service's `build.rs`; the service then reads
//! `env!("DOZEN_GIT_COMMIT")`. A `GIT_COMMIT` variable set at build time wins
//! (container builds have no `.git`); otherwise `git` is asked; failing both,
//! the commit is `unknown`.

use std::path::PathBuf;
use std::process::Command;

/// Prints the `cargo:` lines that set `DOZEN_GIT_COMMIT` and rebuild when HEAD moves.
pub fn emit() {
    println!("cargo:rerun-if-env-changed=GIT_COMMIT");
    let commit = std::env::var("GIT_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty())
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".to_owned());
    if let Some(git_dir) = git(&["rev-parse", "--absolute-git-dir"]).map(PathBuf::from) {
        // A watched file that does not exist makes cargo rebuild every time,
        // so only existing ones are watched (`packed-refs` often is not there).
        for watched in ["HEAD", "packed-refs"] {
            let path = git_dir.join(watched);
            if path.exists() {
                println!("cargo:rerun-if-changed={}", path.display());
            }
        }
        if let Some(reference) = git(&["symbolic-ref", "-q", "HEAD"]) {
            println!(
                "cargo:rerun-if-changed={}",
                git_dir.join(reference).display()
            );
        }
    }
    println!("cargo:rustc-env=DOZEN_GIT_COMMIT={commit}");
}

fn git(args: &[&str]) -> Option<String> {
    let output = Command::new("git").args(args).output().ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8(output.stdout).ok()?;
    Some(text.trim().to_owned()).filter(|t| !t.is_empty())
}
