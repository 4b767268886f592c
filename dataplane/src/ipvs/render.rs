//! Pure rendering of kube-proxy's IPVS mode: the change between two service sets
//! (virtual services, real servers, bound ClusterIPs, ipset entries) and kube-proxy's
//! fixed iptables rules, with the text `kpbench rules --mode ipvs` prints.

use std::fmt::Write;
use std::net::{IpAddr, Ipv4Addr};

use super::attrs::IP_VS_SVC_F_PERSISTENT;
use super::message::{host_port, Op, RealServer, VirtualService};
use crate::floor::model::{pod_cidr, Endpoint, Service, ServiceSet};
use crate::xtables::JumpRule;

/// kube-proxy's ipset of every ClusterIP + port (`hash:ip,port`).
pub const CLUSTER_IP_SET: &str = "KUBE-CLUSTER-IP";
/// kube-proxy's hairpin ipset (`hash:ip,port,ip`); empty here (no endpoint is local to
/// the node), but the KUBE-POSTROUTING rule needs it to exist.
pub const LOOP_BACK_SET: &str = "KUBE-LOOP-BACK";

/// `ipset create` arguments as kube-proxy's CreateSet builds them (defaults: family
/// inet, hashsize 1024, maxelem 65536).
pub fn ipset_create_args(name: &str, kind: &str) -> Vec<String> {
    [
        "create", name, kind, "family", "inet", "hashsize", "1024", "maxelem", "65536",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// The two ipsets kube-proxy's IPVS mode needs for ClusterIP services.
pub fn ipsets() -> [(&'static str, &'static str); 2] {
    [
        (CLUSTER_IP_SET, "hash:ip,port"),
        (LOOP_BACK_SET, "hash:ip,port,ip"),
    ]
}

/// The `KUBE-CLUSTER-IP` entry of a service: `VIP,tcp:PORT`.
pub fn cluster_ip_entry(svc: &Service) -> String {
    format!("{},tcp:{}", svc.vip, svc.port)
}

/// The virtual service of a synthetic service; ClientIP affinity makes it persistent
/// with the affinity's timeout, as kube-proxy's `syncService` sets
/// `FlagPersistent` and `StickyMaxAgeSeconds`.
pub fn virtual_service(svc: &Service, scheduler: &str) -> VirtualService {
    let mut vs = VirtualService::tcp(IpAddr::V4(svc.vip), svc.port, scheduler);
    if let Some(seconds) = svc.spec.affinity_timeout_s {
        vs.flags |= IP_VS_SVC_F_PERSISTENT;
        vs.timeout = seconds;
    }
    vs
}

/// The features this mode renders as kube-proxy does: ClientIP affinity
/// (persistence). NodePort (virtual services on every node address and the
/// KUBE-NODE-PORT-* ipsets), several ports, UDP, LoadBalancer, external IPs, source
/// ranges, Local policies and endpoint conditions are not rendered yet.
pub const RENDERS: &[crate::floor::spec::Feature] = &[crate::floor::spec::Feature::Affinity];

/// The real server of an endpoint (masquerading, weight 1).
pub fn real_server(ep: &Endpoint) -> RealServer {
    RealServer::masq(IpAddr::V4(ep.ip), ep.port)
}

/// What one sync changes, computed from the old and new service sets (None: from
/// empty). Unchanged services are not touched.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// New virtual services with all their real servers.
    pub new_services: Vec<(VirtualService, Vec<RealServer>)>,
    /// Virtual services to delete (the kernel drops their real servers with them).
    pub del_services: Vec<VirtualService>,
    /// Services that stay whose persistence (affinity) changed: SET_SERVICE.
    pub set_services: Vec<VirtualService>,
    /// Real servers to add to services that stay.
    pub new_dests: Vec<(VirtualService, Vec<RealServer>)>,
    /// Real servers to remove from services that stay.
    pub del_dests: Vec<(VirtualService, Vec<RealServer>)>,
    /// ClusterIPs to bind to / unbind from `kube-ipvs0`.
    pub bind: Vec<Ipv4Addr>,
    pub unbind: Vec<Ipv4Addr>,
    /// `KUBE-CLUSTER-IP` entries to add / delete.
    pub ipset_add: Vec<String>,
    pub ipset_del: Vec<String>,
}

fn same_key(a: &Service, b: &Service) -> bool {
    a.vip == b.vip && a.port == b.port
}

impl Changes {
    pub fn compute(old: Option<&ServiceSet>, new: &ServiceSet, scheduler: &str) -> Self {
        let mut c = Changes::default();
        let empty = ServiceSet::default();
        let old = old.unwrap_or(&empty);
        let add = |c: &mut Changes, svc: &Service| {
            c.new_services.push((
                virtual_service(svc, scheduler),
                svc.endpoints.iter().map(real_server).collect(),
            ));
            c.bind.push(svc.vip);
            c.ipset_add.push(cluster_ip_entry(svc));
        };
        let del = |c: &mut Changes, svc: &Service| {
            c.del_services.push(virtual_service(svc, scheduler));
            c.unbind.push(svc.vip);
            c.ipset_del.push(cluster_ip_entry(svc));
        };
        for svc in &old.services {
            match new.get(svc.index) {
                Some(now) if same_key(svc, now) => {}
                _ => del(&mut c, svc),
            }
        }
        for svc in &new.services {
            let Some(before) = old.get(svc.index).filter(|b| same_key(b, svc)) else {
                add(&mut c, svc);
                continue;
            };
            if before == svc {
                continue;
            }
            let vs = virtual_service(svc, scheduler);
            if before.spec.affinity_timeout_s != svc.spec.affinity_timeout_s {
                c.set_services.push(vs.clone());
            }
            let gone: Vec<RealServer> = before
                .endpoints
                .iter()
                .filter(|e| !svc.endpoints.contains(e))
                .map(real_server)
                .collect();
            let came: Vec<RealServer> = svc
                .endpoints
                .iter()
                .filter(|e| !before.endpoints.contains(e))
                .map(real_server)
                .collect();
            if !gone.is_empty() {
                c.del_dests.push((vs.clone(), gone));
            }
            if !came.is_empty() {
                c.new_dests.push((vs, came));
            }
        }
        c
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
            format!(
                "{flag} -t {} -s {}{}",
                host_port(s.addr, s.port),
                s.scheduler,
                s.persistence()
            )
        }
        Op::DelService(s) => format!("-D -t {}", host_port(s.addr, s.port)),
        Op::NewDest(s, d) | Op::SetDest(s, d) => {
            let flag = if matches!(op, Op::NewDest(..)) {
                "-a"
            } else {
                "-e"
            };
            format!(
                "{flag} -t {} -r {} -m -w {}",
                host_port(s.addr, s.port),
                host_port(d.addr, d.port),
                d.weight
            )
        }
        Op::DelDest(s, d) => format!(
            "-d -t {} -r {}",
            host_port(s.addr, s.port),
            host_port(d.addr, d.port)
        ),
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

/// kube-proxy's `iptables-restore --noflush --counters` payload for kpbench's services
/// (ClusterIP only, no endpoint local to the node), exactly as `syncProxyRules` and
/// `writeIptablesRules` write it: nat chains, nat rules, filter chains, filter rules.
/// `cluster_ips`: whether KUBE-CLUSTER-IP has entries (its two rules are written only
/// then); every other set kube-proxy matches in `ipsetWithIptablesChain` is empty here,
/// so those rules (KUBE-LOOP-BACK's masquerade among them) are absent.
pub fn kube_proxy_payload(cluster_ips: bool) -> String {
    payload_with(cluster_ips, false)
}

/// [`kube_proxy_payload`] with kube-proxy's 9 jumps as `-I` lines after each table's
/// chain lines, in EnsureRule order: the floor's first restore, which leaves the same
/// rules as kube-proxy's EnsureChain/EnsureRule calls plus its restore.
pub fn floor_first_payload(cluster_ips: bool) -> String {
    payload_with(cluster_ips, true)
}

fn payload_with(cluster_ips: bool, jumps: bool) -> String {
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
    if cluster_ips {
        let _ = writeln!(nat, "-A KUBE-SERVICES -m comment --comment \"Kubernetes service cluster ip + port for masquerade purpose\" -m set --match-set {CLUSTER_IP_SET} dst,dst ! -s {} -j KUBE-MARK-MASQ", pod_cidr());
    }
    nat.push_str("-A KUBE-SERVICES -m addrtype --dst-type LOCAL -j KUBE-NODE-PORT\n");
    nat.push_str("-A KUBE-LOAD-BALANCER -j KUBE-MARK-MASQ\n");
    filter.push_str("-A KUBE-SOURCE-RANGES-FIREWALL -j DROP\n");
    if cluster_ips {
        let _ = writeln!(
            nat,
            "-A KUBE-SERVICES -m set --match-set {CLUSTER_IP_SET} dst,dst -j ACCEPT"
        );
    }
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

/// The entries of kpbench's services in the two sets that hold any: KUBE-CLUSTER-IP
/// (`VIP,tcp:PORT`) and KUBE-IPVS-IPS (every VIP, as bound to kube-ipvs0).
pub fn kube_proxy_entries(
    set: &ServiceSet,
) -> [(&'static str, std::collections::BTreeSet<String>); 2] {
    [
        (
            CLUSTER_IP_SET,
            set.services.iter().map(cluster_ip_entry).collect(),
        ),
        (
            IPVS_IPS_SET,
            set.services.iter().map(|s| ipvs_ips_entry(s.vip)).collect(),
        ),
    ]
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
