use std::collections::BTreeSet;

use super::*;
use crate::floor::model::{service, ServiceSet};
use crate::floor::names::{sep_chain, svc_chain};

const ONE_SERVICE_TWO_ENDPOINTS: &str = r#"*filter
:KUBE-SERVICES - [0:0]
:KUBE-EXTERNAL-SERVICES - [0:0]
:KUBE-FORWARD - [0:0]
:KUBE-NODEPORTS - [0:0]
:KUBE-PROXY-FIREWALL - [0:0]
:KUBE-FIREWALL - [0:0]
-A KUBE-FIREWALL -m comment --comment "block incoming localnet connections" -d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP
-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x4000/0x4000 -j ACCEPT
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
COMMIT
*nat
:KUBE-SERVICES - [0:0]
:KUBE-NODEPORTS - [0:0]
:KUBE-POSTROUTING - [0:0]
:KUBE-MARK-MASQ - [0:0]
:SVC - [0:0]
:SEP0 - [0:0]
:SEP1 - [0:0]
-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN
-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000
-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully
-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000
-A KUBE-SERVICES -m comment --comment "kpbench/svc-0:http cluster IP" -m tcp -p tcp -d 10.96.0.1 --dport 80 -j SVC
-A SVC -m comment --comment "kpbench/svc-0:http cluster IP" -m tcp -p tcp -d 10.96.0.1 --dport 80 ! -s 10.128.0.0/10 -j KUBE-MARK-MASQ
-A SVC -m comment --comment "kpbench/svc-0:http -> 10.128.0.1:8080" -m statistic --mode random --probability 0.5000000000 -j SEP0
-A SVC -m comment --comment "kpbench/svc-0:http -> 10.128.0.2:8080" -j SEP1
-A SEP0 -m comment --comment kpbench/svc-0:http -s 10.128.0.1 -j KUBE-MARK-MASQ
-A SEP0 -m comment --comment kpbench/svc-0:http -m tcp -p tcp -j DNAT --to-destination 10.128.0.1:8080
-A SEP1 -m comment --comment kpbench/svc-0:http -s 10.128.0.2 -j KUBE-MARK-MASQ
-A SEP1 -m comment --comment kpbench/svc-0:http -m tcp -p tcp -j DNAT --to-destination 10.128.0.2:8080
-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS
COMMIT
"#;

fn with_names(text: &str, svc: &crate::floor::model::Service) -> String {
    let mut t = text.replace(":SVC ", &format!(":{} ", svc_chain(svc)));
    t = t.replace("-A SVC ", &format!("-A {} ", svc_chain(svc)));
    t = t.replace("-j SVC\n", &format!("-j {}\n", svc_chain(svc)));
    for (i, ep) in svc.endpoints.iter().enumerate() {
        let sep = sep_chain(svc, ep);
        t = t.replace(&format!(":SEP{i} "), &format!(":{sep} "));
        t = t.replace(&format!("-A SEP{i} "), &format!("-A {sep} "));
        t = t.replace(&format!("-j SEP{i}\n"), &format!("-j {sep}\n"));
    }
    t
}

#[test]
fn full_sync_text_matches_kube_proxy() {
    let set = ServiceSet::generate(1, 2);
    let payload = render_full(&set);
    assert_eq!(
        payload.text,
        with_names(ONE_SERVICE_TWO_ENDPOINTS, &set.services[0])
    );
    // 4 filter rules (KUBE-FIREWALL, 3 KUBE-FORWARD) + 4 fixed nat rules + (3e+2) + the
    // nodeports tail.
    assert_eq!(payload.rules, 4 + 4 + nat_rules_per_service(2) + 1);
}

