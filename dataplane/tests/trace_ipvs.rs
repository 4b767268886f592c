//! Trace tests for the IPVS mode: each profile's calls, against the recording executor
//! and an in-memory node, for a full sync from empty, an added service, a removed one,
//! a changed endpoint (with a connection, so kube-proxy terminates it gracefully) and a
//! sync after the 1-minute graceful-termination loop; compared call by call with
//! fixtures written from kube-proxy's sources (`tests/fixtures/trace/ipvs-*.txt`).
//! Pure: no root, no kernel.

mod trace;

use std::net::Ipv4Addr;
use std::time::Duration;

use dataplane::floor::model::{service, spare_endpoint_ip, ServiceSet};
use dataplane::floor::sync::record::Recorder;
use dataplane::floor::sync::{Controller, KubeProxyVersion, Profile};
use dataplane::ipvs::controller::Settings;
use dataplane::ipvs::standin::{Node, NodeState};
use dataplane::ipvs::IpvsBackend;
use dataplane::xtables::Xtables;
use dataplane::{IpvsScheduler, KernelFeature};

/// The x_tables binaries as kube-proxy names them.
fn settings() -> Settings {
    Settings {
        scheduler: IpvsScheduler::Rr,
        xt: Xtables {
            iptables: "iptables",
            restore: "iptables-restore",
            save: "iptables-save",
            feature: KernelFeature::NfTables,
        },
        old_kernel: false,
        node_ips: vec![dataplane::ipvs::ports::NODE_IP],
    }
}

fn fixture(name: &str) -> Vec<String> {
    trace::calls(name)
}

fn assert_calls(got: &[String], want: &[String], what: &str) {
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(
            g,
            w,
            "{what}: call {} differs\n--- calls so far:\n{}",
            i + 1,
            got[..=i].join("\n")
        );
    }
    assert_eq!(
        got.len(),
        want.len(),
        "{what}: {} calls, fixture has {}\n--- extra:\n{}",
        got.len(),
        want.len(),
        if got.len() > want.len() {
            got[want.len()..].join("\n")
        } else {
            want[got.len()..].join("\n")
        }
    );
}

/// The service sets of the sequence and the virtual time of each sync.
fn sequence() -> Vec<(ServiceSet, Duration)> {
    let s0 = ServiceSet::generate(3, 2);
    let mut s1 = s0.clone();
    s1.upsert(service(3, 2));
    let mut s2 = s1.clone();
    s2.remove(1);
    let mut s3 = s2.clone();
    let mut changed = s3.get(2).unwrap().clone();
    changed.endpoints[0].ip = spare_endpoint_ip(0);
    s3.upsert(changed);
    let s4 = s3.clone();
    let secs = Duration::from_secs;
    vec![
        (s0, secs(0)),
        (s1, secs(1)),
        (s2, secs(2)),
        (s3, secs(3)),
        (s4, secs(60)),
    ]
}

const VIP2: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 3);
const GONE: Ipv4Addr = Ipv4Addr::new(10, 128, 0, 5);

/// Runs the sequence with `profile` on a fresh node: 10.128.0.5 has a connection when
/// it is removed (sync 4), which has ended by sync 5. Returns the calls and the node.
fn run(profile: Profile) -> (Vec<String>, Node, Box<dyn Controller>) {
    let node = Node::new();
    let mut rec = Recorder::new(node.standins());
    let mut ctl = IpvsBackend::controller_with(profile, settings());
    let mut old: Option<ServiceSet> = None;
    for (k, (set, at)) in sequence().into_iter().enumerate() {
        if k == 3 {
            node.set_conns(VIP2, 80, GONE, 1, 0);
        }
        if k == 4 {
            node.set_conns(VIP2, 80, GONE, 0, 0);
        }
        ctl.sync(&mut rec, old.as_ref(), &set, at)
            .unwrap_or_else(|e| panic!("sync {}: {e}", k + 1));
        old = Some(set);
    }
    (rec.lines(), node, ctl)
}

