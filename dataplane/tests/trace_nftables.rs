//! Trace tests of the nftables mode's sync profiles (pure, no root): a sequence of
//! syncs against the recording executor and the nft stand-in, call by call against
//! fixtures written by hand from kube-proxy's sources
//! (tests/fixtures/trace/nftables-*.txt), plus the payloads that decide the calls.

mod trace;

use std::path::Path;
use std::time::Duration;

use dataplane::floor::model::{service, spare_endpoint_ip, Endpoint, ENDPOINT_PORT};
use dataplane::floor::names::{nft_endpoint_chain, nft_service_chain};
use dataplane::floor::sync::record::{Call, Recorder};
use dataplane::nftables::chains_of_set;
use dataplane::nftables::{
    render_delete_chains, render_floor_full, render_kube_proxy, ElementStorage, KubeProxySync,
    Listing, NftStandIn, NftablesBackend, Setup,
};
use dataplane::{Backend, KubeProxyVersion, Profile, ServiceSet};

fn fixture(name: &str) -> Vec<(String, Vec<String>)> {
    trace::sections(name)
}

/// The stdin of every call, in order (None for a call without stdin).
fn stdins(r: &Recorder) -> Vec<Option<String>> {
    r.calls
        .iter()
        .map(|c| match c {
            Call::Tool { stdin, .. } => stdin.clone(),
            Call::Request { .. } => None,
        })
        .collect()
}

/// The services of the trace: 3 x 2, then service 3 added, service 1 removed, and
/// service 2's first endpoint replaced.
struct Steps {
    full: ServiceSet,
    added: ServiceSet,
    removed: ServiceSet,
    updated: ServiceSet,
}

fn steps() -> Steps {
    let full = ServiceSet::generate(3, 2);
    let mut added = full.clone();
    added.upsert(service(3, 2));
    let mut removed = added.clone();
    removed.remove(1);
    let mut updated = removed.clone();
    let mut svc = updated.get(2).unwrap().clone();
    svc.endpoints[0] = Endpoint {
        ip: spare_endpoint_ip(0),
        port: ENDPOINT_PORT,
    };
    updated.upsert(svc);
    Steps {
        full,
        added,
        removed,
        updated,
    }
}

/// What one traced step recorded: its section title, lines and stdins.
struct Traced {
    title: &'static str,
    lines: Vec<String>,
    stdin: Vec<Option<String>>,
}

/// Runs the trace's syncs with `profile` over `release`'s rules, keeping each step's
/// calls.
fn trace(profile: Profile, release: KubeProxyVersion) -> Vec<Traced> {
    let backend = NftablesBackend::new().for_release(release);
    let nft = NftStandIn::new();
    let mut r = Recorder::new(vec![Box::new(nft.clone())]);
    let mut ctl = backend.controller(profile);
    assert_eq!(ctl.profile(), profile);
    let s = steps();
    let secs = Duration::from_secs;
    let mut out = Vec::new();
    let mut keep = |r: &mut Recorder, title: &'static str| {
        out.push(Traced {
            title,
            lines: r.lines(),
            stdin: stdins(r),
        });
        r.clear();
    };
    ctl.sync(&mut r, None, &s.full, secs(0)).unwrap();
    keep(&mut r, "full sync from empty at 0 s");
    ctl.sync(&mut r, Some(&s.full), &s.added, secs(1)).unwrap();
    keep(&mut r, "add service 3 at 1 s");
    ctl.sync(&mut r, Some(&s.added), &s.removed, secs(2))
        .unwrap();
    keep(&mut r, "remove service 1 at 2 s");
    ctl.sync(&mut r, Some(&s.removed), &s.updated, secs(3))
        .unwrap();
    keep(&mut r, "change the endpoints of service 2 at 3 s");
    ctl.settle(&mut r, &s.updated, secs(3)).unwrap();
    keep(&mut r, "settle at 3 s");
    // Whatever the profile, the kernel ends with the end state's chains only.
    let want: Vec<String> = chains_of_set(&s.updated, release).into_iter().collect();
    let mut got: Vec<String> = nft
        .chains()
        .into_iter()
        .filter(|c| c.contains('/'))
        .collect();
    let mut want = want;
    got.sort();
    want.sort();
    assert_eq!(
        got, want,
        "{profile}: service and endpoint chains after settle"
    );
    out
}

