//! The fixed part of a full sync: kube-proxy's `setupNFTables` for IPv4 with
//! `--nodeport-addresses` as configured ([`NodePortAddresses`], by default `primary`), a
//! cluster CIDR local-traffic detector and a known service CIDR. Text as knftables
//! writes it (numeric priorities, see [`BASE_CHAINS`]).

use std::net::Ipv4Addr;

use super::{Tx, HAIRPIN_SET};
use crate::floor::model::{pod_cidr, service_cidr};
use crate::floor::sync::KubeProxyVersion;

/// The node's address kpbench's topology gives the node namespace on its client link
/// (harness `sandbox::topology::NODE_CLIENT_ADDR`): the node IP kube-proxy's default
/// `--nodeport-addresses primary` puts in `nodeport-ips`. The dataplane library does not
/// see the topology, so backends take it as a parameter with this default.
pub const DEFAULT_NODE_IP: Ipv4Addr = Ipv4Addr::new(10, 255, 0, 1);

/// kube-proxy's `--nodeport-addresses`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NodePortAddresses {
    /// Every local address (`MatchAll`, e.g. `0.0.0.0/0`): no `nodeport-ips` set (added
    /// and deleted), NodePorts matched by `fib daddr type local`.
    All,
    /// `primary`, the default since 1.31: the node's primary IP is the only element of
    /// `nodeport-ips`, and NodePorts match `ip daddr @nodeport-ips`.
    Primary(Ipv4Addr),
}

impl Default for NodePortAddresses {
    fn default() -> Self {
        NodePortAddresses::Primary(DEFAULT_NODE_IP)
    }
}

impl NodePortAddresses {
    /// The elements of `nodeport-ips` (none when the set does not exist).
    pub fn ips(self) -> Vec<Ipv4Addr> {
        match self {
            NodePortAddresses::All => Vec::new(),
            NodePortAddresses::Primary(ip) => vec![ip],
        }
    }
}

/// How `setupNFTables` runs in one full sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Setup {
    /// Whether the one-off `add` + `delete` of every base chain is still due (kube-proxy's
    /// `!proxier.flushed`: its first full sync only).
    pub first: bool,
    pub node_ports: NodePortAddresses,
}

impl Setup {
    /// The setup of kube-proxy's first sync with the default `--nodeport-addresses`.
    pub fn first() -> Self {
        Setup {
            first: true,
            node_ports: NodePortAddresses::default(),
        }
    }
}

/// kube-proxy's masquerade mark: `fmt.Sprintf("%#08x", 1<<14)`. Go pads the digits,
/// not the whole field, to 8, hence eight hex digits after `0x`.
pub const MASQ_MARK: &str = "0x00004000";

/// kube-proxy's base chains: (name, type, hook, priority). knftables writes priorities
/// as numbers (`ParsePriority`): `dstnat - 10` is -110, `dstnat + 10` is -90, `srcnat` is
/// 100. nft 1.0.6 rejects the named form `dstnat` in the output hook ("invalid priority
/// expression value in this context"), which is why knftables converts them.
pub const BASE_CHAINS: [(&str, &str, &str, i32); 8] = [
    ("filter-prerouting", "filter", "prerouting", -110),
    ("filter-input", "filter", "input", -110),
    ("filter-forward", "filter", "forward", -110),
    ("filter-output", "filter", "output", -110),
    ("filter-output-post-dnat", "filter", "output", -90),
    ("nat-prerouting", "nat", "prerouting", -100),
    ("nat-output", "nat", "output", -100),
    ("nat-postrouting", "nat", "postrouting", 100),
];

/// kube-proxy's `nftablesJumpChains`: (destination, source, extra match).
const JUMP_CHAINS: [(&str, &str, &str); 11] = [
    ("nodeport-endpoints-check", "filter-input", "ct state new "),
    ("service-endpoints-check", "filter-input", "ct state new "),
    ("service-endpoints-check", "filter-forward", "ct state new "),
    ("service-endpoints-check", "filter-output", "ct state new "),
    ("firewall-check", "filter-prerouting", "ct state new "),
    ("firewall-check", "filter-output", "ct state new "),
    ("services", "nat-output", ""),
    ("services", "nat-prerouting", ""),
    ("masquerading", "nat-postrouting", ""),
    ("cluster-ips-check", "filter-forward", "ct state new "),
    (
        "cluster-ips-check",
        "filter-output-post-dnat",
        "ct state new ",
    ),
];

const VMAP_V4: &str = "ipv4_addr . inet_proto . inet_service : verdict";

