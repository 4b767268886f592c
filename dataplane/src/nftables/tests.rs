use super::*;
use crate::floor::model::{service, spare_endpoint_ip, Endpoint, ServiceSet, ENDPOINT_PORT};
use crate::floor::names::{nft_endpoint_chain, nft_service_chain};

/// The release whose rule text the constants below hold, unless a test says otherwise.
const V35: KubeProxyVersion = KubeProxyVersion::V1_35;

/// kube-proxy's first setupNFTables with the default `--nodeport-addresses primary`
/// and kpbench's node IP.
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
flush set ip kube-proxy nodeport-ips
add element ip kube-proxy nodeport-ips { 10.255.0.1 }
add map ip kube-proxy no-endpoint-services { type ipv4_addr . inet_proto . inet_service : verdict ; comment "vmap to drop or reject packets to services with no endpoints" ; }
add map ip kube-proxy no-endpoint-nodeports { type inet_proto . inet_service : verdict ; comment "vmap to drop or reject packets to service nodeports with no endpoints" ; }
add chain ip kube-proxy reject-chain { comment "helper for @no-endpoint-services / @no-endpoint-nodeports" ; }
flush chain ip kube-proxy reject-chain
add rule ip kube-proxy reject-chain reject
add rule ip kube-proxy service-endpoints-check ip daddr . meta l4proto . th dport vmap @no-endpoint-services
add rule ip kube-proxy nodeport-endpoints-check ip daddr @nodeport-ips meta l4proto . th dport vmap @no-endpoint-nodeports
add map ip kube-proxy firewall-ips { type ipv4_addr . inet_proto . inet_service : verdict ; comment "destinations that are subject to LoadBalancerSourceRanges" ; }
add rule ip kube-proxy firewall-check ip daddr . meta l4proto . th dport vmap @firewall-ips
add map ip kube-proxy service-ips { type ipv4_addr . inet_proto . inet_service : verdict ; comment "ClusterIP, ExternalIP and LoadBalancer IP traffic" ; }
add map ip kube-proxy service-nodeports { type inet_proto . inet_service : verdict ; comment "NodePort traffic" ; }
add rule ip kube-proxy services ip daddr . meta l4proto . th dport vmap @service-ips
add rule ip kube-proxy services ip daddr @nodeport-ips meta l4proto . th dport vmap @service-nodeports
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

/// kube-proxy 1.35's first full sync of `set` (its transaction in knftables' order).
fn kube_proxy_full(set: &ServiceSet) -> Payload {
    kube_proxy_full_with(set, Setup::first())
}

/// kube-proxy 1.35's full sync of `set` from an empty table with `setup`.
fn kube_proxy_full_with(set: &ServiceSet, setup: Setup) -> Payload {
    kube_proxy_full_of(set, setup, V35)
}

/// kube-proxy `release`'s full sync of `set` from an empty table with `setup`.
fn kube_proxy_full_of(set: &ServiceSet, setup: Setup, release: KubeProxyVersion) -> Payload {
    let sync = KubeProxySync {
        release,
        setup: Some(setup),
        old: None,
        new: set,
        listing: &Listing::default(),
    };
    render_kube_proxy(&sync, &mut ElementStorage::default()).payload
}

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

/// kube-proxy 1.36's setup: 1.35's without the `mark-for-masquerade` chain, with the
/// `hairpin-connections` set and 1.36's two masquerading rules, the off-cluster marking
/// rule first in `services`, and the hairpin set flushed last. Text as the v1.36.2 table
/// lists it, in knftables' input words (see `setup::write_masquerading_1_36`).
fn setup_1_36() -> String {
    SETUP
        .replace(
            "add chain ip kube-proxy mark-for-masquerade
flush chain ip kube-proxy mark-for-masquerade
add rule ip kube-proxy mark-for-masquerade mark set mark or 0x00004000
add rule ip kube-proxy masquerading mark and 0x00004000 == 0 return
add rule ip kube-proxy masquerading mark set mark xor 0x00004000
add rule ip kube-proxy masquerading masquerade fully-random
",
            r#"add set ip kube-proxy hairpin-connections { type ipv4_addr . ipv4_addr . inet_proto . inet_service ; comment "service hairpin connections" ; }
add rule ip kube-proxy masquerading mark and 0x00004000 != 0 mark set mark xor 0x00004000 masquerade fully-random
add rule ip kube-proxy masquerading ct status dnat ip saddr . ip daddr . meta l4proto . th dport @hairpin-connections masquerade fully-random
"#,
        )
        .replace(
            "add rule ip kube-proxy services ip daddr . meta l4proto",
            "add rule ip kube-proxy services ip daddr @cluster-ips ip saddr != 10.128.0.0/10 mark set mark or 0x00004000 comment \"masquerade clusterIP traffic from outside cluster\"
add rule ip kube-proxy services ip daddr . meta l4proto",
        )
        + "flush set ip kube-proxy hairpin-connections\n"
}

