//! kube-proxy's iptables mode: pure rendering of the `iptables-restore` payload for
//! ClusterIP services (full and partial syncs), following pkg/proxy/iptables/proxier.go
//! `syncProxyRules`, plus the floor profile's payloads (the same objects written the
//! fastest way). How a sync is driven is in [`controller`].

use std::collections::BTreeSet;
use std::fmt::Write;

use crate::floor::model::{pod_cidr, Endpoint, Service, ServiceSet};
use crate::floor::topology;
pub use crate::xtables::JumpRule;

pub mod ports;

/// kube-proxy's `largeClusterEndpointsThreshold`: above this many endpoints in total,
/// per-endpoint comments are dropped to shrink the payload, and `iptables-save` runs at
/// most once per sync period.
pub const LARGE_CLUSTER_ENDPOINTS_THRESHOLD: usize = 1000;

/// kubelet's firewall chain, which kube-proxy duplicates (`kubeletFirewallChain`).
pub const FIREWALL_CHAIN: &str = "KUBE-FIREWALL";

/// kube-proxy's `localhostNodePorts` as a default iptables-mode kube-proxy runs it.
/// `--iptables-localhost-nodeports` defaults to true, and `NewProxier` turns it off
/// only when `--nodeport-addresses` does not contain 127.0.0.1; in iptables mode that
/// flag defaults to all local addresses (`ContainsIPv4Loopback()` is true for an empty
/// list; only nftables mode defaults to `primary`, per the Service docs: "`all` is the
/// default for the iptables and ipvs modes"). So kube-proxy writes KUBE-FIREWALL's chain
/// line and its DROP rule into every filter payload, and the nodeports tail rule is
/// the `addrtype LOCAL` one without `! -d 127.0.0.0/8`. (The trace research read the
/// default as `primary`, which it marked unverified; the documented default wins.)
pub const LOCALHOST_NODEPORTS: bool = true;

const FILTER_CHAINS: [&str; 5] = [
    "KUBE-SERVICES",
    "KUBE-EXTERNAL-SERVICES",
    "KUBE-FORWARD",
    "KUBE-NODEPORTS",
    "KUBE-PROXY-FIREWALL",
];
const NAT_CHAINS: [&str; 4] = [
    "KUBE-SERVICES",
    "KUBE-NODEPORTS",
    "KUBE-POSTROUTING",
    "KUBE-MARK-MASQ",
];

/// kube-proxy's `isServiceChainName`: the nat chains it owns per service, the only
/// ones a stale-chain cleanup deletes.
pub fn is_service_chain(name: &str) -> bool {
    [
        "KUBE-SVC-",
        "KUBE-SVL-",
        "KUBE-SEP-",
        "KUBE-FW-",
        "KUBE-EXT-",
    ]
    .iter()
    .any(|p| name.starts_with(p))
}

/// kube-proxy's `iptablesJumpChains` (ClusterIP-relevant ones, IPv4) followed by
/// `iptablesKubeletJumpChains` (KUBE-FIREWALL from INPUT and OUTPUT, no comment): the
/// 14 jumps a full sync ensures, in order.
pub fn jump_rules() -> Vec<JumpRule> {
    let new = ["-m", "conntrack", "--ctstate", "NEW"];
    vec![
        JumpRule::new(
            "filter",
            "INPUT",
            "KUBE-EXTERNAL-SERVICES",
            "kubernetes externally-visible service portals",
            &new,
        ),
        JumpRule::new(
            "filter",
            "FORWARD",
            "KUBE-EXTERNAL-SERVICES",
            "kubernetes externally-visible service portals",
            &new,
        ),
        JumpRule::new(
            "filter",
            "INPUT",
            "KUBE-NODEPORTS",
            "kubernetes health check service ports",
            &[],
        ),
        JumpRule::new(
            "filter",
            "FORWARD",
            "KUBE-SERVICES",
            "kubernetes service portals",
            &new,
        ),
        JumpRule::new(
            "filter",
            "OUTPUT",
            "KUBE-SERVICES",
            "kubernetes service portals",
            &new,
        ),
        JumpRule::new(
            "filter",
            "FORWARD",
            "KUBE-FORWARD",
            "kubernetes forwarding rules",
            &[],
        ),
        JumpRule::new(
            "filter",
            "INPUT",
            "KUBE-PROXY-FIREWALL",
            "kubernetes load balancer firewall",
            &new,
        ),
        JumpRule::new(
            "filter",
            "OUTPUT",
            "KUBE-PROXY-FIREWALL",
            "kubernetes load balancer firewall",
            &new,
        ),
        JumpRule::new(
            "filter",
            "FORWARD",
            "KUBE-PROXY-FIREWALL",
            "kubernetes load balancer firewall",
            &new,
        ),
        JumpRule::new(
            "nat",
            "OUTPUT",
            "KUBE-SERVICES",
            "kubernetes service portals",
            &[],
        ),
        JumpRule::new(
            "nat",
            "PREROUTING",
            "KUBE-SERVICES",
            "kubernetes service portals",
            &[],
        ),
        JumpRule::new(
            "nat",
            "POSTROUTING",
            "KUBE-POSTROUTING",
            "kubernetes postrouting rules",
            &[],
        ),
        JumpRule::new("filter", "INPUT", FIREWALL_CHAIN, "", &[]),
        JumpRule::new("filter", "OUTPUT", FIREWALL_CHAIN, "", &[]),
    ]
}