/// Writes `setupNFTables`; on kube-proxy's first sync (`setup.first`) it also does the
/// one-off add+delete of every base chain so that changed base-chain properties can apply.
///
/// The containers are reset with `flush set|map` at the end, as the documented
/// `nftElementStorage.reset` does. Newer trees read the containers instead
/// (`readOrReset`: one `nft --json list set|map` per container); whether 1.35/1.36 have
/// that is unverified (/tmp/kube-proxy-trace.md §2.2), so kpbench models the documented
/// flush and no element listing.
///
/// `release` picks the masquerading part: 1.35's `mark-for-masquerade` chain, or 1.36's
/// inlined marking and `hairpin-connections` set ([`write_masquerading_1_36`]).
pub(super) fn write_setup(tx: &mut Tx, setup: Setup, release: KubeProxyVersion) {
    write_table_and_base_chains(tx, setup);
    write_jumps(tx);
    match release {
        KubeProxyVersion::V1_35 => write_masquerading_1_35(tx),
        KubeProxyVersion::V1_36 => write_masquerading_1_36(tx),
    }
    write_ip_checks(tx, setup);
    write_no_endpoint_maps(tx, setup);
    write_service_maps(tx, setup, release);
    write_reset(tx, release);
}

/// The table, and each base chain made (on the first sync after a one-off add and
/// delete) and flushed.
fn write_table_and_base_chains(tx: &mut Tx, setup: Setup) {
    tx.line(format_args!(
        "add table ip kube-proxy {{ comment \"rules for kube-proxy\" ; }}"
    ));
    if setup.first {
        for (name, ..) in BASE_CHAINS {
            tx.line(format_args!("add chain ip kube-proxy {name}"));
            tx.line(format_args!("delete chain ip kube-proxy {name}"));
        }
    }
    for (name, kind, hook, prio) in BASE_CHAINS {
        tx.line(format_args!(
            "add chain ip kube-proxy {name} {{ type {kind} hook {hook} priority {prio} ; }}"
        ));
        tx.line(format_args!("flush chain ip kube-proxy {name}"));
    }
}

/// The regular chains the base chains jump to.
fn write_jumps(tx: &mut Tx) {
    let mut made: Vec<&str> = Vec::new();
    for (dst, src, extra) in JUMP_CHAINS {
        if !made.contains(&dst) {
            tx.chain(dst);
            made.push(dst);
        }
        tx.rule(src, format_args!("{extra}jump {dst}"));
    }
}

/// 1.35's masquerading: a `mark-for-masquerade` chain that service and endpoint chains
/// jump to, and a `masquerading` chain that returns unmarked packets, clears the mark
/// and masquerades.
fn write_masquerading_1_35(tx: &mut Tx) {
    tx.chain("mark-for-masquerade");
    tx.rule(
        "mark-for-masquerade",
        format_args!("mark set mark or {MASQ_MARK}"),
    );
    tx.rule(
        "masquerading",
        format_args!("mark and {MASQ_MARK} == 0 return"),
    );
    tx.rule(
        "masquerading",
        format_args!("mark set mark xor {MASQ_MARK}"),
    );
    tx.rule("masquerading", format_args!("masquerade fully-random"));
}

/// 1.36's masquerading (PRs #135800 and #136499): no `mark-for-masquerade` chain and no
/// jumps to it. One `masquerading` rule masquerades marked packets and clears the mark;
/// hairpin traffic (a pod DNATed to itself) is matched by the `hairpin-connections` set
/// of (endpoint, endpoint, protocol, port) tuples instead of a rule per endpoint chain.
/// Text as the v1.36.2 table lists it (`meta mark & 0x00004000 != 0x00000000 meta mark
/// set meta mark ^ 0x00004000 masquerade fully-random`, `ct status dnat ip saddr . ip
/// daddr . meta l4proto . th dport @hairpin-connections masquerade fully-random`),
/// written in knftables' input words as 1.35's rules are.
fn write_masquerading_1_36(tx: &mut Tx) {
    tx.line(format_args!(
        "add set ip kube-proxy {HAIRPIN_SET} {{ type ipv4_addr . ipv4_addr . inet_proto . inet_service ; comment \"service hairpin connections\" ; }}"
    ));
    tx.rule(
        "masquerading",
        format_args!(
            "mark and {MASQ_MARK} != 0 mark set mark xor {MASQ_MARK} masquerade fully-random"
        ),
    );
    tx.rule(
        "masquerading",
        format_args!(
            "ct status dnat ip saddr . ip daddr . meta l4proto . th dport @{HAIRPIN_SET} masquerade fully-random"
        ),
    );
}

