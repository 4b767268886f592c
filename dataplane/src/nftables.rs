//! kube-proxy's nftables mode: pure rendering of the transaction kube-proxy pipes to
//! `nft -f -` for ClusterIP services (full and partial syncs), following
//! pkg/proxy/nftables/proxier.go and the text knftables writes for each object.
//!
//! # Full-sync payload shape, and why it is not knftables' statement order
//!
//! kube-proxy writes, per service, its chains (`add` + `flush`), its map elements,
//! then its rules, all in one transaction. With nft 1.0.6 on kernel 6.18 a full sync
//! in that order is quadratic in kernel time, and the cause is the transaction, not
//! the ruleset: every rule holding an anonymous map (`numgen random mod N vmap {..}`)
//! binds it, and `__nft_set_trans_bind` then walks the *whole* commit list built so
//! far. `perf record` of 2,000 services x 10 endpoints in kube-proxy's order: 60% of
//! all samples in `__nft_set_trans_bind` (from `nf_tables_newrule` -> `nft_lookup_init`
//! -> `nf_tables_bind_set`), 6% in `nf_tables_newset` (an anonymous set's name is
//! allocated by scanning every set of the table), 1.5% in `nft_set_lookup_global`
//! (set lookup by name is a list scan).
//!
//! So the order that binds each anonymous map while the commit list is short wins:
//! per service its chains and its two service-chain rules, then all endpoint-chain
//! rules, then one `add element` per named set or map ([`Shape::BindEarly`], the
//! default). Same statements, same kernel objects (checked by the privileged test
//! `both_shapes_leave_the_same_ruleset`). Sys time of `nft -f` in a fresh namespace,
//! 2,000 services x 10 endpoints, one variable changed at a time (Python-generated
//! payloads, `unshare -n nft -f`):
//!
//! | shape | sys |
//! | --- | --- |
//! | kube-proxy order | 5.7 s |
//! | every chain declared before any rule | 6.8 s |
//! | kube-proxy order, elements batched into one `add element` each | 7.6 s |
//! | chains, endpoint rules, service rules, elements | 8.6 s |
//! | chains, elements, service rules, endpoint rules | 2.7 s |
//! | per service chains + service rules first, elements one per line | 1.9 s |
//! | the same without `flush chain` | 1.6 s |
//! | the same with batched elements (this shape) | 1.8 s |
//!
//! At 5,000 services the last three are 22.9 s, 21.2 s and 15.8 s against 51.6 s for
//! kube-proxy's order. Batching elements matters more as the table grows (each
//! `add element` statement looks its map up by a scan over all sets, by then one per
//! service). `add` and `create` do the same on an empty table. Dropping `flush chain`
//! saves little and would make a full sync over an existing table wrong, so it stays.
//! Splitting the sync into several transactions is not what kube-proxy does (its
//! syncs are atomic) and gains less than the order (5,000 services, kube-proxy order,
//! 10 transactions of 500: 15.9 s sys): what remains scales with the anonymous sets
//! already in the table, not with the transaction.
//!
//! Measured through [`NftablesBackend`] (`examples/nft_full_sync.rs`, 10 endpoints per
//! service, on a 2-core VM that other builds were loading, so wall times are inflated;
//! user and sys are the nft process's own):
//!
//! | services | kube-proxy order user / sys | this shape user / sys |
//! | --- | --- | --- |
//! | 1,000 | 0.54 / 1.20 s | 0.54 / 0.62 s |
//! | 2,000 | 1.27 / 6.13 s | 1.11 / 2.44 s |
//! | 5,000 | 2.82 / 53.9 s | 2.37 / 11.5 s |
//! | 10,000 | not run (over 3 min) | 5.63 / 93.8 s |
//!
//! The order halves to quarters the cost but cannot make it linear: the bind walk
//! still passes every chain declared before, and past about 5,000 services the commit
//! list no longer fits in cache.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use crate::model::{pod_cidr, Service, ServiceSet};
use crate::names::{nft_endpoint_chain, nft_service_chain};

mod setup;
pub use setup::{BASE_CHAINS, MASQ_MARK};

/// The table kube-proxy owns, as `nft` addresses it.
pub const TABLE: &str = "ip kube-proxy";

/// Statement order of a full-sync transaction. Both leave the same kernel objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Shape {
    /// knftables' order from kube-proxy's syncProxyRules: per service its chains, its
    /// map elements, then its rules.
    KubeProxy,
    /// Per service its chains and its service-chain rules first (so each anonymous
    /// vmap is bound while the transaction is still short), then every endpoint-chain
    /// rule, then the elements of each named set or map in one `add element`
    /// statement. See the module docs for the measurements.
    #[default]
    BindEarly,
}

/// A rendered transaction plus what a full sync should leave in the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    pub text: String,
    /// `add rule` statements.
    pub rules: usize,
    /// Elements added to named sets and maps.
    pub elements: usize,
}

/// Builds a transaction line by line and counts what it adds.
pub(crate) struct Tx {
    text: String,
    rules: usize,
    elements: usize,
}

