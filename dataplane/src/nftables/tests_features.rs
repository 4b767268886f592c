//! The service features beyond N x E ClusterIPs (several ports, UDP, NodePort,
//! LoadBalancer and external IPs, ClientIP affinity, Local traffic policies, endpoint
//! conditions), in both releases' rules. The expected texts follow
//! pkg/proxy/nftables/proxier_test.go `TestOverallNFTablesRules` (svc3: a NodePort
//! service's `external-` chain and `service-nodeports` element; svc4: external IPs;
//! svc5: ClientIP affinity's sets, `ip saddr @affinity-..` rules and
//! `update @affinity-.. { ip saddr }`; svc2: `externalTrafficPolicy: Local`'s external
//! chain and its `drop` no-endpoint elements) in knftables' call order, with kpbench's
//! names and addresses.

use std::net::Ipv4Addr;
use std::time::Duration;

use super::*;
use crate::floor::backend::Backend;
use crate::floor::model::{nodeport_two_ports, service, spare_endpoint_ip};
use crate::floor::spec::{Conditions, Protocol, ServiceType, TrafficPolicy};
use crate::floor::sync::record::Recorder;
use crate::floor::sync::Controller;

const V35: KubeProxyVersion = KubeProxyVersion::V1_35;
const V36: KubeProxyVersion = KubeProxyVersion::V1_36;

/// The text one service adds to a first full sync (after setup) with `release`'s rules.
fn one(svc: &Service, release: KubeProxyVersion) -> String {
    let set = ServiceSet {
        services: vec![svc.clone()],
    };
    let empty = render_kube_proxy(
        &KubeProxySync {
            release,
            setup: Some(Setup::first()),
            old: None,
            new: &ServiceSet::default(),
            listing: &Listing::default(),
        },
        &mut ElementStorage::default(),
    );
    let full = render_kube_proxy(
        &KubeProxySync {
            release,
            setup: Some(Setup::first()),
            old: None,
            new: &set,
            listing: &Listing::default(),
        },
        &mut ElementStorage::default(),
    );
    full.payload.text[empty.payload.text.len()..].to_string()
}

/// A NodePort service with a TCP and a UDP port and one endpoint.
fn nodeport_tcp_udp() -> Service {
    nodeport_two_ports(1, Protocol::Udp)
}