/// A rendered `iptables-restore` payload plus the facts the runner checks it against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    pub text: String,
    /// `-A` rules in the payload (the restore input), excluding jump rules.
    pub rules: usize,
}

/// kube-proxy's `probability(n)`: `1/n` formatted `%0.10f`.
pub fn probability(n: usize) -> String {
    format!("{:.10}", 1.0 / n as f64)
}

/// kube-proxy's `largeClusterMode`: more than [`LARGE_CLUSTER_ENDPOINTS_THRESHOLD`]
/// endpoints in total.
/// kube-proxy counts endpoints per service port (`endpointsMap[svcPortName]`), so a
/// service with several ports counts its endpoints once per port.
pub fn large_cluster(set: &ServiceSet) -> bool {
    let total: usize = set
        .services
        .iter()
        .map(|s| s.endpoints.len() * (1 + s.spec.extra_ports.len()))
        .sum();
    total > LARGE_CLUSTER_ENDPOINTS_THRESHOLD
}

struct Writer {
    chains: String,
    rules: String,
    count: usize,
}

impl Writer {
    fn new() -> Self {
        Writer {
            chains: String::new(),
            rules: String::new(),
            count: 0,
        }
    }

    fn chain(&mut self, name: &str) {
        let _ = writeln!(self.chains, ":{name} - [0:0]");
    }

    fn rule(&mut self, line: std::fmt::Arguments<'_>) {
        self.rules
            .write_fmt(line)
            .expect("writing to a String cannot fail");
        self.rules.push('\n');
        self.count += 1;
    }

    fn raw(&mut self, line: &str) {
        self.rules.push_str(line);
        self.rules.push('\n');
    }

    fn is_empty(&self) -> bool {
        self.chains.is_empty() && self.rules.is_empty()
    }

    /// Appends `*TABLE`, the chain lines, the rules and `COMMIT` to `out`.
    fn finish(self, out: &mut String, table: &str) -> usize {
        out.push('*');
        out.push_str(table);
        out.push('\n');
        out.push_str(&self.chains);
        out.push_str(&self.rules);
        out.push_str("COMMIT\n");
        self.count
    }
}

/// The filter rules of every service port whose traffic finds no endpoint
/// (`syncProxyRules`' filter rules, in its order): a REJECT ("has no endpoints") or,
/// when only a Local policy finds none, a DROP ("has no local endpoints") for the
/// cluster IP in KUBE-SERVICES and for external IPs, ingress IPs and the node port in
/// KUBE-EXTERNAL-SERVICES; and per ingress IP of a firewalled port the DROP in
/// KUBE-PROXY-FIREWALL that catches what its KUBE-FW chain let through.
fn write_rejects(w: &mut Writer, set: &ServiceSet) {
    for svc in &set.services {
        if svc.endpoints.is_empty() || !topology::all_plain(svc) || has_external(svc) {
            for p in ports::views(svc) {
                write_port_filter(w, svc, &p);
            }
        }
    }
}

