use super::*;
use crate::model::{service, spare_endpoint_ip, Endpoint, ServiceSet, ENDPOINT_PORT};

const SETUP: &str = r#"add table ip kube-proxy { comment "rules for kube-proxy" ; }
add chain ip kube-proxy filter-prerouting
delete chain ip kube-proxy filter-prerouting
add chain ip kube-proxy filter-input
delete chain ip kube-proxy filter-input
add chain ip kube-proxy filter-forward
delete chain ip kube-proxy filter-forward
add chain ip kube-proxy filter-output
delete chain ip kube-proxy filter-output
add chain ip kube-proxy filter-output-post-dnat
delete chain ip kube-proxy filter-output-post-dnat
add chain ip kube-proxy nat-prerouting
delete chain ip kube-proxy nat-prerouting
add chain ip kube-proxy nat-output
delete chain ip kube-proxy nat-output
add chain ip kube-proxy nat-postrouting
delete chain ip kube-proxy nat-postrouting
add chain ip kube-proxy filter-prerouting { type filter hook prerouting priority -110 ; }
flush chain ip kube-proxy filter-prerouting
add chain ip kube-proxy filter-input { type filter hook input priority -110 ; }
flush chain ip kube-proxy filter-input
add chain ip kube-proxy filter-forward { type filter hook forward priority -110 ; }
flush chain ip kube-proxy filter-forward
add chain ip kube-proxy filter-output { type filter hook output priority -110 ; }
flush chain ip kube-proxy filter-output
add chain ip kube-proxy filter-output-post-dnat { type filter hook output priority -90 ; }
flush chain ip kube-proxy filter-output-post-dnat
add chain ip kube-proxy nat-prerouting { type nat hook prerouting priority -100 ; }
flush chain ip kube-proxy nat-prerouting
add chain ip kube-proxy nat-output { type nat hook output priority -100 ; }
flush chain ip kube-proxy nat-output
add chain ip kube-proxy nat-postrouting { type nat hook postrouting priority 100 ; }
flush chain ip kube-proxy nat-postrouting
add chain ip kube-proxy nodeport-endpoints-check
flush chain ip kube-proxy nodeport-endpoints-check
add rule ip kube-proxy filter-input ct state new jump nodeport-endpoints-check
add chain ip kube-proxy service-endpoints-check
flush chain ip kube-proxy service-endpoints-check
add rule ip kube-proxy filter-input ct state new jump service-endpoints-check
add rule ip kube-proxy filter-forward ct state new jump service-endpoints-check
add rule ip kube-proxy filter-output ct state new jump service-endpoints-check
add chain ip kube-proxy firewall-check
flush chain ip kube-proxy firewall-check
add rule ip kube-proxy filter-prerouting ct state new jump firewall-check
add rule ip kube-proxy filter-output ct state new jump firewall-check
add chain ip kube-proxy services
flush chain ip kube-proxy services
add rule ip kube-proxy nat-output jump services
add rule ip kube-proxy nat-prerouting jump services
add chain ip kube-proxy masquerading
flush chain ip kube-proxy masquerading
add rule ip kube-proxy nat-postrouting jump masquerading
add chain ip kube-proxy cluster-ips-check
flush chain ip kube-proxy cluster-ips-check
add rule ip kube-proxy filter-forward ct state new jump cluster-ips-check
add rule ip kube-proxy filter-output-post-dnat ct state new jump cluster-ips-check
add chain ip kube-proxy mark-for-masquerade
flush chain ip kube-proxy mark-for-masquerade
add rule ip kube-proxy mark-for-masquerade mark set mark or 0x00004000
add rule ip kube-proxy masquerading mark and 0x00004000 == 0 return
add rule ip kube-proxy masquerading mark set mark xor 0x00004000
add rule ip kube-proxy masquerading masquerade fully-random
add set ip kube-proxy cluster-ips { type ipv4_addr ; comment "Active ClusterIPs" ; }
add rule ip kube-proxy cluster-ips-check ip daddr @cluster-ips reject comment "Reject traffic to invalid ports of ClusterIPs"
add rule ip kube-proxy cluster-ips-check ip daddr { 10.96.0.0/12 } drop comment "Drop traffic to unallocated ClusterIPs"
add set ip kube-proxy nodeport-ips { type ipv4_addr ; comment "IPs that accept NodePort traffic" ; }
delete set ip kube-proxy nodeport-ips
add map ip kube-proxy no-endpoint-services { type ipv4_addr . inet_proto . inet_service : verdict ; comment "vmap to drop or reject packets to services with no endpoints" ; }
add map ip kube-proxy no-endpoint-nodeports { type inet_proto . inet_service : verdict ; comment "vmap to drop or reject packets to service nodeports with no endpoints" ; }
add chain ip kube-proxy reject-chain { comment "helper for @no-endpoint-services / @no-endpoint-nodeports" ; }
flush chain ip kube-proxy reject-chain
add rule ip kube-proxy reject-chain reject
add rule ip kube-proxy service-endpoints-check ip daddr . meta l4proto . th dport vmap @no-endpoint-services
add rule ip kube-proxy nodeport-endpoints-check ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @no-endpoint-nodeports
add map ip kube-proxy firewall-ips { type ipv4_addr . inet_proto . inet_service : verdict ; comment "destinations that are subject to LoadBalancerSourceRanges" ; }
add rule ip kube-proxy firewall-check ip daddr . meta l4proto . th dport vmap @firewall-ips
add map ip kube-proxy service-ips { type ipv4_addr . inet_proto . inet_service : verdict ; comment "ClusterIP, ExternalIP and LoadBalancer IP traffic" ; }
add map ip kube-proxy service-nodeports { type inet_proto . inet_service : verdict ; comment "NodePort traffic" ; }
add rule ip kube-proxy services ip daddr . meta l4proto . th dport vmap @service-ips
add rule ip kube-proxy services fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @service-nodeports
flush set ip kube-proxy cluster-ips
flush map ip kube-proxy service-ips
flush map ip kube-proxy firewall-ips
flush map ip kube-proxy no-endpoint-services
flush map ip kube-proxy no-endpoint-nodeports
flush map ip kube-proxy service-nodeports
"#;