#[test]
fn a_nodeport_service_with_a_udp_port_follows_kube_proxy_1_35() {
    let want = "\
add chain ip kube-proxy endpoint-7N734DEW-kpbench/svc-0/tcp/http__10.128.0.1/8080
flush chain ip kube-proxy endpoint-7N734DEW-kpbench/svc-0/tcp/http__10.128.0.1/8080
add chain ip kube-proxy service-T5MQ5XO4-kpbench/svc-0/tcp/http
flush chain ip kube-proxy service-T5MQ5XO4-kpbench/svc-0/tcp/http
add chain ip kube-proxy external-T5MQ5XO4-kpbench/svc-0/tcp/http
flush chain ip kube-proxy external-T5MQ5XO4-kpbench/svc-0/tcp/http
add element ip kube-proxy cluster-ips { 10.96.0.1 }
add element ip kube-proxy service-ips { 10.96.0.1 . tcp . 80 : goto service-T5MQ5XO4-kpbench/svc-0/tcp/http }
add element ip kube-proxy service-nodeports { tcp . 30000 : goto external-T5MQ5XO4-kpbench/svc-0/tcp/http }
add rule ip kube-proxy service-T5MQ5XO4-kpbench/svc-0/tcp/http ip daddr 10.96.0.1 tcp dport 80 ip saddr != 10.128.0.0/10 jump mark-for-masquerade
add rule ip kube-proxy external-T5MQ5XO4-kpbench/svc-0/tcp/http jump mark-for-masquerade
add rule ip kube-proxy external-T5MQ5XO4-kpbench/svc-0/tcp/http goto service-T5MQ5XO4-kpbench/svc-0/tcp/http
add rule ip kube-proxy service-T5MQ5XO4-kpbench/svc-0/tcp/http numgen random mod 1 vmap { 0 : goto endpoint-7N734DEW-kpbench/svc-0/tcp/http__10.128.0.1/8080 }
add rule ip kube-proxy endpoint-7N734DEW-kpbench/svc-0/tcp/http__10.128.0.1/8080 ip saddr 10.128.0.1 jump mark-for-masquerade
add rule ip kube-proxy endpoint-7N734DEW-kpbench/svc-0/tcp/http__10.128.0.1/8080 meta l4proto tcp dnat to 10.128.0.1:8080
add chain ip kube-proxy endpoint-5XN5WMHS-kpbench/svc-0/udp/p1__10.128.0.1/8081
flush chain ip kube-proxy endpoint-5XN5WMHS-kpbench/svc-0/udp/p1__10.128.0.1/8081
add chain ip kube-proxy service-EGSA223T-kpbench/svc-0/udp/p1
flush chain ip kube-proxy service-EGSA223T-kpbench/svc-0/udp/p1
add chain ip kube-proxy external-EGSA223T-kpbench/svc-0/udp/p1
flush chain ip kube-proxy external-EGSA223T-kpbench/svc-0/udp/p1
add element ip kube-proxy service-ips { 10.96.0.1 . udp . 81 : goto service-EGSA223T-kpbench/svc-0/udp/p1 }
add element ip kube-proxy service-nodeports { udp . 30001 : goto external-EGSA223T-kpbench/svc-0/udp/p1 }
add rule ip kube-proxy service-EGSA223T-kpbench/svc-0/udp/p1 ip daddr 10.96.0.1 udp dport 81 ip saddr != 10.128.0.0/10 jump mark-for-masquerade
add rule ip kube-proxy external-EGSA223T-kpbench/svc-0/udp/p1 jump mark-for-masquerade
add rule ip kube-proxy external-EGSA223T-kpbench/svc-0/udp/p1 goto service-EGSA223T-kpbench/svc-0/udp/p1
add rule ip kube-proxy service-EGSA223T-kpbench/svc-0/udp/p1 numgen random mod 1 vmap { 0 : goto endpoint-5XN5WMHS-kpbench/svc-0/udp/p1__10.128.0.1/8081 }
add rule ip kube-proxy endpoint-5XN5WMHS-kpbench/svc-0/udp/p1__10.128.0.1/8081 ip saddr 10.128.0.1 jump mark-for-masquerade
add rule ip kube-proxy endpoint-5XN5WMHS-kpbench/svc-0/udp/p1__10.128.0.1/8081 meta l4proto udp dnat to 10.128.0.1:8081
";
    assert_eq!(one(&nodeport_tcp_udp(), V35), want);
}

