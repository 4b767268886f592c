//! Privileged tests of kube-proxy's nftables mode against the real kernel, each in
//! network namespaces of its own. They need root and nft: without feature `root-tests`
//! they are reported as ignored; with it, a missing prerequisite fails them.

use std::time::Duration;

use dataplane::conformance::featured::{featured_change, featured_set};
use dataplane::floor::model::{service, spare_endpoint_ip, Endpoint, ENDPOINT_PORT};
use dataplane::floor::sync::{Controller, MeasuredExecutor, RealExecutor};
use dataplane::nftables::{normalized_listing, NftablesBackend};
use dataplane::{Backend, Deadline, KubeProxyVersion, Netns, Profile, ServiceSet};

const TIMEOUT: Duration = Duration::from_secs(120);

/// A fresh deadline of [`TIMEOUT`] for one call.
fn deadline() -> Deadline {
    Deadline::after(TIMEOUT)
}

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

/// Fails the test unless this process is root and has nft.
fn require_root_and_nft() {
    assert!(
        dataplane::floor::netns::is_root(),
        "needs root: this privileged test is on (feature dataplane/root-tests) but the \
         process is not root; run `sudo scripts/test.sh`, or build without the feature to \
         see it reported as ignored"
    );
    assert!(
        dataplane::floor::exec::which("nft").is_some(),
        "nft not found: install the nftables package (scripts/install-deps.sh does)"
    );
}

/// A set with one endpoint-less service, so every container is exercised.
fn plain(n: usize, e: usize) -> ServiceSet {
    let mut set = ServiceSet::generate(n, e);
    set.upsert(service(n, 0));
    set
}

/// [`plain`] and, from index `n + 1`, one service per rendered feature
/// (`conformance::featured`).
fn sample(n: usize, e: usize) -> ServiceSet {
    let mut set = plain(n, e);
    let featured = featured_set(n + 1, e, NftablesBackend::new().renders());
    for svc in featured.services.into_iter().filter(|s| s.index > n) {
        set.upsert(svc);
    }
    set
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root: scripts/test.sh runs it as root"
)]
fn full_sync_reads_back_what_was_rendered() {
    require_root_and_nft();
    let set = plain(40, 10);
    for (release, profile) in profiles() {
        let backend = NftablesBackend::new().for_release(release);
        let ns = NsGuard::new(&format!("full-{}", profile.kind()));
        let mut ctl = backend.controller(profile);
        let mut io = RealExecutor::new(&ns.0, deadline());
        io.begin(deadline());
        ctl.sync(&mut io, None, &set, Duration::ZERO).unwrap();
        let report = io.finish();
        assert!(report.payload_bytes > 0, "{profile}: a payload was written");
        let found = backend
            .verify(&ns.0, &set, deadline())
            .unwrap_or_else(|e| panic!("{profile}: {e}"))
            .count;
        assert_eq!(found, backend.expected_objects(&set), "{profile}");
        let want = match release {
            // Fixed rules, 2 + 2 x 10 per service, 2 elements per service, the node IP.
            KubeProxyVersion::V1_35 => 23 + 40 * 22 + 2 * 41 + 1,
            // Fixed rules, 1 per service, 2 elements per service and a hairpin tuple
            // per endpoint, the node IP.
            KubeProxyVersion::V1_36 => 22 + 40 + 2 * 41 + 400 + 1,
        };
        assert_eq!(found, want, "{profile} ({release}'s rules)");
    }
}

/// The profiles the controllers replay, each with the release whose rules it writes:
/// each kube-proxy release, and the floor for each release's objects.
fn profiles() -> Vec<(KubeProxyVersion, Profile)> {
    KubeProxyVersion::ALL
        .into_iter()
        .flat_map(|v| [(v, Profile::KubeProxy(v)), (v, Profile::Floor)])
        .collect()
}

/// One controller syncing one namespace through the real executor, as the runner
/// drives it: syncs spaced 1 s apart in virtual time.
struct Driven<'a> {
    ns: &'a Netns,
    ctl: Box<dyn Controller>,
    io: RealExecutor<'a>,
    state: Option<ServiceSet>,
    at: Duration,
}

impl<'a> Driven<'a> {
    fn new(ns: &'a Netns, profile: Profile, release: KubeProxyVersion) -> Self {
        Driven {
            ns,
            ctl: NftablesBackend::new()
                .for_release(release)
                .controller(profile),
            io: RealExecutor::new(ns, deadline()),
            state: None,
            at: Duration::ZERO,
        }
    }

