//! Privileged tests of kube-proxy's iptables modes (nf_tables and legacy backends)
//! against the real kernel, each in network namespaces of its own. They run when the
//! process is root and say so on stderr when they are skipped.

use std::collections::BTreeMap;
use std::time::Duration;

use dataplane::exec::{which, Tool};
use dataplane::iptables::IptablesBackend;
use dataplane::model::{service, spare_endpoint_ip};
use dataplane::{Backend, Netns, ServiceSet};

const TIMEOUT: Duration = Duration::from_secs(120);

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

fn backends(test: &str) -> Vec<(&'static str, IptablesBackend)> {
    if !dataplane::netns::is_root() {
        eprintln!("{test}: skipped: needs root");
        return Vec::new();
    }
    let mut v = Vec::new();
    for (name, b) in [
        ("nft", IptablesBackend::nft()),
        ("legacy", IptablesBackend::legacy()),
    ] {
        match b.tools().into_iter().find(|t| which(t).is_none()) {
            Some(t) => {
                eprintln!("{test} ({name}): skipped: {t} not found (install the iptables package)")
            }
            None => v.push((name, b)),
        }
    }
    v
}

/// `iptables-save` of both tables, normalised: counters and comments dropped, chains
/// sorted by name, rule order within a chain kept.
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
fn full_sync_reads_back_every_rendered_rule() {
    for (name, b) in backends("full_sync_reads_back_every_rendered_rule") {
        let ns = NsGuard::new(&format!("full-{name}"));
        let set = ServiceSet::generate(30, 5);
        let report = b.sync(&ns.0, None, &set, TIMEOUT).unwrap();
        assert!(report.payload_bytes > 0);
        assert_eq!(
            b.read_back(&ns.0, TIMEOUT).unwrap(),
            b.expected_objects(&set),
            "{name}"
        );
        // A second full sync (kube-proxy's periodic resync) leaves the same rules:
        // jumps are ensured, not duplicated.
        b.sync(&ns.0, None, &set, TIMEOUT).unwrap();
        assert_eq!(
            b.read_back(&ns.0, TIMEOUT).unwrap(),
            b.expected_objects(&set),
            "{name} resync"
        );
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

#[test]
fn partial_syncs_equal_a_fresh_full_sync() {
    for (name, b) in backends("partial_syncs_equal_a_fresh_full_sync") {
        let ns = NsGuard::new(&format!("part-{name}"));
        let mut set = ServiceSet::generate(20, 4);
        b.sync(&ns.0, None, &set, TIMEOUT).unwrap();
        let mut steps: Vec<(&str, ServiceSet)> = Vec::new();
        let mut grown = set.clone();
        grown.upsert(service(20, 4));
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
        steps.push(("lose all endpoints", emptied));
        for (what, next) in steps {
            b.sync(&ns.0, Some(&set), &next, TIMEOUT).unwrap();
            let fresh = NsGuard::new(&format!("fresh-{name}"));
            b.sync(&fresh.0, None, &next, TIMEOUT).unwrap();
            assert_eq!(
                ruleset(&b, &ns.0),
                ruleset(&b, &fresh.0),
                "{name}: after {what}"
            );
            assert_eq!(
                b.read_back(&ns.0, TIMEOUT).unwrap(),
                b.expected_objects(&next),
                "{name}: {what}"
            );
            set = next;
        }
    }
}

#[test]
fn a_restore_failure_reports_the_tools_message() {
    for (name, b) in backends("a_restore_failure_reports_the_tools_message") {
        let ns = NsGuard::new(&format!("fail-{name}"));
        // A service set is fine; a namespace that vanished is not: the tool's error
        // must come back, not a hang or a panic.
        let gone = Netns::named(&format!("kpb-test-ipt-{}-missing", std::process::id()));
        let err = b
            .sync(&gone, None, &ServiceSet::generate(1, 1), TIMEOUT)
            .unwrap_err();
        assert!(err.to_string().contains("missing"), "{name}: {err}");
        drop(ns);
    }
}