#[test]
fn kube_proxy_calls_are_kube_proxys_in_its_order() {
    let want = fixture("ipvs-kube-proxy.txt");
    for v in KubeProxyVersion::ALL {
        let (got, _, _) = run(Profile::KubeProxy(v));
        assert_calls(&got, &want, &format!("kube-proxy {v}"));
    }
}

#[test]
fn the_floor_sends_only_the_difference() {
    let (got, _, _) = run(Profile::Floor);
    assert_calls(&got, &fixture("ipvs-floor.txt"), "floor");
}

/// What `ipvsadm -S -n`, `ipset list`, `iptables-save` and `ip addr` would show.
fn objects(st: &NodeState) -> String {
    st.objects()
}

#[test]
fn both_profiles_leave_identical_objects() {
    let (_, kp, mut kctl) = run(Profile::KubeProxy(KubeProxyVersion::V1_36));
    let (_, fl, mut fctl) = run(Profile::Floor);
    let last = sequence().pop().unwrap().0;
    let mut rec = Recorder::new(kp.standins());
    kctl.settle(&mut rec, &last, Duration::from_secs(61))
        .unwrap();
    let mut rec = Recorder::new(fl.standins());
    fctl.settle(&mut rec, &last, Duration::from_secs(61))
        .unwrap();
    let (a, b) = (objects(&kp.state()), objects(&fl.state()));
    assert_eq!(a, b);
    // What they hold: 3 services, 6 real servers, each ClusterIP in both sets.
    assert!(
        a.contains("-a -t 10.96.0.3:80 -r 10.160.0.1:8080 -m -w 1"),
        "{a}"
    );
    assert!(!a.contains("10.128.0.5"), "{a}");
    assert_eq!(kp.state().ipsets["KUBE-IPVS-IPS"].entries.len(), 3);
    assert!(a.contains("-A INPUT -m comment --comment \"kubernetes ipvs access filter\" -j KUBE-IPVS-FILTER\n-A INPUT -m comment --comment \"kube-proxy firewall rules\" -j KUBE-PROXY-FIREWALL\n-A INPUT -m comment --comment \"kubernetes health check rules\" -j KUBE-NODE-PORT\n"), "{a}");
    assert!(
        !a.contains("KUBE-LOOP-BACK dst,dst,src"),
        "no local endpoint: {a}"
    );
}

#[test]
fn graceful_termination_waits_for_connections_until_settle() {
    let node = Node::new();
    let mut rec = Recorder::new(node.standins());
    let mut ctl =
        IpvsBackend::controller_with(Profile::KubeProxy(KubeProxyVersion::V1_36), settings());
    let before = ServiceSet::generate(1, 2);
    let mut after = before.clone();
    after.services[0].endpoints.remove(0);
    let vip = before.services[0].vip;
    let rs = before.services[0].endpoints[0].ip;
    ctl.sync(&mut rec, None, &before, Duration::ZERO).unwrap();
    node.set_conns(vip, 80, rs, 0, 2);
    ctl.sync(&mut rec, Some(&before), &after, Duration::from_secs(1))
        .unwrap();
    let weight = |n: &Node| {
        n.state().services[0]
            .1
            .iter()
            .find(|d| d.addr == std::net::IpAddr::V4(rs))
            .map(|d| d.weight)
    };
    assert_eq!(
        weight(&node),
        Some(0),
        "inactive connections keep it, at weight 0"
    );
    // Within the minute, nothing fires.
    rec.clear();
    ctl.sync(&mut rec, Some(&after), &after, Duration::from_secs(30))
        .unwrap();
    assert!(!rec.lines().iter().any(|l| l.contains("delete real server")));
    // Settle retries: still connected, kept; once drained, deleted.
    rec.clear();
    ctl.settle(&mut rec, &after, Duration::from_secs(31))
        .unwrap();
    assert_eq!(weight(&node), Some(0));
    node.set_conns(vip, 80, rs, 0, 0);
    rec.clear();
    ctl.settle(&mut rec, &after, Duration::from_secs(32))
        .unwrap();
    assert_eq!(
        rec.lines(),
        [
            "netlink: IPVS GET_DEST dump 10.96.0.1:80",
            "netlink: delete real server 10.128.0.1:8080 of -t 10.96.0.1:80"
        ]
    );
    assert_eq!(weight(&node), None);
    rec.clear();
    ctl.settle(&mut rec, &after, Duration::from_secs(33))
        .unwrap();
    assert!(rec.lines().is_empty(), "nothing left to fire");
}

