//! Pure rendering of kube-proxy's IPVS mode: the change between two service sets
//! (virtual services, real servers, bound addresses, ipset entries: each service's
//! objects as [`super::ports`] gives them) and kube-proxy's iptables rules, fixed but
//! for those that match a set with entries, with the text `kpbench rules --mode ipvs`
//! prints.

use std::collections::BTreeSet;
use std::fmt::Write;
use std::net::Ipv4Addr;

use super::message::{host_port, Op, RealServer, VirtualService};
pub use super::ports::{real_server, CLUSTER_IP_SET, LOOP_BACK_SET, RENDERS};
use super::ports::{
    wanted, Wanted, EXTERNAL_IP_LOCAL_SET, EXTERNAL_IP_SET, LOAD_BALANCER_FW_SET,
    LOAD_BALANCER_LOCAL_SET, LOAD_BALANCER_SET, NODE_PORT_LOCAL_TCP_SET, NODE_PORT_LOCAL_UDP_SET,
    NODE_PORT_TCP_SET, NODE_PORT_UDP_SET, SOURCE_CIDR_SET, SOURCE_IP_SET,
};
use crate::floor::model::{pod_cidr, ServiceSet};
use crate::xtables::JumpRule;

/// What one sync changes, computed from the old and new service sets (None: from
/// empty). Unchanged services are not touched.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// New virtual services with all their real servers.
    pub new_services: Vec<(VirtualService, Vec<RealServer>)>,
    /// Virtual services to delete (the kernel drops their real servers with them).
    pub del_services: Vec<VirtualService>,
    /// Virtual services that stay whose persistence (affinity) changed: SET_SERVICE.
    pub set_services: Vec<VirtualService>,
    /// Real servers to add to services that stay.
    pub new_dests: Vec<(VirtualService, Vec<RealServer>)>,
    /// Real servers to remove from services that stay.
    pub del_dests: Vec<(VirtualService, Vec<RealServer>)>,
    /// Addresses to bind to / unbind from `kube-ipvs0`.
    pub bind: Vec<Ipv4Addr>,
    pub unbind: Vec<Ipv4Addr>,
    /// ipset entries (set, entry) to add / delete, KUBE-IPVS-IPS aside (it follows
    /// `bind` and `unbind`).
    pub ipset_add: Vec<(&'static str, String)>,
    pub ipset_del: Vec<(&'static str, String)>,
    /// KUBE-IPVS-OUT-FILTER rules (source ranges without the node IP) that come / go.
    pub drops_add: Vec<String>,
    pub drops_del: Vec<String>,
}

impl Changes {
    /// The change from `old` to `new` on a node whose node-port addresses are
    /// `node_ips`.
    pub fn compute(
        old: Option<&ServiceSet>,
        new: &ServiceSet,
        scheduler: &str,
        node_ips: &[Ipv4Addr],
    ) -> Self {
        let mut c = Changes::default();
        let empty = ServiceSet::default();
        let old = old.unwrap_or(&empty);
        let want = |svc| wanted(svc, scheduler, node_ips);
        for svc in &old.services {
            if new.get(svc.index).is_none() {
                c.diff(&want(svc), &Wanted::default());
            }
        }
        for svc in &new.services {
            match old.get(svc.index) {
                Some(before) if before == svc => {}
                Some(before) => c.diff(&want(before), &want(svc)),
                None => c.diff(&Wanted::default(), &want(svc)),
            }
        }
        c
    }

    /// Adds what turns one service's objects `old` into `new`.
    fn diff(&mut self, old: &Wanted, new: &Wanted) {
        for v in &old.virtuals {
            if !new.virtuals.iter().any(|n| n.vs.same_key(&v.vs)) {
                self.del_services.push(v.vs.clone());
            }
        }
        for v in &new.virtuals {
            let Some(before) = old.virtuals.iter().find(|o| o.vs.same_key(&v.vs)) else {
                self.new_services.push((v.vs.clone(), v.dests.clone()));
                continue;
            };
            if !v.vs.kube_proxy_equal(&before.vs) {
                self.set_services.push(v.vs.clone());
            }
            let missing = |from: &[RealServer], to: &[RealServer]| -> Vec<RealServer> {
                from.iter()
                    .filter(|r| !to.iter().any(|t| t.same_key(r)))
                    .copied()
                    .collect()
            };
            let gone = missing(&before.dests, &v.dests);
            let came = missing(&v.dests, &before.dests);
            if !gone.is_empty() {
                self.del_dests.push((v.vs.clone(), gone));
            }
            if !came.is_empty() {
                self.new_dests.push((v.vs.clone(), came));
            }
        }
        let (was, now) = (old.binds(), new.binds());
        self.unbind
            .extend(was.iter().filter(|ip| !now.contains(ip)));
        self.bind.extend(now.iter().filter(|ip| !was.contains(ip)));
        let (was, now): (BTreeSet<_>, BTreeSet<_>) =
            (old.entries.iter().collect(), new.entries.iter().collect());
        self.ipset_del
            .extend(old.entries.iter().filter(|e| !now.contains(e)).cloned());
        self.ipset_add
            .extend(new.entries.iter().filter(|e| !was.contains(e)).cloned());
        let (was, now) = (&old.no_node_access, &new.no_node_access);
        self.drops_del
            .extend(was.iter().filter(|r| !now.contains(r)).cloned());
        self.drops_add
            .extend(now.iter().filter(|r| !was.contains(r)).cloned());
    }

    /// The IPVS requests, in the order they are sent: removals first, then additions.
    pub fn ops(&self) -> Vec<Op<'_>> {
        let mut ops = Vec::new();
        for (vs, rs) in &self.del_dests {
            ops.extend(rs.iter().map(|r| Op::DelDest(vs, *r)));
        }
        ops.extend(self.del_services.iter().map(Op::DelService));
        ops.extend(self.set_services.iter().map(Op::SetService));
        for (vs, rs) in &self.new_services {
            ops.push(Op::NewService(vs));
            ops.extend(rs.iter().map(|r| Op::NewDest(vs, *r)));
        }
        for (vs, rs) in &self.new_dests {
            ops.extend(rs.iter().map(|r| Op::NewDest(vs, *r)));
        }
        ops
    }
}

