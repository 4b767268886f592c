//! Exact text of the service features the iptables renderer writes
//! ([`super::ports::RENDERS`]), each following the expected rules of kube-proxy's
//! pkg/proxy/iptables/proxier_test.go: `TestOverallIPTablesRules` (svc3, a NodePort
//! service with Cluster policy: its KUBE-NODEPORTS rule and KUBE-EXT chain; svc5, ClientIP
//! affinity: `-m recent --rcheck` in KUBE-SVC before the jumps, `--set` before the DNAT)
//! and `TestNoEndpointsReject` (a node port without endpoints is rejected in
//! KUBE-EXTERNAL-SERVICES), with kpbench's names and addresses in place of the test's.

use super::*;
use crate::floor::model::nodeport_two_ports;

/// Service 0 with 2 endpoints as NodePort 30000, affinity 10800 s and a second TCP
/// port `p1` (81 -> 8081, node port 30001).
fn featured() -> Service {
    let mut svc = nodeport_two_ports(2, crate::floor::spec::Protocol::Tcp);
    svc.spec.affinity_timeout_s = Some(10800);
    svc
}

/// `text` with SVC<k>, EXT<k> and SEP<k><j> (port k, endpoint j) replaced by the
/// chain names kube-proxy computes for `svc`.
fn named(text: &str, svc: &Service) -> String {
    let mut t = text.to_string();
    for (k, p) in ports::views(svc).iter().enumerate() {
        t = t.replace(&format!("EXT{k}"), &p.ext_chain());
        t = t.replace(&format!("SVC{k}"), &p.svc_chain);
        for (j, (_, sep)) in p.endpoints.iter().enumerate() {
            t = t.replace(&format!("SEP{k}{j}"), sep);
        }
    }
    t
}