impl Tx {
    fn new(capacity: usize) -> Self {
        Tx {
            text: String::with_capacity(capacity),
            rules: 0,
            elements: 0,
        }
    }

    fn line(&mut self, args: std::fmt::Arguments<'_>) {
        self.text
            .write_fmt(args)
            .expect("writing to a String cannot fail");
        self.text.push('\n');
    }

    /// kube-proxy's `ensureChain`: add, then flush, a regular chain.
    fn chain(&mut self, name: &str) {
        self.line(format_args!("add chain {TABLE} {name}"));
        self.line(format_args!("flush chain {TABLE} {name}"));
    }

    fn rule(&mut self, chain: &str, rule: std::fmt::Arguments<'_>) {
        self.line(format_args!("add rule {TABLE} {chain} {rule}"));
        self.rules += 1;
    }

    fn add_elem(&mut self, e: &Elem) {
        self.line(format_args!(
            "add element {TABLE} {} {{ {} }}",
            e.container,
            e.body()
        ));
        self.elements += 1;
    }

    /// One `add element` statement for many elements of one container.
    fn add_elems(&mut self, container: &str, elems: &[&Elem]) {
        if elems.is_empty() {
            return;
        }
        let _ = write!(self.text, "add element {TABLE} {container} {{ ");
        for (i, e) in elems.iter().enumerate() {
            if i > 0 {
                self.text.push_str(", ");
            }
            self.text.push_str(&e.body());
        }
        self.text.push_str(" }\n");
        self.elements += elems.len();
    }

    fn delete_elem(&mut self, e: &Elem) {
        self.line(format_args!(
            "delete element {TABLE} {} {{ {} }}",
            e.container, e.key
        ));
    }

    fn finish(self) -> Payload {
        Payload {
            text: self.text,
            rules: self.rules,
            elements: self.elements,
        }
    }
}

/// One element of a named set or map, as kube-proxy's nftElementStorage keeps it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Elem {
    container: &'static str,
    key: String,
    value: Option<String>,
    comment: Option<String>,
}

impl Elem {
    /// The element as knftables writes it: key, comment, then `: value`.
    fn body(&self) -> String {
        let mut s = self.key.clone();
        if let Some(c) = &self.comment {
            let _ = write!(s, " comment \"{c}\"");
        }
        if let Some(v) = &self.value {
            let _ = write!(s, " : {v}");
        }
        s
    }
}

/// The named-set and -map elements kube-proxy keeps for one ClusterIP service.
fn elements_of(svc: &Service) -> [Elem; 2] {
    let key = format!("{} . tcp . {}", svc.vip, svc.port);
    let cluster_ip = Elem {
        container: "cluster-ips",
        key: svc.vip.to_string(),
        value: None,
        comment: None,
    };
    let dispatch = if svc.endpoints.is_empty() {
        Elem {
            container: "no-endpoint-services",
            key,
            value: Some("goto reject-chain".into()),
            comment: Some(svc.port_name()),
        }
    } else {
        Elem {
            container: "service-ips",
            key,
            value: Some(format!("goto {}", nft_service_chain(svc))),
            comment: None,
        }
    };
    [cluster_ip, dispatch]
}

/// The service chain and endpoint chains a service uses (none without endpoints).
fn chains_of(svc: &Service) -> Vec<String> {
    if svc.endpoints.is_empty() {
        return Vec::new();
    }
    let mut v: Vec<String> = svc
        .endpoints
        .iter()
        .map(|ep| nft_endpoint_chain(svc, ep))
        .collect();
    v.push(nft_service_chain(svc));
    v
}

/// `ensureChain` for the endpoint chains, then the service chain, as kube-proxy orders them.
fn write_chains(tx: &mut Tx, svc: &Service) {
    for chain in chains_of(svc) {
        tx.chain(&chain);
    }
}

/// The service chain's rules: masquerade off-cluster traffic, then pick an endpoint.
fn write_service_rules(tx: &mut Tx, svc: &Service) {
    if svc.endpoints.is_empty() {
        return;
    }
    let chain = nft_service_chain(svc);
    tx.rule(
        &chain,
        format_args!(
            "ip daddr {} tcp dport {} ip saddr != {} jump mark-for-masquerade",
            svc.vip,
            svc.port,
            pod_cidr()
        ),
    );
    let mut vmap = String::new();
    for (i, ep) in svc.endpoints.iter().enumerate() {
        if i > 0 {
            vmap.push_str(" , ");
        }
        let _ = write!(vmap, "{i} : goto {}", nft_endpoint_chain(svc, ep));
    }
    tx.rule(
        &chain,
        format_args!(
            "numgen random mod {} vmap {{ {vmap} }}",
            svc.endpoints.len()
        ),
    );
}

/// Each endpoint chain: hairpin masquerade, then DNAT.
fn write_endpoint_rules(tx: &mut Tx, svc: &Service) {
    for ep in &svc.endpoints {
        let chain = nft_endpoint_chain(svc, ep);
        tx.rule(
            &chain,
            format_args!("ip saddr {} jump mark-for-masquerade", ep.ip),
        );
        tx.rule(
            &chain,
            format_args!("meta l4proto tcp dnat to {}", ep.host_port()),
        );
    }
}