/// One service, two endpoints, as kube-proxy 1.36 writes it: its one chain with one
/// DNAT-map rule (pkg/proxy/nftables/proxier_test.go `TestOverallNFTablesRules`, svc1:
/// `add rule ip kube-proxy service-ULMVA6XW-ns1/svc1/tcp/p80 meta l4proto tcp dnat ip
/// addr . port to numgen random mod 1 map { 0 : 10.180.0.1 . 80 }`), and one hairpin
/// element per endpoint (`ip . ip . tcp . port`, as the v1.36.2 table lists them).
const ONE_SERVICE_1_36: &str = r#"add chain ip kube-proxy SVC
flush chain ip kube-proxy SVC
add element ip kube-proxy cluster-ips { 10.96.0.1 }
add element ip kube-proxy service-ips { 10.96.0.1 . tcp . 80 : goto SVC }
add element ip kube-proxy hairpin-connections { 10.128.0.1 . 10.128.0.1 . tcp . 8080 }
add element ip kube-proxy hairpin-connections { 10.128.0.2 . 10.128.0.2 . tcp . 8080 }
add rule ip kube-proxy SVC meta l4proto tcp dnat ip addr . port to numgen random mod 2 map { 0 : 10.128.0.1 . 8080 , 1 : 10.128.0.2 . 8080 }
"#;

const V36: KubeProxyVersion = KubeProxyVersion::V1_36;

#[test]
fn setup_1_36_matches_kube_proxy_1_36() {
    let empty = kube_proxy_full_of(&ServiceSet::default(), Setup::first(), V36);
    assert_eq!(empty.text, setup_1_36());
    assert_eq!(empty.rules, FIXED_RULES_1_36);
    assert_eq!(empty.text.matches("add rule ").count(), FIXED_RULES_1_36);
    assert!(!empty.text.contains("mark-for-masquerade"));
}

#[test]
fn full_sync_1_36_has_no_endpoint_chains() {
    let set = ServiceSet::generate(1, 2);
    let p = kube_proxy_full_of(&set, Setup::first(), V36);
    let want = format!(
        "{}{}",
        setup_1_36(),
        with_names(ONE_SERVICE_1_36, &set.services[0])
    );
    assert_eq!(p.text, want);
    assert_eq!(p.rules, FIXED_RULES_1_36 + 1);
    assert_eq!(p.rules, expected_rules(&set, V36));
    // nodeport-ips, cluster-ips, service-ips, two hairpin tuples.
    assert_eq!(p.elements, 1 + expected_elements(&set, V36));
    assert_eq!(expected_elements(&set, V36), 4);
    assert!(!p.text.contains("chain ip kube-proxy endpoint-"));
}

#[test]
fn the_floor_writes_1_36s_statements_too() {
    let set = ServiceSet::generate(20, 3);
    let kp = kube_proxy_full_of(&set, Setup::first(), V36);
    let [prepare, publish] = render_floor_full(&set, Setup::first(), V36);
    assert_eq!(prepare.rules + publish.rules, kp.rules);
    assert_eq!(prepare.elements + publish.elements, kp.elements);
    assert_eq!(chains_of_set(&set, V36).len(), 20);
    // An endpoint change rewrites the service chain and swaps hairpin tuples; no chain
    // goes stale.
    let mut new = set.clone();
    let mut svc = new.get(4).unwrap().clone();
    svc.endpoints[0].ip = spare_endpoint_ip(1);
    new.upsert(svc.clone());
    let (p, stale) = render_floor_partial(&set, &new, V36);
    assert!(stale.is_empty());
    let chain = nft_service_chain(&svc);
    assert!(p
        .text
        .contains(&format!("flush chain ip kube-proxy {chain}\n")));
    assert!(p.text.contains(&format!(
        "delete element ip kube-proxy hairpin-connections {{ {ip} . {ip} . tcp . 8080 }}",
        ip = set.get(4).unwrap().endpoints[0].ip
    )));
    assert!(p.text.contains(&format!(
        "add element ip kube-proxy hairpin-connections {{ {ip} . {ip} . tcp . 8080 }}",
        ip = spare_endpoint_ip(1)
    )));
}

#[test]
fn kube_proxy_1_36_replaces_a_changed_endpoints_hairpin_tuple() {
    let old = ServiceSet::generate(2, 2);
    let mut storage = ElementStorage::default();
    let full = KubeProxySync {
        release: V36,
        setup: Some(Setup::first()),
        old: None,
        new: &old,
        listing: &Listing::default(),
    };
    render_kube_proxy(&full, &mut storage);
    assert_eq!(storage.len(), 2 * 2 + 2 * 2);
    let mut new = old.clone();
    let mut svc = new.get(1).unwrap().clone();
    let was = svc.endpoints[1].ip;
    svc.endpoints[1].ip = spare_endpoint_ip(0);
    new.upsert(svc);
    let partial = KubeProxySync {
        release: V36,
        setup: None,
        old: Some(&old),
        new: &new,
        listing: &Listing::default(),
    };
    let tx = render_kube_proxy(&partial, &mut storage);
    let text = tx.payload.text;
    assert!(
        text.ends_with(&format!(
            "delete element ip kube-proxy hairpin-connections {{ {was} . {was} . tcp . 8080 }}\n"
        )),
        "{text}"
    );
    assert_eq!(text.matches("add rule ").count(), 1, "{text}");
    assert_eq!(storage.len(), 8);
}