/// One service, two endpoints, in knftables' (kube-proxy's) order.
const ONE_SERVICE_KUBE_PROXY_ORDER: &str = r#"add chain ip kube-proxy EP0
flush chain ip kube-proxy EP0
add chain ip kube-proxy EP1
flush chain ip kube-proxy EP1
add chain ip kube-proxy SVC
flush chain ip kube-proxy SVC
add element ip kube-proxy cluster-ips { 10.96.0.1 }
add element ip kube-proxy service-ips { 10.96.0.1 . tcp . 80 : goto SVC }
add rule ip kube-proxy SVC ip daddr 10.96.0.1 tcp dport 80 ip saddr != 10.128.0.0/10 jump mark-for-masquerade
add rule ip kube-proxy SVC numgen random mod 2 vmap { 0 : goto EP0 , 1 : goto EP1 }
add rule ip kube-proxy EP0 ip saddr 10.128.0.1 jump mark-for-masquerade
add rule ip kube-proxy EP0 meta l4proto tcp dnat to 10.128.0.1:8080
add rule ip kube-proxy EP1 ip saddr 10.128.0.2 jump mark-for-masquerade
add rule ip kube-proxy EP1 meta l4proto tcp dnat to 10.128.0.2:8080
"#;

/// Two services (two endpoints, none) in the default order: dispatch first, batched elements.
const TWO_SERVICES_BIND_EARLY: &str = r#"add chain ip kube-proxy EP0
flush chain ip kube-proxy EP0
add chain ip kube-proxy EP1
flush chain ip kube-proxy EP1
add chain ip kube-proxy SVC
flush chain ip kube-proxy SVC
add rule ip kube-proxy SVC ip daddr 10.96.0.1 tcp dport 80 ip saddr != 10.128.0.0/10 jump mark-for-masquerade
add rule ip kube-proxy SVC numgen random mod 2 vmap { 0 : goto EP0 , 1 : goto EP1 }
add rule ip kube-proxy EP0 ip saddr 10.128.0.1 jump mark-for-masquerade
add rule ip kube-proxy EP0 meta l4proto tcp dnat to 10.128.0.1:8080
add rule ip kube-proxy EP1 ip saddr 10.128.0.2 jump mark-for-masquerade
add rule ip kube-proxy EP1 meta l4proto tcp dnat to 10.128.0.2:8080
add element ip kube-proxy cluster-ips { 10.96.0.1, 10.96.0.2 }
add element ip kube-proxy service-ips { 10.96.0.1 . tcp . 80 : goto SVC }
add element ip kube-proxy no-endpoint-services { 10.96.0.2 . tcp . 80 comment "kpbench/svc-1:http" : goto reject-chain }
"#;