#[test]
fn a_nodeport_service_in_1_36_marks_in_its_external_chain_and_dnats_by_map() {
    let want = "\
add chain ip kube-proxy service-T5MQ5XO4-kpbench/svc-0/tcp/http
flush chain ip kube-proxy service-T5MQ5XO4-kpbench/svc-0/tcp/http
add chain ip kube-proxy external-T5MQ5XO4-kpbench/svc-0/tcp/http
flush chain ip kube-proxy external-T5MQ5XO4-kpbench/svc-0/tcp/http
add element ip kube-proxy cluster-ips { 10.96.0.1 }
add element ip kube-proxy service-ips { 10.96.0.1 . tcp . 80 : goto service-T5MQ5XO4-kpbench/svc-0/tcp/http }
add element ip kube-proxy service-nodeports { tcp . 30000 : goto external-T5MQ5XO4-kpbench/svc-0/tcp/http }
add element ip kube-proxy hairpin-connections { 10.128.0.1 . 10.128.0.1 . tcp . 8080 }
add rule ip kube-proxy external-T5MQ5XO4-kpbench/svc-0/tcp/http mark set mark or 0x00004000
add rule ip kube-proxy external-T5MQ5XO4-kpbench/svc-0/tcp/http goto service-T5MQ5XO4-kpbench/svc-0/tcp/http
add rule ip kube-proxy service-T5MQ5XO4-kpbench/svc-0/tcp/http meta l4proto tcp dnat ip addr . port to numgen random mod 1 map { 0 : 10.128.0.1 . 8080 }
add chain ip kube-proxy service-EGSA223T-kpbench/svc-0/udp/p1
flush chain ip kube-proxy service-EGSA223T-kpbench/svc-0/udp/p1
add chain ip kube-proxy external-EGSA223T-kpbench/svc-0/udp/p1
flush chain ip kube-proxy external-EGSA223T-kpbench/svc-0/udp/p1
add element ip kube-proxy service-ips { 10.96.0.1 . udp . 81 : goto service-EGSA223T-kpbench/svc-0/udp/p1 }
add element ip kube-proxy service-nodeports { udp . 30001 : goto external-EGSA223T-kpbench/svc-0/udp/p1 }
add element ip kube-proxy hairpin-connections { 10.128.0.1 . 10.128.0.1 . udp . 8081 }
add rule ip kube-proxy external-EGSA223T-kpbench/svc-0/udp/p1 mark set mark or 0x00004000
add rule ip kube-proxy external-EGSA223T-kpbench/svc-0/udp/p1 goto service-EGSA223T-kpbench/svc-0/udp/p1
add rule ip kube-proxy service-EGSA223T-kpbench/svc-0/udp/p1 meta l4proto udp dnat ip addr . port to numgen random mod 1 map { 0 : 10.128.0.1 . 8081 }
";
    assert_eq!(one(&nodeport_tcp_udp(), V36), want);
}

fn affinity_service() -> Service {
    let mut s = service(1, 1);
    s.spec.affinity_timeout_s = Some(10800);
    s
}

#[test]
fn client_ip_affinity_follows_kube_proxy_in_both_releases() {
    let v35 = "\
add chain ip kube-proxy endpoint-OSMS3IRS-kpbench/svc-1/tcp/http__10.128.0.2/8080
flush chain ip kube-proxy endpoint-OSMS3IRS-kpbench/svc-1/tcp/http__10.128.0.2/8080
add chain ip kube-proxy service-VZFYL7OK-kpbench/svc-1/tcp/http
flush chain ip kube-proxy service-VZFYL7OK-kpbench/svc-1/tcp/http
add element ip kube-proxy cluster-ips { 10.96.0.2 }
add element ip kube-proxy service-ips { 10.96.0.2 . tcp . 80 : goto service-VZFYL7OK-kpbench/svc-1/tcp/http }
add rule ip kube-proxy service-VZFYL7OK-kpbench/svc-1/tcp/http ip daddr 10.96.0.2 tcp dport 80 ip saddr != 10.128.0.0/10 jump mark-for-masquerade
add set ip kube-proxy affinity-OSMS3IRS-kpbench/svc-1/tcp/http__10.128.0.2/8080 { type ipv4_addr ; flags dynamic,timeout ; timeout 10800s ; }
add rule ip kube-proxy service-VZFYL7OK-kpbench/svc-1/tcp/http ip saddr @affinity-OSMS3IRS-kpbench/svc-1/tcp/http__10.128.0.2/8080 goto endpoint-OSMS3IRS-kpbench/svc-1/tcp/http__10.128.0.2/8080
add rule ip kube-proxy service-VZFYL7OK-kpbench/svc-1/tcp/http numgen random mod 1 vmap { 0 : goto endpoint-OSMS3IRS-kpbench/svc-1/tcp/http__10.128.0.2/8080 }
add rule ip kube-proxy endpoint-OSMS3IRS-kpbench/svc-1/tcp/http__10.128.0.2/8080 ip saddr 10.128.0.2 jump mark-for-masquerade
add rule ip kube-proxy endpoint-OSMS3IRS-kpbench/svc-1/tcp/http__10.128.0.2/8080 update @affinity-OSMS3IRS-kpbench/svc-1/tcp/http__10.128.0.2/8080 { ip saddr }
add rule ip kube-proxy endpoint-OSMS3IRS-kpbench/svc-1/tcp/http__10.128.0.2/8080 meta l4proto tcp dnat to 10.128.0.2:8080
";
    let got = one(&affinity_service(), V35);
    assert_eq!(got, v35);
    // 1.36 keeps the endpoint chain for affinity, without the hairpin jump (the
    // `hairpin-connections` tuple does it).
    let v36 = v35
        .replace(
            "add rule ip kube-proxy service-VZFYL7OK-kpbench/svc-1/tcp/http ip daddr 10.96.0.2 tcp dport 80 ip saddr != 10.128.0.0/10 jump mark-for-masquerade\n",
            "add element ip kube-proxy hairpin-connections { 10.128.0.2 . 10.128.0.2 . tcp . 8080 }\n",
        )
        .replace(
            "add rule ip kube-proxy endpoint-OSMS3IRS-kpbench/svc-1/tcp/http__10.128.0.2/8080 ip saddr 10.128.0.2 jump mark-for-masquerade\n",
            "",
        );
    assert_eq!(one(&affinity_service(), V36), v36);
}