#[test]
fn probabilities_are_formatted_like_kube_proxy() {
    assert_eq!(probability(3), "0.3333333333");
    assert_eq!(probability(10), "0.1000000000");
    assert_eq!(probability(7), "0.1428571429");
    let set = ServiceSet::generate(1, 3);
    let text = render_full(&set).text;
    let probs: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split("--probability ").nth(1))
        .map(|r| r.split(' ').next().unwrap())
        .collect();
    assert_eq!(probs, vec!["0.3333333333", "0.5000000000"]);
}

#[test]
fn comments_are_dropped_above_a_thousand_endpoints() {
    let small = render_full(&ServiceSet::generate(100, 10)).text;
    assert!(small.contains("-m comment --comment kpbench/svc-0:http -s"));
    let large = render_full(&ServiceSet::generate(101, 10)).text;
    assert!(!large.contains("-m comment --comment kpbench/svc-0:http -s"));
    assert!(!large.contains("-> 10.128.0.1:8080"));
    // The cluster-IP comments stay, as in kube-proxy.
    assert!(large.contains("\"kpbench/svc-0:http cluster IP\""));
}

#[test]
fn rule_count_follows_three_e_plus_two() {
    let set = ServiceSet::generate(50, 4);
    let fixed = render_full(&ServiceSet::default()).rules;
    assert_eq!(
        render_full(&set).rules,
        fixed + 50 * nat_rules_per_service(4)
    );
    assert_eq!(
        expected_rules(&set),
        render_full(&set).rules + jump_rules().len()
    );
}

#[test]
fn partial_sync_rewrites_only_changed_chains_and_kube_services() {
    let old = ServiceSet::generate(3, 2);
    let mut new = old.clone();
    new.upsert(service(3, 2));
    let text = render_partial(&old, &new).text;
    // KUBE-SERVICES is always written in full.
    assert_eq!(
        text.matches("-A KUBE-SERVICES -m comment --comment \"kpbench/svc-")
            .count(),
        4
    );
    // Only the added service's chains are declared and written.
    assert!(text.contains(&format!(":{} - [0:0]", svc_chain(&new.services[3]))));
    assert!(!text.contains(&format!(":{} - [0:0]", svc_chain(&new.services[0]))));
    assert!(!text.contains(&format!("-A {} ", svc_chain(&new.services[0]))));
    assert!(!text.contains("-X "));
}

#[test]
fn partial_sync_deletes_chains_of_removed_services_and_replaced_endpoints() {
    let old = ServiceSet::generate(3, 2);
    let mut new = old.clone();
    let gone = new.remove(1).unwrap();
    let mut changed = new.get(2).unwrap().clone();
    let replaced = changed.endpoints[0];
    changed.endpoints[0].ip = crate::floor::model::spare_endpoint_ip(0);
    new.upsert(changed.clone());
    let text = render_partial(&old, &new).text;
    for chain in [
        svc_chain(&gone),
        sep_chain(&gone, &gone.endpoints[0]),
        sep_chain(&old.services[2], &replaced),
    ] {
        assert!(
            text.contains(&format!(":{chain} - [0:0]\n")),
            "{chain} declared"
        );
        assert!(text.contains(&format!("-X {chain}\n")), "{chain} deleted");
    }
    // The changed service's surviving endpoint chain is rewritten, not deleted.
    let kept = sep_chain(&changed, &changed.endpoints[1]);
    assert!(text.contains(&format!("-A {kept} ")));
    assert!(!text.contains(&format!("-X {kept}")));
}

#[test]
fn services_without_endpoints_get_a_reject() {
    let set = ServiceSet::generate(1, 0);
    let text = render_full(&set).text;
    assert!(text.contains("-A KUBE-SERVICES -m comment --comment \"kpbench/svc-0:http has no endpoints\" -m tcp -p tcp -d 10.96.0.1 --dport 80 -j REJECT"));
    assert!(!text.contains("KUBE-SVC-"));
}

/// The nat table of a payload (from `*nat` on).
fn nat(text: &str) -> &str {
    &text[text.find("*nat\n").expect("a nat table")..]
}

