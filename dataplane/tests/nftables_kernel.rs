//! Privileged tests of kube-proxy's nftables mode against the real kernel, each in
//! network namespaces of its own. They run when the process is root and say so on
//! stderr when they are skipped.

use std::time::Duration;

use dataplane::model::{service, spare_endpoint_ip, Endpoint, ENDPOINT_PORT};
use dataplane::nftables::{normalized_listing, render_full_shaped, NftablesBackend, Shape};
use dataplane::{Backend, Netns, ServiceSet};

const TIMEOUT: Duration = Duration::from_secs(120);

/// A namespace that is deleted when the guard drops, also on panic.
struct NsGuard(Netns);

impl NsGuard {
    fn new(tag: &str) -> Self {
        let name = format!("kpb-test-nft-{}-{tag}", std::process::id());
        NsGuard(Netns::create(&name).expect("create test namespace"))
    }
}

impl Drop for NsGuard {
    fn drop(&mut self) {
        let _ = self.0.delete();
    }
}

fn can_run(test: &str) -> bool {
    if !dataplane::netns::is_root() {
        eprintln!("{test}: skipped: needs root");
        return false;
    }
    if dataplane::exec::which("nft").is_none() {
        eprintln!("{test}: skipped: nft not found (install the nftables package)");
        return false;
    }
    true
}

/// A set with one endpoint-less service, so every container is exercised.
fn sample(n: usize, e: usize) -> ServiceSet {
    let mut set = ServiceSet::generate(n, e);
    set.upsert(service(n, 0));
    set
}

#[test]
fn full_sync_reads_back_what_was_rendered() {
    if !can_run("full_sync_reads_back_what_was_rendered") {
        return;
    }
    let set = sample(40, 10);
    for (tag, shape) in [("kp", Shape::KubeProxy), ("early", Shape::BindEarly)] {
        let ns = NsGuard::new(&format!("full-{tag}"));
        let backend = NftablesBackend::with_shape(shape);
        let report = backend.sync(&ns.0, None, &set, TIMEOUT).unwrap();
        assert_eq!(
            report.payload_bytes,
            render_full_shaped(&set, shape).text.len()
        );
        let found = backend.read_back(&ns.0, TIMEOUT).unwrap();
        assert_eq!(found, backend.expected_objects(&set), "shape {shape:?}");
        assert_eq!(found, 23 + 40 * 22 + 2 * 41);
    }
}

#[test]
fn both_shapes_leave_the_same_ruleset() {
    if !can_run("both_shapes_leave_the_same_ruleset") {
        return;
    }
    let set = sample(25, 4);
    let a = NsGuard::new("shape-a");
    let b = NsGuard::new("shape-b");
    NftablesBackend::with_shape(Shape::KubeProxy)
        .sync(&a.0, None, &set, TIMEOUT)
        .unwrap();
    NftablesBackend::with_shape(Shape::BindEarly)
        .sync(&b.0, None, &set, TIMEOUT)
        .unwrap();
    let listing = normalized_listing(&a.0, TIMEOUT).unwrap();
    assert!(
        listing.contains("numgen") && listing.contains("dnat"),
        "{listing}"
    );
    assert_eq!(listing, normalized_listing(&b.0, TIMEOUT).unwrap());
    // A different set must give a different listing, or the comparison proves nothing.
    let c = NsGuard::new("shape-c");
    NftablesBackend::new()
        .sync(&c.0, None, &sample(24, 4), TIMEOUT)
        .unwrap();
    assert_ne!(listing, normalized_listing(&c.0, TIMEOUT).unwrap());
}

/// Applies `new` as a partial sync on top of `old` in `live`, and checks the kernel now
/// holds exactly what a fresh full sync of `new` gives.
fn check_partial(live: &Netns, old: &ServiceSet, new: &ServiceSet, step: &str) {
    let backend = NftablesBackend::new();
    backend
        .sync(live, Some(old), new, TIMEOUT)
        .unwrap_or_else(|e| panic!("{step}: partial sync failed: {e}"));
    let fresh = NsGuard::new("fresh");
    backend.sync(&fresh.0, None, new, TIMEOUT).unwrap();
    let got = normalized_listing(live, TIMEOUT).unwrap();
    let want = normalized_listing(&fresh.0, TIMEOUT).unwrap();
    if got != want {
        let diff: Vec<String> = got
            .lines()
            .zip(want.lines())
            .filter(|(g, w)| g != w)
            .take(3)
            .map(|(g, w)| format!("partial: {g}\n   full: {w}"))
            .collect();
        panic!(
            "{step}: partial sync differs from a full sync:\n{}",
            diff.join("\n")
        );
    }
    assert_eq!(
        backend.read_back(live, TIMEOUT).unwrap(),
        backend.expected_objects(new),
        "{step}"
    );
}

#[test]
fn partial_syncs_equal_full_syncs() {
    if !can_run("partial_syncs_equal_full_syncs") {
        return;
    }
    let live = NsGuard::new("live");
    let backend = NftablesBackend::new();
    let mut state = sample(30, 3);
    backend.sync(&live.0, None, &state, TIMEOUT).unwrap();

    let mut next = state.clone();
    next.upsert(service(100, 3));
    check_partial(&live.0, &state, &next, "add service");
    state = next;

    let mut next = state.clone();
    next.remove(7);
    check_partial(&live.0, &state, &next, "remove service");
    state = next;

    let mut next = state.clone();
    let mut svc = next.get(12).unwrap().clone();
    svc.endpoints[1] = Endpoint {
        ip: spare_endpoint_ip(5),
        port: ENDPOINT_PORT,
    };
    svc.endpoints.push(Endpoint {
        ip: spare_endpoint_ip(6),
        port: ENDPOINT_PORT,
    });
    next.upsert(svc);
    check_partial(&live.0, &state, &next, "update endpoints");
    state = next;

    let mut next = state.clone();
    next.upsert(service(3, 0));
    next.upsert(service(30, 2));
    check_partial(&live.0, &state, &next, "lose all endpoints, and gain some");
}