/// One IPVS request as an `ipvsadm -S -n` / `ipvsadm -R` line.
pub fn ipvsadm_line(op: &Op<'_>) -> String {
    match op {
        Op::NewService(s) | Op::SetService(s) => {
            let flag = if matches!(op, Op::NewService(_)) {
                "-A"
            } else {
                "-E"
            };
            format!("{flag} {} -s {}{}", s.name(), s.scheduler, s.persistence())
        }
        Op::DelService(s) => format!("-D {}", s.name()),
        Op::NewDest(s, d) | Op::SetDest(s, d) => {
            let flag = if matches!(op, Op::NewDest(..)) {
                "-a"
            } else {
                "-e"
            };
            format!(
                "{flag} {} -r {} -m -w {}",
                s.name(),
                host_port(d.addr, d.port),
                d.weight
            )
        }
        Op::DelDest(s, d) => format!("-d {} -r {}", s.name(), host_port(d.addr, d.port)),
        Op::Flush => "-C".to_string(),
    }
}

fn jump(table: &'static str, from: &'static str, to: &'static str, comment: &str) -> JumpRule {
    JumpRule::new(table, from, to, comment, &[])
}

/// kube-proxy's IPVS-mode jumps from built-in chains (its `iptablesJumpChain`,
/// ClusterIP-relevant ones), ensured with `iptables -C`/`-I` on every sync.
pub fn jump_rules() -> Vec<JumpRule> {
    vec![
        jump(
            "nat",
            "OUTPUT",
            "KUBE-SERVICES",
            "kubernetes service portals",
        ),
        jump(
            "nat",
            "PREROUTING",
            "KUBE-SERVICES",
            "kubernetes service portals",
        ),
        jump(
            "nat",
            "POSTROUTING",
            "KUBE-POSTROUTING",
            "kubernetes postrouting rules",
        ),
        jump(
            "filter",
            "FORWARD",
            "KUBE-FORWARD",
            "kubernetes forwarding rules",
        ),
    ]
}