    /// Syncs to `next`; returns the names of the steps it ran.
    fn sync(&mut self, next: &ServiceSet) -> Vec<String> {
        self.io.begin(deadline());
        let profile = self.ctl.profile();
        self.ctl
            .sync(&mut self.io, self.state.as_ref(), next, self.at)
            .unwrap_or_else(|e| panic!("{profile}: sync at {:?}: {e}", self.at));
        let report = self.io.finish();
        self.state = Some(next.clone());
        self.at += Duration::from_secs(1);
        report.steps.steps.into_iter().map(|s| s.name).collect()
    }

    /// Fires the pending timers and reads the table back, normalised.
    fn settle_and_list(&mut self) -> String {
        let set = self.state.clone().unwrap_or_default();
        let profile = self.ctl.profile();
        self.io.begin(deadline());
        self.ctl
            .settle(&mut self.io, &set, self.at)
            .unwrap_or_else(|e| panic!("{profile}: settle: {e}"));
        normalized_listing(self.ns, deadline()).unwrap()
    }
}

/// The normalised table a fresh floor full sync of `set` with `release`'s rules leaves.
fn fresh_listing(set: &ServiceSet, release: KubeProxyVersion) -> String {
    let fresh = NsGuard::new("fresh");
    let mut d = Driven::new(&fresh.0, Profile::Floor, release);
    d.sync(set);
    d.settle_and_list()
}