#[test]
fn the_jumps_are_kube_proxys_fourteen_in_order() {
    let jumps = jump_rules();
    assert_eq!(jumps.len(), 14);
    let lines: Vec<String> = jumps
        .iter()
        .map(|j| format!("{} {}", j.table, j.restore_line()))
        .collect();
    assert_eq!(
        lines,
        [
            "filter -A INPUT -m conntrack --ctstate NEW -m comment --comment \"kubernetes externally-visible service portals\" -j KUBE-EXTERNAL-SERVICES",
            "filter -A FORWARD -m conntrack --ctstate NEW -m comment --comment \"kubernetes externally-visible service portals\" -j KUBE-EXTERNAL-SERVICES",
            "filter -A INPUT -m comment --comment \"kubernetes health check service ports\" -j KUBE-NODEPORTS",
            "filter -A FORWARD -m conntrack --ctstate NEW -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES",
            "filter -A OUTPUT -m conntrack --ctstate NEW -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES",
            "filter -A FORWARD -m comment --comment \"kubernetes forwarding rules\" -j KUBE-FORWARD",
            "filter -A INPUT -m conntrack --ctstate NEW -m comment --comment \"kubernetes load balancer firewall\" -j KUBE-PROXY-FIREWALL",
            "filter -A OUTPUT -m conntrack --ctstate NEW -m comment --comment \"kubernetes load balancer firewall\" -j KUBE-PROXY-FIREWALL",
            "filter -A FORWARD -m conntrack --ctstate NEW -m comment --comment \"kubernetes load balancer firewall\" -j KUBE-PROXY-FIREWALL",
            "nat -A OUTPUT -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES",
            "nat -A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES",
            "nat -A POSTROUTING -m comment --comment \"kubernetes postrouting rules\" -j KUBE-POSTROUTING",
            "filter -A INPUT -j KUBE-FIREWALL",
            "filter -A OUTPUT -j KUBE-FIREWALL",
        ]
    );
}

#[test]
fn stale_chains_are_deleted_before_the_nodeports_tail() {
    let old = ServiceSet::generate(2, 1);
    let mut new = old.clone();
    let gone = new.remove(1).unwrap();
    let text = render_partial(&old, &new).text;
    let svc = svc_chain(&gone);
    let sep = sep_chain(&gone, &gone.endpoints[0]);
    let expected_tail = format!(
        ":{sep} - [0:0]\n:{svc} - [0:0]\n-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN\n"
    );
    assert!(nat(&text).contains(&expected_tail), "{text}");
    let kept = svc_chain(&new.services[0]);
    assert!(nat(&text).ends_with(&format!(
        "-j {kept}\n-X {sep}\n-X {svc}\n-A KUBE-SERVICES -m comment --comment \"kubernetes service nodeports; NOTE: this must be the last rule in this chain\" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS\nCOMMIT\n"
    )), "{text}");
}

#[test]
fn crossing_the_threshold_rewrites_only_the_changed_service() {
    // 100 x 10 = 1,000 endpoints: not large; one more service crosses the threshold.
    let old = ServiceSet::generate(100, 10);
    let mut new = old.clone();
    new.upsert(service(100, 10));
    assert!(!large_cluster(&old) && large_cluster(&new));
    let text = render_partial(&old, &new).text;
    // Only the added service's 11 chains are declared (plus the 4 fixed ones)...
    let declared = nat(&text).lines().filter(|l| l.starts_with(':')).count();
    assert_eq!(declared, 4 + 11, "{text}");
    // ...and written in the large-cluster style, without per-endpoint comments.
    let added = &new.services[100];
    let sep = sep_chain(added, &added.endpoints[0]);
    assert!(text.contains(&format!(
        "-A {sep} -s {} -j KUBE-MARK-MASQ\n",
        added.endpoints[0].ip
    )));
    assert!(!text.contains(&format!("-A {} ", svc_chain(&new.services[0]))));
}