// ---------------------------------------------------------------------------------------
// kube-proxy's sync loop (`pkg/proxy/ipvs/proxier.go`), which both sync profiles program:
// the kube-proxy profile with kube-proxy's calls, the floor with the fewest.

/// kube-proxy's set of every address bound to `kube-ipvs0` (`hash:ip`).
pub const IPVS_IPS_SET: &str = "KUBE-IPVS-IPS";

/// kube-proxy's 17 ipsets (`ipsetInfo`) with their types, in declaration order (kube-proxy
/// walks them in Go map order, i.e. a random one per sync; kpbench keeps this one).
pub const KUBE_PROXY_IPSETS: [(&str, &str); 17] = [
    (LOOP_BACK_SET, "hash:ip,port,ip"),
    (CLUSTER_IP_SET, "hash:ip,port"),
    ("KUBE-EXTERNAL-IP", "hash:ip,port"),
    ("KUBE-EXTERNAL-IP-LOCAL", "hash:ip,port"),
    ("KUBE-LOAD-BALANCER", "hash:ip,port"),
    ("KUBE-LOAD-BALANCER-FW", "hash:ip,port"),
    ("KUBE-LOAD-BALANCER-LOCAL", "hash:ip,port"),
    ("KUBE-LOAD-BALANCER-SOURCE-IP", "hash:ip,port,ip"),
    ("KUBE-LOAD-BALANCER-SOURCE-CIDR", "hash:ip,port,net"),
    ("KUBE-NODE-PORT-TCP", "bitmap:port"),
    ("KUBE-NODE-PORT-LOCAL-TCP", "bitmap:port"),
    ("KUBE-NODE-PORT-UDP", "bitmap:port"),
    ("KUBE-NODE-PORT-LOCAL-UDP", "bitmap:port"),
    ("KUBE-NODE-PORT-SCTP-HASH", "hash:ip,port"),
    ("KUBE-NODE-PORT-LOCAL-SCTP-HASH", "hash:ip,port"),
    ("KUBE-HEALTH-CHECK-NODE-PORT", "bitmap:port"),
    (IPVS_IPS_SET, "hash:ip"),
];

/// What `pkg/util/ipset` `createSet` puts after `create NAME TYPE`: family, hashsize and
/// maxelem (defaults inet, 1024, 65536) for the `hash:ip,port*` types, `range 0-65535`
/// for `bitmap:port`, nothing for `hash:ip` (no comment option either).
pub fn kube_proxy_ipset_options(kind: &str) -> &'static [&'static str] {
    match kind {
        "hash:ip,port" | "hash:ip,port,ip" | "hash:ip,port,net" => {
            &["family", "inet", "hashsize", "1024", "maxelem", "65536"]
        }
        "bitmap:port" => &["range", "0-65535"],
        _ => &[],
    }
}

/// kube-proxy's `ipset create NAME TYPE [options] -exist` (CreateSet with ignoreExistErr).
pub fn kube_proxy_ipset_create(name: &str, kind: &str) -> Vec<String> {
    let mut args = vec!["create".to_string(), name.to_string(), kind.to_string()];
    args.extend(kube_proxy_ipset_options(kind).iter().map(|s| s.to_string()));
    args.push("-exist".into());
    args
}

/// The `KUBE-IPVS-IPS` entry of a bound address.
pub fn ipvs_ips_entry(ip: Ipv4Addr) -> String {
    ip.to_string()
}

