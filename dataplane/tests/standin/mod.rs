//! What the stand-in conformance tests share: a namespace guard and the check itself.

use std::time::Instant;

use dataplane::conformance::{compare, differences, sequence};
use dataplane::floor::exec::which;
use dataplane::{Backend, Netns};

/// A namespace that is deleted when the guard drops, also on panic.
pub struct NsGuard(pub Netns);

impl NsGuard {
    /// A fresh namespace named for this process and `tag`.
    pub fn new(tag: &str) -> Self {
        let name = format!("kpb-test-si-{}-{tag}", std::process::id());
        NsGuard(Netns::create(&name).expect("create test namespace"))
    }
}

impl Drop for NsGuard {
    fn drop(&mut self) {
        let _ = self.0.delete();
    }
}

/// Fails unless this process is root and has `backend`'s tools.
pub fn require(backend: &dyn Backend) {
    assert!(
        dataplane::floor::netns::is_root(),
        "needs root: this privileged test is on (feature dataplane/root-tests) but the \
         process is not root; run `sudo scripts/test.sh`, or build without the feature to \
         see it reported as ignored"
    );
    for t in backend.tools() {
        assert!(
            which(t).is_some(),
            "{t} not found: install its package (scripts/install-deps.sh does)"
        );
    }
}

/// Runs the conformance sequence from `services` x `endpoints` for `backend` in a
/// fresh namespace and fails with the differences, step by step.
pub fn holds(backend: &dyn Backend, tag: &str, services: usize, endpoints: usize) {
    require(backend);
    let start = Instant::now();
    let ns = NsGuard::new(tag);
    let compared = compare(backend, &ns.0, &sequence(services, endpoints))
        .unwrap_or_else(|e| panic!("{}: {e}", backend.mode()));
    assert_eq!(compared.len(), 5, "every step compared");
    assert!(
        compared.iter().all(|c| !c.kernel.is_empty()),
        "{}: the kernel read back nothing",
        backend.mode()
    );
    if let Some(d) = differences(&compared) {
        panic!(
            "{}: the stand-in differs from the kernel\n{d}",
            backend.mode()
        );
    }
    let sizes: Vec<String> = compared
        .iter()
        .map(|c| format!("{}: {} lines", c.step, c.kernel.lines().count()))
        .collect();
    eprintln!(
        "{} ({services} x {endpoints}): the stand-in agrees with the kernel after every step ({}), {:.1}s",
        backend.mode(),
        sizes.join(", "),
        start.elapsed().as_secs_f64()
    );
}
