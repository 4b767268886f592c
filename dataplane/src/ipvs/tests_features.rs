//! Exact text of the service features the IPVS renderer writes
//! ([`super::ports::RENDERS`]), each following kube-proxy's
//! pkg/proxy/ipvs/proxier_test.go, with kpbench's names and addresses in place of the
//! test's (node IP 10.255.0.1 for its 100.101.102.103, cluster CIDR 10.128.0.0/10):
//! `TestNodePortIPv4` ("1 service with node port, has 2 endpoints": a virtual server on
//! the ClusterIP and one on the node IP, both with the endpoints; "1 UDP service with
//! node port": protocol UDP, its port in KUBE-NODE-PORT-UDP and KUBE-NODE-PORT's
//! masquerade rule for that set; "service has node port but no endpoints": both virtual
//! servers, no real server), `TestSessionAffinity` (every virtual server of the port
//! persistent), `TestMultiPortServiceBindAddr` (one bound address for all the ports of
//! a ClusterIP, unbound only with the last) and graceful_termination.go
//! (`IsRsGracefulTerminationNeeded`: a UDP real server goes at once).

use std::net::Ipv4Addr;
use std::time::Duration;

use super::controller::Settings;
use super::ports::{wanted, NODE_IP};
use super::render::*;
use super::standin::Node;
use super::IpvsBackend;
use crate::floor::model::{nodeport_two_ports, service, Service, ServiceSet};
use crate::floor::spec::{Protocol, ServicePort};
use crate::floor::sync::record::Recorder;
use crate::floor::sync::{KubeProxyVersion, Profile};
use crate::mode::IpvsScheduler;
use crate::xtables::Xtables;

fn settings() -> Settings {
    Settings {
        scheduler: IpvsScheduler::Rr,
        xt: Xtables::nft(),
        old_kernel: false,
        node_ips: vec![NODE_IP],
    }
}

/// Service 0 with 2 endpoints as NodePort 30000, affinity 10800 s and a second port
/// `p1`, UDP 81 -> 8081, node port 30001.
fn featured() -> Service {
    let mut svc = nodeport_two_ports(2, Protocol::Udp);
    svc.spec.affinity_timeout_s = Some(10800);
    svc
}

fn one(svc: &Service) -> ServiceSet {
    ServiceSet {
        services: vec![svc.clone()],
    }
}

/// A full sync's IPVS requests, as ipvsadm lines, in the order they are sent.
fn full_sync_lines(set: &ServiceSet) -> Vec<String> {
    Changes::compute(None, set, "rr", &[NODE_IP])
        .ops()
        .iter()
        .map(ipvsadm_line)
        .collect()
}

#[test]
fn a_node_port_and_a_udp_port_are_virtual_servers_on_the_node_ip() {
    assert_eq!(
        full_sync_lines(&one(&featured())),
        [
            "-A -t 10.96.0.1:80 -s rr -p 10800",
            "-a -t 10.96.0.1:80 -r 10.128.0.1:8080 -m -w 1",
            "-a -t 10.96.0.1:80 -r 10.128.0.2:8080 -m -w 1",
            "-A -t 10.255.0.1:30000 -s rr -p 10800",
            "-a -t 10.255.0.1:30000 -r 10.128.0.1:8080 -m -w 1",
            "-a -t 10.255.0.1:30000 -r 10.128.0.2:8080 -m -w 1",
            "-A -u 10.96.0.1:81 -s rr -p 10800",
            "-a -u 10.96.0.1:81 -r 10.128.0.1:8081 -m -w 1",
            "-a -u 10.96.0.1:81 -r 10.128.0.2:8081 -m -w 1",
            "-A -u 10.255.0.1:30001 -s rr -p 10800",
            "-a -u 10.255.0.1:30001 -r 10.128.0.1:8081 -m -w 1",
            "-a -u 10.255.0.1:30001 -r 10.128.0.2:8081 -m -w 1",
        ]
    );
    let w = wanted(&featured(), "rr", &[NODE_IP]);
    let entries: Vec<(&str, &str)> = w.entries.iter().map(|(s, e)| (*s, e.as_str())).collect();
    assert_eq!(
        entries,
        [
            ("KUBE-CLUSTER-IP", "10.96.0.1,tcp:80"),
            ("KUBE-NODE-PORT-TCP", "30000"),
            ("KUBE-CLUSTER-IP", "10.96.0.1,udp:81"),
            ("KUBE-NODE-PORT-UDP", "30001"),
        ]
    );
    // Only the ClusterIP is bound, once for both ports.
    assert_eq!(w.binds(), [Ipv4Addr::new(10, 96, 0, 1)]);
    assert_eq!(
        IpvsBackend::default().expected_objects(&one(&featured())),
        4 + 8
    );
}