/// kube-proxy's `iptablesChains`, EnsureChain'd on every sync, in its order.
pub const KUBE_PROXY_CHAINS: [(&str, &str); 11] = [
    ("nat", "KUBE-SERVICES"),
    ("nat", "KUBE-POSTROUTING"),
    ("nat", "KUBE-NODE-PORT"),
    ("nat", "KUBE-LOAD-BALANCER"),
    ("nat", "KUBE-MARK-MASQ"),
    ("filter", "KUBE-FORWARD"),
    ("filter", "KUBE-NODE-PORT"),
    ("filter", "KUBE-PROXY-FIREWALL"),
    ("filter", "KUBE-SOURCE-RANGES-FIREWALL"),
    ("filter", "KUBE-IPVS-FILTER"),
    ("filter", "KUBE-IPVS-OUT-FILTER"),
];

/// kube-proxy's `iptablesJumpChain`: 9 jumps, EnsureRule(Prepend)'d on every sync
/// (`-m comment --comment C -j TO`, no ctstate match), in its order.
pub fn kube_proxy_jumps() -> Vec<JumpRule> {
    [
        (
            "nat",
            "OUTPUT",
            "KUBE-SERVICES",
            "kubernetes service portals",
        ),
        (
            "nat",
            "PREROUTING",
            "KUBE-SERVICES",
            "kubernetes service portals",
        ),
        (
            "nat",
            "POSTROUTING",
            "KUBE-POSTROUTING",
            "kubernetes postrouting rules",
        ),
        (
            "filter",
            "FORWARD",
            "KUBE-FORWARD",
            "kubernetes forwarding rules",
        ),
        (
            "filter",
            "INPUT",
            "KUBE-NODE-PORT",
            "kubernetes health check rules",
        ),
        (
            "filter",
            "INPUT",
            "KUBE-PROXY-FIREWALL",
            "kube-proxy firewall rules",
        ),
        (
            "filter",
            "FORWARD",
            "KUBE-PROXY-FIREWALL",
            "kube-proxy firewall rules",
        ),
        (
            "filter",
            "INPUT",
            "KUBE-IPVS-FILTER",
            "kubernetes ipvs access filter",
        ),
        (
            "filter",
            "OUTPUT",
            "KUBE-IPVS-OUT-FILTER",
            "kubernetes ipvs access filter",
        ),
    ]
    .into_iter()
    .map(|(table, from, to, comment)| jump(table, from, to, comment))
    .collect()
}

/// kube-proxy's masquerade mark, as it formats it (`fmt.Sprintf("%#08x", 1<<14)`);
/// iptables-save prints it back as 0x4000.
pub const MASQ_MARK: &str = "0x00004000";

/// A restore line for a jump, as `-I FROM ARGS` with the comment quoted.
fn jump_line(j: &JumpRule) -> String {
    let mut line = format!("-I {}", j.from);
    for a in &j.args {
        line.push(' ');
        if a.contains(' ') {
            let _ = write!(line, "\"{a}\"");
        } else {
            line.push_str(a);
        }
    }
    line
}

/// The sets whose entries the payload's rules depend on: those with at least one.
pub type Filled<'a> = BTreeSet<&'a str>;