/// Whether `svc` has addresses beyond its cluster IP and node ports.
fn has_external(svc: &Service) -> bool {
    !svc.spec.external_ips.is_empty() || !svc.spec.ingress_ips.is_empty()
}

/// One port's filter rules (see [`write_rejects`]).
fn write_port_filter(w: &mut Writer, svc: &Service, p: &ports::PortView) {
    let (name, proto, port) = (&p.name, p.proto, p.port);
    let (target, comment) = if p.has_endpoints() {
        ("DROP", format!("\"{name} has no local endpoints\""))
    } else {
        ("REJECT", format!("\"{name} has no endpoints\""))
    };
    if !p.has_internal() {
        w.rule(format_args!(
            "-A KUBE-SERVICES -m comment --comment {comment} -m {proto} -p {proto} -d {} --dport {port} -j {target}",
            svc.vip
        ));
    }
    let external = !p.has_external();
    for ip in &svc.spec.external_ips {
        if external {
            w.rule(format_args!(
                "-A KUBE-EXTERNAL-SERVICES -m comment --comment {comment} -m {proto} -p {proto} -d {ip} --dport {port} -j {target}"
            ));
        }
    }
    if p.uses_fw() {
        let fw = p.fw_chain();
        for ip in &svc.spec.ingress_ips {
            w.rule(format_args!(
                "-A KUBE-PROXY-FIREWALL -m comment --comment \"{name} traffic not accepted by {fw}\" -m {proto} -p {proto} -d {ip} --dport {port} -j DROP"
            ));
        }
    }
    if external {
        for ip in &svc.spec.ingress_ips {
            w.rule(format_args!(
                "-A KUBE-EXTERNAL-SERVICES -m comment --comment {comment} -m {proto} -p {proto} -d {ip} --dport {port} -j {target}"
            ));
        }
        if let Some(np) = p.node_port {
            w.rule(format_args!(
                "-A KUBE-EXTERNAL-SERVICES -m comment --comment {comment} -m addrtype --dst-type LOCAL -m {proto} -p {proto} --dport {np} -j {target}"
            ));
        }
    }
}

/// The filter table as kube-proxy writes it on every sync: its chain lines,
/// KUBE-FIREWALL's rule ([`LOCALHOST_NODEPORTS`]), the REJECTs, then KUBE-FORWARD.
/// With `jumps`, the jumps from the built-in chains too (the floor's full sync).
fn write_filter(out: &mut String, set: &ServiceSet, jumps: bool) -> usize {
    let mut w = Writer::new();
    for c in FILTER_CHAINS {
        w.chain(c);
    }
    if LOCALHOST_NODEPORTS {
        w.chain(FIREWALL_CHAIN);
    }
    if jumps {
        write_jumps(&mut w, "filter");
    }
    if LOCALHOST_NODEPORTS {
        w.rule(format_args!(
            "-A {FIREWALL_CHAIN} -m comment --comment \"block incoming localnet connections\" -d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP"
        ));
    }
    write_rejects(&mut w, set);
    w.rule(format_args!(
        "-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP"
    ));
    w.rule(format_args!(
        "-A KUBE-FORWARD -m comment --comment \"kubernetes forwarding rules\" -m mark --mark 0x4000/0x4000 -j ACCEPT"
    ));
    w.rule(format_args!(
        "-A KUBE-FORWARD -m comment --comment \"kubernetes forwarding conntrack rule\" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"
    ));
    w.finish(out, "filter")
}

/// The jumps of `table` as `-A` lines, each built-in chain's in the order kube-proxy's
/// prepends (`EnsureRule(Prepend)`, one after the other) leave them: the last first.
fn write_jumps(w: &mut Writer, table: &str) {
    let jumps: Vec<JumpRule> = jump_rules()
        .into_iter()
        .filter(|j| j.table == table)
        .collect();
    let mut builtins: Vec<&str> = Vec::new();
    for j in &jumps {
        if !builtins.contains(&j.from) {
            builtins.push(j.from);
        }
    }
    for from in builtins {
        for j in jumps.iter().rev().filter(|j| j.from == from) {
            w.raw(&j.restore_line());
        }
    }
}

