//! Exact text of LoadBalancer services, external IPs, source ranges, Local traffic
//! policies and endpoint conditions, each following the expected rules of kube-proxy's
//! pkg/proxy/iptables/proxier_test.go, with kpbench's names and addresses in place of
//! the test's (cluster CIDR 10.128.0.0/10 for the test's 10.0.0.0/8):
//! `TestOverallIPTablesRules` (svc2: LoadBalancer, `externalTrafficPolicy: Local`, an
//! external IP and an ingress IP, its one endpoint on another node; svc4: an external
//! IP, two endpoints; svc5: LoadBalancer with `loadBalancerSourceRanges`),
//! `TestOnlyLocalNodePorts` / `TestOnlyLocalLoadBalancing` (a local endpoint: the
//! KUBE-SVL chain), `TestInternalTrafficPolicy` (no local endpoint: the cluster IP is
//! dropped), and `TestEndpointSliceWithTerminatingEndpointsTrafficPolicyLocal` /
//! `...Cluster` (the serving-terminating fallback, not-ready endpoints left out).

use std::net::Ipv4Addr;

use super::*;
use crate::floor::model::service;
use crate::floor::spec::{Conditions, ServiceType, TrafficPolicy};

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

/// `text` with KUBE-SVC, KUBE-SVL, KUBE-EXT, KUBE-FW and <SEPj> replaced by `svc`'s first port's chains.
fn named(text: &str, svc: &Service) -> String {
    let p = &ports::views(svc)[0];
    let mut t = text
        .replace("<SVL>", &p.svl_chain())
        .replace("<EXT>", &p.ext_chain())
        .replace("<FW>", &p.fw_chain())
        .replace("<SVC>", &p.svc_chain);
    for (j, (_, sep)) in p.endpoints.iter().enumerate() {
        t = t.replace(&format!("<SEP{j}>"), sep);
    }
    t
}

/// Endpoint `j` of `svc` ready and on the node.
fn on_node(svc: &mut Service, j: usize) {
    let local = Conditions {
        local: true,
        ..Conditions::default()
    };
    svc.spec.conditions.insert(svc.endpoints[j].ip, local);
}