#[test]
fn an_endpoint_back_during_its_termination_is_deleted_and_added_again() {
    let node = Node::new();
    let mut rec = Recorder::new(node.standins());
    let mut ctl =
        IpvsBackend::controller_with(Profile::KubeProxy(KubeProxyVersion::V1_36), settings());
    let full = ServiceSet::generate(1, 2);
    let mut less = full.clone();
    less.services[0].endpoints.remove(0);
    ctl.sync(&mut rec, None, &full, Duration::ZERO).unwrap();
    node.set_conns(
        full.services[0].vip,
        80,
        full.services[0].endpoints[0].ip,
        1,
        0,
    );
    ctl.sync(&mut rec, Some(&full), &less, Duration::from_secs(1))
        .unwrap();
    rec.clear();
    ctl.sync(&mut rec, Some(&less), &full, Duration::from_secs(2))
        .unwrap();
    let lines = rec.lines();
    let i = lines
        .iter()
        .position(|l| l == "netlink: delete real server 10.128.0.1:8080 of -t 10.96.0.1:80")
        .expect("MoveRSOutofGracefulDeleteList");
    assert_eq!(
        lines[i + 1],
        "netlink: new real server 10.128.0.1:8080 of -t 10.96.0.1:80"
    );
    assert_eq!(
        node.state().services[0]
            .1
            .iter()
            .map(|d| d.weight)
            .collect::<Vec<_>>(),
        [1, 1]
    );
}

/// Calls of one sync by kind, for the growth checks.
fn count(lines: &[String], needle: &str) -> usize {
    lines.iter().filter(|l| l.contains(needle)).count()
}

/// The calls of an add (one service of `endpoints` more) after a full sync of `n`.
fn add_calls(profile: Profile, n: usize, endpoints: usize) -> Vec<String> {
    let node = Node::new();
    let mut rec = Recorder::new(node.standins());
    let mut ctl = IpvsBackend::controller_with(profile, settings());
    let set = ServiceSet::generate(n, endpoints);
    ctl.sync(&mut rec, None, &set, Duration::ZERO).unwrap();
    let mut more = set.clone();
    more.upsert(service(n, endpoints));
    rec.clear();
    ctl.sync(&mut rec, Some(&set), &more, Duration::from_secs(1))
        .unwrap();
    rec.lines()
}

#[test]
fn kube_proxys_add_grows_with_the_services_and_the_floors_does_not() {
    let small = add_calls(Profile::KubeProxy(KubeProxyVersion::V1_36), 100, 10);
    let large = add_calls(Profile::KubeProxy(KubeProxyVersion::V1_36), 1000, 10);
    // Every service is walked: 2 GET_SERVICE and a GET_DEST dump each.
    assert_eq!(count(&small, "IPVS GET_SERVICE 10."), 2 * 101);
    assert_eq!(count(&large, "IPVS GET_SERVICE 10."), 2 * 1001);
    assert_eq!(count(&large, "IPVS GET_DEST dump"), 1001);
    // Fixed per sync: 11 -N, 9 -C, 17 creates, 17 lists, one restore.
    for lines in [&small, &large] {
        assert_eq!(count(lines, " -N "), 11);
        assert_eq!(count(lines, " -C "), 9);
        assert_eq!(count(lines, " -I "), 0);
        assert_eq!(count(lines, "$ ipset create "), 17);
        assert_eq!(count(lines, "$ ipset list "), 17);
        assert_eq!(count(lines, "$ ipset add "), 2);
        assert_eq!(count(lines, "new real server"), 10);
        assert_eq!(count(lines, "iptables-restore"), 1);
    }
    assert_eq!(
        small.len(),
        20 + 1 + 17 + 2 + 3 * 101 + 2 + 10 + 17 + 2 + 1 + 1
    );
    assert_eq!(large.len(), small.len() + 3 * 900);
    let floor_small = add_calls(Profile::Floor, 100, 10);
    let floor_large = add_calls(Profile::Floor, 1000, 10);
    assert_eq!(floor_small.len(), floor_large.len());
    assert_eq!(
        floor_large,
        [
            "$ ipset restore -exist",
            "netlink: bind 10.96.3.233 to link 2",
            "netlink: 11 IPVS requests in one send"
        ]
    );
    eprintln!(
        "calls per add (x10 endpoints): kube-proxy {} at 100 services, {} at 1,000; floor {} and {}",
        small.len(),
        large.len(),
        floor_small.len(),
        floor_large.len()
    );
}