/// kube-proxy's `ipsetWithIptablesChain`, in its order: for each set with entries,
/// `-A FROM [-p PROTO] -m comment --comment COMMENT -m set --match-set SET MATCH -j TO`
/// in TABLE (set, comment, table, from, to, match, protocol). Its SCTP rows are left
/// out: kpbench models no SCTP port, so those sets stay empty.
const SET_RULES: [(&str, &str, &str, &str, &str, &str, &str); 10] = [
    (
        LOOP_BACK_SET,
        "Kubernetes endpoints dst ip:port, source ip for solving hairpin purpose",
        "nat",
        "KUBE-POSTROUTING",
        "MASQUERADE",
        "dst,dst,src",
        "",
    ),
    (
        LOAD_BALANCER_SET,
        "Kubernetes service lb portal",
        "nat",
        "KUBE-SERVICES",
        "KUBE-LOAD-BALANCER",
        "dst,dst",
        "",
    ),
    (
        LOAD_BALANCER_LOCAL_SET,
        "Kubernetes service load balancer ip + port with externalTrafficPolicy=local",
        "nat",
        "KUBE-LOAD-BALANCER",
        "RETURN",
        "dst,dst",
        "",
    ),
    (
        NODE_PORT_LOCAL_TCP_SET,
        "Kubernetes nodeport TCP port with externalTrafficPolicy=local",
        "nat",
        "KUBE-NODE-PORT",
        "RETURN",
        "dst",
        "tcp",
    ),
    (
        NODE_PORT_TCP_SET,
        "Kubernetes nodeport TCP port for masquerade purpose",
        "nat",
        "KUBE-NODE-PORT",
        "KUBE-MARK-MASQ",
        "dst",
        "tcp",
    ),
    (
        NODE_PORT_LOCAL_UDP_SET,
        "Kubernetes nodeport UDP port with externalTrafficPolicy=local",
        "nat",
        "KUBE-NODE-PORT",
        "RETURN",
        "dst",
        "udp",
    ),
    (
        NODE_PORT_UDP_SET,
        "Kubernetes nodeport UDP port for masquerade purpose",
        "nat",
        "KUBE-NODE-PORT",
        "KUBE-MARK-MASQ",
        "dst",
        "udp",
    ),
    (
        LOAD_BALANCER_FW_SET,
        "Kubernetes service load balancer ip + port for load balancer with sourceRange",
        "filter",
        "KUBE-PROXY-FIREWALL",
        "KUBE-SOURCE-RANGES-FIREWALL",
        "dst,dst",
        "",
    ),
    (
        SOURCE_CIDR_SET,
        "Kubernetes service load balancer ip + port + source cidr for packet filter purpose",
        "filter",
        "KUBE-SOURCE-RANGES-FIREWALL",
        "RETURN",
        "dst,dst,src",
        "",
    ),
    (
        SOURCE_IP_SET,
        "Kubernetes service load balancer ip + port + source IP for packet filter purpose",
        "filter",
        "KUBE-SOURCE-RANGES-FIREWALL",
        "RETURN",
        "dst,dst,src",
        "",
    ),
];

/// kube-proxy's `iptables-restore --noflush --counters` payload for kpbench's services,
/// exactly as `syncProxyRules` and `writeIptablesRules` write it: nat chains, nat
/// rules, filter chains, filter rules. The rules that match a set are written only
/// while it has entries (`filled`): KUBE-CLUSTER-IP's two, KUBE-LOAD-BALANCER's
/// ACCEPT, and those of `ipsetWithIptablesChain` (the node ports' KUBE-NODE-PORT
/// rules, the load balancers' jump to KUBE-LOAD-BALANCER, the Local policies' RETURN
/// rules, the source ranges' firewall rules, KUBE-LOOP-BACK's masquerade) and the
/// external IPs' masquerade and ACCEPT rules. `drops`:
/// the KUBE-IPVS-OUT-FILTER rules of ingress IPs the node may not reach, in order.
pub fn kube_proxy_payload(filled: &Filled<'_>, drops: &BTreeSet<String>) -> String {
    payload_with(filled, drops, false)
}

/// [`kube_proxy_payload`] with kube-proxy's 9 jumps as `-I` lines after each table's
/// chain lines, in EnsureRule order: the floor's first restore, which leaves the same
/// rules as kube-proxy's EnsureChain/EnsureRule calls plus its restore.
pub fn floor_first_payload(filled: &Filled<'_>, drops: &BTreeSet<String>) -> String {
    payload_with(filled, drops, true)
}

