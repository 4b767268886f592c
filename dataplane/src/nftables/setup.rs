//! The fixed part of a full sync: kube-proxy's `setupNFTables` for IPv4 with
//! `--nodeport-addresses` matching all addresses, a cluster CIDR local-traffic detector
//! and a known service CIDR. Text as knftables writes it (numeric priorities, see
//! [`BASE_CHAINS`]).

use super::Tx;
use crate::model::service_cidr;

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

/// Writes `setupNFTables` as on kube-proxy's first sync (when it also does the one-off
/// add+delete of every base chain so that changed base-chain properties can apply).
pub(super) fn write_setup(tx: &mut Tx) {
    tx.line(format_args!(
        "add table ip kube-proxy {{ comment \"rules for kube-proxy\" ; }}"
    ));
    for (name, ..) in BASE_CHAINS {
        tx.line(format_args!("add chain ip kube-proxy {name}"));
        tx.line(format_args!("delete chain ip kube-proxy {name}"));
    }
    for (name, kind, hook, prio) in BASE_CHAINS {
        tx.line(format_args!(
            "add chain ip kube-proxy {name} {{ type {kind} hook {hook} priority {prio} ; }}"
        ));
        tx.line(format_args!("flush chain ip kube-proxy {name}"));
    }
    let mut made: Vec<&str> = Vec::new();
    for (dst, src, extra) in JUMP_CHAINS {
        if !made.contains(&dst) {
            tx.chain(dst);
            made.push(dst);
        }
        tx.rule(src, format_args!("{extra}jump {dst}"));
    }
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
    // nodePortAddresses matches all: kube-proxy adds and deletes the set so that it is
    // gone whether or not it existed.
    tx.line(format_args!(
        "add set ip kube-proxy nodeport-ips {{ type ipv4_addr ; comment \"IPs that accept NodePort traffic\" ; }}"
    ));
    tx.line(format_args!("delete set ip kube-proxy nodeport-ips"));
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
    tx.rule(
        "nodeport-endpoints-check",
        format_args!("ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @no-endpoint-nodeports"),
    );
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
    tx.rule(
        "services",
        format_args!("ip daddr . meta l4proto . th dport vmap @service-ips"),
    );
    tx.rule(
        "services",
        format_args!(
            "fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @service-nodeports"
        ),
    );
    // nftElementStorage.reset for every container.
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
}