#[test]
fn a_full_sync_into_a_fresh_node_leaves_what_the_sequence_left() {
    for profile in [Profile::KubeProxy(KubeProxyVersion::V1_36), Profile::Floor] {
        let (_, node, mut ctl) = run(profile);
        let last = sequence().pop().unwrap().0;
        let mut rec = Recorder::new(node.standins());
        ctl.settle(&mut rec, &last, Duration::from_secs(120))
            .unwrap();
        let fresh = Node::new();
        let mut rec = Recorder::new(fresh.standins());
        let mut ctl = IpvsBackend::controller_with(profile, settings());
        ctl.sync(&mut rec, None, &last, Duration::ZERO).unwrap();
        assert_eq!(objects(&node.state()), objects(&fresh.state()), "{profile}");
    }
}

/// ClientIP affinity makes the virtual service persistent with its timeout, as
/// kube-proxy's IPVS `syncProxyRules` sets `FlagPersistent` and `StickyMaxAgeSeconds`
/// (pkg/proxy/ipvs/proxier_test.go `TestSessionAffinity`: a NodePort service with
/// ClientIP affinity of the default 10800 s, its virtual servers persistent; and
/// `TestSyncService` case 1: a virtual server that becomes persistent is updated in
/// place), through both profiles alike; a change of timeout reaches the kernel as an
/// update (the floor sends SET_SERVICE too).
#[test]
fn affinity_is_persistence_through_both_profiles() {
    let mut set = ServiceSet::generate(3, 2);
    let mut sticky = set.get(1).unwrap().clone();
    sticky.spec.affinity_timeout_s = Some(10800);
    set.upsert(sticky.clone());
    let mut later = set.clone();
    sticky.spec.affinity_timeout_s = Some(600);
    later.upsert(sticky);
    let mut saves = Vec::new();
    for profile in [Profile::KubeProxy(KubeProxyVersion::V1_36), Profile::Floor] {
        let node = Node::new();
        let mut rec = Recorder::new(node.standins());
        let mut ctl = IpvsBackend::controller_with(profile, settings());
        ctl.sync(&mut rec, None, &set, Duration::ZERO).unwrap();
        let first = node.state().ipvsadm_save();
        assert!(
            first.contains(&"-A -t 10.96.0.2:80 -s rr -p 10800".to_string()),
            "{profile}: {first:?}"
        );
        assert!(first.contains(&"-A -t 10.96.0.1:80 -s rr".to_string()));
        ctl.sync(&mut rec, Some(&set), &later, Duration::from_secs(1))
            .unwrap();
        let save = node.state().ipvsadm_save();
        assert!(
            save.contains(&"-A -t 10.96.0.2:80 -s rr -p 600".to_string()),
            "{profile}: {save:?}"
        );
        saves.push(objects(&node.state()));
    }
    assert_eq!(saves[0], saves[1]);
}