#[test]
fn render_sync_writes_what_it_is_told() {
    let set = ServiceSet::generate(2, 1);
    let delete: BTreeSet<String> = ["KUBE-SEP-OLD".to_string()].into();
    let text = render_sync(&set, |s| s.index == 1, false, &delete).text;
    assert!(!text.contains(&format!(":{} ", svc_chain(&set.services[0]))));
    assert!(text.contains(&format!(":{} ", svc_chain(&set.services[1]))));
    // Both services' KUBE-SERVICES rules are always written.
    assert_eq!(
        text.matches("cluster IP\" -m tcp -p tcp -d 10.96.0.")
            .count(),
        3
    );
    assert!(text.contains(":KUBE-SEP-OLD - [0:0]\n") && text.contains("-X KUBE-SEP-OLD\n"));
    // The filter table is always written in full.
    assert!(text.starts_with("*filter\n:KUBE-SERVICES - [0:0]\n"));
}

#[test]
fn the_floor_full_sync_carries_the_jumps_in_prepend_order() {
    let set = ServiceSet::generate(1, 2);
    let floor = render_floor_full(&set);
    let kube = render_full(&set);
    // The same payload plus the jumps, each built-in chain's last prepend first.
    let jumps = "-A INPUT -j KUBE-FIREWALL
-A INPUT -m conntrack --ctstate NEW -m comment --comment \"kubernetes load balancer firewall\" -j KUBE-PROXY-FIREWALL
-A INPUT -m comment --comment \"kubernetes health check service ports\" -j KUBE-NODEPORTS
-A INPUT -m conntrack --ctstate NEW -m comment --comment \"kubernetes externally-visible service portals\" -j KUBE-EXTERNAL-SERVICES
-A FORWARD -m conntrack --ctstate NEW -m comment --comment \"kubernetes load balancer firewall\" -j KUBE-PROXY-FIREWALL
-A FORWARD -m comment --comment \"kubernetes forwarding rules\" -j KUBE-FORWARD
-A FORWARD -m conntrack --ctstate NEW -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES
-A FORWARD -m conntrack --ctstate NEW -m comment --comment \"kubernetes externally-visible service portals\" -j KUBE-EXTERNAL-SERVICES
-A OUTPUT -j KUBE-FIREWALL
-A OUTPUT -m conntrack --ctstate NEW -m comment --comment \"kubernetes load balancer firewall\" -j KUBE-PROXY-FIREWALL
-A OUTPUT -m conntrack --ctstate NEW -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES
";
    let nat_jumps = "-A OUTPUT -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES
-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES
-A POSTROUTING -m comment --comment \"kubernetes postrouting rules\" -j KUBE-POSTROUTING
";
    let expected = kube
        .text
        .replace(
            ":KUBE-FIREWALL - [0:0]\n",
            &format!(":KUBE-FIREWALL - [0:0]\n{jumps}"),
        )
        .replace(
            "-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000\n",
            &format!("-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000\n{nat_jumps}"),
        );
    assert_eq!(floor.text, expected);
    assert_eq!(floor.rules, kube.rules);
}