/// Writes one service's KUBE-SERVICES (and KUBE-NODEPORTS) rules (`services_rule`)
/// and, with `chains`, its chains, port by port. Written straight into the buffers:
/// this is the hot loop of a large render.
fn write_service(
    w: &mut Writer,
    svc: &Service,
    large: bool,
    cluster_cidr: &str,
    services_rule: bool,
    chains: bool,
) {
    if svc.endpoints.is_empty() {
        return;
    }
    for p in ports::views(svc) {
        if !p.has_endpoints() {
            continue;
        }
        if services_rule {
            write_port_captures(w, svc, &p);
        }
        if chains {
            write_port_chains(w, svc, &p, large, cluster_cidr);
        }
    }
}

/// One service port's rules in KUBE-SERVICES and KUBE-NODEPORTS, in
/// `syncProxyRules`' order: the cluster IP (when internal traffic finds an endpoint),
/// each external IP, each ingress IP (to the FW chain when source ranges apply), the
/// node port.
fn write_port_captures(w: &mut Writer, svc: &Service, p: &ports::PortView) {
    let (name, proto, vip, port) = (&p.name, p.proto, svc.vip, p.port);
    if p.has_internal() {
        let _ = writeln!(
            w.rules,
            "-A KUBE-SERVICES -m comment --comment \"{name} cluster IP\" -m {proto} -p {proto} -d {vip} --dport {port} -j {}",
            p.internal_chain()
        );
        w.count += 1;
    }
    if !has_external(svc) && p.node_port.is_none() {
        return;
    }
    let ext = p.ext_chain();
    for ip in &svc.spec.external_ips {
        w.rule(format_args!(
            "-A KUBE-SERVICES -m comment --comment \"{name} external IP\" -m {proto} -p {proto} -d {ip} --dport {port} -j {ext}"
        ));
    }
    let lb = p.lb_chain();
    for ip in &svc.spec.ingress_ips {
        w.rule(format_args!(
            "-A KUBE-SERVICES -m comment --comment \"{name} loadbalancer IP\" -m {proto} -p {proto} -d {ip} --dport {port} -j {lb}"
        ));
    }
    if let Some(np) = p.node_port {
        w.rule(format_args!(
            "-A KUBE-NODEPORTS -m comment --comment {name} -m {proto} -p {proto} --dport {np} -j {ext}"
        ));
    }
}

/// One service port's chains, in `syncProxyRules`' order: the internal chain's
/// masquerade rule, the KUBE-EXT chain (masquerade, or with a Local external policy
/// the short circuits for pods and the node), the KUBE-FW chain (one rule per source
/// range, then the rule that leaves the rest to KUBE-PROXY-FIREWALL), the KUBE-SVC
/// and KUBE-SVL chains' endpoint jumps and the endpoint chains.
fn write_port_chains(
    w: &mut Writer,
    svc: &Service,
    p: &ports::PortView,
    large: bool,
    cluster_cidr: &str,
) {
    for c in p.chains() {
        w.chain(&c);
    }
    let (name, proto, vip, port) = (&p.name, p.proto, svc.vip, p.port);
    if p.has_internal() {
        let _ = writeln!(
            w.rules,
            "-A {} -m comment --comment \"{name} cluster IP\" -m {proto} -p {proto} -d {vip} --dport {port} ! -s {cluster_cidr} -j KUBE-MARK-MASQ",
            p.internal_chain()
        );
        w.count += 1;
    }
    if p.uses_ext() {
        write_ext_chain(w, p, cluster_cidr);
    }
    if p.uses_fw() {
        let (fw, ext) = (p.fw_chain(), p.ext_chain());
        for (net, len) in &svc.spec.source_ranges {
            w.rule(format_args!(
                "-A {fw} -m comment --comment \"{name} loadbalancer IP\" -s {net}/{len} -j {ext}"
            ));
        }
        w.rule(format_args!(
            "-A {fw} -m comment --comment \"other traffic to {name} will be dropped by KUBE-PROXY-FIREWALL\""
        ));
    }
    let affinity = svc.spec.affinity_timeout_s;
    if p.uses_svc() {
        write_endpoint_jumps(w, p, &p.svc_chain, &p.cats.cluster, affinity, large);
    }
    if p.uses_svl() {
        write_endpoint_jumps(w, p, &p.svl_chain(), &p.cats.local, affinity, large);
    }
    write_endpoint_chains(w, p, affinity, large);
}