#[test]
fn setup_matches_kube_proxy() {
    let empty = kube_proxy_full(&ServiceSet::default());
    assert_eq!(empty.text, SETUP);
    assert_eq!(empty.rules, FIXED_RULES);
    assert_eq!(empty.text.matches("add rule ").count(), FIXED_RULES);
    // The node IP in nodeport-ips.
    assert_eq!(empty.elements, 1);
}

/// The base-chain lines of a first setup that later full syncs leave out.
fn first_only_lines() -> String {
    BASE_CHAINS
        .iter()
        .map(|(name, ..)| {
            format!("add chain ip kube-proxy {name}\ndelete chain ip kube-proxy {name}\n")
        })
        .collect()
}

#[test]
fn later_setups_skip_the_one_off_base_chain_delete() {
    let set = ServiceSet::default();
    let later = Setup {
        first: false,
        ..Setup::first()
    };
    let text = kube_proxy_full_with(&set, later).text;
    assert_eq!(text, SETUP.replace(&first_only_lines(), ""));
}

#[test]
fn nodeport_addresses_all_deletes_the_set_and_matches_local_addresses() {
    let setup = Setup {
        first: true,
        node_ports: NodePortAddresses::All,
    };
    let p = kube_proxy_full_with(&ServiceSet::default(), setup);
    let want = SETUP
        .replace(
            "flush set ip kube-proxy nodeport-ips\nadd element ip kube-proxy nodeport-ips { 10.255.0.1 }\n",
            "delete set ip kube-proxy nodeport-ips\n",
        )
        .replace(
            "nodeport-endpoints-check ip daddr @nodeport-ips meta",
            "nodeport-endpoints-check ip daddr != 127.0.0.0/8 meta",
        )
        .replace(
            "services ip daddr @nodeport-ips meta",
            "services fib daddr type local ip daddr != 127.0.0.0/8 meta",
        );
    assert_eq!(p.text, want);
    assert_eq!((p.rules, p.elements), (FIXED_RULES, 0));
    let other = Setup {
        first: true,
        node_ports: NodePortAddresses::Primary(std::net::Ipv4Addr::new(192, 0, 2, 7)),
    };
    let text = kube_proxy_full_with(&ServiceSet::default(), other).text;
    assert!(text.contains("add element ip kube-proxy nodeport-ips { 192.0.2.7 }\n"));
}

#[test]
fn full_sync_in_kube_proxy_order_matches_knftables_text() {
    let set = ServiceSet::generate(1, 2);
    let p = kube_proxy_full(&set);
    let want = format!(
        "{SETUP}{}",
        with_names(ONE_SERVICE_KUBE_PROXY_ORDER, &set.services[0])
    );
    assert_eq!(p.text, want);
    assert_eq!(p.rules, FIXED_RULES + 6);
    assert_eq!(p.elements, 3);
}

#[test]
fn numgen_vmap_lists_every_endpoint() {
    let set = ServiceSet::generate(1, 10);
    let text = kube_proxy_full(&set).text;
    let line = text.lines().find(|l| l.contains("numgen")).unwrap();
    assert!(line.contains("numgen random mod 10 vmap { 0 : goto endpoint-"));
    assert!(line.contains(" , 9 : goto endpoint-"));
    assert!(line.ends_with("__10.128.0.10/8080 }"));
}