#[test]
fn the_floor_partial_sync_writes_only_what_changed() {
    let old = ServiceSet::generate(3, 2);
    // Nothing changed: nothing to write.
    assert_eq!(render_floor_partial(&old, &old).text, "");
    // An endpoint change: that service's chains and the replaced chain's delete only.
    let mut updated = old.clone();
    let mut svc = updated.get(1).unwrap().clone();
    let replaced = svc.endpoints[0];
    svc.endpoints[0].ip = crate::floor::model::spare_endpoint_ip(0);
    updated.upsert(svc.clone());
    let text = render_floor_partial(&old, &updated).text;
    let svc_name = svc_chain(&svc);
    let new_sep = sep_chain(&svc, &svc.endpoints[0]);
    let kept_sep = sep_chain(&svc, &svc.endpoints[1]);
    let old_sep = sep_chain(&svc, &replaced);
    let expected = format!(
        "*nat
:{svc_name} - [0:0]
:{new_sep} - [0:0]
:{kept_sep} - [0:0]
:{old_sep} - [0:0]
-A {svc_name} -m comment --comment \"kpbench/svc-1:http cluster IP\" -m tcp -p tcp -d 10.96.0.2 --dport 80 ! -s 10.128.0.0/10 -j KUBE-MARK-MASQ
-A {svc_name} -m comment --comment \"kpbench/svc-1:http -> {ip0}:8080\" -m statistic --mode random --probability 0.5000000000 -j {new_sep}
-A {svc_name} -m comment --comment \"kpbench/svc-1:http -> {ip1}:8080\" -j {kept_sep}
-A {new_sep} -m comment --comment kpbench/svc-1:http -s {ip0} -j KUBE-MARK-MASQ
-A {new_sep} -m comment --comment kpbench/svc-1:http -m tcp -p tcp -j DNAT --to-destination {ip0}:8080
-A {kept_sep} -m comment --comment kpbench/svc-1:http -s {ip1} -j KUBE-MARK-MASQ
-A {kept_sep} -m comment --comment kpbench/svc-1:http -m tcp -p tcp -j DNAT --to-destination {ip1}:8080
-X {old_sep}
COMMIT
",
        ip0 = svc.endpoints[0].ip,
        ip1 = svc.endpoints[1].ip,
    );
    assert_eq!(text, expected);
    // A removed service: its KUBE-SERVICES rule deleted by spec, then its chains.
    let mut removed = old.clone();
    let gone = removed.remove(2).unwrap();
    let text = render_floor_partial(&old, &removed).text;
    let (svc, sep0, sep1) = (
        svc_chain(&gone),
        sep_chain(&gone, &gone.endpoints[0]),
        sep_chain(&gone, &gone.endpoints[1]),
    );
    let mut chains = [svc.clone(), sep0.clone(), sep1.clone()];
    chains.sort();
    let declared: String = chains.iter().map(|c| format!(":{c} - [0:0]\n")).collect();
    let deleted: String = chains.iter().map(|c| format!("-X {c}\n")).collect();
    assert_eq!(
        text,
        format!(
            "*nat\n{declared}-D KUBE-SERVICES -m comment --comment \"kpbench/svc-2:http cluster IP\" -m tcp -p tcp -d 10.96.0.3 --dport 80 -j {svc}\n{deleted}COMMIT\n"
        )
    );
    // Adding it back inserts its rule at its place: third, before the nodeports tail.
    let text = render_floor_partial(&removed, &old).text;
    assert!(text.contains(&format!(
        "\n-I KUBE-SERVICES 3 -m comment --comment \"kpbench/svc-2:http cluster IP\" -m tcp -p tcp -d 10.96.0.3 --dport 80 -j {svc}\nCOMMIT\n"
    )), "{text}");
    assert!(!text.contains(":KUBE-SERVICES") && !text.contains("*filter"));
    // Many changes at once rewrite the chain instead.
    let text = render_floor_partial(&ServiceSet::default(), &old).text;
    assert!(text.starts_with("*nat\n:KUBE-SERVICES - [0:0]\n"), "{text}");
    assert_eq!(text.matches("-A KUBE-SERVICES ").count(), 3 + 1);
    // A service losing all its endpoints: the filter REJECT too.
    let mut emptied = old.clone();
    let mut svc = emptied.get(0).unwrap().clone();
    svc.endpoints.clear();
    emptied.upsert(svc);
    let text = render_floor_partial(&old, &emptied).text;
    assert!(text.starts_with("*filter\n:KUBE-SERVICES - [0:0]\n-A KUBE-SERVICES -m comment --comment \"kpbench/svc-0:http has no endpoints\""), "{text}");
}
