//! Trace tests of the iptables modes' sync profiles (pure, no root): sequences of syncs
//! against the recording executor and the x_tables stand-in, call by call against
//! fixtures written by hand from kube-proxy's sources
//! (tests/fixtures/trace/iptables-*.txt), plus the payload facts that decide the calls.
//! Both binaries (iptables-nft, iptables-legacy) and both releases replay the same
//! fixture: program names are mapped onto the generic `iptables*` ones.

mod trace;

use std::time::Duration;

use dataplane::floor::model::{service, spare_endpoint_ip};
use dataplane::floor::names::{sep_chain, svc_chain};
use dataplane::floor::sync::record::{Call, Recorder};
use dataplane::floor::sync::{Category, Executor, ToolCall};
use dataplane::iptables::{chains_of, IptablesBackend};
use dataplane::{Backend, KubeProxyVersion, Profile, ServiceSet};

fn fixture(name: &str) -> Vec<(String, Vec<String>)> {
    trace::sections(name)
}

/// The backends of both modes.
fn backends() -> [IptablesBackend; 2] {
    [IptablesBackend::nft(), IptablesBackend::legacy()]
}

/// The recorded lines with the backend's binaries named generically.
fn generic(b: &IptablesBackend, r: &Recorder) -> Vec<String> {
    let xt = b.xtables();
    r.lines()
        .into_iter()
        .map(|line| {
            let rest = line.strip_prefix("$ ").expect("only tool calls");
            let (program, args) = rest.split_once(' ').unwrap_or((rest, ""));
            let program = if program == xt.iptables {
                "iptables"
            } else if program == xt.save {
                "iptables-save"
            } else if program == xt.restore {
                "iptables-restore"
            } else {
                panic!("unexpected program in {line}")
            };
            format!("$ {program} {args}").trim_end().to_string()
        })
        .collect()
}

/// The stdin of the last call.
fn last_stdin(r: &Recorder) -> String {
    match r.calls.last() {
        Some(Call::Tool { stdin: Some(s), .. }) => s.clone(),
        other => panic!("the last call has no stdin: {other:?}"),
    }
}

/// The stand-ins' whole state, read through the recorder as `iptables-save` would.
fn saved(b: &IptablesBackend, r: &mut Recorder) -> String {
    let xt = b.xtables();
    r.tool(ToolCall::new("read-back", Category::Listing, xt.save, &[]))
        .unwrap()
        .stdout
}

/// One sync of a sequence: its fixture section, what is programmed after it, when.
struct Step {
    set: ServiceSet,
    at: u64,
}

/// 3 x 2, then service 3 added, service 1 removed, service 2's first endpoint replaced.
fn small_steps() -> Vec<Step> {
    let full = ServiceSet::generate(3, 2);
    let mut added = full.clone();
    added.upsert(service(3, 2));
    let mut removed = added.clone();
    removed.remove(1);
    let mut updated = removed.clone();
    let mut svc = updated.get(2).unwrap().clone();
    svc.endpoints[0].ip = spare_endpoint_ip(0);
    updated.upsert(svc);
    vec![
        Step { set: full, at: 0 },
        Step { set: added, at: 1 },
        Step {
            set: removed,
            at: 2,
        },
        Step {
            set: updated,
            at: 3,
        },
    ]
}

/// 102 x 10 (1,020 endpoints, largeClusterMode), then service 102 added (t=1), service
/// 5 removed (t=2), service 7's first endpoint replaced (t=31), service 9 removed (t=32,
/// leaving 1,010 endpoints: still large).
fn large_steps() -> Vec<Step> {
    let full = ServiceSet::generate(102, 10);
    let mut added = full.clone();
    added.upsert(service(102, 10));
    let mut removed = added.clone();
    removed.remove(5);
    let mut updated = removed.clone();
    let mut svc = updated.get(7).unwrap().clone();
    svc.endpoints[0].ip = spare_endpoint_ip(0);
    updated.upsert(svc);
    let mut removed2 = updated.clone();
    removed2.remove(9);
    vec![
        Step { set: full, at: 0 },
        Step { set: added, at: 1 },
        Step {
            set: removed,
            at: 2,
        },
        Step {
            set: updated,
            at: 31,
        },
        Step {
            set: removed2,
            at: 32,
        },
    ]
}