/// The KUBE-EXT chain's rules: with Cluster external policy one masquerade; with
/// Local the pod short circuit (to the cluster chain), the node's masquerade and
/// short circuit; then, if external traffic finds an endpoint, the jump to the
/// external policy's chain.
fn write_ext_chain(w: &mut Writer, p: &ports::PortView, cluster_cidr: &str) {
    let (ext, name, svc_chain) = (p.ext_chain(), &p.name, &p.svc_chain);
    if !p.ext_local {
        w.rule(format_args!(
            "-A {ext} -m comment --comment \"masquerade traffic for {name} external destinations\" -j KUBE-MARK-MASQ"
        ));
    } else {
        w.rule(format_args!(
            "-A {ext} -m comment --comment \"pod traffic for {name} external destinations\" -s {cluster_cidr} -j {svc_chain}"
        ));
        w.rule(format_args!(
            "-A {ext} -m comment --comment \"masquerade LOCAL traffic for {name} external destinations\" -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ"
        ));
        w.rule(format_args!(
            "-A {ext} -m comment --comment \"route LOCAL traffic for {name} external destinations\" -m addrtype --src-type LOCAL -j {svc_chain}"
        ));
    }
    if p.has_external() {
        w.rule(format_args!("-A {ext} -j {}", p.external_policy_chain()));
    }
}

/// A policy chain's jumps to its endpoints (`writeServiceToEndpointRules`): with
/// ClientIP affinity first one `-m recent --rcheck` per endpoint, then the
/// probability cascade; comments unless `large`.
fn write_endpoint_jumps(
    w: &mut Writer,
    p: &ports::PortView,
    chain: &str,
    which: &[usize],
    affinity: Option<u32>,
    large: bool,
) {
    let (name, r) = (&p.name, &mut w.rules);
    let comment = |r: &mut String, ep: &Endpoint| {
        if !large {
            let _ = write!(
                r,
                " -m comment --comment \"{name} -> {}:{}\"",
                ep.ip, ep.port
            );
        }
    };
    if let Some(seconds) = affinity {
        for (ep, sep) in p.pick(which) {
            let _ = write!(r, "-A {chain}");
            comment(r, ep);
            let _ = writeln!(
                r,
                " -m recent --name {sep} --rcheck --seconds {seconds} --reap -j {sep}"
            );
        }
        w.count += which.len();
    }
    let r = &mut w.rules;
    let n = which.len();
    for (i, (ep, sep)) in p.pick(which).enumerate() {
        let _ = write!(r, "-A {chain}");
        comment(r, ep);
        if i < n - 1 {
            let _ = write!(
                r,
                " -m statistic --mode random --probability {:.10}",
                1.0 / (n - i) as f64
            );
        }
        let _ = writeln!(r, " -j {sep}");
    }
    w.count += n;
}

/// Each reachable endpoint's chain: the hairpin masquerade and the DNAT, with
/// ClientIP affinity recording the client (`-m recent --set`) before it; comments
/// unless `large`.
fn write_endpoint_chains(w: &mut Writer, p: &ports::PortView, affinity: Option<u32>, large: bool) {
    let (name, proto, r) = (&p.name, p.proto, &mut w.rules);
    let set = |sep: &str| match affinity {
        Some(_) => format!(" -m recent --name {sep} --set"),
        None => String::new(),
    };
    for (ep, sep) in p.pick(&p.cats.reachable) {
        if large {
            let _ = writeln!(r, "-A {sep} -s {} -j KUBE-MARK-MASQ", ep.ip);
            let _ = writeln!(
                r,
                "-A {sep}{} -m {proto} -p {proto} -j DNAT --to-destination {}:{}",
                set(sep),
                ep.ip,
                ep.port
            );
        } else {
            let _ = writeln!(
                r,
                "-A {sep} -m comment --comment {name} -s {} -j KUBE-MARK-MASQ",
                ep.ip
            );
            let _ = writeln!(
                r,
                "-A {sep} -m comment --comment {name}{} -m {proto} -p {proto} -j DNAT --to-destination {}:{}",
                set(sep),
                ep.ip,
                ep.port
            );
        }
    }
    w.count += 2 * p.cats.reachable.len();
}