/// The shape features IPVS renders ([`dataplane::ipvs::ports::RENDERS`]: NodePort, a
/// second UDP port, ClientIP affinity) through kube-proxy's loop and the floor, over
/// the conformance module's featured sequence (full sync, feature services changed,
/// the NodePort service removed, a service added, timers fired): after every step both
/// leave the same objects, and the full sync's are those of pkg/proxy/ipvs
/// proxier_test.go `TestNodePortIPv4` (a virtual server on the node IP per node port,
/// UDP included, each port in its KUBE-NODE-PORT-* set).
#[test]
fn both_profiles_leave_identical_objects_through_the_shape_features() {
    use dataplane::conformance::featured::featured_sequence;
    use dataplane::Backend;

    let steps = featured_sequence(3, 2, IpvsBackend::default().renders());
    let mut seen: Vec<Vec<String>> = Vec::new();
    for profile in [Profile::KubeProxy(KubeProxyVersion::V1_36), Profile::Floor] {
        let node = Node::new();
        let mut rec = Recorder::new(node.standins());
        let mut ctl = IpvsBackend::controller_with(profile, settings());
        let mut old: Option<&ServiceSet> = None;
        let mut each = Vec::new();
        for step in &steps {
            if step.settle {
                ctl.settle(&mut rec, &step.set, step.at).unwrap();
            } else {
                ctl.sync(&mut rec, old, &step.set, step.at)
                    .unwrap_or_else(|e| panic!("{profile} {}: {e}", step.name));
            }
            old = Some(&step.set);
            each.push(objects(&node.state()));
        }
        seen.push(each);
    }
    for (k, step) in steps.iter().enumerate() {
        assert_eq!(seen[0][k], seen[1][k], "{}", step.name);
    }
    let full = &seen[0][0];
    for line in [
        "-A -t 10.255.0.1:30000 -s rr",
        "-A -u 10.96.0.4:81 -s rr",
        "-A -u 10.255.0.1:30001 -s rr",
        "-A -t 10.96.0.5:80 -s rr -p 10800",
        "Name: KUBE-NODE-PORT-UDP\nType: bitmap:port\nRevision: 0\nHeader: range 0-65535\nSize in memory: 0\nReferences: 0\nNumber of entries: 1\nMembers:\n30001\n",
        "-A KUBE-NODE-PORT -p tcp -m comment --comment \"Kubernetes nodeport TCP port for masquerade purpose\" -m set --match-set KUBE-NODE-PORT-TCP dst -j KUBE-MARK-MASQ\n",
    ] {
        assert!(full.contains(line), "{line}\n--- in:\n{full}");
    }
    // The LoadBalancer (externalTrafficPolicy: Local, its first endpoint on the node):
    // its ingress IP and node port take only the local endpoint, the ClusterIP both
    // (`TestOnlyLocalLoadBalancing`); its entries are in the -LOCAL sets too.
    let lb_node_port: Vec<&str> = full
        .lines()
        .filter(|l| {
            l.starts_with("-a -t 10.255.0.1:30002 ") || l.starts_with("-a -t 198.19.0.1:80 ")
        })
        .collect();
    assert_eq!(
        lb_node_port,
        [
            "-a -t 10.255.0.1:30002 -r 10.128.0.11:8080 -m -w 1",
            "-a -t 198.19.0.1:80 -r 10.128.0.11:8080 -m -w 1"
        ]
    );
    assert!(full.contains("Name: KUBE-LOAD-BALANCER-LOCAL\nType: hash:ip,port\nRevision: 0\nHeader: family inet hashsize 1024 maxelem 65536\nSize in memory: 0\nReferences: 0\nNumber of entries: 1\nMembers:\n198.19.0.1,tcp:80\n"), "{full}");
    assert!(full.contains("-A KUBE-LOAD-BALANCER -m comment --comment \"Kubernetes service load balancer ip + port with externalTrafficPolicy=local\" -m set --match-set KUBE-LOAD-BALANCER-LOCAL dst,dst -j RETURN\n-A KUBE-LOAD-BALANCER -j KUBE-MARK-MASQ\n"), "{full}");
    // internalTrafficPolicy: Local with its second endpoint on the node: that one only.
    assert!(full.contains("-a -t 10.96.0.7:80 -r 10.128.0.14:8080 -m -w 1\n-a -t 10.96.0.8:80"));
    // The NodePort service removed: its node IP virtual servers and entries are gone.
    let removed = &seen[0][2];
    assert!(!removed.contains("10.255.0.1:30000"), "{removed}");
    assert!(!removed.contains("10.96.0.4:81"), "{removed}");
    assert!(!removed.contains("KUBE-NODE-PORT-UDP dst"), "{removed}");
}