#[test]
fn a_node_port_without_endpoints_keeps_both_virtual_servers() {
    let mut svc = featured();
    svc.spec.extra_ports.clear();
    svc.spec.affinity_timeout_s = None;
    svc.endpoints.clear();
    assert_eq!(
        full_sync_lines(&one(&svc)),
        ["-A -t 10.96.0.1:80 -s rr", "-A -t 10.255.0.1:30000 -s rr"]
    );
    // No node IP: kube-proxy skips the node port, its set entry too.
    let w = wanted(&svc, "rr", &[]);
    assert_eq!(w.virtuals.len(), 1);
    assert_eq!(w.entries.len(), 1);
}

#[test]
fn the_node_port_sets_add_their_masquerade_rules_to_kube_node_port() {
    let filled = Filled::from([
        "KUBE-CLUSTER-IP",
        "KUBE-NODE-PORT-TCP",
        "KUBE-NODE-PORT-UDP",
        "KUBE-IPVS-IPS",
    ]);
    let plain = kube_proxy_payload(
        &Filled::from(["KUBE-CLUSTER-IP", "KUBE-IPVS-IPS"]),
        &Default::default(),
    );
    let want = plain.replacen(
        "-A KUBE-SERVICES -s 127.0.0.0/8 -j RETURN\n",
        "-A KUBE-SERVICES -s 127.0.0.0/8 -j RETURN\n\
         -A KUBE-NODE-PORT -p tcp -m comment --comment \"Kubernetes nodeport TCP port for masquerade purpose\" -m set --match-set KUBE-NODE-PORT-TCP dst -j KUBE-MARK-MASQ\n\
         -A KUBE-NODE-PORT -p udp -m comment --comment \"Kubernetes nodeport UDP port for masquerade purpose\" -m set --match-set KUBE-NODE-PORT-UDP dst -j KUBE-MARK-MASQ\n",
        1,
    );
    assert_eq!(kube_proxy_payload(&filled, &Default::default()), want);
    assert_ne!(want, plain);
}

/// Syncs `steps` through `profile` on a fresh node; the node.
fn run(profile: Profile, steps: &[ServiceSet]) -> Node {
    let node = Node::new();
    let mut rec = Recorder::new(node.standins());
    let mut ctl = IpvsBackend::controller_with(profile, settings());
    let mut old: Option<&ServiceSet> = None;
    for (k, set) in steps.iter().enumerate() {
        ctl.sync(&mut rec, old, set, Duration::from_secs(k as u64))
            .unwrap_or_else(|e| panic!("{profile} sync {}: {e}", k + 1));
        old = Some(set);
    }
    node
}