/// The nat chain lines kube-proxy writes on every sync and the rules of KUBE-POSTROUTING
/// and KUBE-MARK-MASQ.
fn write_nat_head(w: &mut Writer) {
    for c in NAT_CHAINS {
        w.chain(c);
    }
    w.rule(format_args!(
        "-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN"
    ));
    w.rule(format_args!(
        "-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000"
    ));
    w.rule(format_args!(
        "-A KUBE-POSTROUTING -m comment --comment \"kubernetes service traffic requiring SNAT\" -j MASQUERADE --random-fully"
    ));
    w.rule(format_args!("-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000"));
}

/// The stale-chain cleanup: a chain line (flushing it) and `-X` per chain, written
/// after the services and before the nodeports tail, as `syncProxyRules` does.
fn write_deletes(w: &mut Writer, delete: &BTreeSet<String>) {
    for chain in delete {
        w.chain(chain);
        w.raw(&format!("-X {chain}"));
    }
}

/// The last rule of nat KUBE-SERVICES (`nodePortAddresses.MatchAll()`, with
/// [`LOCALHOST_NODEPORTS`]: no `! -d 127.0.0.0/8`).
fn write_nat_tail(w: &mut Writer) {
    w.rule(format_args!(
        "-A KUBE-SERVICES -m comment --comment \"kubernetes service nodeports; NOTE: this must be the last rule in this chain\" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS"
    ));
}

/// kube-proxy's payload for one sync (`syncProxyRules`): the filter table and nat
/// KUBE-SERVICES, KUBE-NODEPORTS, KUBE-POSTROUTING and KUBE-MARK-MASQ in full, the
/// KUBE-SVC/KUBE-SEP chains of the services `rewrite` selects (all on a full sync, the
/// changed ones on a partial one), comments as `large` says, and `delete`'s stale
/// chains flushed and deleted.
pub fn render_sync(
    set: &ServiceSet,
    rewrite: impl Fn(&Service) -> bool,
    large: bool,
    delete: &BTreeSet<String>,
) -> Payload {
    let mut text = String::with_capacity(set.total_endpoints() * 330 + set.len() * 400 + 1024);
    let mut rules = write_filter(&mut text, set, false);
    let mut w = Writer::new();
    write_nat_head(&mut w);
    let cidr = pod_cidr();
    for svc in &set.services {
        write_service(&mut w, svc, large, &cidr, true, rewrite(svc));
    }
    write_deletes(&mut w, delete);
    write_nat_tail(&mut w);
    rules += w.finish(&mut text, "nat");
    Payload { text, rules }
}

/// The full-sync payload: every chain and rule for `set`, as kube-proxy writes it to
/// `iptables-restore --noflush --counters` at startup and on its periodic full syncs.
pub fn render_full(set: &ServiceSet) -> Payload {
    render_sync(set, |_| true, large_cluster(set), &BTreeSet::new())
}

/// The nat chains a service owns, port by port ([`ports::PortView::chains`]); none
/// without endpoints (kube-proxy writes no nat chain for it, only the filter REJECT).
pub fn chains_of(svc: &Service) -> Vec<String> {
    if svc.endpoints.is_empty() {
        return Vec::new();
    }
    ports::views(svc).iter().flat_map(|p| p.chains()).collect()
}

/// Every nat chain a full sync of `set` leaves (kube-proxy's `activeNATChains`).
pub fn active_chains(set: &ServiceSet) -> BTreeSet<String> {
    set.services.iter().flat_map(chains_of).collect()
}

/// Whether `svc` changed since `old` (kube-proxy's `UpdatedServices` of the service
/// and endpoint change trackers): its chains are rewritten on a partial sync.
pub fn changed(old: &ServiceSet, svc: &Service) -> bool {
    old.get(svc.index) != Some(svc)
}