fn first_differences(got: &str, want: &str) -> String {
    got.lines()
        .zip(want.lines())
        .filter(|(g, w)| g != w)
        .take(3)
        .map(|(g, w)| format!("  got: {g}\n want: {w}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The sequence of service sets both tests apply after a full sync of the first.
fn sequence() -> Vec<(&'static str, ServiceSet)> {
    let mut v = Vec::new();
    let mut state = sample(30, 3);
    v.push(("full sync", state.clone()));
    state.upsert(service(100, 3));
    v.push(("add service", state.clone()));
    state.remove(7);
    v.push(("remove service", state.clone()));
    let mut svc = state.get(12).unwrap().clone();
    svc.endpoints[1] = Endpoint {
        ip: spare_endpoint_ip(5),
        port: ENDPOINT_PORT,
    };
    svc.endpoints.push(Endpoint {
        ip: spare_endpoint_ip(6),
        port: ENDPOINT_PORT,
    });
    state.upsert(svc);
    v.push(("update endpoints", state.clone()));
    state.upsert(service(3, 0));
    state.upsert(service(30, 2));
    v.push(("lose all endpoints, and gain some", state.clone()));
    state.remove(100);
    state.remove(12);
    v.push(("remove two services", state.clone()));
    let state = featured_change(&state, 31);
    v.push(("change the feature services", state.clone()));
    v
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root: scripts/test.sh runs it as root"
)]
fn partial_syncs_equal_full_syncs() {
    require_root_and_nft();
    // With the kube-proxy controller, step by step: after each partial sync and
    // kube-proxy's pending timers, the table is what a fresh full sync leaves.
    for version in KubeProxyVersion::ALL {
        let live = NsGuard::new("live");
        let mut d = Driven::new(&live.0, Profile::KubeProxy(version), version);
        for (step, set) in sequence() {
            d.sync(&set);
            let got = d.settle_and_list();
            let want = fresh_listing(&set, version);
            assert!(
                got == want,
                "kube-proxy {version}, {step}: partial sync differs from a full sync:\n{}",
                first_differences(&got, &want)
            );
            let backend = NftablesBackend::new().for_release(version);
            let found = backend
                .verify(&live.0, &set, deadline())
                .unwrap_or_else(|e| panic!("{version}, {step}: {e}"))
                .count;
            assert_eq!(found, backend.expected_objects(&set), "{step}");
        }
    }
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root: scripts/test.sh runs it as root"
)]
fn profiles_leave_identical_objects() {
    require_root_and_nft();
    // Every profile applies the whole sequence in a namespace of its own (no settle
    // in between: kube-proxy's delayed deletes run at its own later syncs), then
    // settles; the normalised tables of each release must be identical, and a fresh
    // full sync's of that release's rules. The releases' tables differ from each other.
    let mut listings: Vec<(KubeProxyVersion, Profile, String)> = Vec::new();
    for (release, profile) in profiles() {
        let ns = NsGuard::new("profile");
        let mut d = Driven::new(&ns.0, profile, release);
        let removed = sample(30, 3).get(7).unwrap().clone();
        let removed_chain = dataplane::floor::names::nft_service_chain(&removed);
        for (i, (_, set)) in sequence().into_iter().enumerate() {
            let steps = d.sync(&set);
            let listing = normalized_listing(&ns.0, deadline()).unwrap();
            let has_removed = listing.contains(&format!("chain {removed_chain}:"));
            match (i, profile) {
                // kube-proxy: flushed when the service goes (step 2), deleted by a
                // transaction of its own 1 s later, before the listing.
                (2, Profile::KubeProxy(_)) => {
                    assert!(has_removed, "{profile}: flushed, not deleted yet");
                    assert!(!steps.iter().any(|s| s.contains("delete")), "{steps:?}");
                }
                (3, Profile::KubeProxy(_)) => {
                    assert!(!has_removed, "{profile}: deleted 1 s later");
                    assert_eq!(steps[0], "nft -f (delete stale chains)", "{profile}");
                }
                // floor: deleted at once, by a second transaction.
                (2, Profile::Floor) => {
                    assert!(!has_removed, "floor: deleted at once");
                    assert_eq!(
                        &steps[..steps.len() - 1],
                        ["nft -f", "nft -f (delete stale chains)"]
                    );
                }
                _ => {}
            }
            if i == 0 {
                let want: &[&str] = match profile {
                    Profile::KubeProxy(KubeProxyVersion::V1_35) => {
                        &["nft list chains", "nft list sets", "nft -f"]
                    }
                    Profile::KubeProxy(KubeProxyVersion::V1_36) => &["nft list table", "nft -f"],
                    Profile::Floor => &["nft -f (prepare)", "nft -f (publish)"],
                };
                assert_eq!(&steps[..steps.len() - 1], want, "{profile}");
            }
        }
        listings.push((release, profile, d.settle_and_list()));
    }
    let end = sequence().pop().unwrap().1;
    let mut fresh = Vec::new();
    for release in KubeProxyVersion::ALL {
        let want = fresh_listing(&end, release);
        assert!(
            want.contains("10.255.0.1"),
            "the node IP in nodeport-ips: {want}"
        );
        // 1.35: endpoint chains and mark-for-masquerade; 1.36: the hairpin set instead.
        let v36 = release == KubeProxyVersion::V1_36;
        assert_eq!(want.contains("set hairpin-connections:"), v36, "{release}");
        assert_eq!(
            want.contains("chain mark-for-masquerade:"),
            !v36,
            "{release}"
        );
        // 1.36 keeps endpoint chains only for ClientIP affinity.
        let endpoint_chains = want.matches("chain endpoint-").count();
        assert!(
            if v36 {
                endpoint_chains == 3
            } else {
                endpoint_chains > 90
            },
            "{release}: {endpoint_chains} endpoint chains"
        );
        assert!(want.contains("set affinity-"), "{release}");
        for (_, profile, got) in listings.iter().filter(|(r, ..)| *r == release) {
            assert!(
                *got == want,
                "{profile} ({release}'s rules): differs from a fresh full sync:\n{}",
                first_differences(got, &want)
            );
        }
        fresh.push(want);
    }
    assert_ne!(fresh[0], fresh[1], "1.35 and 1.36 leave different tables");
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root: scripts/test.sh runs it as root"
)]
fn a_tool_killed_at_the_deadline_keeps_its_wall_time_in_its_step() {
    require_root_and_nft();
    // The partial timings of a sync past its limit say which step the time went to.
    use dataplane::floor::sync::{Category, Executor, ToolCall};
    let ns = NsGuard::new("killed");
    let mut io = RealExecutor::new(&ns.0, deadline());
    io.begin(Deadline::after(Duration::from_millis(400)));
    let err = io
        .tool(ToolCall::new("sleep", Category::Restore, "sleep", &["5"]))
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    let report = io.finish();
    let step = report.steps.get("sleep").expect("the killed tool's step");
    assert!(
        step.cost.wall >= Duration::from_millis(300),
        "{:?}",
        step.cost
    );
    assert!(step.cost.wall < Duration::from_secs(4), "{:?}", step.cost);
}
