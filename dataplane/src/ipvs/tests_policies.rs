//! Exact text of LoadBalancer services, the Local traffic policies and endpoint
//! conditions in the IPVS mode, each following kube-proxy's
//! pkg/proxy/ipvs/proxier_test.go with kpbench's addresses (node IP 10.255.0.1,
//! ingress IP 198.19.0.1): `TestLoadBalancer` (a virtual server on the ingress IP, the
//! address bound, KUBE-LOAD-BALANCER and its jump and ACCEPT rules),
//! `TestOnlyLocalNodePorts` (the node port's virtual server with the local endpoint
//! only, the ClusterIP's with every one; KUBE-NODE-PORT-LOCAL-TCP and its RETURN rule
//! before the masquerade one; the local endpoint in KUBE-LOOP-BACK and its masquerade),
//! `TestOnlyLocalLoadBalancing` (KUBE-LOAD-BALANCER-LOCAL and its RETURN),
//! `TestLoadBalancerSourceRanges` (the firewall sets and rules), and syncEndpoint's
//! fallbacks (kubernetes#97081: no local endpoint, the cluster ones;
//! `CategorizeEndpoints`: ready ones, else serving terminating ones).

use std::net::Ipv4Addr;

use super::ports::{wanted, NODE_IP};
use super::render::*;
use crate::floor::model::{service, Service, ServiceSet};
use crate::floor::spec::{Conditions, ServiceType, TrafficPolicy};

fn lines(svc: &Service) -> Vec<String> {
    let set = ServiceSet {
        services: vec![svc.clone()],
    };
    Changes::compute(None, &set, "rr", &[NODE_IP])
        .ops()
        .iter()
        .map(ipvsadm_line)
        .collect()
}

fn entries(svc: &Service) -> Vec<String> {
    wanted(svc, "rr", &[NODE_IP])
        .entries
        .iter()
        .map(|(s, e)| format!("{s} {e}"))
        .collect()
}

fn local(svc: &mut Service, j: usize) {
    let c = Conditions {
        local: true,
        ..Conditions::default()
    };
    svc.spec.conditions.insert(svc.endpoints[j].ip, c);
}