/// The chains of services that changed or went away between `old` and `new` that
/// `new` no longer uses.
pub fn stale_chains(old: &ServiceSet, new: &ServiceSet) -> BTreeSet<String> {
    let mut stale = BTreeSet::new();
    for svc in &old.services {
        let now = new.get(svc.index);
        if now == Some(svc) {
            continue;
        }
        let keep: BTreeSet<String> = now.map(chains_of).unwrap_or_default().into_iter().collect();
        stale.extend(chains_of(svc).into_iter().filter(|c| !keep.contains(c)));
    }
    stale
}

/// A partial-sync payload from `old` to `new`, as kube-proxy writes it when only some
/// Services or EndpointSlices changed and its `iptables-save` ran: the filter table and
/// the fixed nat chains in full, the chains of changed services rewritten, chains no
/// longer used flushed and deleted (`-X`); unchanged services' chains are left alone,
/// also when the change crosses the 1,000-endpoint threshold (kube-proxy then writes
/// only the changed chains in the new comment style).
pub fn render_partial(old: &ServiceSet, new: &ServiceSet) -> Payload {
    render_sync(
        new,
        |svc| changed(old, svc),
        large_cluster(new),
        &stale_chains(old, new),
    )
}

/// The payload of a sync from `old` (None: empty, a full sync) to `new`.
pub fn render(old: Option<&ServiceSet>, new: &ServiceSet) -> Payload {
    match old {
        None => render_full(new),
        Some(old) => render_partial(old, new),
    }
}

/// The floor's first sync into an empty namespace: the full payload plus the jumps from
/// the built-in chains, for one `iptables-restore` without `--noflush` (no
/// EnsureChain/EnsureRule processes); the objects are those of kube-proxy's full sync.
pub fn render_floor_full(set: &ServiceSet) -> Payload {
    let mut text = String::with_capacity(set.total_endpoints() * 330 + set.len() * 400 + 2048);
    let mut rules = write_filter(&mut text, set, true);
    let large = large_cluster(set);
    let mut w = Writer::new();
    write_nat_head(&mut w);
    write_jumps(&mut w, "nat");
    let cidr = pod_cidr();
    for svc in &set.services {
        write_service(&mut w, svc, large, &cidr, true, true);
    }
    write_nat_tail(&mut w);
    rules += w.finish(&mut text, "nat");
    Payload { text, rules }
}

/// The rules of nat KUBE-SERVICES (the nodeports tail last) and KUBE-NODEPORTS for
/// `set`, in order, as `-A` lines.
fn nat_services_lines(set: &ServiceSet) -> Vec<String> {
    let mut w = Writer::new();
    let cidr = pod_cidr();
    for svc in &set.services {
        write_service(&mut w, svc, false, &cidr, true, false);
    }
    write_nat_tail(&mut w);
    w.rules.lines().map(str::to_string).collect()
}

/// The rules of filter KUBE-SERVICES, KUBE-EXTERNAL-SERVICES and KUBE-PROXY-FIREWALL for `set` (the
/// REJECTs), as `-A` lines.
fn filter_services_lines(set: &ServiceSet) -> Vec<String> {
    let mut w = Writer::new();
    write_rejects(&mut w, set);
    w.rules.lines().map(str::to_string).collect()
}

/// The lines of `lines` that append to `chain`.
fn in_chain(lines: &[String], chain: &str) -> Vec<String> {
    let prefix = format!("-A {chain} ");
    lines
        .iter()
        .filter(|l| l.starts_with(&prefix))
        .cloned()
        .collect()
}

/// The diffs of each of `chains` between `old` and `new` lines, those that change.
fn chain_diffs(chains: &[&str], old: &[String], new: &[String]) -> Vec<(String, ChainDiff)> {
    chains
        .iter()
        .filter_map(|c| {
            chain_diff(c, &in_chain(old, c), &in_chain(new, c)).map(|d| (c.to_string(), d))
        })
        .collect()
}

/// How the floor turns `chain`'s rules from `old` into `new` (both `-A CHAIN ...`
/// lines, the rules common to both in the same order): None when nothing changes.
/// Few changes become `-D CHAIN <rule>` for each rule that goes and `-I CHAIN <n>
/// <rule>` for each that comes, at its final position in increasing order (on
/// iptables-nft about half the time of rewriting a 1,000-rule chain; the same on
/// legacy, which replaces the whole table either way); many changes rewrite the chain
/// (`flush` is then true: declare it with a chain line).
struct ChainDiff {
    flush: bool,
    /// `-D` lines, to run before anything else (they may drop the last reference to a
    /// chain deleted later).
    deletes: Vec<String>,
    /// The rewrite's `-A` lines, or the `-I` lines.
    adds: Vec<String>,
}

