//! Tells the build which kpbench commit it is: `KPBENCH_GIT_REV` (the commit, 40 hex
//! digits) and `KPBENCH_GIT_DIRTY` (`true` when the sources the binary is built from
//! differ from that commit), both recorded in every run's `results.json`.
//!
//! - **Dirty** means `git status --porcelain` lists a change under [`SOURCES`]: a tracked
//!   file modified, added or deleted, or an untracked file that is not ignored (a new
//!   module changes the binary as much as an edited one). Changes elsewhere (docs,
//!   scripts) do not build into the binary and do not count.
//! - **Not stale**: the script reruns when HEAD, the branch it points to, the index or
//!   any file under [`SOURCES`] changes, so a commit or an edit is seen by the next build.
//! - **No git** (a source tarball, git not installed): nothing is set, and the run
//!   records `git_rev: null` and `git_dirty: null`, unknown rather than guessed. A
//!   packager may set `KPBENCH_GIT_REV` (and `KPBENCH_GIT_DIRTY`) in the build's
//!   environment instead; it is then passed through as given.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The paths, relative to the repository's top, that the kpbench binary is built from.
const SOURCES: [&str; 5] = [
    "harness",
    "dataplane",
    "scenarios",
    "Cargo.toml",
    "Cargo.lock",
];

/// `git <args>` in `dir`, its trimmed stdout when it succeeds. Optional locks off, so
/// `git status` never rewrites the index (which would rerun this script every build).
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_OPTIONAL_LOCKS", "0")
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn rerun_if_exists(p: &Path) {
    // A path that does not exist would rerun the script on every build.
    if p.exists() {
        println!("cargo:rerun-if-changed={}", p.display());
    }
}

fn main() {
    println!("cargo:rerun-if-env-changed=KPBENCH_GIT_REV");
    println!("cargo:rerun-if-env-changed=KPBENCH_GIT_DIRTY");
    if let Ok(rev) = std::env::var("KPBENCH_GIT_REV") {
        println!("cargo:rustc-env=KPBENCH_GIT_REV={rev}");
        if let Ok(dirty) = std::env::var("KPBENCH_GIT_DIRTY") {
            println!("cargo:rustc-env=KPBENCH_GIT_DIRTY={dirty}");
        }
        return;
    }
    let here = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let Some(top) = git(&here, &["rev-parse", "--show-toplevel"]).map(PathBuf::from) else {
        println!("cargo:warning=not built from a git checkout: the run records git_rev null");
        rerun_if_exists(&here.join("build.rs"));
        return;
    };
    // HEAD lives in the worktree's git dir, branches in the common one (a worktree's
    // differ); a branch may be loose or packed.
    let abs = |p: String| top.join(p);
    if let Some(dir) = git(&top, &["rev-parse", "--git-dir"]).map(abs) {
        rerun_if_exists(&dir.join("HEAD"));
        rerun_if_exists(&dir.join("index"));
    }
    if let Some(common) = git(&top, &["rev-parse", "--git-common-dir"]).map(abs) {
        if let Some(branch) = git(&top, &["symbolic-ref", "-q", "HEAD"]) {
            rerun_if_exists(&common.join(branch));
        }
        rerun_if_exists(&common.join("packed-refs"));
    }
    for s in SOURCES {
        rerun_if_exists(&top.join(s));
    }
    let Some(rev) = git(&top, &["rev-parse", "HEAD"]) else {
        println!("cargo:warning=git rev-parse HEAD failed: the run records git_rev null");
        return;
    };
    println!("cargo:rustc-env=KPBENCH_GIT_REV={rev}");
    let mut status = vec!["status", "--porcelain", "--untracked-files=normal", "--"];
    status.extend(SOURCES);
    if let Some(changes) = git(&top, &status) {
        println!("cargo:rustc-env=KPBENCH_GIT_DIRTY={}", !changes.is_empty());
    }
}