const FEATURED_NAT: &str = r#":KUBE-EXT0 - [0:0]
:KUBE-SVC0 - [0:0]
:KUBE-SEP00 - [0:0]
:KUBE-SEP01 - [0:0]
:KUBE-EXT1 - [0:0]
:KUBE-SVC1 - [0:0]
:KUBE-SEP10 - [0:0]
:KUBE-SEP11 - [0:0]
-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN
-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000
-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully
-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000
-A KUBE-SERVICES -m comment --comment "kpbench/svc-0:http cluster IP" -m tcp -p tcp -d 10.96.0.1 --dport 80 -j KUBE-SVC0
-A KUBE-NODEPORTS -m comment --comment kpbench/svc-0:http -m tcp -p tcp --dport 30000 -j KUBE-EXT0
-A KUBE-SVC0 -m comment --comment "kpbench/svc-0:http cluster IP" -m tcp -p tcp -d 10.96.0.1 --dport 80 ! -s 10.128.0.0/10 -j KUBE-MARK-MASQ
-A KUBE-EXT0 -m comment --comment "masquerade traffic for kpbench/svc-0:http external destinations" -j KUBE-MARK-MASQ
-A KUBE-EXT0 -j KUBE-SVC0
-A KUBE-SVC0 -m comment --comment "kpbench/svc-0:http -> 10.128.0.1:8080" -m recent --name KUBE-SEP00 --rcheck --seconds 10800 --reap -j KUBE-SEP00
-A KUBE-SVC0 -m comment --comment "kpbench/svc-0:http -> 10.128.0.2:8080" -m recent --name KUBE-SEP01 --rcheck --seconds 10800 --reap -j KUBE-SEP01
-A KUBE-SVC0 -m comment --comment "kpbench/svc-0:http -> 10.128.0.1:8080" -m statistic --mode random --probability 0.5000000000 -j KUBE-SEP00
-A KUBE-SVC0 -m comment --comment "kpbench/svc-0:http -> 10.128.0.2:8080" -j KUBE-SEP01
-A KUBE-SEP00 -m comment --comment kpbench/svc-0:http -s 10.128.0.1 -j KUBE-MARK-MASQ
-A KUBE-SEP00 -m comment --comment kpbench/svc-0:http -m recent --name KUBE-SEP00 --set -m tcp -p tcp -j DNAT --to-destination 10.128.0.1:8080
-A KUBE-SEP01 -m comment --comment kpbench/svc-0:http -s 10.128.0.2 -j KUBE-MARK-MASQ
-A KUBE-SEP01 -m comment --comment kpbench/svc-0:http -m recent --name KUBE-SEP01 --set -m tcp -p tcp -j DNAT --to-destination 10.128.0.2:8080
-A KUBE-SERVICES -m comment --comment "kpbench/svc-0:p1 cluster IP" -m tcp -p tcp -d 10.96.0.1 --dport 81 -j KUBE-SVC1
-A KUBE-NODEPORTS -m comment --comment kpbench/svc-0:p1 -m tcp -p tcp --dport 30001 -j KUBE-EXT1
-A KUBE-SVC1 -m comment --comment "kpbench/svc-0:p1 cluster IP" -m tcp -p tcp -d 10.96.0.1 --dport 81 ! -s 10.128.0.0/10 -j KUBE-MARK-MASQ
-A KUBE-EXT1 -m comment --comment "masquerade traffic for kpbench/svc-0:p1 external destinations" -j KUBE-MARK-MASQ
-A KUBE-EXT1 -j KUBE-SVC1
-A KUBE-SVC1 -m comment --comment "kpbench/svc-0:p1 -> 10.128.0.1:8081" -m recent --name KUBE-SEP10 --rcheck --seconds 10800 --reap -j KUBE-SEP10
-A KUBE-SVC1 -m comment --comment "kpbench/svc-0:p1 -> 10.128.0.2:8081" -m recent --name KUBE-SEP11 --rcheck --seconds 10800 --reap -j KUBE-SEP11
-A KUBE-SVC1 -m comment --comment "kpbench/svc-0:p1 -> 10.128.0.1:8081" -m statistic --mode random --probability 0.5000000000 -j KUBE-SEP10
-A KUBE-SVC1 -m comment --comment "kpbench/svc-0:p1 -> 10.128.0.2:8081" -j KUBE-SEP11
-A KUBE-SEP10 -m comment --comment kpbench/svc-0:p1 -s 10.128.0.1 -j KUBE-MARK-MASQ
-A KUBE-SEP10 -m comment --comment kpbench/svc-0:p1 -m recent --name KUBE-SEP10 --set -m tcp -p tcp -j DNAT --to-destination 10.128.0.1:8081
-A KUBE-SEP11 -m comment --comment kpbench/svc-0:p1 -s 10.128.0.2 -j KUBE-MARK-MASQ
-A KUBE-SEP11 -m comment --comment kpbench/svc-0:p1 -m recent --name KUBE-SEP11 --set -m tcp -p tcp -j DNAT --to-destination 10.128.0.2:8081
-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS
COMMIT
"#;

#[test]
fn nodeport_affinity_and_a_second_port_render_as_kube_proxy_does() {
    let svc = featured();
    let payload = render_full(&ServiceSet {
        services: vec![svc.clone()],
    });
    let nat = &payload.text[payload.text.find(":KUBE-MARK-MASQ - [0:0]\n").unwrap() + 24..];
    // KUBE-SVC-/KUBE-EXT-/KUBE-SEP- prefixes kept: only the hash stands in the template.
    let want = named(FEATURED_NAT, &svc).replace("KUBE-KUBE-", "KUBE-");
    assert_eq!(nat, want);
    // Per port: 2 KUBE-SERVICES/KUBE-NODEPORTS, 1 masquerade, 2 EXT, 2 affinity, 2
    // jumps, 4 SEP rules; plus the 4 fixed filter, 4 fixed nat rules and the tail.
    assert_eq!(payload.rules, 4 + 4 + 2 * 13 + 1);
    assert_eq!(
        payload.rules + jump_rules().len(),
        expected_rules(&ServiceSet {
            services: vec![svc.clone()]
        })
    );
    let chains = chains_of(&svc);
    assert_eq!(chains.len(), 8);
    assert!(chains.iter().all(|c| is_service_chain(c)));
}

