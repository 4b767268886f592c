//! Privileged tests of kube-proxy's iptables modes (nf_tables and legacy backends)
//! against the real kernel, each in network namespaces of its own. They need root and
//! the iptables tools: without feature `root-tests` they are reported as ignored; with
//! it, a missing prerequisite fails them.

use std::collections::BTreeMap;
use std::time::Duration;

use dataplane::floor::exec::{which, Tool};
use dataplane::floor::model::{service, spare_endpoint_ip};
use dataplane::floor::sync::{MeasuredExecutor, RealExecutor};
use dataplane::iptables::IptablesBackend;
use dataplane::{Backend, Controller, Deadline, KubeProxyVersion, Netns, Profile, ServiceSet};

const TIMEOUT: Duration = Duration::from_secs(120);

/// A fresh deadline of [`TIMEOUT`] for one call.
fn deadline() -> Deadline {
    Deadline::after(TIMEOUT)
}

/// How many rules the read-back found, failing the test unless `set`'s full sync
/// leaves exactly that many.
fn verified(b: &IptablesBackend, ns: &Netns, set: &ServiceSet, what: &str) -> usize {
    let found = b
        .verify(ns, set, deadline())
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(found.count, b.expected_objects(set), "{what}");
    found.count
}

/// A namespace that is deleted when the guard drops, also on panic.
struct NsGuard(Netns);

impl NsGuard {
    fn new(tag: &str) -> Self {
        let name = format!("kpb-test-ipt-{}-{tag}", std::process::id());
        NsGuard(Netns::create(&name).expect("create test namespace"))
    }
}

impl Drop for NsGuard {
    fn drop(&mut self) {
        let _ = self.0.delete();
    }
}

/// Both iptables backends; fails the test unless this process is root and has both
/// backends' tools.
fn backends() -> [(&'static str, IptablesBackend); 2] {
    assert!(
        dataplane::floor::netns::is_root(),
        "needs root: this privileged test is on (feature dataplane/root-tests) but the \
         process is not root; run `sudo scripts/test.sh`, or build without the feature to \
         see it reported as ignored"
    );
    let v = [
        ("nft", IptablesBackend::nft()),
        ("legacy", IptablesBackend::legacy()),
    ];
    for (name, b) in &v {
        for t in b.tools() {
            assert!(
                which(t).is_some(),
                "{t} not found ({name} backend): install the iptables package \
                 (scripts/install-deps.sh does)"
            );
        }
    }
    v
}

/// `iptables-save` of both tables, normalised: counters dropped (only `-A` lines and
/// chain names are kept), chains sorted by name, rule order within a chain kept.
fn ruleset(b: &IptablesBackend, ns: &Netns) -> String {
    let save = b.tools()[2];
    let mut out = String::new();
    for table in ["filter", "nat"] {
        let text = Tool::new(save, &["-t", table])
            .netns(ns)
            .timeout(TIMEOUT)
            .run_ok()
            .unwrap()
            .stdout;
        let mut chains: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix(':') {
                chains
                    .entry(rest.split(' ').next().unwrap().to_string())
                    .or_default();
            } else if let Some(rest) = line.strip_prefix("-A ") {
                let chain = rest.split(' ').next().unwrap().to_string();
                chains.entry(chain).or_default().push(line.to_string());
            }
        }
        out.push_str(&format!("*{table}\n"));
        for (chain, rules) in chains {
            out.push_str(&format!(":{chain}\n"));
            for r in rules {
                out.push_str(&r);
                out.push('\n');
            }
        }
    }
    out
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root: scripts/test.sh runs it as root"
)]
fn full_sync_reads_back_every_rendered_rule() {
    for (name, b) in backends() {
        let ns = NsGuard::new(&format!("full-{name}"));
        let set = ServiceSet::generate(30, 5);
        let report = b.sync(&ns.0, None, &set, deadline()).unwrap();
        assert!(report.payload_bytes > 0);
        verified(&b, &ns.0, &set, name);
        // A second full sync (kube-proxy's periodic resync) leaves the same rules:
        // jumps are ensured, not duplicated.
        b.sync(&ns.0, None, &set, deadline()).unwrap();
        verified(&b, &ns.0, &set, &format!("{name} resync"));
        let save = ruleset(&b, &ns.0);
        let svc = &set.services[0];
        assert!(
            save.contains(&format!(
                "-A KUBE-SERVICES -d {}/32 -p tcp -m comment",
                svc.vip
            )),
            "{save}"
        );
        assert!(save.contains("--to-destination 10.128.0.1:8080"));
    }
}

/// One sync through `ctl` in `ns` at virtual second `at`.
fn sync_with(
    ctl: &mut dyn Controller,
    ns: &Netns,
    old: Option<&ServiceSet>,
    new: &ServiceSet,
    at: u64,
) {
    let mut io = RealExecutor::new(ns, deadline());
    io.begin(deadline());
    ctl.sync(&mut io, old, new, Duration::from_secs(at))
        .unwrap_or_else(|e| panic!("{} sync at {at}s: {e}", ctl.profile()));
    let report = io.finish();
    assert!(report.payload_bytes > 0 || ctl.profile() == Profile::Floor);
}