#[test]
fn counts_follow_two_e_plus_two() {
    let set = ServiceSet::generate(50, 4);
    let p = kube_proxy_full(&set);
    assert_eq!(p.rules, FIXED_RULES + 50 * (2 + 2 * 4));
    assert_eq!(p.rules, p.text.matches("add rule ").count());
    assert_eq!(p.elements, 101);
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

/// kube-proxy's state after a full sync of `set`: its element storage.
fn storage_after_full(set: &ServiceSet) -> ElementStorage {
    let mut storage = ElementStorage::default();
    render_kube_proxy(
        &KubeProxySync {
            release: V35,
            setup: Some(Setup::first()),
            old: None,
            new: set,
            listing: &Listing::default(),
        },
        &mut storage,
    );
    storage
}

/// What kube-proxy's listing shows after programming `set` (its chains, by name).
fn listing_of(set: &ServiceSet) -> Listing {
    Listing {
        chains: chains_of_set(set, V35).into_iter().collect(),
        sets: vec!["cluster-ips".into(), "nodeport-ips".into()],
    }
}

fn kube_proxy_partial(old: &ServiceSet, new: &ServiceSet) -> KubeProxyTx {
    let mut storage = storage_after_full(old);
    render_kube_proxy(
        &KubeProxySync {
            release: V35,
            setup: None,
            old: Some(old),
            new,
            listing: &listing_of(old),
        },
        &mut storage,
    )
}

#[test]
fn kube_proxy_full_sync_fills_the_storage_it_diffs_against() {
    let set = ServiceSet::generate(3, 2);
    let storage = storage_after_full(&set);
    assert_eq!(storage.len(), 6);
    // The same set again, partially: nothing to write but an empty transaction.
    let tx = kube_proxy_partial(&set, &set);
    assert_eq!(tx.payload.text, "");
    assert!(tx.stale.is_empty());
    assert_eq!(tx.live.len(), 9);
}

#[test]
fn kube_proxy_partial_add_writes_the_new_service_in_call_order() {
    let old = ServiceSet::generate(3, 2);
    let mut new = old.clone();
    new.upsert(service(3, 2));
    let want = with_names(
        &ONE_SERVICE_KUBE_PROXY_ORDER
            .replace("10.96.0.1", "10.96.0.4")
            .replace("10.128.0.1", "10.128.0.7")
            .replace("10.128.0.2", "10.128.0.8"),
        &new.services[3],
    );
    assert_eq!(kube_proxy_partial(&old, &new).payload.text, want);
}

#[test]
fn kube_proxy_partial_remove_flushes_listed_chains_and_deletes_leftover_elements() {
    let old = ServiceSet::generate(3, 2);
    let mut new = old.clone();
    let gone = new.remove(1).unwrap();
    let tx = kube_proxy_partial(&old, &new);
    // Listed chains in name order (kube-proxy: Go map order), leftovers by container;
    // no `delete chain`: that is a later, separate transaction.
    let mut flushed: Vec<String> = chains_of(&gone, V35);
    flushed.sort();
    let want: String = flushed
        .iter()
        .map(|c| format!("flush chain ip kube-proxy {c}\n"))
        .chain([
            "delete element ip kube-proxy cluster-ips { 10.96.0.2 }\n".to_string(),
            "delete element ip kube-proxy service-ips { 10.96.0.2 . tcp . 80 }\n".to_string(),
        ])
        .collect();
    assert_eq!(tx.payload.text, want);
    assert_eq!(tx.stale, flushed);
    assert_eq!(
        render_delete_chains(&tx.stale),
        flushed
            .iter()
            .map(|c| format!("delete chain ip kube-proxy {c}\n"))
            .collect::<String>()
    );
}

#[test]
fn kube_proxy_flushes_only_what_the_listing_shows() {
    let old = ServiceSet::generate(2, 2);
    let mut new = old.clone();
    new.remove(0);
    let mut storage = storage_after_full(&old);
    let tx = render_kube_proxy(
        &KubeProxySync {
            release: V35,
            setup: None,
            old: Some(&old),
            new: &new,
            listing: &Listing::default(),
        },
        &mut storage,
    );
    assert!(!tx.payload.text.contains("flush chain"));
    assert!(tx.stale.is_empty());
    assert_eq!(tx.payload.text.matches("delete element").count(), 2);
    // Stale affinity sets are deleted at once; other sets are left alone.
    let listing = Listing {
        chains: vec!["services".into()],
        sets: vec![
            "cluster-ips".into(),
            "affinity-X-ns/svc/tcp/p__1.2.3.4/80".into(),
        ],
    };
    let tx = render_kube_proxy(
        &KubeProxySync {
            release: V35,
            setup: None,
            old: Some(&new),
            new: &new,
            listing: &listing,
        },
        &mut storage,
    );
    assert_eq!(
        tx.payload.text,
        "delete set ip kube-proxy affinity-X-ns/svc/tcp/p__1.2.3.4/80\n"
    );
}

#[test]
fn kube_proxy_partial_endpoint_update_rewrites_the_service_and_flushes_the_dropped_chain() {
    let old = ServiceSet::generate(2, 2);
    let mut new = old.clone();
    let mut svc = new.services[1].clone();
    let dropped = svc.endpoints[0];
    svc.endpoints[0] = Endpoint {
        ip: spare_endpoint_ip(0),
        port: ENDPOINT_PORT,
    };
    new.upsert(svc.clone());
    let tx = kube_proxy_partial(&old, &new);
    let stale = nft_endpoint_chain(&svc, &dropped);
    let mut want = with_names(
        &ONE_SERVICE_KUBE_PROXY_ORDER
            .replace("10.96.0.1", "10.96.0.2")
            .replace("10.128.0.1", &spare_endpoint_ip(0).to_string())
            .replace("10.128.0.2", "10.128.0.4"),
        &svc,
    )
    .lines()
    .filter(|l| !l.starts_with("add element"))
    .map(|l| format!("{l}\n"))
    .collect::<String>();
    want.push_str(&format!("flush chain ip kube-proxy {stale}\n"));
    assert_eq!(tx.payload.text, want);
    assert_eq!(tx.stale, vec![stale]);
}

#[test]
fn kube_proxy_partial_losing_all_endpoints_moves_the_service_to_no_endpoint_services() {
    let old = ServiceSet::generate(1, 1);
    let mut new = old.clone();
    new.upsert(service(0, 0));
    let tx = kube_proxy_partial(&old, &new);
    let chains = chains_of(&old.services[0], V35);
    let mut flushed = chains.clone();
    flushed.sort();
    let mut want = String::from(
        "add element ip kube-proxy no-endpoint-services { 10.96.0.1 . tcp . 80 comment \"kpbench/svc-0:http\" : goto reject-chain }\n",
    );
    for c in &flushed {
        want.push_str(&format!("flush chain ip kube-proxy {c}\n"));
    }
    want.push_str("delete element ip kube-proxy service-ips { 10.96.0.1 . tcp . 80 }\n");
    assert_eq!(tx.payload.text, want);
}

/// Two services (two endpoints, none) as the floor's full sync writes them.
const FLOOR_PREPARE_SERVICES: &str = r#"add chain ip kube-proxy EP0
flush chain ip kube-proxy EP0
add chain ip kube-proxy EP1
flush chain ip kube-proxy EP1
add chain ip kube-proxy SVC
flush chain ip kube-proxy SVC
add rule ip kube-proxy EP0 ip saddr 10.128.0.1 jump mark-for-masquerade
add rule ip kube-proxy EP0 meta l4proto tcp dnat to 10.128.0.1:8080
add rule ip kube-proxy EP1 ip saddr 10.128.0.2 jump mark-for-masquerade
add rule ip kube-proxy EP1 meta l4proto tcp dnat to 10.128.0.2:8080
"#;

const FLOOR_PUBLISH: &str = r#"add rule ip kube-proxy SVC ip daddr 10.96.0.1 tcp dport 80 ip saddr != 10.128.0.0/10 jump mark-for-masquerade
add rule ip kube-proxy SVC numgen random mod 2 vmap { 0 : goto EP0 , 1 : goto EP1 }
add element ip kube-proxy cluster-ips { 10.96.0.1, 10.96.0.2 }
add element ip kube-proxy service-ips { 10.96.0.1 . tcp . 80 : goto SVC }
add element ip kube-proxy no-endpoint-services { 10.96.0.2 . tcp . 80 comment "kpbench/svc-1:http" : goto reject-chain }
"#;

#[test]
fn floor_full_sync_prepares_chains_then_publishes_dispatch_and_elements() {
    let mut set = ServiceSet::generate(1, 2);
    set.upsert(service(1, 0));
    let [prepare, publish] = render_floor_full(&set, Setup::first(), V35);
    assert_eq!(
        prepare.text,
        format!(
            "{SETUP}{}",
            with_names(FLOOR_PREPARE_SERVICES, &set.services[0])
        )
    );
    assert_eq!(publish.text, with_names(FLOOR_PUBLISH, &set.services[0]));
    assert_eq!(prepare.rules + publish.rules, expected_rules(&set, V35));
    assert_eq!(
        prepare.elements + publish.elements,
        expected_elements(&set, V35) + 1
    );
    // The same statements as kube-proxy's transaction.
    let kp = kube_proxy_full(&set);
    let floor = format!("{}{}", prepare.text, publish.text);
    let non_elem = |t: &str| -> Vec<String> {
        sorted_lines(t)
            .into_iter()
            .filter(|l| !l.starts_with("add element"))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(non_elem(&kp.text), non_elem(&floor));
}

#[test]
fn floor_partial_batches_element_diffs_and_returns_chains_to_delete() {
    let old = ServiceSet::generate(3, 2);
    // Add one service, remove one, drop another's endpoints.
    let mut new = old.clone();
    new.upsert(service(3, 2));
    let gone = new.remove(1).unwrap();
    new.upsert(service(2, 0));
    let (p, stale) = render_floor_partial(&old, &new, V35);
    let added = &new.services[2];
    let mut want = with_names(
        &FLOOR_PREPARE_SERVICES
            .replace("10.128.0.1", "10.128.0.7")
            .replace("10.128.0.2", "10.128.0.8"),
        added,
    );
    want.push_str(&with_names(
        &FLOOR_PUBLISH
            .lines()
            .take(2)
            .map(|l| format!("{l}\n"))
            .collect::<String>()
            .replace("10.96.0.1", "10.96.0.4"),
        added,
    ));
    want.push_str("delete element ip kube-proxy cluster-ips { 10.96.0.2 }\n");
    want.push_str(
        "delete element ip kube-proxy service-ips { 10.96.0.2 . tcp . 80, 10.96.0.3 . tcp . 80 }\n",
    );
    want.push_str("add element ip kube-proxy cluster-ips { 10.96.0.4 }\n");
    want.push_str(&format!(
        "add element ip kube-proxy service-ips {{ 10.96.0.4 . tcp . 80 : goto {} }}\n",
        nft_service_chain(added)
    ));
    want.push_str("add element ip kube-proxy no-endpoint-services { 10.96.0.3 . tcp . 80 comment \"kpbench/svc-2:http\" : goto reject-chain }\n");
    let mut unused: Vec<String> = chains_of(&gone, V35)
        .into_iter()
        .chain(chains_of(&old.services[2], V35))
        .collect();
    unused.sort();
    for c in &unused {
        want.push_str(&format!("flush chain ip kube-proxy {c}\n"));
    }
    assert_eq!(p.text, want);
    assert_eq!(stale, unused);
    assert_eq!(render_floor_partial(&new, &new, V35).0.text, "");
}

mod controllers {
    use std::time::Duration;

    use super::*;
    use crate::floor::backend::Backend;
    use crate::floor::sync::record::{Call, Recorder};
    use crate::floor::sync::standin::StandIn;
    use crate::floor::sync::{Controller, KubeProxyVersion};

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    fn recorder(nft: &NftStandIn) -> Recorder {
        Recorder::new(vec![Box::new(nft.clone())])
    }

    /// The stdin of every `nft -f -` the recorder saw.
    fn transactions(r: &Recorder) -> Vec<String> {
        r.calls
            .iter()
            .filter_map(|c| match c {
                Call::Tool {
                    line,
                    stdin: Some(s),
                } if line == "nft -f -" => Some(s.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn the_stand_in_refuses_what_a_kernel_refuses_and_applies_all_or_nothing() {
        let mut nft = NftStandIn::new();
        let mut run = |text: &str| {
            nft.tool("nft", &["-f".into(), "-".into()], Some(text.as_bytes()))
                .unwrap()
        };
        assert_eq!(run("add chain ip kube-proxy a").status, 1, "no table yet");
        assert_eq!(
            run("add table ip kube-proxy\nadd chain ip kube-proxy a\nadd chain ip kube-proxy b/x\nadd rule ip kube-proxy a jump b/x")
                .status,
            0
        );
        let busy = run("delete chain ip kube-proxy b/x");
        assert!(
            busy.stderr.contains("Device or resource busy"),
            "{}",
            busy.stderr
        );
        let busy = run("delete chain ip kube-proxy a");
        assert!(busy.stderr.contains("Device or resource busy"), "has rules");
        // A failing statement undoes the whole transaction.
        let missing = run("flush chain ip kube-proxy a\ndelete chain ip kube-proxy nope");
        assert!(missing.stderr.contains("No such file or directory"));
        assert_eq!(
            run("flush chain ip kube-proxy a\ndelete chain ip kube-proxy b/x").status,
            0
        );
        assert_eq!(run("add map ip kube-proxy m { type ipv4_addr : verdict ; }\nadd element ip kube-proxy m { 1.2.3.4 : goto a }").status, 0);
        let exists = run("add element ip kube-proxy m { 1.2.3.4 : drop }");
        assert!(exists.stderr.contains("File exists"));
        assert_eq!(
            run("add element ip kube-proxy m { 1.2.3.4 : goto a }").status,
            0
        );
        assert_eq!(
            run("add element ip kube-proxy m { 1.2.3.5 : goto gone }").status,
            1
        );
    }

    #[test]
    fn the_stand_in_lists_like_nft() {
        let mut nft = NftStandIn::new();
        let list = |nft: &mut NftStandIn, args: &[&str]| {
            let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
            nft.tool("nft", &args, None).unwrap()
        };
        let fresh = list(
            &mut nft,
            &["--json", "--terse", "list", "table", "ip", "kube-proxy"],
        );
        assert_eq!(fresh.status, 1);
        assert!(fresh.stderr.starts_with("Error: No such file or directory"));
        let chains = list(&mut nft, &["--json", "list", "chains", "ip"]);
        assert_eq!(chains.status, 0);
        assert_eq!(
            listed_names(&chains.stdout, "chain").unwrap(),
            Vec::<String>::new()
        );
        let payload = kube_proxy_full(&ServiceSet::generate(1, 1)).text;
        let out = nft.tool("nft", &["-f".into(), "-".into()], Some(payload.as_bytes()));
        assert_eq!(out.unwrap().status, 0, "the full sync applies");
        let chains = list(&mut nft, &["--json", "list", "chains", "ip"]);
        let names = listed_names(&chains.stdout, "chain").unwrap();
        assert_eq!(
            names.len(),
            8 + 8 + 2,
            "base, fixed, service and endpoint chains"
        );
        let sets = list(&mut nft, &["--json", "list", "sets", "ip"]);
        assert_eq!(
            listed_names(&sets.stdout, "set").unwrap(),
            ["cluster-ips", "nodeport-ips"]
        );
        let table = list(
            &mut nft,
            &["--json", "--terse", "list", "table", "ip", "kube-proxy"],
        );
        assert_eq!(listed_names(&table.stdout, "chain").unwrap(), names);
        assert_eq!(
            listed_names(&table.stdout, "set").unwrap(),
            ["cluster-ips", "nodeport-ips"]
        );
        assert!(
            !table.stdout.contains("\"elem\""),
            "terse lists no elements"
        );
    }

    #[test]
    fn listed_names_keep_to_kube_proxys_table() {
        let json = r#"{"nftables": [{"metainfo": {"json_schema_version": 1}},
            {"chain": {"family": "ip", "table": "kube-proxy", "name": "service-X-a/b/tcp/p", "handle": 1}},
            {"chain": {"family": "ip", "table": "other", "name": "foo/bar", "handle": 1}},
            {"rule": {"family": "ip", "table": "kube-proxy", "chain": "x", "handle": 3}}]}"#;
        assert_eq!(
            listed_names(json, "chain").unwrap(),
            ["service-X-a/b/tcp/p"]
        );
        assert!(listed_names("not json", "chain").is_err());
    }

    #[test]
    fn kube_proxy_deletes_a_stale_chain_one_second_after_the_last_sync_that_flushed_it() {
        let nft = NftStandIn::new();
        let mut r = recorder(&nft);
        let mut ctl =
            KubeProxyController::new(KubeProxyVersion::V1_36, NodePortAddresses::default());
        let old = ServiceSet::generate(3, 2);
        ctl.sync(&mut r, None, &old, secs(0.0)).unwrap();
        let mut new = old.clone();
        let gone = new.remove(1).unwrap();
        let gone_chains = chains_of(&gone, KubeProxyVersion::V1_36);

        r.clear();
        ctl.sync(&mut r, Some(&old), &new, secs(2.0)).unwrap();
        assert_eq!(
            r.lines(),
            [
                "$ nft --json --terse list table ip kube-proxy",
                "$ nft -f -"
            ]
        );
        assert_eq!(ctl.stale_chains().len(), 1, "1.36: the service chain only");
        assert!(ctl.stale_chains().values().all(|t| *t == secs(2.0)));
        for c in &gone_chains {
            assert!(
                nft.chains().contains(c) && nft.rules(c).is_empty(),
                "flushed, not deleted"
            );
        }

        // Half a second later: not yet; listed again, flushed again, delay restarts.
        r.clear();
        ctl.sync(&mut r, Some(&new), &new, secs(2.5)).unwrap();
        assert_eq!(r.lines().len(), 2);
        let tx = &transactions(&r)[0];
        assert_eq!(tx.matches("flush chain").count(), 1, "{tx}");
        assert!(ctl.stale_chains().values().all(|t| *t == secs(2.5)));

        r.clear();
        ctl.sync(&mut r, Some(&new), &new, secs(3.4)).unwrap();
        assert_eq!(r.lines().len(), 2, "0.9 s after the last flush");

        // 1 s after the last flush: the delete transaction comes first.
        r.clear();
        ctl.sync(&mut r, Some(&new), &new, secs(4.4)).unwrap();
        assert_eq!(
            r.lines(),
            [
                "$ nft -f -",
                "$ nft --json --terse list table ip kube-proxy",
                "$ nft -f -"
            ]
        );
        let mut sorted = gone_chains.clone();
        sorted.sort();
        assert_eq!(transactions(&r)[0], render_delete_chains(&sorted));
        assert_eq!(
            transactions(&r)[1],
            "",
            "nothing changed: an empty transaction"
        );
        assert!(ctl.stale_chains().is_empty());
        for c in &gone_chains {
            assert!(!nft.chains().contains(c));
        }
    }

    #[test]
    fn kube_proxy_settle_runs_the_pending_delete_and_nothing_else() {
        let nft = NftStandIn::new();
        let mut r = recorder(&nft);
        let mut ctl =
            KubeProxyController::new(KubeProxyVersion::V1_35, NodePortAddresses::default());
        let old = ServiceSet::generate(2, 2);
        ctl.sync(&mut r, None, &old, secs(0.0)).unwrap();
        r.clear();
        ctl.settle(&mut r, &old, secs(0.0)).unwrap();
        assert!(r.calls.is_empty(), "nothing pending");
        let mut new = old.clone();
        new.remove(0);
        ctl.sync(&mut r, Some(&old), &new, secs(1.0)).unwrap();
        r.clear();
        ctl.settle(&mut r, &new, secs(1.0)).unwrap();
        assert_eq!(r.lines(), ["$ nft -f -"]);
        assert_eq!(transactions(&r)[0].matches("delete chain").count(), 3);
        assert_eq!(nft.chains().iter().filter(|c| c.contains('/')).count(), 3);
    }

    #[test]
    fn kube_proxy_syncs_fully_again_after_a_failed_transaction() {
        let nft = NftStandIn::new();
        let mut r = recorder(&nft);
        let mut ctl =
            KubeProxyController::new(KubeProxyVersion::V1_36, NodePortAddresses::default());
        let set = ServiceSet::generate(2, 1);
        ctl.sync(&mut r, None, &set, secs(0.0)).unwrap();
        let first = transactions(&r).remove(0);
        assert!(first.contains("delete chain ip kube-proxy filter-input\n"));
        // The table goes behind kube-proxy's back: its next partial sync fails...
        let mut raw = nft.clone();
        let out = raw.tool(
            "nft",
            &["-f".into(), "-".into()],
            Some(b"delete table ip kube-proxy\n"),
        );
        assert_eq!(out.unwrap().status, 0);
        let mut next = set.clone();
        next.upsert(service(1, 3));
        r.clear();
        let err = ctl.sync(&mut r, Some(&set), &next, secs(1.0)).unwrap_err();
        assert!(
            err.to_string().contains("No such file or directory"),
            "{err}"
        );
        // ...and the one after is full, without the one-off base-chain delete.
        r.clear();
        ctl.sync(&mut r, Some(&next), &next, secs(2.0)).unwrap();
        let tx = transactions(&r).remove(0);
        assert!(tx.starts_with("add table ip kube-proxy"), "{tx}");
        assert!(!tx.contains("delete chain ip kube-proxy filter-input\n"));
        assert!(nft.has_table());
    }

    #[test]
    fn kube_proxy_syncs_fully_once_an_hour() {
        let nft = NftStandIn::new();
        let mut r = recorder(&nft);
        let mut ctl =
            KubeProxyController::new(KubeProxyVersion::V1_36, NodePortAddresses::default());
        let set = ServiceSet::generate(2, 1);
        ctl.sync(&mut r, None, &set, secs(0.0)).unwrap();
        r.clear();
        ctl.sync(&mut r, Some(&set), &set, secs(3600.0)).unwrap();
        assert_eq!(transactions(&r)[0], "");
        r.clear();
        ctl.sync(&mut r, Some(&set), &set, secs(3600.5)).unwrap();
        assert!(transactions(&r)[0].starts_with("add table"));
    }

    /// Applies full, add, remove, update and a flip to no endpoints with `ctl`, then
    /// settles; returns the stand-in's objects, which must be those of a fresh floor
    /// full sync of `release`'s rules.
    fn objects_after_sequence(mut ctl: Box<dyn Controller>, release: KubeProxyVersion) -> String {
        let nft = NftStandIn::new();
        let mut r = recorder(&nft);
        let mut state = ServiceSet::generate(4, 2);
        state.upsert(service(4, 0));
        ctl.sync(&mut r, None, &state, secs(0.0)).unwrap();
        let mut steps: Vec<ServiceSet> = Vec::new();
        let mut next = state.clone();
        next.upsert(service(10, 3));
        steps.push(next.clone());
        next.remove(1);
        steps.push(next.clone());
        let mut svc = next.get(2).unwrap().clone();
        svc.endpoints[0] = Endpoint {
            ip: spare_endpoint_ip(3),
            port: ENDPOINT_PORT,
        };
        next.upsert(svc);
        steps.push(next.clone());
        next.upsert(service(3, 0));
        next.upsert(service(4, 2));
        steps.push(next.clone());
        for (i, s) in steps.iter().enumerate() {
            ctl.sync(&mut r, Some(&state), s, secs(1.0 + i as f64 * 0.5))
                .unwrap();
            state = s.clone();
        }
        ctl.settle(&mut r, &state, secs(4.0)).unwrap();
        // The same as a fresh full sync of the end state.
        let fresh = NftStandIn::new();
        let mut rf = recorder(&fresh);
        let mut ctl = FloorController::new(NodePortAddresses::default(), release);
        ctl.sync(&mut rf, None, &state, Duration::ZERO).unwrap();
        assert_eq!(nft.dump(), fresh.dump());
        nft.dump()
    }

    #[test]
    fn both_profiles_leave_the_objects_of_a_fresh_full_sync() {
        for v in KubeProxyVersion::ALL {
            let backend = NftablesBackend::new().for_release(v);
            let floor =
                objects_after_sequence(backend.controller(crate::floor::sync::Profile::Floor), v);
            let kp = objects_after_sequence(
                backend.controller(crate::floor::sync::Profile::KubeProxy(v)),
                v,
            );
            assert_eq!(kp, floor, "kube-proxy {v}");
            assert!(floor.contains("elem 10.255.0.1"));
            assert_eq!(
                floor.contains("hairpin-connections"),
                v == KubeProxyVersion::V1_36,
                "{v}"
            );
        }
    }

    #[test]
    fn the_floor_retries_a_refused_delete() {
        // A stand-in for an old kernel: refuses `delete chain` once.
        struct Stubborn(NftStandIn, bool);
        impl StandIn for Stubborn {
            fn tool(
                &mut self,
                p: &str,
                a: &[String],
                s: Option<&[u8]>,
            ) -> Option<crate::floor::exec::Output> {
                let text = s.map(String::from_utf8_lossy).unwrap_or_default();
                if !self.1 && text.starts_with("delete chain") {
                    self.1 = true;
                    return Some(crate::floor::sync::standin::failed(
                        1,
                        "Error: Could not process rule: Device or resource busy",
                    ));
                }
                self.0.tool(p, a, s)
            }
        }
        let nft = NftStandIn::new();
        let mut r = Recorder::new(vec![Box::new(Stubborn(nft.clone(), false))]);
        let mut ctl = FloorController::new(NodePortAddresses::default(), V35);
        let old = ServiceSet::generate(2, 2);
        ctl.sync(&mut r, None, &old, secs(0.0)).unwrap();
        let mut new = old.clone();
        new.remove(0);
        ctl.sync(&mut r, Some(&old), &new, secs(1.0)).unwrap();
        assert_eq!(
            nft.chains().iter().filter(|c| c.contains('/')).count(),
            6,
            "kept"
        );
        r.clear();
        ctl.settle(&mut r, &new, secs(1.0)).unwrap();
        assert_eq!(r.lines(), ["$ nft -f -"]);
        assert_eq!(nft.chains().iter().filter(|c| c.contains('/')).count(), 3);
    }
}