fn chain_diff(chain: &str, old: &[String], new: &[String]) -> Option<ChainDiff> {
    if old == new {
        return None;
    }
    let old_set: std::collections::HashSet<&String> = old.iter().collect();
    let new_set: std::collections::HashSet<&String> = new.iter().collect();
    let gone: Vec<&String> = old.iter().filter(|r| !new_set.contains(r)).collect();
    let come: Vec<(usize, &String)> = new
        .iter()
        .enumerate()
        .filter(|(_, r)| !old_set.contains(r))
        .collect();
    let append = format!("-A {chain} ");
    if (gone.len() + come.len()) * 2 > new.len().max(1) {
        return Some(ChainDiff {
            flush: true,
            deletes: Vec::new(),
            adds: new.to_vec(),
        });
    }
    let spec = |r: &String| r.strip_prefix(&append).unwrap_or(r).to_string();
    Some(ChainDiff {
        flush: false,
        deletes: gone
            .into_iter()
            .map(|r| format!("-D {chain} {}", spec(r)))
            .collect(),
        adds: come
            .into_iter()
            .map(|(i, r)| format!("-I {chain} {} {}", i + 1, spec(r)))
            .collect(),
    })
}

/// The floor's partial sync: for `iptables-restore --noflush`, only what differs from
/// `old`: the rules of filter and nat KUBE-SERVICES that change ([`ChainDiff`]), the
/// changed services' chains (rewritten as kube-proxy rewrites them, in the comment
/// style of `new`), and the chains `new` no longer uses deleted. Empty when nothing
/// changed.
pub fn render_floor_partial(old: &ServiceSet, new: &ServiceSet) -> Payload {
    let mut text = String::new();
    let mut rules = 0;
    let filter = chain_diffs(
        &[
            "KUBE-SERVICES",
            "KUBE-EXTERNAL-SERVICES",
            "KUBE-PROXY-FIREWALL",
        ],
        &filter_services_lines(old),
        &filter_services_lines(new),
    );
    if !filter.is_empty() {
        let mut w = Writer::new();
        for (chain, diff) in &filter {
            if diff.flush {
                w.chain(chain);
            }
        }
        for (_, diff) in &filter {
            for line in diff.deletes.iter().chain(&diff.adds) {
                w.raw(line);
            }
            w.count += diff.adds.len();
        }
        rules += w.finish(&mut text, "filter");
    }
    let services = chain_diffs(
        &["KUBE-SERVICES", "KUBE-NODEPORTS"],
        &nat_services_lines(old),
        &nat_services_lines(new),
    );
    let large = large_cluster(new);
    let cidr = pod_cidr();
    let mut w = Writer::new();
    for (chain, diff) in &services {
        if diff.flush {
            w.chain(chain);
        }
    }
    for (_, diff) in &services {
        for line in &diff.deletes {
            w.raw(line);
        }
    }
    for svc in &new.services {
        write_service(&mut w, svc, large, &cidr, false, changed(old, svc));
    }
    for (_, diff) in &services {
        for line in &diff.adds {
            w.raw(line);
        }
        w.count += diff.adds.len();
    }
    write_deletes(&mut w, &stale_chains(old, new));
    if !w.is_empty() {
        rules += w.finish(&mut text, "nat");
    }
    Payload { text, rules }
}

/// Rules the kernel should hold after a full sync of `set`: the payload's rules plus
/// the jump rules.
pub fn expected_rules(set: &ServiceSet) -> usize {
    render_full(set).rules + jump_rules().len()
}

/// NAT rules per service with `e` endpoints: 3e + 2 (kube-proxy's own arithmetic).
pub fn nat_rules_per_service(e: usize) -> usize {
    3 * e + 2
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_features;
#[cfg(test)]
mod tests_policies;

mod apply;
pub mod controller;
pub use crate::xtables::count_rules;
pub use apply::IptablesBackend;
pub use controller::{FloorController, KubeProxyController};