fn payload_with(filled: &Filled<'_>, drops: &BTreeSet<String>, jumps: bool) -> String {
    let mut nat = String::from("*nat\n");
    let mut filter = String::from("*filter\n");
    for (table, chain) in KUBE_PROXY_CHAINS {
        let out = if table == "nat" {
            &mut nat
        } else {
            &mut filter
        };
        let _ = writeln!(out, ":{chain} - [0:0]");
    }
    if jumps {
        for j in kube_proxy_jumps() {
            let out = if j.table == "nat" {
                &mut nat
            } else {
                &mut filter
            };
            out.push_str(&jump_line(&j));
            out.push('\n');
        }
    }
    let m = MASQ_MARK;
    // writeIptablesRules, in its order; nat and filter rules go to their own buffers.
    nat.push_str("-A KUBE-SERVICES -s 127.0.0.0/8 -j RETURN\n");
    for (set, comment, table, from, to, matching, proto) in SET_RULES {
        if !filled.contains(set) {
            continue;
        }
        let out = if table == "nat" {
            &mut nat
        } else {
            &mut filter
        };
        let _ = write!(out, "-A {from} ");
        if !proto.is_empty() {
            let _ = write!(out, "-p {proto} ");
        }
        let _ = writeln!(
            out,
            "-m comment --comment \"{comment}\" -m set --match-set {set} {matching} -j {to}"
        );
    }
    let cluster_ips = filled.contains(CLUSTER_IP_SET);
    if cluster_ips {
        let _ = writeln!(nat, "-A KUBE-SERVICES -m comment --comment \"Kubernetes service cluster ip + port for masquerade purpose\" -m set --match-set {CLUSTER_IP_SET} dst,dst ! -s {} -j KUBE-MARK-MASQ", pod_cidr());
    }
    external_ip_rules(&mut nat, filled);
    nat.push_str("-A KUBE-SERVICES -m addrtype --dst-type LOCAL -j KUBE-NODE-PORT\n");
    nat.push_str("-A KUBE-LOAD-BALANCER -j KUBE-MARK-MASQ\n");
    filter.push_str("-A KUBE-SOURCE-RANGES-FIREWALL -j DROP\n");
    for rule in drops {
        filter.push_str(rule);
        filter.push('\n');
    }
    // acceptIPVSTraffic.
    for set in [CLUSTER_IP_SET, LOAD_BALANCER_SET] {
        if filled.contains(set) {
            let _ = writeln!(
                nat,
                "-A KUBE-SERVICES -m set --match-set {set} dst,dst -j ACCEPT"
            );
        }
    }
    filter_rules(&mut filter);
    let _ = writeln!(
        nat,
        "-A KUBE-POSTROUTING -m mark ! --mark {m}/{m} -j RETURN"
    );
    let _ = writeln!(nat, "-A KUBE-POSTROUTING -j MARK --xor-mark {m}");
    nat.push_str("-A KUBE-POSTROUTING -m comment --comment \"kubernetes service traffic requiring SNAT\" -j MASQUERADE --random-fully\n");
    let _ = writeln!(nat, "-A KUBE-MARK-MASQ -j MARK --or-mark {m}");
    filter.push_str("COMMIT\n");
    nat.push_str("COMMIT\n");
    nat + &filter
}