/// Runs `steps` then a settle with `profile`, comparing each sync's calls with its
/// fixture section; returns the recorder (with its stand-in state) and the stdin of
/// each section's last call (the restore), "" where a section made no call.
fn replay(
    b: &IptablesBackend,
    profile: Profile,
    steps: &[Step],
    fixture_name: &str,
) -> (Recorder, Vec<String>) {
    let sections = fixture(fixture_name);
    assert_eq!(
        sections.len(),
        steps.len() + 1,
        "{fixture_name}: one section per sync plus settle"
    );
    let mut ctl = b.controller(profile);
    assert_eq!(ctl.profile(), profile);
    let mut r = Recorder::new(b.standins());
    let mut payloads = Vec::new();
    let mut old: Option<&ServiceSet> = None;
    for (step, (title, expected)) in steps.iter().zip(&sections) {
        r.clear();
        ctl.sync(&mut r, old, &step.set, Duration::from_secs(step.at))
            .unwrap_or_else(|e| panic!("{fixture_name} {title}: {e}"));
        assert_eq!(
            &generic(b, &r),
            expected,
            "{fixture_name} ({}), section {title:?}",
            b.mode()
        );
        payloads.push(if r.calls.is_empty() {
            String::new()
        } else {
            last_stdin(&r)
        });
        old = Some(&step.set);
    }
    let last = steps.last().expect("steps");
    let (title, expected) = sections.last().expect("settle section");
    r.clear();
    ctl.settle(&mut r, &last.set, Duration::from_secs(last.at))
        .unwrap();
    assert_eq!(
        &generic(b, &r),
        expected,
        "{fixture_name}, section {title:?}"
    );
    payloads.push(if r.calls.is_empty() {
        String::new()
    } else {
        last_stdin(&r)
    });
    (r, payloads)
}

#[test]
fn kube_proxy_small_cluster_saves_and_restores_on_every_sync() {
    let steps = small_steps();
    for b in backends() {
        for version in KubeProxyVersion::ALL {
            let (_, payloads) = replay(
                &b,
                Profile::KubeProxy(version),
                &steps,
                "iptables-kube-proxy.txt",
            );
            // The add writes only the new service's chains, KUBE-SERVICES in full.
            let added = &steps[1].set.services[3];
            let add = &payloads[1];
            assert!(add.contains(&format!(":{} - [0:0]", svc_chain(added))));
            assert!(!add.contains(&format!(
                ":{} - [0:0]",
                svc_chain(&steps[0].set.services[0])
            )));
            // 4 KUBE-SERVICES rules, 1 in the new KUBE-SVC chain.
            assert_eq!(
                add.matches("cluster IP\" -m tcp -p tcp -d 10.96.").count(),
                4 + 1
            );
            assert!(!add.contains("-X "));
            // The remove deletes every chain of the removed service, found by the save.
            let gone = steps[1].set.get(1).unwrap();
            let remove = &payloads[2];
            for chain in chains_of(gone) {
                assert!(remove.contains(&format!(":{chain} - [0:0]\n")), "{chain}");
                assert!(remove.contains(&format!("-X {chain}\n")), "{chain}");
            }
            assert_eq!(remove.matches("-X ").count(), 3);
            // The update rewrites the service's chains and deletes the replaced one.
            let before = steps[2].set.get(2).unwrap();
            let update = &payloads[3];
            assert!(update.contains(&format!("-X {}\n", sep_chain(before, &before.endpoints[0]))));
            assert_eq!(update.matches("-X ").count(), 1);
            // Every payload carries the whole filter table with KUBE-FIREWALL.
            for p in &payloads[..4] {
                assert!(p.starts_with("*filter\n"), "{p}");
                assert!(p.contains(":KUBE-FIREWALL - [0:0]\n-A KUBE-FIREWALL "));
            }
        }
    }
}

#[test]
fn kube_proxy_large_cluster_saves_once_per_sync_period() {
    let steps = large_steps();
    for b in backends() {
        let (_, payloads) = replay(
            &b,
            Profile::KubeProxy(KubeProxyVersion::V1_36),
            &steps,
            "iptables-kube-proxy-large.txt",
        );
        let removed5 = steps[1].set.get(5).unwrap();
        let before7 = steps[2].set.get(7).unwrap();
        let removed9 = steps[3].set.get(9).unwrap();
        // t=1, t=2: no save, so nothing is deleted: service 5's chains linger.
        assert!(!payloads[1].contains("-X ") && !payloads[2].contains("-X "));
        // t=31: the save lists them; they go with service 7's replaced endpoint chain.
        let t31 = &payloads[3];
        for chain in chains_of(removed5) {
            assert!(t31.contains(&format!("-X {chain}\n")), "{chain}");
        }
        assert!(t31.contains(&format!(
            "-X {}\n",
            sep_chain(before7, &before7.endpoints[0])
        )));
        assert_eq!(t31.matches("-X ").count(), 11 + 1);
        // t=32: no save; settle's sync deletes service 9's chains.
        assert!(!payloads[4].contains("-X "));
        let settle = &payloads[5];
        for chain in chains_of(removed9) {
            assert!(settle.contains(&format!("-X {chain}\n")), "{chain}");
        }
        assert_eq!(settle.matches("-X ").count(), 11);
        // The settle sync rewrites no service chain (nothing changed): the only
        // service chains it declares are the ones it deletes.
        assert_eq!(settle.matches(":KUBE-SVC-").count(), 1);
        assert_eq!(settle.matches(":KUBE-SEP-").count(), 10);
        // Large cluster: no per-endpoint comments in what is written.
        assert!(!t31.contains("-> 10.128."));
    }
}