/// Replaces the placeholders SVC, EP0, EP1 with the chain names of `svc`.
fn with_names(text: &str, svc: &Service) -> String {
    let mut t = text.replace("SVC", &nft_service_chain(svc));
    for (i, ep) in svc.endpoints.iter().enumerate() {
        t = t.replace(&format!("EP{i}"), &nft_endpoint_chain(svc, ep));
    }
    t
}

fn sorted_lines(text: &str) -> Vec<&str> {
    let mut v: Vec<&str> = text.lines().collect();
    v.sort_unstable();
    v
}

#[test]
fn setup_matches_kube_proxy() {
    let empty = render_full(&ServiceSet::default());
    assert_eq!(empty.text, SETUP);
    assert_eq!(empty.rules, FIXED_RULES);
    assert_eq!(empty.text.matches("add rule ").count(), FIXED_RULES);
    assert_eq!(empty.elements, 0);
}

#[test]
fn full_sync_in_kube_proxy_order_matches_knftables_text() {
    let set = ServiceSet::generate(1, 2);
    let p = render_full_shaped(&set, Shape::KubeProxy);
    let want = format!(
        "{SETUP}{}",
        with_names(ONE_SERVICE_KUBE_PROXY_ORDER, &set.services[0])
    );
    assert_eq!(p.text, want);
    assert_eq!(p.rules, FIXED_RULES + 6);
    assert_eq!(p.elements, 2);
}

#[test]
fn default_full_sync_binds_early_and_batches_elements() {
    let mut set = ServiceSet::generate(1, 2);
    set.upsert(service(1, 0));
    let p = render_full(&set);
    let want = format!(
        "{SETUP}{}",
        with_names(TWO_SERVICES_BIND_EARLY, &set.services[0])
    );
    assert_eq!(p.text, want);
    assert_eq!(p.rules, expected_rules(&set));
    assert_eq!(p.elements, expected_elements(&set));
}