/// writeIptablesRules' rules for external IPs, for each of their two sets with entries:
/// masquerade (Cluster policy only), then ACCEPT what comes from off the machine
/// (`physdev ! --physdev-is-in`, not from a local address) and what is for a local
/// address (`externalIPRules`).
fn external_ip_rules(nat: &mut String, filled: &Filled<'_>) {
    let sets = [
        (
            EXTERNAL_IP_SET,
            "Kubernetes service external ip + port for masquerade and filter purpose",
            true,
        ),
        (
            EXTERNAL_IP_LOCAL_SET,
            "Kubernetes service external ip + port with externalTrafficPolicy=local",
            false,
        ),
    ];
    for (set, comment, masq) in sets {
        if !filled.contains(set) {
            continue;
        }
        let args = format!(
            "-A KUBE-SERVICES -m comment --comment \"{comment}\" -m set --match-set {set} dst,dst"
        );
        if masq {
            let _ = writeln!(nat, "{args} -j KUBE-MARK-MASQ");
        }
        let _ = writeln!(
            nat,
            "{args} -m physdev ! --physdev-is-in -m addrtype ! --src-type LOCAL -j ACCEPT"
        );
        let _ = writeln!(nat, "{args} -m addrtype --dst-type LOCAL -j ACCEPT");
    }
}

/// writeIptablesRules' fixed filter rules: KUBE-FORWARD, the health-check node port,
/// KUBE-IPVS-FILTER.
fn filter_rules(filter: &mut String) {
    let m = MASQ_MARK;
    let _ = writeln!(filter, "-A KUBE-FORWARD -m comment --comment \"kubernetes forwarding rules\" -m mark --mark {m}/{m} -j ACCEPT");
    filter.push_str("-A KUBE-FORWARD -m comment --comment \"kubernetes forwarding conntrack rule\" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n");
    filter.push_str("-A KUBE-NODE-PORT -m comment --comment \"Kubernetes health check node port\" -m set --match-set KUBE-HEALTH-CHECK-NODE-PORT dst -j ACCEPT\n");
    for (set, dir) in [
        ("KUBE-LOAD-BALANCER", "dst,dst"),
        (CLUSTER_IP_SET, "dst,dst"),
        ("KUBE-EXTERNAL-IP", "dst,dst"),
        ("KUBE-EXTERNAL-IP-LOCAL", "dst,dst"),
        ("KUBE-HEALTH-CHECK-NODE-PORT", "dst"),
    ] {
        let _ = writeln!(
            filter,
            "-A KUBE-IPVS-FILTER -m set --match-set {set} {dir} -j RETURN"
        );
    }
    let _ = writeln!(filter, "-A KUBE-IPVS-FILTER -m conntrack --ctstate NEW -m set --match-set {IPVS_IPS_SET} dst -j REJECT");
}

/// The entries of every set that holds any after a full sync of `set` on a node whose
/// node-port addresses are `node_ips`, KUBE-IPVS-IPS (every bound address) included.
pub fn kube_proxy_entries(
    set: &ServiceSet,
    node_ips: &[Ipv4Addr],
) -> std::collections::BTreeMap<&'static str, BTreeSet<String>> {
    let mut out: std::collections::BTreeMap<&'static str, BTreeSet<String>> = Default::default();
    for svc in &set.services {
        let w = wanted(svc, "", node_ips);
        for (name, e) in &w.entries {
            out.entry(name).or_default().insert(e.clone());
        }
        for ip in w.binds() {
            out.entry(IPVS_IPS_SET)
                .or_default()
                .insert(ipvs_ips_entry(ip));
        }
    }
    out
}

/// The floor's `ipset restore -exist` input: with `create`, the 17 sets as kube-proxy
/// creates them; then every `del` and every `add`, in one process.
pub fn floor_ipset_restore(create: bool, del: &[(&str, String)], add: &[(&str, String)]) -> String {
    let mut out = String::with_capacity((del.len() + add.len()) * 40 + 1024);
    if create {
        for (name, kind) in KUBE_PROXY_IPSETS {
            let _ = write!(out, "create {name} {kind}");
            for o in kube_proxy_ipset_options(kind) {
                out.push(' ');
                out.push_str(o);
            }
            out.push('\n');
        }
    }
    for (set, e) in del {
        let _ = writeln!(out, "del {set} {e}");
    }
    for (set, e) in add {
        let _ = writeln!(out, "add {set} {e}");
    }
    out
}