/// The `cluster-ips` and `nodeport-ips` sets and the checks on ClusterIPs.
fn write_ip_checks(tx: &mut Tx, setup: Setup) {
    tx.line(format_args!(
        "add set ip kube-proxy cluster-ips {{ type ipv4_addr ; comment \"Active ClusterIPs\" ; }}"
    ));
    tx.rule(
        "cluster-ips-check",
        format_args!(
            "ip daddr @cluster-ips reject comment \"Reject traffic to invalid ports of ClusterIPs\""
        ),
    );
    tx.rule(
        "cluster-ips-check",
        format_args!(
            "ip daddr {{ {} }} drop comment \"Drop traffic to unallocated ClusterIPs\"",
            service_cidr()
        ),
    );
    tx.line(format_args!(
        "add set ip kube-proxy nodeport-ips {{ type ipv4_addr ; comment \"IPs that accept NodePort traffic\" ; }}"
    ));
    match setup.node_ports {
        // MatchAll: kube-proxy adds and deletes the set so that it is gone whether or
        // not it existed.
        NodePortAddresses::All => tx.line(format_args!("delete set ip kube-proxy nodeport-ips")),
        // Otherwise flush it and add each node IP, one `add element` each.
        NodePortAddresses::Primary(ip) => {
            tx.line(format_args!("flush set ip kube-proxy nodeport-ips"));
            tx.line(format_args!(
                "add element ip kube-proxy nodeport-ips {{ {ip} }}"
            ));
            tx.elements += 1;
        }
    }
}

/// The verdict maps for services without endpoints, their reject chain and checks.
fn write_no_endpoint_maps(tx: &mut Tx, setup: Setup) {
    tx.line(format_args!(
        "add map ip kube-proxy no-endpoint-services {{ type {VMAP_V4} ; comment \"vmap to drop or reject packets to services with no endpoints\" ; }}"
    ));
    tx.line(format_args!(
        "add map ip kube-proxy no-endpoint-nodeports {{ type inet_proto . inet_service : verdict ; comment \"vmap to drop or reject packets to service nodeports with no endpoints\" ; }}"
    ));
    tx.line(format_args!(
        "add chain ip kube-proxy reject-chain {{ comment \"helper for @no-endpoint-services / @no-endpoint-nodeports\" ; }}"
    ));
    tx.line(format_args!("flush chain ip kube-proxy reject-chain"));
    tx.rule("reject-chain", format_args!("reject"));
    tx.rule(
        "service-endpoints-check",
        format_args!("ip daddr . meta l4proto . th dport vmap @no-endpoint-services"),
    );
    let nodeport_match = match setup.node_ports {
        NodePortAddresses::All => "ip daddr != 127.0.0.0/8",
        NodePortAddresses::Primary(_) => "ip daddr @nodeport-ips",
    };
    tx.rule(
        "nodeport-endpoints-check",
        format_args!("{nodeport_match} meta l4proto . th dport vmap @no-endpoint-nodeports"),
    );
}

/// The firewall and service dispatch maps and the rules that use them; 1.36 marks
/// off-cluster traffic to any ClusterIP in `services`, before the dispatch, where 1.35
/// has a rule in each service chain.
fn write_service_maps(tx: &mut Tx, setup: Setup, release: KubeProxyVersion) {
    tx.line(format_args!(
        "add map ip kube-proxy firewall-ips {{ type {VMAP_V4} ; comment \"destinations that are subject to LoadBalancerSourceRanges\" ; }}"
    ));
    tx.rule(
        "firewall-check",
        format_args!("ip daddr . meta l4proto . th dport vmap @firewall-ips"),
    );
    tx.line(format_args!(
        "add map ip kube-proxy service-ips {{ type {VMAP_V4} ; comment \"ClusterIP, ExternalIP and LoadBalancer IP traffic\" ; }}"
    ));
    tx.line(format_args!(
        "add map ip kube-proxy service-nodeports {{ type inet_proto . inet_service : verdict ; comment \"NodePort traffic\" ; }}"
    ));
    if release == KubeProxyVersion::V1_36 {
        tx.rule(
            "services",
            format_args!(
                "ip daddr @cluster-ips ip saddr != {} mark set mark or {MASQ_MARK} comment \"masquerade clusterIP traffic from outside cluster\"",
                pod_cidr()
            ),
        );
    }
    tx.rule(
        "services",
        format_args!("ip daddr . meta l4proto . th dport vmap @service-ips"),
    );
    let nodeport_dispatch = match setup.node_ports {
        NodePortAddresses::All => "fib daddr type local ip daddr != 127.0.0.0/8",
        NodePortAddresses::Primary(_) => "ip daddr @nodeport-ips",
    };
    tx.rule(
        "services",
        format_args!("{nodeport_dispatch} meta l4proto . th dport vmap @service-nodeports"),
    );
}

/// `flush set|map` of every container (`nftElementStorage.reset`), 1.36's hairpin set
/// last (its storage is declared last).
fn write_reset(tx: &mut Tx, release: KubeProxyVersion) {
    tx.line(format_args!("flush set ip kube-proxy cluster-ips"));
    for map in [
        "service-ips",
        "firewall-ips",
        "no-endpoint-services",
        "no-endpoint-nodeports",
        "service-nodeports",
    ] {
        tx.line(format_args!("flush map ip kube-proxy {map}"));
    }
    if release == KubeProxyVersion::V1_36 {
        tx.line(format_args!("flush set ip kube-proxy {HAIRPIN_SET}"));
    }
}