#[test]
fn both_profiles_leave_the_node_port_objects_and_take_them_away() {
    let mut set = ServiceSet::generate(2, 2);
    let mut svc = featured();
    svc.index = 2;
    svc.vip = Ipv4Addr::new(10, 96, 0, 3);
    set.upsert(svc.clone());
    let mut back = set.clone();
    back.upsert(service(2, 2));
    let mut seen = Vec::new();
    for profile in [Profile::KubeProxy(KubeProxyVersion::V1_36), Profile::Floor] {
        let full = run(profile, std::slice::from_ref(&set));
        let st = full.state();
        let members = |s: &str| st.ipsets[s].entries.iter().cloned().collect::<Vec<_>>();
        assert_eq!(members("KUBE-NODE-PORT-TCP"), ["30000"], "{profile}");
        assert_eq!(members("KUBE-NODE-PORT-UDP"), ["30001"], "{profile}");
        assert!(members("KUBE-CLUSTER-IP").contains(&"10.96.0.3,udp:81".to_string()));
        assert_eq!(members("KUBE-IPVS-IPS").len(), 3, "{profile}");
        assert_eq!(
            st.chains[&("nat".to_string(), "KUBE-NODE-PORT".to_string())],
            [
                "-p tcp -m comment --comment \"Kubernetes nodeport TCP port for masquerade purpose\" -m set --match-set KUBE-NODE-PORT-TCP dst -j KUBE-MARK-MASQ",
                "-p udp -m comment --comment \"Kubernetes nodeport UDP port for masquerade purpose\" -m set --match-set KUBE-NODE-PORT-UDP dst -j KUBE-MARK-MASQ",
            ],
            "{profile}"
        );
        let save = st.ipvsadm_save();
        assert!(save.contains(&"-A -u 10.255.0.1:30001 -s rr -p 10800".to_string()));
        assert_eq!(save.len(), 4 + 8 + 2 * 3, "{profile}: {save:?}");
        let full_objects = st.objects();
        drop(st);
        // The service becomes a plain ClusterIP again: its node ports and UDP port go,
        // with their entries and KUBE-NODE-PORT's rules.
        let after = run(profile, &[set.clone(), back.clone()]);
        let st = after.state();
        assert!(st.ipsets["KUBE-NODE-PORT-TCP"].entries.is_empty());
        assert!(st.chains[&("nat".to_string(), "KUBE-NODE-PORT".to_string())].is_empty());
        assert_eq!(st.ipvsadm_save().len(), 3 + 6, "{profile}");
        seen.push((full_objects, st.objects()));
    }
    assert_eq!(seen[0], seen[1], "both profiles leave the same objects");
    let fresh = run(Profile::Floor, std::slice::from_ref(&back));
    assert_eq!(seen[1].1, fresh.state().objects());
}

#[test]
fn the_address_of_a_multi_port_service_stays_bound_until_its_last_port_goes() {
    let mut two = service(0, 1);
    two.spec.extra_ports.push(ServicePort {
        name: "p1".into(),
        protocol: Protocol::Tcp,
        port: 81,
        target_port: 8081,
        node_port: None,
    });
    let c = Changes::compute(None, &one(&two), "rr", &[NODE_IP]);
    assert_eq!(c.bind, [Ipv4Addr::new(10, 96, 0, 1)]);
    assert_eq!(c.new_services.len(), 2);
    let c = Changes::compute(Some(&one(&two)), &one(&service(0, 1)), "rr", &[NODE_IP]);
    assert!(c.bind.is_empty() && c.unbind.is_empty());
    assert_eq!(
        c.ops().iter().map(ipvsadm_line).collect::<Vec<_>>(),
        ["-D -t 10.96.0.1:81"]
    );
    assert_eq!(
        c.ipset_del,
        [("KUBE-CLUSTER-IP", "10.96.0.1,tcp:81".into())]
    );
    let c = Changes::compute(Some(&one(&two)), &ServiceSet::default(), "rr", &[NODE_IP]);
    assert_eq!(c.unbind, [Ipv4Addr::new(10, 96, 0, 1)]);
}

#[test]
fn a_removed_udp_real_server_goes_at_once_even_with_connections() {
    let mut udp = service(0, 2);
    udp.spec.protocol = Protocol::Udp;
    let mut less = udp.clone();
    less.endpoints.remove(0);
    let node = Node::new();
    let mut rec = Recorder::new(node.standins());
    let mut ctl =
        IpvsBackend::controller_with(Profile::KubeProxy(KubeProxyVersion::V1_36), settings());
    ctl.sync(&mut rec, None, &one(&udp), Duration::ZERO)
        .unwrap();
    assert_eq!(node.state().ipvsadm_save()[0], "-A -u 10.96.0.1:80 -s rr");
    node.set_conns(udp.vip, 80, udp.endpoints[0].ip, 2, 3);
    rec.clear();
    ctl.sync(
        &mut rec,
        Some(&one(&udp)),
        &one(&less),
        Duration::from_secs(1),
    )
    .unwrap();
    assert!(
        rec.lines()
            .contains(&"netlink: delete real server 10.128.0.1:8080 of -u 10.96.0.1:80".into()),
        "{:?}",
        rec.lines()
    );
    assert_eq!(node.state().services[0].1.len(), 1);
}