/// A LoadBalancer service with `externalTrafficPolicy: Local`, an external IP and an
/// ingress IP, whose one endpoint is on another node (TestOverallNFTablesRules svc2).
fn local_without_local_endpoint() -> Service {
    let mut s = service(2, 1);
    s.spec.kind = ServiceType::LoadBalancer;
    s.spec.node_port = Some(30002);
    s.spec.external_policy = TrafficPolicy::Local;
    s.spec.external_ips = vec![Ipv4Addr::new(198, 18, 0, 1)];
    s.spec.ingress_ips = vec![Ipv4Addr::new(198, 19, 0, 1)];
    s
}

#[test]
fn external_policy_local_without_a_local_endpoint_drops_external_traffic() {
    let got = one(&local_without_local_endpoint(), V35);
    let ext = "external-QVBHH7ZM-kpbench/svc-2/tcp/http";
    let svc = "service-QVBHH7ZM-kpbench/svc-2/tcp/http";
    let want_tail = format!(
        "\
add element ip kube-proxy cluster-ips {{ 10.96.0.3 }}
add element ip kube-proxy service-ips {{ 10.96.0.3 . tcp . 80 : goto {svc} }}
add element ip kube-proxy service-ips {{ 198.18.0.1 . tcp . 80 : goto {ext} }}
add element ip kube-proxy no-endpoint-services {{ 198.18.0.1 . tcp . 80 comment \"kpbench/svc-2:http\" : drop }}
add element ip kube-proxy service-ips {{ 198.19.0.1 . tcp . 80 : goto {ext} }}
add element ip kube-proxy no-endpoint-services {{ 198.19.0.1 . tcp . 80 comment \"kpbench/svc-2:http\" : drop }}
add element ip kube-proxy service-nodeports {{ tcp . 30002 : goto {ext} }}
add element ip kube-proxy no-endpoint-nodeports {{ tcp . 30002 comment \"kpbench/svc-2:http\" : drop }}
add rule ip kube-proxy {svc} ip daddr 10.96.0.3 tcp dport 80 ip saddr != 10.128.0.0/10 jump mark-for-masquerade
add rule ip kube-proxy {ext} ip saddr 10.128.0.0/10 goto {svc} comment \"short-circuit pod traffic\"
add rule ip kube-proxy {ext} fib saddr type local jump mark-for-masquerade comment \"masquerade local traffic\"
add rule ip kube-proxy {ext} fib saddr type local goto {svc} comment \"short-circuit local traffic\"
"
    );
    assert!(got.contains(&want_tail), "{got}");
    // No local chain: the endpoint is elsewhere, so nothing goes to `local-`.
    assert!(!got.contains("local-QVBHH7ZM"));
}

#[test]
fn a_local_endpoint_gets_the_local_chain_and_the_external_chain_goes_there() {
    let mut s = local_without_local_endpoint();
    s.endpoints.push(crate::floor::model::Endpoint {
        ip: spare_endpoint_ip(0),
        port: 8080,
    });
    s.spec.conditions.insert(
        spare_endpoint_ip(0),
        Conditions {
            local: true,
            ..Conditions::default()
        },
    );
    for release in [V35, V36] {
        let got = one(&s, release);
        let local = "local-QVBHH7ZM-kpbench/svc-2/tcp/http";
        assert!(got.contains(&format!(
            "add rule ip kube-proxy external-QVBHH7ZM-kpbench/svc-2/tcp/http goto {local}\n"
        )));
        assert!(!got.contains("drop }"), "{release}: {got}");
        let dispatch = got
            .lines()
            .find(|l| l.starts_with(&format!("add rule ip kube-proxy {local} ")))
            .unwrap();
        assert!(dispatch.contains("mod 1 "), "{dispatch}");
    }
}

#[test]
fn terminating_endpoints_serve_only_when_none_is_ready() {
    let mut s = service(3, 2);
    let (a, b) = (s.endpoints[0].ip, s.endpoints[1].ip);
    let serving_terminating = Conditions {
        ready: false,
        serving: true,
        terminating: true,
        local: false,
    };
    s.spec.conditions.insert(a, serving_terminating);
    // One ready endpoint: the terminating one is left out.
    let got = one(&s, V36);
    assert!(
        got.contains(&format!("mod 1 map {{ 0 : {b} . 8080 }}")),
        "{got}"
    );
    // None ready: the serving terminating one takes the traffic.
    s.spec.conditions.insert(
        b,
        Conditions {
            ready: false,
            serving: false,
            terminating: true,
            local: false,
        },
    );
    let got = one(&s, V36);
    assert!(
        got.contains(&format!("mod 1 map {{ 0 : {a} . 8080 }}")),
        "{got}"
    );
    // Nothing serving: rejected like a service without endpoints.
    s.spec.conditions.insert(
        a,
        Conditions {
            serving: false,
            ..serving_terminating
        },
    );
    let got = one(&s, V35);
    assert!(got.contains("comment \"kpbench/svc-3:http\" : goto reject-chain }"));
    assert!(!got.contains("add chain"));
}

#[test]
fn internal_policy_local_without_a_local_endpoint_drops_cluster_ip_traffic() {
    let mut s = service(4, 2);
    s.spec.internal_policy = TrafficPolicy::Local;
    let got = one(&s, V35);
    assert!(got.contains(
        "add element ip kube-proxy no-endpoint-services { 10.96.0.5 . tcp . 80 comment \"kpbench/svc-4:http\" : drop }"
    ));
    assert!(!got.contains("add chain"), "{got}");
}

/// A set using every rendered feature, for the sequences below.
pub(super) fn featured() -> ServiceSet {
    let mut set = ServiceSet::generate(3, 2);
    set.upsert(nodeport_tcp_udp());
    set.upsert(affinity_service());
    let mut lb = local_without_local_endpoint();
    lb.spec.conditions.insert(
        lb.endpoints[0].ip,
        Conditions {
            local: true,
            ..Conditions::default()
        },
    );
    set.upsert(lb);
    set.upsert(service(5, 0));
    set
}

fn recorder(nft: &NftStandIn) -> Recorder {
    Recorder::new(vec![Box::new(nft.clone())])
}

/// Full sync of [`featured`], then: an affinity endpoint replaced (its set goes
/// stale), the NodePort service removed, the LoadBalancer's local endpoint moved away
/// (its local chain goes stale), then settles; the stand-in must hold what a fresh floor
/// full sync of the end state leaves, and as many rules and elements as `verify` expects.
fn feature_sequence(mut ctl: Box<dyn Controller>, release: KubeProxyVersion) -> String {
    let nft = NftStandIn::new();
    let mut r = recorder(&nft);
    let secs = Duration::from_secs_f64;
    let mut state = featured();
    ctl.sync(&mut r, None, &state, secs(0.0)).unwrap();
    let mut next = state.clone();
    let mut aff = next.get(1).unwrap().clone();
    aff.endpoints[0].ip = spare_endpoint_ip(7);
    next.upsert(aff);
    let mut steps = vec![next.clone()];
    next.remove(0);
    steps.push(next.clone());
    let mut lb = next.get(2).unwrap().clone();
    lb.spec.conditions.clear();
    next.upsert(lb);
    steps.push(next.clone());
    for (i, s) in steps.iter().enumerate() {
        ctl.sync(&mut r, Some(&state), s, secs(1.0 + i as f64 * 1.5))
            .unwrap();
        state = s.clone();
    }
    ctl.settle(&mut r, &state, secs(9.0)).unwrap();
    let fresh = NftStandIn::new();
    let mut rf = recorder(&fresh);
    FloorController::new(NodePortAddresses::default(), release)
        .sync(&mut rf, None, &state, Duration::ZERO)
        .unwrap();
    assert_eq!(nft.dump(), fresh.dump(), "{release}");
    let rules = nft
        .dump()
        .lines()
        .filter(|l| l.starts_with("  rule "))
        .count();
    assert_eq!(rules, expected_rules(&state, release), "{release}");
    nft.dump()
}

#[test]
fn both_profiles_leave_the_objects_of_a_fresh_full_sync_with_every_feature() {
    for v in KubeProxyVersion::ALL {
        let backend = NftablesBackend::new().for_release(v);
        let floor = feature_sequence(backend.controller(crate::floor::sync::Profile::Floor), v);
        let kp = feature_sequence(
            backend.controller(crate::floor::sync::Profile::KubeProxy(v)),
            v,
        );
        assert_eq!(kp, floor, "kube-proxy {v}");
        assert!(floor.contains("set affinity-"), "{v}");
        assert!(!floor.contains("affinity-OSMS3IRS"), "{v}: stale set kept");
        assert!(floor.contains("map service-nodeports"));
    }
}

#[test]
fn source_ranges_get_a_firewall_chain_ensured_among_the_elements() {
    // TestOverallNFTablesRules svc5: `add chain .. firewall-HVFWP5L3-ns5/svc5/tcp/p80`,
    // `ip saddr != { 203.0.113.0/25 } drop`, `firewall-ips { 5.6.7.8 . tcp . 80 : goto
    // firewall-.. }`; in call order the chain comes after the external IPs' elements
    // and before the load-balancer IPs'.
    let mut s = local_without_local_endpoint();
    s.spec.external_policy = TrafficPolicy::Cluster;
    s.spec.source_ranges = vec![
        (Ipv4Addr::new(100, 64, 0, 0), 24),
        (Ipv4Addr::new(100, 64, 1, 0), 24),
    ];
    for release in [V35, V36] {
        let got = one(&s, release);
        let fw = "firewall-QVBHH7ZM-kpbench/svc-2/tcp/http";
        let ext = "external-QVBHH7ZM-kpbench/svc-2/tcp/http";
        let want = format!(
            "\
add element ip kube-proxy service-ips {{ 198.18.0.1 . tcp . 80 : goto {ext} }}
add chain ip kube-proxy {fw}
flush chain ip kube-proxy {fw}
add element ip kube-proxy service-ips {{ 198.19.0.1 . tcp . 80 : goto {ext} }}
add element ip kube-proxy firewall-ips {{ 198.19.0.1 . tcp . 80 : goto {fw} }}
add element ip kube-proxy service-nodeports {{ tcp . 30002 : goto {ext} }}
"
        );
        assert!(got.contains(&want), "{release}: {got}");
        assert!(got.contains(&format!(
            "add rule ip kube-proxy {fw} ip saddr != {{ 100.64.0.0/24 , 100.64.1.0/24 }} drop\n"
        )));
    }
}