#[test]
fn a_nodeport_without_endpoints_is_rejected_on_the_node_too() {
    let mut svc = featured();
    svc.endpoints.clear();
    let text = render_full(&ServiceSet {
        services: vec![svc],
    })
    .text;
    let filter: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("has no endpoints"))
        .collect();
    assert_eq!(
        filter,
        [
            r#"-A KUBE-SERVICES -m comment --comment "kpbench/svc-0:http has no endpoints" -m tcp -p tcp -d 10.96.0.1 --dport 80 -j REJECT"#,
            r#"-A KUBE-EXTERNAL-SERVICES -m comment --comment "kpbench/svc-0:http has no endpoints" -m addrtype --dst-type LOCAL -m tcp -p tcp --dport 30000 -j REJECT"#,
            r#"-A KUBE-SERVICES -m comment --comment "kpbench/svc-0:p1 has no endpoints" -m tcp -p tcp -d 10.96.0.1 --dport 81 -j REJECT"#,
            r#"-A KUBE-EXTERNAL-SERVICES -m comment --comment "kpbench/svc-0:p1 has no endpoints" -m addrtype --dst-type LOCAL -m tcp -p tcp --dport 30001 -j REJECT"#,
        ]
    );
    assert!(
        !text.contains("KUBE-EXT-"),
        "no KUBE-EXT chain without endpoints"
    );
}

#[test]
fn in_large_cluster_mode_affinity_rules_drop_their_comments() {
    let mut svc = featured();
    svc.spec.extra_ports.clear();
    let text = render_sync(
        &ServiceSet {
            services: vec![svc.clone()],
        },
        |_| true,
        true,
        &std::collections::BTreeSet::new(),
    )
    .text;
    let p = &ports::views(&svc)[0];
    let (sep, chain) = (&p.endpoints[0].1, &p.svc_chain);
    assert!(text.contains(&format!(
        "-A {chain} -m recent --name {sep} --rcheck --seconds 10800 --reap -j {sep}\n"
    )));
    assert!(text.contains(&format!(
        "-A {sep} -m recent --name {sep} --set -m tcp -p tcp -j DNAT --to-destination 10.128.0.1:8080\n"
    )));
    // The node port's rules keep theirs, as kube-proxy writes them without the
    // large-cluster check.
    assert!(text.contains("-A KUBE-NODEPORTS -m comment --comment kpbench/svc-0:http "));
}

#[test]
fn the_floor_partial_sync_diffs_kube_nodeports_and_kube_external_services_too() {
    let plain = ServiceSet::generate(2, 2);
    let mut featured_set = plain.clone();
    let mut svc = featured();
    svc.spec.extra_ports.clear();
    featured_set.upsert(svc);
    let text = render_floor_partial(&plain, &featured_set).text;
    // KUBE-NODEPORTS was empty: it is rewritten (declared and appended to).
    assert!(text.contains(":KUBE-NODEPORTS - [0:0]\n"), "{text}");
    assert!(text.contains("-A KUBE-NODEPORTS -m comment --comment kpbench/svc-0:http -m tcp -p tcp --dport 30000 -j KUBE-EXT-"), "{text}");
    let mut emptied = featured_set.clone();
    emptied.services[0].endpoints.clear();
    let text = render_floor_partial(&featured_set, &emptied).text;
    // Its one rule goes (the chain is rewritten empty), the REJECT comes.
    assert!(text.contains(":KUBE-NODEPORTS - [0:0]\n"), "{text}");
    assert!(!text.contains("-A KUBE-NODEPORTS"), "{text}");
    assert!(text.contains("-A KUBE-EXTERNAL-SERVICES -m comment --comment \"kpbench/svc-0:http has no endpoints\" -m addrtype --dst-type LOCAL -m tcp -p tcp --dport 30000 -j REJECT"), "{text}");
    assert!(text.contains("-X KUBE-EXT-"), "{text}");
}