fn check_against(fixture_name: &str, traced: &[Traced]) {
    let sections = fixture(fixture_name);
    let titles: Vec<&str> = sections.iter().map(|(t, _)| t.as_str()).collect();
    let want_titles: Vec<&str> = traced.iter().map(|t| t.title).collect();
    assert_eq!(titles, want_titles, "{fixture_name}: sections");
    for ((title, want), t) in sections.iter().zip(traced) {
        assert_eq!(&t.lines, want, "{fixture_name}, {title}");
    }
}

/// Chains of service 1 (removed at 2 s) and, with 1.35's endpoint chains, service 2's
/// dropped endpoint chain (1.36 rewrites service 2's chain and drops none).
fn gone_chains(release: KubeProxyVersion) -> (Vec<String>, Option<String>) {
    let s = steps();
    let one = s.full.get(1).unwrap();
    let mut chains = vec![nft_service_chain(one)];
    let two = s.removed.get(2).unwrap();
    if release == KubeProxyVersion::V1_36 {
        return (chains, None);
    }
    chains.extend(one.endpoints.iter().map(|ep| nft_endpoint_chain(one, ep)));
    chains.sort();
    (chains, Some(nft_endpoint_chain(two, &two.endpoints[0])))
}

fn check_kube_proxy(version: KubeProxyVersion, fixture_name: &str) {
    let traced = trace(Profile::KubeProxy(version), version);
    check_against(fixture_name, &traced);
    let (svc1, dropped) = gone_chains(version);
    let last = |t: &Traced| t.stdin.last().cloned().flatten().unwrap();

    // The first transaction is the whole full sync in knftables' call order.
    assert_eq!(
        last(&traced[0]),
        render_kube_proxy(
            &KubeProxySync {
                release: version,
                setup: Some(Setup::first()),
                old: None,
                new: &steps().full,
                listing: &Listing::default(),
            },
            &mut ElementStorage::default()
        )
        .payload
        .text
    );
    // Remove: flushed now, not deleted.
    let remove = last(&traced[2]);
    for c in &svc1 {
        assert!(
            remove.contains(&format!("flush chain ip kube-proxy {c}\n")),
            "{remove}"
        );
    }
    assert!(!remove.contains("delete chain"), "{remove}");
    // 1 s later: a transaction of its own deletes them, before the listing.
    assert_eq!(
        traced[3].stdin[0].as_deref(),
        Some(render_delete_chains(&svc1).as_str())
    );
    let update = last(&traced[3]);
    assert!(!update.contains("delete chain"), "{update}");
    let Some(dropped) = dropped else {
        // 1.36: nothing is left waiting, so settle runs nothing.
        assert!(traced[4].stdin.is_empty());
        return;
    };
    assert!(update.contains(&format!("flush chain ip kube-proxy {dropped}\n")));
    // settle deletes the dropped endpoint chain.
    assert_eq!(
        traced[4].stdin[0].as_deref(),
        Some(format!("delete chain ip kube-proxy {dropped}\n").as_str())
    );
}

#[test]
fn kube_proxy_1_35_lists_chains_and_sets_then_writes_one_transaction() {
    check_kube_proxy(KubeProxyVersion::V1_35, "nftables-kube-proxy-1.35.txt");
}

#[test]
fn kube_proxy_1_36_lists_the_table_then_writes_one_transaction() {
    check_kube_proxy(KubeProxyVersion::V1_36, "nftables-kube-proxy-1.36.txt");
}

#[test]
fn floor_prepares_then_publishes_and_deletes_unused_chains_at_once() {
    // 1.35's rules, whose endpoint chains give the floor a chain to drop at 3 s.
    let v35 = KubeProxyVersion::V1_35;
    let traced = trace(Profile::Floor, v35);
    check_against("nftables-floor.txt", &traced);
    let [prepare, publish] = render_floor_full(&steps().full, Setup::first(), v35);
    assert_eq!(traced[0].stdin[0].as_deref(), Some(prepare.text.as_str()));
    assert_eq!(traced[0].stdin[1].as_deref(), Some(publish.text.as_str()));
    let (svc1, dropped) = gone_chains(v35);
    let dropped = dropped.expect("1.35 drops an endpoint chain");
    assert_eq!(
        traced[2].stdin[1].as_deref(),
        Some(render_delete_chains(&svc1).as_str())
    );
    assert_eq!(
        traced[3].stdin[1].as_deref(),
        Some(format!("delete chain ip kube-proxy {dropped}\n").as_str())
    );
}