/// The lines of `svc`'s full sync that name it, filter then nat, in payload order.
fn lines_of(svc: &Service) -> String {
    let text = render_full(&ServiceSet {
        services: vec![svc.clone()],
    })
    .text;
    let needle = format!("kpbench/svc-{}:", svc.index);
    let p = &ports::views(svc)[0];
    let hash = &p.svc_chain["KUBE-SVC-".len()..];
    text.lines()
        .filter(|l| l.contains(&needle) || l.contains(hash) || l.starts_with(":KUBE-SEP-"))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// svc2 of `TestOverallIPTablesRules`: LoadBalancer with Local external policy, an
/// external IP and an ingress IP, its one endpoint on another node.
fn local_lb_without_local_endpoints() -> Service {
    let mut svc = service(2, 1);
    svc.spec.kind = ServiceType::LoadBalancer;
    svc.spec.node_port = Some(30001);
    svc.spec.external_policy = TrafficPolicy::Local;
    svc.spec.ingress_ips = vec![ip("198.19.0.1")];
    svc.spec.external_ips = vec![ip("198.18.0.1")];
    svc
}

const LOCAL_LB_WITHOUT_LOCAL_ENDPOINTS: &str = r#"-A KUBE-EXTERNAL-SERVICES -m comment --comment "kpbench/svc-2:http has no local endpoints" -m tcp -p tcp -d 198.18.0.1 --dport 80 -j DROP
-A KUBE-EXTERNAL-SERVICES -m comment --comment "kpbench/svc-2:http has no local endpoints" -m tcp -p tcp -d 198.19.0.1 --dport 80 -j DROP
-A KUBE-EXTERNAL-SERVICES -m comment --comment "kpbench/svc-2:http has no local endpoints" -m addrtype --dst-type LOCAL -m tcp -p tcp --dport 30001 -j DROP
:<EXT> - [0:0]
:<SVC> - [0:0]
:<SEP0> - [0:0]
-A KUBE-SERVICES -m comment --comment "kpbench/svc-2:http cluster IP" -m tcp -p tcp -d 10.96.0.3 --dport 80 -j <SVC>
-A KUBE-SERVICES -m comment --comment "kpbench/svc-2:http external IP" -m tcp -p tcp -d 198.18.0.1 --dport 80 -j <EXT>
-A KUBE-SERVICES -m comment --comment "kpbench/svc-2:http loadbalancer IP" -m tcp -p tcp -d 198.19.0.1 --dport 80 -j <EXT>
-A KUBE-NODEPORTS -m comment --comment kpbench/svc-2:http -m tcp -p tcp --dport 30001 -j <EXT>
-A <SVC> -m comment --comment "kpbench/svc-2:http cluster IP" -m tcp -p tcp -d 10.96.0.3 --dport 80 ! -s 10.128.0.0/10 -j KUBE-MARK-MASQ
-A <EXT> -m comment --comment "pod traffic for kpbench/svc-2:http external destinations" -s 10.128.0.0/10 -j <SVC>
-A <EXT> -m comment --comment "masquerade LOCAL traffic for kpbench/svc-2:http external destinations" -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ
-A <EXT> -m comment --comment "route LOCAL traffic for kpbench/svc-2:http external destinations" -m addrtype --src-type LOCAL -j <SVC>
-A <SVC> -m comment --comment "kpbench/svc-2:http -> 10.128.0.3:8080" -j <SEP0>
-A <SEP0> -m comment --comment kpbench/svc-2:http -s 10.128.0.3 -j KUBE-MARK-MASQ
-A <SEP0> -m comment --comment kpbench/svc-2:http -m tcp -p tcp -j DNAT --to-destination 10.128.0.3:8080
"#;

#[test]
fn a_local_load_balancer_without_local_endpoints_drops_external_traffic() {
    let svc = local_lb_without_local_endpoints();
    assert_eq!(
        lines_of(&svc),
        named(LOCAL_LB_WITHOUT_LOCAL_ENDPOINTS, &svc)
    );
}

/// svc5 of `TestOverallIPTablesRules`: LoadBalancer, Cluster policy, a source range.
fn firewalled_lb() -> Service {
    let mut svc = service(5, 1);
    svc.spec.kind = ServiceType::LoadBalancer;
    svc.spec.node_port = Some(30002);
    svc.spec.ingress_ips = vec![ip("198.19.0.2")];
    svc.spec.source_ranges = vec![(ip("100.64.0.0"), 24)];
    svc
}

const FIREWALLED_LB: &str = r#"-A KUBE-PROXY-FIREWALL -m comment --comment "kpbench/svc-5:http traffic not accepted by <FW>" -m tcp -p tcp -d 198.19.0.2 --dport 80 -j DROP
:<EXT> - [0:0]
:<FW> - [0:0]
:<SVC> - [0:0]
:<SEP0> - [0:0]
-A KUBE-SERVICES -m comment --comment "kpbench/svc-5:http cluster IP" -m tcp -p tcp -d 10.96.0.6 --dport 80 -j <SVC>
-A KUBE-SERVICES -m comment --comment "kpbench/svc-5:http loadbalancer IP" -m tcp -p tcp -d 198.19.0.2 --dport 80 -j <FW>
-A KUBE-NODEPORTS -m comment --comment kpbench/svc-5:http -m tcp -p tcp --dport 30002 -j <EXT>
-A <SVC> -m comment --comment "kpbench/svc-5:http cluster IP" -m tcp -p tcp -d 10.96.0.6 --dport 80 ! -s 10.128.0.0/10 -j KUBE-MARK-MASQ
-A <EXT> -m comment --comment "masquerade traffic for kpbench/svc-5:http external destinations" -j KUBE-MARK-MASQ
-A <EXT> -j <SVC>
-A <FW> -m comment --comment "kpbench/svc-5:http loadbalancer IP" -s 100.64.0.0/24 -j <EXT>
-A <FW> -m comment --comment "other traffic to kpbench/svc-5:http will be dropped by KUBE-PROXY-FIREWALL"
-A <SVC> -m comment --comment "kpbench/svc-5:http -> 10.128.0.6:8080" -j <SEP0>
-A <SEP0> -m comment --comment kpbench/svc-5:http -s 10.128.0.6 -j KUBE-MARK-MASQ
-A <SEP0> -m comment --comment kpbench/svc-5:http -m tcp -p tcp -j DNAT --to-destination 10.128.0.6:8080
"#;

#[test]
fn source_ranges_go_through_the_fw_chain_and_the_proxy_firewall() {
    let svc = firewalled_lb();
    assert_eq!(lines_of(&svc), named(FIREWALLED_LB, &svc));
    assert_eq!(
        chains_of(&svc),
        named("<EXT> <FW> <SVC> <SEP0>", &svc)
            .split(' ')
            .map(String::from)
            .collect::<Vec<_>>()
    );
}

/// svc4 of `TestOverallIPTablesRules` (an external IP, Cluster policy, one of two
/// endpoints local) as kpbench spells it: a NodePort service with one external IP.
#[test]
fn an_external_ip_under_cluster_policy_masquerades_and_uses_every_endpoint() {
    let mut svc = service(4, 2);
    svc.spec.kind = ServiceType::NodePort;
    svc.spec.node_port = Some(30003);
    svc.spec.external_ips = vec![ip("198.18.0.2")];
    on_node(&mut svc, 1);
    let want = r#":<EXT> - [0:0]
:<SVC> - [0:0]
:<SEP0> - [0:0]
:<SEP1> - [0:0]
-A KUBE-SERVICES -m comment --comment "kpbench/svc-4:http cluster IP" -m tcp -p tcp -d 10.96.0.5 --dport 80 -j <SVC>
-A KUBE-SERVICES -m comment --comment "kpbench/svc-4:http external IP" -m tcp -p tcp -d 198.18.0.2 --dport 80 -j <EXT>
-A KUBE-NODEPORTS -m comment --comment kpbench/svc-4:http -m tcp -p tcp --dport 30003 -j <EXT>
-A <SVC> -m comment --comment "kpbench/svc-4:http cluster IP" -m tcp -p tcp -d 10.96.0.5 --dport 80 ! -s 10.128.0.0/10 -j KUBE-MARK-MASQ
-A <EXT> -m comment --comment "masquerade traffic for kpbench/svc-4:http external destinations" -j KUBE-MARK-MASQ
-A <EXT> -j <SVC>
-A <SVC> -m comment --comment "kpbench/svc-4:http -> 10.128.0.9:8080" -m statistic --mode random --probability 0.5000000000 -j <SEP0>
-A <SVC> -m comment --comment "kpbench/svc-4:http -> 10.128.0.10:8080" -j <SEP1>
-A <SEP0> -m comment --comment kpbench/svc-4:http -s 10.128.0.9 -j KUBE-MARK-MASQ
-A <SEP0> -m comment --comment kpbench/svc-4:http -m tcp -p tcp -j DNAT --to-destination 10.128.0.9:8080
-A <SEP1> -m comment --comment kpbench/svc-4:http -s 10.128.0.10 -j KUBE-MARK-MASQ
-A <SEP1> -m comment --comment kpbench/svc-4:http -m tcp -p tcp -j DNAT --to-destination 10.128.0.10:8080
"#;
    assert_eq!(lines_of(&svc), named(want, &svc));
}

/// `TestOnlyLocalNodePorts`: a NodePort service with Local external policy and one
/// of its two endpoints on the node: KUBE-EXT short-circuits pods and the node to
/// KUBE-SVC (both endpoints) and sends the rest to KUBE-SVL (the local one).
#[test]
fn a_local_nodeport_with_a_local_endpoint_has_a_svl_chain() {
    let mut svc = service(0, 2);
    svc.spec.kind = ServiceType::NodePort;
    svc.spec.node_port = Some(30000);
    svc.spec.external_policy = TrafficPolicy::Local;
    on_node(&mut svc, 1);
    let want = r#":<EXT> - [0:0]
:<SVC> - [0:0]
:<SVL> - [0:0]
:<SEP0> - [0:0]
:<SEP1> - [0:0]
-A KUBE-SERVICES -m comment --comment "kpbench/svc-0:http cluster IP" -m tcp -p tcp -d 10.96.0.1 --dport 80 -j <SVC>
-A KUBE-NODEPORTS -m comment --comment kpbench/svc-0:http -m tcp -p tcp --dport 30000 -j <EXT>
-A <SVC> -m comment --comment "kpbench/svc-0:http cluster IP" -m tcp -p tcp -d 10.96.0.1 --dport 80 ! -s 10.128.0.0/10 -j KUBE-MARK-MASQ
-A <EXT> -m comment --comment "pod traffic for kpbench/svc-0:http external destinations" -s 10.128.0.0/10 -j <SVC>
-A <EXT> -m comment --comment "masquerade LOCAL traffic for kpbench/svc-0:http external destinations" -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ
-A <EXT> -m comment --comment "route LOCAL traffic for kpbench/svc-0:http external destinations" -m addrtype --src-type LOCAL -j <SVC>
-A <EXT> -j <SVL>
-A <SVC> -m comment --comment "kpbench/svc-0:http -> 10.128.0.1:8080" -m statistic --mode random --probability 0.5000000000 -j <SEP0>
-A <SVC> -m comment --comment "kpbench/svc-0:http -> 10.128.0.2:8080" -j <SEP1>
-A <SVL> -m comment --comment "kpbench/svc-0:http -> 10.128.0.2:8080" -j <SEP1>
-A <SEP0> -m comment --comment kpbench/svc-0:http -s 10.128.0.1 -j KUBE-MARK-MASQ
-A <SEP0> -m comment --comment kpbench/svc-0:http -m tcp -p tcp -j DNAT --to-destination 10.128.0.1:8080
-A <SEP1> -m comment --comment kpbench/svc-0:http -s 10.128.0.2 -j KUBE-MARK-MASQ
-A <SEP1> -m comment --comment kpbench/svc-0:http -m tcp -p tcp -j DNAT --to-destination 10.128.0.2:8080
"#;
    assert_eq!(lines_of(&svc), named(want, &svc));
}

/// `TestInternalTrafficPolicy`: with `internalTrafficPolicy: Local` the cluster IP
/// goes to KUBE-SVL (its masquerade rule there too) when an endpoint is local, and is
/// dropped when none is.
#[test]
fn internal_local_uses_the_svl_chain_or_drops_the_cluster_ip() {
    let mut svc = service(0, 2);
    svc.spec.internal_policy = TrafficPolicy::Local;
    on_node(&mut svc, 0);
    let want = r#":<SVL> - [0:0]
:<SEP0> - [0:0]
-A KUBE-SERVICES -m comment --comment "kpbench/svc-0:http cluster IP" -m tcp -p tcp -d 10.96.0.1 --dport 80 -j <SVL>
-A <SVL> -m comment --comment "kpbench/svc-0:http cluster IP" -m tcp -p tcp -d 10.96.0.1 --dport 80 ! -s 10.128.0.0/10 -j KUBE-MARK-MASQ
-A <SVL> -m comment --comment "kpbench/svc-0:http -> 10.128.0.1:8080" -j <SEP0>
-A <SEP0> -m comment --comment kpbench/svc-0:http -s 10.128.0.1 -j KUBE-MARK-MASQ
-A <SEP0> -m comment --comment kpbench/svc-0:http -m tcp -p tcp -j DNAT --to-destination 10.128.0.1:8080
"#;
    assert_eq!(lines_of(&svc), named(want, &svc));
    svc.spec.conditions.clear();
    assert_eq!(
        lines_of(&svc),
        "-A KUBE-SERVICES -m comment --comment \"kpbench/svc-0:http has no local endpoints\" -m tcp -p tcp -d 10.96.0.1 --dport 80 -j DROP\n"
    );
    assert!(chains_of(&svc).is_empty());
}

/// `TestEndpointSliceWithTerminatingEndpointsTrafficPolicyCluster`: not-ready
/// endpoints are left out; with no ready one, the serving and terminating ones are
/// used; with none of those either the service is rejected as without endpoints.
#[test]
fn endpoint_conditions_follow_the_topology_filter() {
    let mut svc = service(0, 3);
    let not_ready = Conditions {
        ready: false,
        serving: false,
        terminating: false,
        local: false,
    };
    let serving_terminating = Conditions {
        ready: false,
        serving: true,
        terminating: true,
        local: false,
    };
    svc.spec.conditions.insert(svc.endpoints[0].ip, not_ready);
    let (ep1, ep2) = (svc.endpoints[1].ip, svc.endpoints[2].ip);
    svc.spec.conditions.insert(ep2, serving_terminating);
    let p = &ports::views(&svc)[0];
    assert_eq!(
        chains_of(&svc),
        vec![p.svc_chain.clone(), p.endpoints[1].1.clone()]
    );
    svc.spec.conditions.insert(ep1, not_ready);
    let want = r#":<SVC> - [0:0]
:<SEP2> - [0:0]
-A KUBE-SERVICES -m comment --comment "kpbench/svc-0:http cluster IP" -m tcp -p tcp -d 10.96.0.1 --dport 80 -j <SVC>
-A <SVC> -m comment --comment "kpbench/svc-0:http cluster IP" -m tcp -p tcp -d 10.96.0.1 --dport 80 ! -s 10.128.0.0/10 -j KUBE-MARK-MASQ
-A <SVC> -m comment --comment "kpbench/svc-0:http -> 10.128.0.3:8080" -j <SEP2>
-A <SEP2> -m comment --comment kpbench/svc-0:http -s 10.128.0.3 -j KUBE-MARK-MASQ
-A <SEP2> -m comment --comment kpbench/svc-0:http -m tcp -p tcp -j DNAT --to-destination 10.128.0.3:8080
"#;
    assert_eq!(lines_of(&svc), named(want, &svc));
    svc.spec.conditions.insert(ep2, not_ready);
    assert_eq!(
        lines_of(&svc),
        "-A KUBE-SERVICES -m comment --comment \"kpbench/svc-0:http has no endpoints\" -m tcp -p tcp -d 10.96.0.1 --dport 80 -j REJECT\n"
    );
}

/// A UDP port (`TestOverallIPTablesRules` has none; `TestClusterIPGeneral`'s svc2
/// `p53`/UDP): `-m udp -p udp` in its rules and its chains hashed with `udp`.
#[test]
fn a_udp_port_renders_with_udp_matches() {
    let mut svc = service(0, 1);
    svc.spec.protocol = crate::floor::spec::Protocol::Udp;
    let text = lines_of(&svc);
    assert!(
        text.contains("cluster IP\" -m udp -p udp -d 10.96.0.1 --dport 80 -j KUBE-SVC-"),
        "{text}"
    );
    assert!(
        text.contains("-m udp -p udp -j DNAT --to-destination 10.128.0.1:8080"),
        "{text}"
    );
    assert_eq!(
        ports::views(&svc)[0].svc_chain,
        crate::floor::names::kube_svc_chain("kpbench/svc-0:http", "udp")
    );
}

#[test]
fn the_rule_count_covers_every_new_rule() {
    let set = ServiceSet {
        services: vec![local_lb_without_local_endpoints(), firewalled_lb()],
    };
    let payload = render_full(&set);
    let appends = payload
        .text
        .lines()
        .filter(|l| l.starts_with("-A "))
        .count();
    assert_eq!(payload.rules, appends);
}