#[test]
fn both_shapes_write_the_same_rules_and_chains() {
    let set = ServiceSet::generate(5, 3);
    let kp = render_full_shaped(&set, Shape::KubeProxy);
    let fast = render_full_shaped(&set, Shape::BindEarly);
    let non_elem = |t: &str| -> Vec<String> {
        sorted_lines(t)
            .into_iter()
            .filter(|l| !l.starts_with("add element"))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(non_elem(&kp.text), non_elem(&fast.text));
    assert_eq!((kp.rules, kp.elements), (fast.rules, fast.elements));
    // Within each chain the rules keep their order.
    for svc in &set.services {
        let chain = nft_service_chain(svc);
        let rules = |t: &str| -> Vec<String> {
            t.lines()
                .filter(|l| l.starts_with(&format!("add rule ip kube-proxy {chain} ")))
                .map(str::to_string)
                .collect()
        };
        assert_eq!(rules(&kp.text), rules(&fast.text));
    }
}

#[test]
fn numgen_vmap_lists_every_endpoint() {
    let set = ServiceSet::generate(1, 10);
    let text = render_full(&set).text;
    let line = text.lines().find(|l| l.contains("numgen")).unwrap();
    assert!(line.contains("numgen random mod 10 vmap { 0 : goto endpoint-"));
    assert!(line.contains(" , 9 : goto endpoint-"));
    assert!(line.ends_with("__10.128.0.10/8080 }"));
}

#[test]
fn counts_follow_two_e_plus_two() {
    let set = ServiceSet::generate(50, 4);
    let p = render_full(&set);
    assert_eq!(p.rules, FIXED_RULES + 50 * (2 + 2 * 4));
    assert_eq!(p.rules, p.text.matches("add rule ").count());
    assert_eq!(p.elements, 100);
}

#[test]
fn partial_add_service_writes_only_its_chains_and_elements() {
    let old = ServiceSet::generate(3, 2);
    let mut new = old.clone();
    new.upsert(service(3, 2));
    let svc = &new.services[3];
    let want = with_names(
        &ONE_SERVICE_KUBE_PROXY_ORDER
            .replace("10.96.0.1", "10.96.0.4")
            .replace("10.128.0.1", "10.128.0.7")
            .replace("10.128.0.2", "10.128.0.8"),
        svc,
    );
    assert_eq!(render_partial(&old, &new).text, want);
}

#[test]
fn partial_remove_service_flushes_then_deletes_after_its_elements() {
    let old = ServiceSet::generate(3, 2);
    let mut new = old.clone();
    let gone = new.remove(1).unwrap();
    let want = with_names(
        "flush chain ip kube-proxy EP0
flush chain ip kube-proxy EP1
flush chain ip kube-proxy SVC
delete element ip kube-proxy cluster-ips { 10.96.0.2 }
delete element ip kube-proxy service-ips { 10.96.0.2 . tcp . 80 }
delete chain ip kube-proxy EP0
delete chain ip kube-proxy EP1
delete chain ip kube-proxy SVC
",
        &gone,
    );
    assert_eq!(render_partial(&old, &new).text, want);
}

#[test]
fn partial_endpoint_update_rewrites_the_service_and_drops_the_old_endpoint() {
    let old = ServiceSet::generate(2, 2);
    let mut new = old.clone();
    let mut svc = new.services[1].clone();
    let dropped = svc.endpoints[0];
    svc.endpoints[0] = Endpoint {
        ip: spare_endpoint_ip(0),
        port: ENDPOINT_PORT,
    };
    new.upsert(svc.clone());
    let text = render_partial(&old, &new).text;
    let stale = nft_endpoint_chain(&svc, &dropped);
    let lines: Vec<&str> = text.lines().collect();
    // Both endpoint chains and the service chain are rewritten, elements unchanged.
    assert_eq!(
        lines.iter().filter(|l| l.starts_with("add chain")).count(),
        3
    );
    assert!(!text.contains("element"));
    assert!(text.contains(&format!(
        "numgen random mod 2 vmap {{ 0 : goto {} , 1 : goto {} }}",
        nft_endpoint_chain(&svc, &svc.endpoints[0]),
        nft_endpoint_chain(&svc, &svc.endpoints[1])
    )));
    assert_eq!(
        &lines[lines.len() - 2..],
        &[
            format!("flush chain ip kube-proxy {stale}").as_str(),
            format!("delete chain ip kube-proxy {stale}").as_str()
        ]
    );
    // The other service is left alone.
    assert!(!text.contains(&nft_service_chain(&new.services[0])));
}

#[test]
fn partial_losing_all_endpoints_moves_the_service_to_no_endpoint_services() {
    let old = ServiceSet::generate(1, 1);
    let mut new = old.clone();
    new.upsert(service(0, 0));
    let text = render_partial(&old, &new).text;
    assert!(text.contains(
        "add element ip kube-proxy no-endpoint-services { 10.96.0.1 . tcp . 80 comment \"kpbench/svc-0:http\" : goto reject-chain }"
    ));
    assert!(text.contains("delete element ip kube-proxy service-ips { 10.96.0.1 . tcp . 80 }"));
    assert!(text.ends_with(&format!(
        "delete chain ip kube-proxy {}\n",
        nft_service_chain(&old.services[0])
    )));
}

#[test]
fn an_unchanged_set_gives_an_empty_partial_sync() {
    let set = ServiceSet::generate(4, 3);
    assert_eq!(render_partial(&set, &set).text, "");
}

#[test]
fn counts_objects_in_nft_json() {
    let listing: serde_json::Value = serde_json::from_str(
        r#"{"nftables": [{"metainfo": {"json_schema_version": 1}},
        {"table": {"family": "ip", "name": "kube-proxy", "handle": 1}},
        {"set": {"family": "ip", "name": "cluster-ips", "table": "kube-proxy", "type": "ipv4_addr", "handle": 2, "elem": ["10.96.0.1", "10.96.0.2"]}},
        {"map": {"family": "ip", "name": "service-ips", "table": "kube-proxy", "handle": 3, "elem": [[{"concat": ["10.96.0.1", "tcp", 80]}, {"goto": {"target": "x"}}]]}},
        {"map": {"family": "ip", "name": "firewall-ips", "table": "kube-proxy", "handle": 4}},
        {"chain": {"family": "ip", "table": "kube-proxy", "name": "x", "handle": 5}},
        {"rule": {"family": "ip", "table": "kube-proxy", "chain": "x", "handle": 6, "expr": []}}]}"#,
    )
    .unwrap();
    assert_eq!(count_objects(&listing), (1, 3));
}
