//! What the privileged, lab and browser tiers need at run time.
//!
//! A test of those tiers carries `#[cfg_attr(not(feature = "..."), ignore = "...")]`, so
//! without its feature the test runner reports it as ignored, never as passed.
//! `scripts/test.sh` turns the features on when it can run them (root, after
//! `scripts/install-deps.sh`). Once a test is on, a missing prerequisite fails it with
//! what to do: it never passes without having run.

#![allow(dead_code)] // Each test file uses its own subset.

use std::path::Path;

/// Where the browser tests expect Chromium (Debian's `chromium` package).
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// Fails the test unless the process is root.
pub fn require_root() {
    assert!(
        dataplane::floor::netns::is_root(),
        "needs root: this privileged test is on (feature harness/root-tests or \
         harness/lab-tests) but the process is not root; run `sudo scripts/test.sh`, or \
         build without the feature to see it reported as ignored"
    );
}

/// Fails the test unless `tool` is on PATH, naming the package that has it.
pub fn require_tool(tool: &str) {
    assert!(
        dataplane::floor::exec::which(tool).is_some(),
        "{tool} not found: install the {} package (scripts/install-deps.sh does)",
        dataplane::floor::exec::package_of(tool)
    );
}

/// Fails the test unless the kernel lab can run here: root, qemu and a static busybox.
/// The lab kernel itself is fetched on first use (`scripts/fetch-kernels.sh` does it
/// ahead).
pub fn require_lab() {
    require_root();
    assert!(
        dataplane::floor::exec::which("qemu-system-x86_64").is_some(),
        "qemu-system-x86_64 not found: install the qemu-system-x86 package \
         (scripts/install-deps.sh does)"
    );
    assert!(
        Path::new("/bin/busybox").exists() || Path::new("/usr/bin/busybox").exists(),
        "busybox not found: install the busybox-static package (scripts/install-deps.sh does)"
    );
}

/// Fails the test unless Chromium is installed where the browser tests look for it.
pub fn require_chromium() {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} not found: install the chromium package (scripts/install-deps.sh does), \
         or build without feature harness/browser-tests to see the test reported as ignored"
    );
}