fn capacity(set: &ServiceSet) -> usize {
    set.total_endpoints() * 420 + set.len() * 600 + 8192
}

/// The full-sync transaction for `set` from an empty table (kube-proxy's first sync),
/// in the default, fastest faithful [`Shape`].
pub fn render_full(set: &ServiceSet) -> Payload {
    render_full_shaped(set, Shape::default())
}

/// The full-sync transaction in a given statement order.
pub fn render_full_shaped(set: &ServiceSet, shape: Shape) -> Payload {
    let mut tx = Tx::new(capacity(set));
    setup::write_setup(&mut tx);
    match shape {
        Shape::KubeProxy => {
            for svc in &set.services {
                write_chains(&mut tx, svc);
                for e in elements_of(svc) {
                    tx.add_elem(&e);
                }
                write_service_rules(&mut tx, svc);
                write_endpoint_rules(&mut tx, svc);
            }
        }
        Shape::BindEarly => {
            for svc in &set.services {
                write_chains(&mut tx, svc);
                write_service_rules(&mut tx, svc);
            }
            for svc in &set.services {
                write_endpoint_rules(&mut tx, svc);
            }
            let elems: Vec<Elem> = set.services.iter().flat_map(elements_of).collect();
            for container in ["cluster-ips", "service-ips", "no-endpoint-services"] {
                let batch: Vec<&Elem> = elems.iter().filter(|e| e.container == container).collect();
                tx.add_elems(container, &batch);
            }
        }
    }
    tx.finish()
}

/// A partial-sync transaction from `old` to `new`, as kube-proxy writes it when only
/// some Services or EndpointSlices changed: no table setup; the chains of changed
/// services rewritten (`add` + `flush` + rules, endpoint chains included); map and set
/// elements added or deleted by diffing against what the previous sync wrote; chains
/// no longer used flushed. kube-proxy deletes flushed chains one second later in a
/// separate transaction (for kernels before 6.2, which notice the last map reference
/// going away only asynchronously); kpbench deletes them at the end of the same
/// transaction, after the map elements that pointed at them.
pub fn render_partial(old: &ServiceSet, new: &ServiceSet) -> Payload {
    let mut tx = Tx::new(4096);
    let old_elems: BTreeMap<(&str, String), Elem> = old
        .services
        .iter()
        .flat_map(elements_of)
        .map(|e| ((e.container, e.key.clone()), e))
        .collect();
    let mut kept: BTreeSet<(&str, String)> = BTreeSet::new();
    let mut active: BTreeSet<String> = BTreeSet::new();
    for svc in &new.services {
        active.extend(chains_of(svc));
        let changed = old.get(svc.index) != Some(svc);
        if changed {
            write_chains(&mut tx, svc);
        }
        // nftElementStorage.ensureElem: add if new, delete+add if the value changed.
        for e in elements_of(svc) {
            let id = (e.container, e.key.clone());
            match old_elems.get(&id) {
                Some(prev) if prev == &e => {}
                Some(_) => {
                    tx.delete_elem(&e);
                    tx.add_elem(&e);
                }
                None => tx.add_elem(&e),
            }
            kept.insert(id);
        }
        if changed {
            write_service_rules(&mut tx, svc);
            write_endpoint_rules(&mut tx, svc);
        }
    }
    let stale: Vec<String> = old
        .services
        .iter()
        .flat_map(chains_of)
        .filter(|c| !active.contains(c))
        .collect();
    for chain in &stale {
        tx.line(format_args!("flush chain {TABLE} {chain}"));
    }
    for (id, e) in &old_elems {
        if !kept.contains(id) {
            tx.delete_elem(e);
        }
    }
    for chain in &stale {
        tx.line(format_args!("delete chain {TABLE} {chain}"));
    }
    tx.finish()
}

/// Rules the kernel should hold after a full sync of `set`.
pub fn expected_rules(set: &ServiceSet) -> usize {
    FIXED_RULES + set.services.iter().map(rules_per_service).sum::<usize>()
}

/// Named set and map elements the kernel should hold after a sync of `set`.
pub fn expected_elements(set: &ServiceSet) -> usize {
    2 * set.len()
}

/// Rules of the fixed part (setup): 11 jumps, 4 masquerade rules, 2 cluster-ips-check
/// rules, reject-chain, 2 endpoint checks, firewall-check and 2 dispatch rules.
pub const FIXED_RULES: usize = 23;

/// Rules per service with `e` endpoints: 2 in the service chain, 2 per endpoint chain.
pub fn rules_per_service(svc: &Service) -> usize {
    match svc.endpoints.len() {
        0 => 0,
        e => 2 + 2 * e,
    }
}

#[cfg(test)]
mod tests;

mod apply;
pub use apply::{count_objects, normalized_listing, NftablesBackend};
