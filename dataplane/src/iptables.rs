//! kube-proxy's iptables mode: pure rendering of the `iptables-restore` payload for
//! ClusterIP services (full and partial syncs), following pkg/proxy/iptables/proxier.go.

use std::collections::BTreeSet;
use std::fmt::Write;

use crate::model::{pod_cidr, Service, ServiceSet};
use crate::names::{sep_chain, svc_chain};

/// kube-proxy's `largeClusterEndpointsThreshold`: above this many endpoints in total,
/// per-endpoint comments are dropped to shrink the payload.
pub const LARGE_CLUSTER_ENDPOINTS_THRESHOLD: usize = 1000;

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

/// One rule kube-proxy ensures with an individual `iptables -C`/`-I` call (EnsureRule)
/// on every full sync: a jump from a built-in chain into a kube-proxy chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JumpRule {
    pub table: &'static str,
    pub from: &'static str,
    pub to: &'static str,
    /// Rule arguments, without `-t`, `-C/-I` and the chain.
    pub args: Vec<String>,
}

impl JumpRule {
    fn new(
        table: &'static str,
        from: &'static str,
        to: &'static str,
        comment: &str,
        extra: &[&str],
    ) -> Self {
        let mut args = vec![
            "-m".into(),
            "comment".into(),
            "--comment".into(),
            comment.to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        args.extend(["-j".to_string(), to.to_string()]);
        JumpRule {
            table,
            from,
            to,
            args,
        }
    }

    /// The rule as a shell-quoted command line, for display.
    pub fn display(&self, op: &str) -> String {
        let args: Vec<String> = self
            .args
            .iter()
            .map(|a| {
                if a.contains(' ') {
                    format!("\"{a}\"")
                } else {
                    a.clone()
                }
            })
            .collect();
        format!("-t {} {op} {} {}", self.table, self.from, args.join(" "))
    }
}

/// kube-proxy's `iptablesJumpChains` (ClusterIP-relevant ones, IPv4).
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

fn large_cluster(set: &ServiceSet) -> bool {
    set.total_endpoints() > LARGE_CLUSTER_ENDPOINTS_THRESHOLD
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
}

fn write_filter(out: &mut String, set: &ServiceSet) -> usize {
    let mut w = Writer::new();
    for c in FILTER_CHAINS {
        w.chain(c);
    }
    // Services without endpoints would get a REJECT here; synthetic services with zero
    // endpoints are allowed, so render it as kube-proxy does.
    for svc in set.services.iter().filter(|s| s.endpoints.is_empty()) {
        w.rule(format_args!(
            "-A KUBE-SERVICES -m comment --comment \"{} has no endpoints\" -m tcp -p tcp -d {} --dport {} -j REJECT",
            svc.port_name(),
            svc.vip,
            svc.port
        ));
    }
    w.rule(format_args!(
        "-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP"
    ));
    w.rule(format_args!(
        "-A KUBE-FORWARD -m comment --comment \"kubernetes forwarding rules\" -m mark --mark 0x4000/0x4000 -j ACCEPT"
    ));
    w.rule(format_args!(
        "-A KUBE-FORWARD -m comment --comment \"kubernetes forwarding conntrack rule\" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"
    ));
    out.push_str("*filter\n");
    out.push_str(&w.chains);
    out.push_str(&w.rules);
    out.push_str("COMMIT\n");
    w.count
}

/// Writes one service's KUBE-SERVICES rule, its KUBE-SVC chain and its KUBE-SEP chains.
/// Written straight into the buffers: this is the hot loop of a large render.
fn write_service(w: &mut Writer, svc: &Service, large: bool, cluster_cidr: &str, rewrite: bool) {
    if svc.endpoints.is_empty() {
        return;
    }
    let name = svc.port_name();
    let svc_chain = svc_chain(svc);
    let (vip, port) = (svc.vip, svc.port);
    let r = &mut w.rules;
    let _ = writeln!(
        r,
        "-A KUBE-SERVICES -m comment --comment \"{name} cluster IP\" -m tcp -p tcp -d {vip} --dport {port} -j {svc_chain}"
    );
    w.count += 1;
    if !rewrite {
        return;
    }
    let seps: Vec<String> = svc.endpoints.iter().map(|ep| sep_chain(svc, ep)).collect();
    w.chain(&svc_chain);
    for sep in &seps {
        w.chain(sep);
    }
    let r = &mut w.rules;
    let _ = writeln!(
        r,
        "-A {svc_chain} -m comment --comment \"{name} cluster IP\" -m tcp -p tcp -d {vip} --dport {port} ! -s {cluster_cidr} -j KUBE-MARK-MASQ"
    );
    let n = svc.endpoints.len();
    for (i, (ep, sep)) in svc.endpoints.iter().zip(&seps).enumerate() {
        let _ = write!(r, "-A {svc_chain}");
        if !large {
            let _ = write!(
                r,
                " -m comment --comment \"{name} -> {}:{}\"",
                ep.ip, ep.port
            );
        }
        if i < n - 1 {
            let _ = write!(
                r,
                " -m statistic --mode random --probability {:.10}",
                1.0 / (n - i) as f64
            );
        }
        let _ = writeln!(r, " -j {sep}");
    }
    for (ep, sep) in svc.endpoints.iter().zip(&seps) {
        if large {
            let _ = writeln!(r, "-A {sep} -s {} -j KUBE-MARK-MASQ", ep.ip);
            let _ = writeln!(
                r,
                "-A {sep} -m tcp -p tcp -j DNAT --to-destination {}:{}",
                ep.ip, ep.port
            );
        } else {
            let _ = writeln!(
                r,
                "-A {sep} -m comment --comment {name} -s {} -j KUBE-MARK-MASQ",
                ep.ip
            );
            let _ = writeln!(
                r,
                "-A {sep} -m comment --comment {name} -m tcp -p tcp -j DNAT --to-destination {}:{}",
                ep.ip, ep.port
            );
        }
    }
    w.count += 1 + 3 * n;
}

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

fn write_nat_tail(w: &mut Writer) {
    w.rule(format_args!(
        "-A KUBE-SERVICES -m comment --comment \"kubernetes service nodeports; NOTE: this must be the last rule in this chain\" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS"
    ));
}

/// The full-sync payload: every chain and rule for `set`, as kube-proxy writes it to
/// `iptables-restore --noflush --counters` after startup or every `syncPeriod`.
pub fn render_full(set: &ServiceSet) -> Payload {
    let mut text = String::with_capacity(set.total_endpoints() * 330 + set.len() * 400 + 1024);
    let mut rules = write_filter(&mut text, set);
    let large = large_cluster(set);
    let mut w = Writer::new();
    write_nat_head(&mut w);
    let cidr = pod_cidr();
    for svc in &set.services {
        write_service(&mut w, svc, large, &cidr, true);
    }
    write_nat_tail(&mut w);
    text.push_str("*nat\n");
    text.push_str(&w.chains);
    text.push_str(&w.rules);
    text.push_str("COMMIT\n");
    rules += w.count;
    Payload { text, rules }
}

/// The nat chains a service owns; none without endpoints (kube-proxy writes no
/// KUBE-SVC chain for it, only the filter REJECT).
fn chains_of(svc: &Service) -> Vec<String> {
    if svc.endpoints.is_empty() {
        return Vec::new();
    }
    let mut v = vec![svc_chain(svc)];
    v.extend(svc.endpoints.iter().map(|ep| sep_chain(svc, ep)));
    v
}

/// A partial-sync payload from `old` to `new`, as kube-proxy writes it when only some
/// Services or EndpointSlices changed: the filter table and KUBE-SERVICES in full, the
/// chains of changed services rewritten, chains that are no longer used flushed and
/// deleted (`-X`); unchanged services' chains are left alone.
pub fn render_partial(old: &ServiceSet, new: &ServiceSet) -> Payload {
    let mut text = String::new();
    let mut rules = write_filter(&mut text, new);
    let large = large_cluster(new);
    let mut w = Writer::new();
    write_nat_head(&mut w);
    let relabel = large != large_cluster(old);
    let cidr = pod_cidr();
    for svc in &new.services {
        let changed = relabel || old.get(svc.index) != Some(svc);
        write_service(&mut w, svc, large, &cidr, changed);
    }
    write_nat_tail(&mut w);
    // Chains of services that changed or went away, minus those still in use.
    let mut stale: BTreeSet<String> = BTreeSet::new();
    for svc in &old.services {
        let now = new.get(svc.index);
        if now == Some(svc) {
            continue;
        }
        let keep: BTreeSet<String> = now.map(chains_of).unwrap_or_default().into_iter().collect();
        stale.extend(chains_of(svc).into_iter().filter(|c| !keep.contains(c)));
    }
    for chain in &stale {
        w.chain(chain);
        w.raw(&format!("-X {chain}"));
    }
    text.push_str("*nat\n");
    text.push_str(&w.chains);
    text.push_str(&w.rules);
    text.push_str("COMMIT\n");
    rules += w.count;
    Payload { text, rules }
}

/// The payload of a sync from `old` (None: empty, a full sync) to `new`.
pub fn render(old: Option<&ServiceSet>, new: &ServiceSet) -> Payload {
    match old {
        None => render_full(new),
        Some(old) => render_partial(old, new),
    }
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

mod apply;
pub use apply::{count_rules, IptablesBackend};
pub(crate) use apply::{ensure_chain, ensure_rule, remaining};