/// The payload's rules with `filled` beyond a ClusterIP's sets, without the lines
/// every payload has.
fn extra_rules(filled: &[&'static str]) -> Vec<String> {
    let base = Filled::from(["KUBE-CLUSTER-IP", "KUBE-IPVS-IPS"]);
    let plain = kube_proxy_payload(&base, &Default::default());
    let mut all = base.clone();
    all.extend(filled);
    kube_proxy_payload(&all, &Default::default())
        .lines()
        .filter(|l| !plain.lines().any(|p| p == *l))
        .map(str::to_string)
        .collect()
}

#[test]
fn a_load_balancer_has_a_bound_virtual_server_on_its_ingress_ip() {
    let mut svc = service(0, 1);
    svc.spec.kind = ServiceType::LoadBalancer;
    svc.spec.node_port = Some(30000);
    svc.spec.ingress_ips = vec![Ipv4Addr::new(198, 19, 0, 1)];
    assert_eq!(
        lines(&svc),
        [
            "-A -t 10.96.0.1:80 -s rr",
            "-a -t 10.96.0.1:80 -r 10.128.0.1:8080 -m -w 1",
            "-A -t 198.19.0.1:80 -s rr",
            "-a -t 198.19.0.1:80 -r 10.128.0.1:8080 -m -w 1",
            "-A -t 10.255.0.1:30000 -s rr",
            "-a -t 10.255.0.1:30000 -r 10.128.0.1:8080 -m -w 1",
        ]
    );
    assert_eq!(
        entries(&svc),
        [
            "KUBE-CLUSTER-IP 10.96.0.1,tcp:80",
            "KUBE-LOAD-BALANCER 198.19.0.1,tcp:80",
            "KUBE-NODE-PORT-TCP 30000",
        ]
    );
    assert_eq!(
        wanted(&svc, "rr", &[NODE_IP]).binds(),
        [Ipv4Addr::new(10, 96, 0, 1), Ipv4Addr::new(198, 19, 0, 1)]
    );
    assert_eq!(
        extra_rules(&["KUBE-LOAD-BALANCER"]),
        [
            "-A KUBE-SERVICES -m comment --comment \"Kubernetes service lb portal\" -m set --match-set KUBE-LOAD-BALANCER dst,dst -j KUBE-LOAD-BALANCER",
            "-A KUBE-SERVICES -m set --match-set KUBE-LOAD-BALANCER dst,dst -j ACCEPT",
        ]
    );
}

#[test]
fn external_local_node_ports_take_only_the_local_endpoints() {
    let mut svc = service(0, 2);
    svc.spec.kind = ServiceType::NodePort;
    svc.spec.node_port = Some(30000);
    svc.spec.external_policy = TrafficPolicy::Local;
    local(&mut svc, 0);
    assert_eq!(
        lines(&svc),
        [
            "-A -t 10.96.0.1:80 -s rr",
            "-a -t 10.96.0.1:80 -r 10.128.0.1:8080 -m -w 1",
            "-a -t 10.96.0.1:80 -r 10.128.0.2:8080 -m -w 1",
            "-A -t 10.255.0.1:30000 -s rr",
            "-a -t 10.255.0.1:30000 -r 10.128.0.1:8080 -m -w 1",
        ]
    );
    assert_eq!(
        entries(&svc),
        [
            "KUBE-LOOP-BACK 10.128.0.1,tcp:8080,10.128.0.1",
            "KUBE-CLUSTER-IP 10.96.0.1,tcp:80",
            "KUBE-NODE-PORT-TCP 30000",
            "KUBE-NODE-PORT-LOCAL-TCP 30000",
        ]
    );
    assert_eq!(
        extra_rules(&["KUBE-LOOP-BACK", "KUBE-NODE-PORT-TCP", "KUBE-NODE-PORT-LOCAL-TCP"]),
        [
            "-A KUBE-POSTROUTING -m comment --comment \"Kubernetes endpoints dst ip:port, source ip for solving hairpin purpose\" -m set --match-set KUBE-LOOP-BACK dst,dst,src -j MASQUERADE",
            "-A KUBE-NODE-PORT -p tcp -m comment --comment \"Kubernetes nodeport TCP port with externalTrafficPolicy=local\" -m set --match-set KUBE-NODE-PORT-LOCAL-TCP dst -j RETURN",
            "-A KUBE-NODE-PORT -p tcp -m comment --comment \"Kubernetes nodeport TCP port for masquerade purpose\" -m set --match-set KUBE-NODE-PORT-TCP dst -j KUBE-MARK-MASQ",
        ]
    );
    // No local endpoint: syncEndpoint falls back to the cluster ones (#97081).
    svc.spec.conditions.clear();
    assert_eq!(lines(&svc).len(), 2 * 3);
}

#[test]
fn external_local_load_balancers_return_from_kube_load_balancer() {
    let mut svc = service(0, 2);
    svc.spec.kind = ServiceType::LoadBalancer;
    svc.spec.node_port = Some(30000);
    svc.spec.external_policy = TrafficPolicy::Local;
    svc.spec.ingress_ips = vec![Ipv4Addr::new(198, 19, 0, 1)];
    local(&mut svc, 1);
    assert!(entries(&svc).contains(&"KUBE-LOAD-BALANCER-LOCAL 198.19.0.1,tcp:80".into()));
    assert!(lines(&svc).contains(&"-a -t 198.19.0.1:80 -r 10.128.0.2:8080 -m -w 1".into()));
    assert!(!lines(&svc).contains(&"-a -t 198.19.0.1:80 -r 10.128.0.1:8080 -m -w 1".into()));
    assert_eq!(
        extra_rules(&["KUBE-LOAD-BALANCER", "KUBE-LOAD-BALANCER-LOCAL"])[1],
        "-A KUBE-LOAD-BALANCER -m comment --comment \"Kubernetes service load balancer ip + port with externalTrafficPolicy=local\" -m set --match-set KUBE-LOAD-BALANCER-LOCAL dst,dst -j RETURN"
    );
}

#[test]
fn internal_local_without_a_local_endpoint_has_no_real_server() {
    let mut svc = service(0, 2);
    svc.spec.internal_policy = TrafficPolicy::Local;
    assert_eq!(lines(&svc), ["-A -t 10.96.0.1:80 -s rr"]);
    local(&mut svc, 1);
    assert_eq!(
        lines(&svc),
        [
            "-A -t 10.96.0.1:80 -s rr",
            "-a -t 10.96.0.1:80 -r 10.128.0.2:8080 -m -w 1"
        ]
    );
}

#[test]
fn not_ready_endpoints_are_left_out_and_serving_terminating_ones_are_the_fallback() {
    let mut svc = service(0, 3);
    let (not_ready, serving_terminating) = (Conditions::NOT_READY, Conditions::SERVING_TERMINATING);
    svc.spec.conditions.insert(svc.endpoints[0].ip, not_ready);
    svc.spec
        .conditions
        .insert(svc.endpoints[1].ip, serving_terminating);
    assert_eq!(
        lines(&svc),
        [
            "-A -t 10.96.0.1:80 -s rr",
            "-a -t 10.96.0.1:80 -r 10.128.0.3:8080 -m -w 1"
        ]
    );
    // The ready one stops being ready: the serving terminating one takes over, the
    // change is one real server swapped for another.
    let before = ServiceSet {
        services: vec![svc.clone()],
    };
    svc.spec.conditions.insert(svc.endpoints[2].ip, not_ready);
    let after = ServiceSet {
        services: vec![svc],
    };
    let c = Changes::compute(Some(&before), &after, "rr", &[NODE_IP]);
    assert_eq!(
        c.ops().iter().map(ipvsadm_line).collect::<Vec<_>>(),
        [
            "-d -t 10.96.0.1:80 -r 10.128.0.3:8080",
            "-a -t 10.96.0.1:80 -r 10.128.0.2:8080 -m -w 1",
        ]
    );
}

/// `TestLoadBalancerSourceRanges`: the ingress IP in KUBE-LOAD-BALANCER-FW, one
/// KUBE-LOAD-BALANCER-SOURCE-CIDR entry per range, the firewall rules for both sets;
/// no range holds the node IP, so the node's own access is dropped in
/// KUBE-IPVS-OUT-FILTER (kubernetes#119656).
#[test]
fn source_ranges_fill_the_firewall_sets_and_block_the_node() {
    let mut svc = service(0, 1);
    svc.spec.kind = ServiceType::LoadBalancer;
    svc.spec.node_port = Some(30000);
    svc.spec.ingress_ips = vec![Ipv4Addr::new(198, 19, 0, 1)];
    svc.spec.source_ranges = vec![
        (Ipv4Addr::new(100, 64, 0, 0), 24),
        (Ipv4Addr::new(100, 64, 1, 0), 24),
    ];
    assert_eq!(
        entries(&svc),
        [
            "KUBE-CLUSTER-IP 10.96.0.1,tcp:80",
            "KUBE-LOAD-BALANCER 198.19.0.1,tcp:80",
            "KUBE-LOAD-BALANCER-FW 198.19.0.1,tcp:80",
            "KUBE-LOAD-BALANCER-SOURCE-CIDR 198.19.0.1,tcp:80,100.64.0.0/24",
            "KUBE-LOAD-BALANCER-SOURCE-CIDR 198.19.0.1,tcp:80,100.64.1.0/24",
            "KUBE-NODE-PORT-TCP 30000",
        ]
    );
    let w = wanted(&svc, "rr", &[NODE_IP]);
    assert_eq!(
        w.no_node_access,
        ["-A KUBE-IPVS-OUT-FILTER -s 198.19.0.1 -m ipvs --vaddr 198.19.0.1 --vproto tcp --vport 80 -j DROP"]
    );
    let filled = Filled::from([
        "KUBE-CLUSTER-IP",
        "KUBE-LOAD-BALANCER-FW",
        "KUBE-LOAD-BALANCER-SOURCE-CIDR",
    ]);
    let drops = w.no_node_access.iter().cloned().collect();
    let text = kube_proxy_payload(&filled, &drops);
    assert!(text.contains("*filter\n:KUBE-FORWARD - [0:0]\n:KUBE-NODE-PORT - [0:0]\n:KUBE-PROXY-FIREWALL - [0:0]\n:KUBE-SOURCE-RANGES-FIREWALL - [0:0]\n:KUBE-IPVS-FILTER - [0:0]\n:KUBE-IPVS-OUT-FILTER - [0:0]\n\
-A KUBE-PROXY-FIREWALL -m comment --comment \"Kubernetes service load balancer ip + port for load balancer with sourceRange\" -m set --match-set KUBE-LOAD-BALANCER-FW dst,dst -j KUBE-SOURCE-RANGES-FIREWALL\n\
-A KUBE-SOURCE-RANGES-FIREWALL -m comment --comment \"Kubernetes service load balancer ip + port + source cidr for packet filter purpose\" -m set --match-set KUBE-LOAD-BALANCER-SOURCE-CIDR dst,dst,src -j RETURN\n\
-A KUBE-SOURCE-RANGES-FIREWALL -j DROP\n\
-A KUBE-IPVS-OUT-FILTER -s 198.19.0.1 -m ipvs --vaddr 198.19.0.1 --vproto tcp --vport 80 -j DROP\n\
-A KUBE-FORWARD "), "{text}");
    // A range holding the node IP lets the node in instead.
    svc.spec
        .source_ranges
        .push((Ipv4Addr::new(10, 255, 0, 0), 16));
    let w = wanted(&svc, "rr", &[NODE_IP]);
    assert!(w.no_node_access.is_empty());
    assert!(w.entries.contains(&(
        "KUBE-LOAD-BALANCER-SOURCE-IP",
        "198.19.0.1,tcp:80,198.19.0.1".into()
    )));
}

/// `TestExternalIPs`: a virtual server per external IP, its address bound to
/// kube-ipvs0 (the node does not have it), KUBE-EXTERNAL-IP and its three KUBE-SERVICES
/// rules (masquerade, ACCEPT from off the machine, ACCEPT to a local address); with
/// `externalTrafficPolicy: Local`, KUBE-EXTERNAL-IP-LOCAL and only the two ACCEPTs.
#[test]
fn external_ips_are_bound_virtual_servers_with_their_accept_rules() {
    let mut svc = service(0, 1);
    svc.spec.external_ips = vec![Ipv4Addr::new(198, 18, 0, 1)];
    assert_eq!(
        lines(&svc)[2..],
        [
            "-A -t 198.18.0.1:80 -s rr",
            "-a -t 198.18.0.1:80 -r 10.128.0.1:8080 -m -w 1"
        ]
    );
    assert_eq!(entries(&svc)[1], "KUBE-EXTERNAL-IP 198.18.0.1,tcp:80");
    assert_eq!(
        wanted(&svc, "rr", &[NODE_IP]).binds(),
        [Ipv4Addr::new(10, 96, 0, 1), Ipv4Addr::new(198, 18, 0, 1)]
    );
    let c = "-A KUBE-SERVICES -m comment --comment \"Kubernetes service external ip + port for masquerade and filter purpose\" -m set --match-set KUBE-EXTERNAL-IP dst,dst";
    assert_eq!(
        extra_rules(&["KUBE-EXTERNAL-IP"]),
        [
            format!("{c} -j KUBE-MARK-MASQ"),
            format!("{c} -m physdev ! --physdev-is-in -m addrtype ! --src-type LOCAL -j ACCEPT"),
            format!("{c} -m addrtype --dst-type LOCAL -j ACCEPT"),
        ]
    );
    svc.spec.external_policy = TrafficPolicy::Local;
    assert_eq!(entries(&svc)[1], "KUBE-EXTERNAL-IP-LOCAL 198.18.0.1,tcp:80");
    assert_eq!(extra_rules(&["KUBE-EXTERNAL-IP-LOCAL"]).len(), 2);
}