fn settle_with(ctl: &mut dyn Controller, ns: &Netns, set: &ServiceSet, at: u64) {
    let mut io = RealExecutor::new(ns, deadline());
    ctl.settle(&mut io, set, Duration::from_secs(at))
        .unwrap_or_else(|e| panic!("{} settle: {e}", ctl.profile()));
}

/// `nft list ruleset`, normalised: counters' values dropped, chains of each table
/// sorted by name, rule order within a chain kept.
fn nft_ruleset(ns: &Netns) -> String {
    let text = Tool::new("nft", &["list", "ruleset"])
        .netns(ns)
        .timeout(TIMEOUT)
        .run_ok()
        .unwrap()
        .stdout;
    let mut tables: BTreeMap<String, BTreeMap<String, Vec<String>>> = BTreeMap::new();
    let (mut table, mut chain) = (String::new(), None::<String>);
    for line in text.lines().map(str::trim) {
        if line.starts_with("table ") {
            table = line.to_string();
            tables.entry(table.clone()).or_default();
        } else if let Some(name) = line.strip_prefix("chain ") {
            let name = name.trim_end_matches(" {").to_string();
            tables
                .get_mut(&table)
                .unwrap()
                .entry(name.clone())
                .or_default();
            chain = Some(name);
        } else if line == "}" {
            chain = None;
        } else if let (Some(c), false) = (&chain, line.is_empty()) {
            let mut words: Vec<&str> = Vec::new();
            let mut it = line.split_whitespace().peekable();
            while let Some(w) = it.next() {
                if (w == "packets" || w == "bytes") && it.peek().is_some() {
                    it.next();
                    continue;
                }
                words.push(w);
            }
            tables
                .get_mut(&table)
                .unwrap()
                .get_mut(c)
                .unwrap()
                .push(words.join(" "));
        }
    }
    format!("{tables:#?}")
}

/// The sequence both kernel tests replay from `set`: add, remove, update endpoints,
/// lose all endpoints, add the removed service back (between others).
fn sequence(set: &ServiceSet) -> Vec<(&'static str, ServiceSet)> {
    let n = set.len();
    let e = set.services[0].endpoints.len();
    let mut steps: Vec<(&str, ServiceSet)> = Vec::new();
    let mut grown = set.clone();
    grown.upsert(service(n, e));
    steps.push(("add service", grown.clone()));
    let mut shrunk = grown.clone();
    shrunk.remove(5);
    steps.push(("remove service", shrunk.clone()));
    let mut updated = shrunk.clone();
    let mut svc = updated.get(10).unwrap().clone();
    svc.endpoints[1].ip = spare_endpoint_ip(7);
    svc.endpoints.pop();
    updated.upsert(svc);
    steps.push(("update endpoints", updated.clone()));
    let mut emptied = updated.clone();
    let mut svc = emptied.get(3).unwrap().clone();
    svc.endpoints.clear();
    emptied.upsert(svc);
    steps.push(("lose all endpoints", emptied.clone()));
    let mut back = emptied;
    back.upsert(service(5, e));
    steps.push(("add back in the middle", back));
    steps
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root: scripts/test.sh runs it as root"
)]
fn partial_syncs_equal_a_fresh_full_sync() {
    for (name, b) in backends() {
        let ns = NsGuard::new(&format!("part-{name}"));
        let profile = Profile::KubeProxy(KubeProxyVersion::V1_36);
        let mut ctl = b.controller(profile);
        let mut set = ServiceSet::generate(20, 4);
        sync_with(ctl.as_mut(), &ns.0, None, &set, 0);
        for (i, (what, next)) in sequence(&set).into_iter().enumerate() {
            sync_with(ctl.as_mut(), &ns.0, Some(&set), &next, 1 + i as u64);
            let fresh = NsGuard::new(&format!("fresh-{name}"));
            sync_with(b.controller(profile).as_mut(), &fresh.0, None, &next, 0);
            assert_eq!(
                ruleset(&b, &ns.0),
                ruleset(&b, &fresh.0),
                "{name}: after {what}"
            );
            verified(&b, &ns.0, &next, &format!("{name}: {what}"));
            set = next;
        }
    }
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root: scripts/test.sh runs it as root"
)]
fn both_profiles_leave_identical_objects() {
    // A small cluster (the save runs every sync) and a large one (102 x 10: the save
    // runs once per 30 virtual seconds, so chains linger until settle).
    for (size, (n, e), times) in [
        ("small", (20, 4), [1, 2, 3, 4, 5]),
        ("large", (102, 10), [1, 2, 31, 32, 33]),
    ] {
        for (name, b) in backends() {
            let start = ServiceSet::generate(n, e);
            let steps = sequence(&start);
            let mut read = Vec::new();
            for profile in [Profile::KubeProxy(KubeProxyVersion::V1_36), Profile::Floor] {
                let ns = NsGuard::new(&format!("{size}-{name}-{}", profile.kind()));
                let mut ctl = b.controller(profile);
                sync_with(ctl.as_mut(), &ns.0, None, &start, 0);
                let mut old = &start;
                for ((_, next), at) in steps.iter().zip(times) {
                    sync_with(ctl.as_mut(), &ns.0, Some(old), next, at);
                    old = next;
                }
                let before = ruleset(&b, &ns.0);
                settle_with(ctl.as_mut(), &ns.0, old, times[4]);
                verified(&b, &ns.0, old, &format!("{size} {name} {profile}"));
                let nft = (name == "nft").then(|| nft_ruleset(&ns.0));
                read.push((before, ruleset(&b, &ns.0), nft));
            }
            let (kube, floor) = (&read[0], &read[1]);
            assert!(kube.1.contains(":KUBE-FIREWALL\n"), "{}", kube.1);
            // Before settle, kube-proxy's large cluster still holds the chains of the
            // service that lost its endpoints at t=32 (no save ran since t=31).
            assert_eq!(
                kube.0 == floor.0,
                size == "small",
                "{size} {name}: before settle"
            );
            assert_eq!(kube.1, floor.1, "{size} {name}: iptables-save");
            if let (Some(k), Some(f)) = (&kube.2, &floor.2) {
                assert!(k.contains("KUBE-FIREWALL"), "{k}");
                assert_eq!(k, f, "{size} {name}: nft list ruleset");
            }
        }
    }
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root: scripts/test.sh runs it as root"
)]
fn a_restore_failure_reports_the_tools_message() {
    for (name, b) in backends() {
        let ns = NsGuard::new(&format!("fail-{name}"));
        // A service set is fine; a namespace that vanished is not: the tool's error
        // must come back, not a hang or a panic.
        let gone = Netns::named(&format!("kpb-test-ipt-{}-missing", std::process::id()));
        let err = b
            .sync(&gone, None, &ServiceSet::generate(1, 1), deadline())
            .unwrap_err();
        assert!(err.to_string().contains("missing"), "{name}: {err}");
        drop(ns);
    }
}