#[test]
fn the_floor_writes_one_restore_per_sync() {
    let steps = small_steps();
    for b in backends() {
        let (_, payloads) = replay(&b, Profile::Floor, &steps, "iptables-floor.txt");
        assert!(payloads[0].contains("-A INPUT -j KUBE-FIREWALL\n"));
        assert!(!payloads[1].contains("*filter"));
        assert!(payloads[2].contains("-X "));
    }
}

#[test]
fn both_profiles_leave_identical_tables_after_settle() {
    for steps in [small_steps(), large_steps()] {
        for b in backends() {
            let mut states = Vec::new();
            for profile in [Profile::KubeProxy(KubeProxyVersion::V1_36), Profile::Floor] {
                let mut ctl = b.controller(profile);
                let mut r = Recorder::new(b.standins());
                let mut old: Option<&ServiceSet> = None;
                for step in &steps {
                    ctl.sync(&mut r, old, &step.set, Duration::from_secs(step.at))
                        .unwrap();
                    old = Some(&step.set);
                }
                let last = steps.last().unwrap();
                ctl.settle(&mut r, &last.set, Duration::from_secs(last.at))
                    .unwrap();
                states.push(saved(&b, &mut r));
            }
            assert!(states[0].contains(":KUBE-FIREWALL - [0:0]"));
            assert_eq!(states[0], states[1], "{}", b.mode());
        }
    }
}

#[test]
fn an_hourly_full_sync_ensures_again_without_inserting() {
    let b = IptablesBackend::legacy();
    let set = ServiceSet::generate(2, 1);
    let mut ctl = b.controller(Profile::KubeProxy(KubeProxyVersion::V1_36));
    let mut r = Recorder::new(b.standins());
    ctl.sync(&mut r, None, &set, Duration::ZERO).unwrap();
    r.clear();
    ctl.sync(&mut r, Some(&set), &set, Duration::from_secs(3600))
        .unwrap();
    assert_eq!(r.calls.len(), 2, "within the hour: a partial sync");
    r.clear();
    ctl.sync(&mut r, Some(&set), &set, Duration::from_secs(3601))
        .unwrap();
    let lines = generic(&b, &r);
    // 14 x (-N answered "exists", -C answered present), then save and restore.
    assert_eq!(lines.len(), 28 + 2);
    assert_eq!(lines.iter().filter(|l| l.contains(" -I ")).count(), 0);
    assert_eq!(lines.iter().filter(|l| l.contains(" -N ")).count(), 14);
}

/// The services of tests/fixtures/shapes/every-feature.json: LoadBalancers with Local
/// and Cluster policies, source ranges, external IPs, UDP, Local internal policy and
/// endpoint conditions beside plain ClusterIPs and NodePorts.
fn every_feature() -> ServiceSet {
    let text = include_str!("fixtures/shapes/every-feature.json");
    let shape: dataplane::floor::shape::Shape = serde_json::from_str(text).unwrap();
    shape.service_set()
}

#[test]
fn every_feature_makes_the_same_calls_and_both_profiles_agree() {
    let full = every_feature();
    let mut removed = full.clone();
    let firewalled = full
        .services
        .iter()
        .find(|s| !s.spec.source_ranges.is_empty())
        .unwrap()
        .index;
    let gone = removed.remove(firewalled).unwrap();
    let steps = [
        Step { set: full, at: 0 },
        Step {
            set: removed,
            at: 1,
        },
    ];
    for b in backends() {
        let mut states = Vec::new();
        for profile in [Profile::KubeProxy(KubeProxyVersion::V1_35), Profile::Floor] {
            let mut ctl = b.controller(profile);
            let mut r = Recorder::new(b.standins());
            ctl.sync(&mut r, None, &steps[0].set, Duration::ZERO)
                .unwrap();
            r.clear();
            ctl.sync(
                &mut r,
                Some(&steps[0].set),
                &steps[1].set,
                Duration::from_secs(1),
            )
            .unwrap();
            if profile != Profile::Floor {
                // A partial sync of a small cluster: save, then one restore, as for N x E.
                let lines = generic(&b, &r);
                assert_eq!(lines.len(), 2, "{lines:?}");
                assert!(lines[0].starts_with("$ iptables-save -t nat"), "{lines:?}");
                let stdin = last_stdin(&r);
                for chain in chains_of(&gone) {
                    assert!(stdin.contains(&format!("-X {chain}\n")), "{chain}: {stdin}");
                }
                assert!(chains_of(&gone).iter().any(|c| c.starts_with("KUBE-FW-")));
            }
            ctl.settle(&mut r, &steps[1].set, Duration::from_secs(1))
                .unwrap();
            states.push(saved(&b, &mut r));
        }
        assert!(states[0].contains("KUBE-SVL-") && states[0].contains("-p udp"));
        assert_eq!(states[0], states[1], "{}", b.mode());
    }
}