#[test]
fn the_fixtures_cite_the_function_behind_every_call() {
    for name in [
        "nftables-kube-proxy-1.35.txt",
        "nftables-kube-proxy-1.36.txt",
    ] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/trace")
            .join(name);
        for line in std::fs::read_to_string(path).unwrap().lines() {
            if line.starts_with("$ ") {
                let (_, cite) = line.split_once("  # ").expect(line);
                assert!(
                    cite.contains("pkg/proxy/nftables/proxier.go syncProxyRules")
                        && cite.contains("knftables nftables.go"),
                    "{name}: {line}"
                );
            }
        }
    }
}

/// The shape features through kube-proxy's loop (the conformance module's featured
/// set): the calls are the same listing and one transaction per sync; the transaction
/// that replaces an affinity service's endpoint flushes its endpoint chain and deletes
/// its listed affinity set at once (proxier.go: "we can immediately delete any stale
/// affinity sets"), the chain itself goes 1 s later; removing the NodePort service
/// deletes its `service-nodeports` elements as leftover keys.
#[test]
fn kube_proxy_traces_the_shape_features() {
    use dataplane::conformance::featured::{featured_index, featured_sequence};
    for release in KubeProxyVersion::ALL {
        let backend = NftablesBackend::new().for_release(release);
        let nft = NftStandIn::new();
        let mut r = Recorder::new(vec![Box::new(nft.clone())]);
        let mut ctl = backend.controller(Profile::KubeProxy(release));
        let steps = featured_sequence(3, 2, backend.renders());
        let mut old: Option<&ServiceSet> = None;
        let mut traced = Vec::new();
        for step in &steps {
            if step.settle {
                ctl.settle(&mut r, &step.set, step.at).unwrap();
            } else {
                ctl.sync(&mut r, old, &step.set, step.at).unwrap();
            }
            old = Some(&step.set);
            traced.push((r.lines(), stdins(&r)));
            r.clear();
        }
        let listing: Vec<&str> = match release {
            KubeProxyVersion::V1_35 => vec![
                "$ nft --json list chains ip",
                "$ nft --json list sets ip",
                "$ nft -f -",
            ],
            KubeProxyVersion::V1_36 => {
                vec![
                    "$ nft --json --terse list table ip kube-proxy",
                    "$ nft -f -",
                ]
            }
        };
        assert_eq!(traced[0].0, listing, "{release}: full sync");
        let affinity = steps[0].set.get(featured_index(3, 1)).unwrap();
        let gone = &affinity.endpoints[0];
        let change = traced[1].1.last().cloned().flatten().unwrap();
        let set_name = format!(
            "affinity-{}",
            nft_endpoint_chain(affinity, gone).trim_start_matches("endpoint-")
        );
        assert!(
            change.contains(&format!("delete set ip kube-proxy {set_name}\n")),
            "{release}: {change}"
        );
        assert!(change.contains(&format!(
            "flush chain ip kube-proxy {}\n",
            nft_endpoint_chain(affinity, gone)
        )));
        // 1 s later, the flushed chains' own delete transaction comes first: the
        // replaced affinity endpoint's, and the LoadBalancer's `local-` chain (its
        // local endpoint moved off the node).
        let lb = steps[0].set.get(featured_index(3, 2)).unwrap();
        let local = nft_service_chain(lb).replacen("service-", "local-", 1);
        assert_eq!(
            traced[2].1[0].as_deref(),
            Some(render_delete_chains(&[nft_endpoint_chain(affinity, gone), local]).as_str()),
            "{release}"
        );
        let removal = traced[2].1.last().cloned().flatten().unwrap();
        assert!(
            removal.contains("delete element ip kube-proxy service-nodeports { tcp . 30000 }"),
            "{release}: {removal}"
        );
        assert!(removal.contains("delete element ip kube-proxy service-nodeports { udp . 30001 }"));
    }
}