/// The 39 services of tests/fixtures/shapes/every-feature.json, every feature the
/// iptables renderer writes: plain ClusterIPs; NodePort services with ClientIP
/// affinity and a second TCP port; LoadBalancers with Local external policy (with and
/// without a local endpoint), an external IP and an ingress IP; firewalled
/// LoadBalancers (source ranges) with a UDP and a TCP port; Local internal policy
/// without local endpoints; endpoints not ready, serving and terminating, terminating.
fn featured_set() -> ServiceSet {
    let text = include_str!("fixtures/shapes/every-feature.json");
    let shape: dataplane::floor::shape::Shape = serde_json::from_str(text).unwrap();
    shape.check().unwrap();
    shape.service_set()
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root: scripts/test.sh runs it as root"
)]
fn a_shape_with_every_feature_syncs_alike_both_ways() {
    let start = featured_set();
    for (name, b) in backends() {
        let profile = Profile::KubeProxy(KubeProxyVersion::V1_36);
        let mut read = Vec::new();
        for p in [profile, Profile::Floor] {
            let ns = NsGuard::new(&format!("shape-{name}-{}", p.kind()));
            let mut ctl = b.controller(p);
            sync_with(ctl.as_mut(), &ns.0, None, &start, 0);
            verified(&b, &ns.0, &start, &format!("{name} {p}: full"));
            let mut old = start.clone();
            for (i, (what, next)) in sequence(&start).into_iter().enumerate() {
                sync_with(ctl.as_mut(), &ns.0, Some(&old), &next, 1 + i as u64);
                if p == profile {
                    let fresh = NsGuard::new(&format!("shapefresh-{name}"));
                    sync_with(b.controller(p).as_mut(), &fresh.0, None, &next, 0);
                    assert_eq!(
                        ruleset(&b, &ns.0),
                        ruleset(&b, &fresh.0),
                        "{name}: after {what}"
                    );
                }
                old = next;
            }
            settle_with(ctl.as_mut(), &ns.0, &old, 10);
            verified(&b, &ns.0, &old, &format!("{name} {p}: end"));
            read.push(ruleset(&b, &ns.0));
        }
        assert!(read[0].contains("-m recent"), "{}", read[0]);
        for chain in ["KUBE-EXT-", "KUBE-SVL-", "KUBE-FW-", "-p udp"] {
            assert!(read[0].contains(chain), "{chain}: {}", read[0]);
        }
        assert_eq!(read[0], read[1], "{name}: kube-proxy and floor");
    }
}
