use super::*;
use crate::model::{service, ServiceSet};

const ONE_SERVICE_TWO_ENDPOINTS: &str = r#"*filter
:KUBE-SERVICES - [0:0]
:KUBE-EXTERNAL-SERVICES - [0:0]
:KUBE-FORWARD - [0:0]
:KUBE-NODEPORTS - [0:0]
:KUBE-PROXY-FIREWALL - [0:0]
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

fn with_names(text: &str, svc: &crate::model::Service) -> String {
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
    // 3 filter rules + 4 fixed nat rules + (3e+2) + the nodeports tail.
    assert_eq!(payload.rules, 3 + 4 + nat_rules_per_service(2) + 1);
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
    changed.endpoints[0].ip = crate::model::spare_endpoint_ip(0);
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

#[test]
fn count_rules_counts_appends_only() {
    let save = "# Generated\n*nat\n:KUBE-SERVICES - [0:0]\n-A KUBE-SERVICES -j X\n-A PREROUTING -j KUBE-SERVICES\nCOMMIT\n";
    assert_eq!(count_rules(save), 2);
}
