//! kube-proxy's nftables mode: pure rendering of the transaction kube-proxy pipes to
//! `nft -f -` for ClusterIP services (full and partial syncs), following
//! pkg/proxy/nftables/proxier.go and the text knftables writes for each object.
//!
//! # Why the floor's full sync is not knftables' statement order
//!
//! (The kube-proxy sync profile below does use knftables' order. These measurements
//! were made with an earlier one-shot statement order, "bind early", since removed:
//! they are why the floor binds each anonymous map while its transaction is short.)
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
//! rules, then one `add element` per named set or map ("bind early"). Same
//! statements, same kernel objects. Sys time of `nft -f` in a fresh namespace,
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
//! | the same with batched elements (bind early) | 1.8 s |
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
//! Measured through the one-shot `sync` of the time (an example since removed: `kpbench
//! run --modes nftables` measures syncs now; 10 endpoints per service, on a 2-core VM that other builds were loading, so wall times are inflated;
//! user and sys are the nft process's own):
//!
//! | services | kube-proxy order user / sys | bind early user / sys |
//! | --- | --- | --- |
//! | 1,000 | 0.54 / 1.20 s | 0.54 / 0.62 s |
//! | 2,000 | 1.27 / 6.13 s | 1.11 / 2.44 s |
//! | 5,000 | 2.82 / 53.9 s | 2.37 / 11.5 s |
//! | 10,000 | not run (over 3 min) | 5.63 / 93.8 s |
//!
//! The order halves to quarters the cost but cannot make it linear: the bind walk
//! still passes every chain declared before, and past about 5,000 services the commit
//! list no longer fits in cache.

//!
//! # The two sync profiles
//!
//! - **kube-proxy** ([`render_kube_proxy`]): the transaction in knftables' call order
//!   (per service its chains, its map elements, then its rules), with kube-proxy's element storage (`ensureElem`:
//!   add if new, delete + add if the value changed; leftover keys deleted at the end)
//!   and its stale-chain handling: a listed service or endpoint chain (its name has a
//!   "/") that is not active is flushed in this transaction; the controller deletes it
//!   in a separate transaction at a later sync ([`render_delete_chains`]).
//! - **floor** ([`render_floor_full`], [`render_floor_partial`]): "prepare then publish".
//!   A full sync is two transactions: every chain and endpoint rule first, then the
//!   service-chain rules (each binds its anonymous `numgen` vmap while the transaction
//!   is short) and every element batched into one `add element` per container. A partial
//!   sync is one transaction with batched element diffs, and the chains it left unused
//!   are deleted by a second transaction right after it.
//!
//! Both leave identical kernel objects once the kube-proxy profile's delayed deletes
//! have run (the privileged test `profiles_leave_identical_objects`).
//!
//! Full sync from empty through the controllers (an example since removed, the same
//! syncs `kpbench run --modes nftables --profiles kube-proxy,floor` measures; 10
//! endpoints per service, kernel 6.18, nft 1.0.6; wall / sys of the whole sync, on a
//! 2-core VM loaded by other builds, so walls are inflated):
//!
//! | services | kube-proxy 1.35 | kube-proxy 1.36 | floor |
//! | --- | --- | --- | --- |
//! | 1,000 | 1.30 / 0.53 s | 1.41 / 0.61 s | 1.06-1.57 / 0.36-0.44 s |
//! | 2,000 | 2.97 / 1.69 s | 3.79 / 1.69 s | 2.60 / 1.07 s |
//! | 5,000 | 31.5 / 27.7 s | 28.7 / 26.0 s | 6.96 / 4.22 s |
//!
//! (Those figures were taken when both releases wrote 1.35's rules; they differed only
//! in the listing of partial syncs: at 1,000 services 1.35's two family-wide lists took
//! about 0.3 s, 1.36's `--json --terse list table` about 1.2-1.7 s wall.)
//!
//! # What 1.36 changed in the rules
//!
//! kube-proxy 1.36 (PRs #135800 "rework nftables masquerading code, part 1" and
//! #136499 "further nftables masquerading improvements", for issue #135639: fewer
//! `jump`s on very large rulesets) writes no per-endpoint chains:
//!
//! | | 1.35 | 1.36 |
//! | --- | --- | --- |
//! | chains per service | service chain + one per endpoint | service chain |
//! | rules per service (e endpoints) | 2 + 2e | 1 |
//! | picking an endpoint | `numgen random mod e vmap { i : goto endpoint-.. }` | `dnat ip addr . port to numgen random mod e map { i : ip . port }` |
//! | off-cluster traffic | `jump mark-for-masquerade` in each service chain | one rule in `services` on `@cluster-ips` |
//! | hairpin (pod to itself) | `jump mark-for-masquerade` in each endpoint chain | `ct status dnat` + the `hairpin-connections` set, one tuple per endpoint |
//! | fixed rules | 23 | 22 (no `mark-for-masquerade` chain, 2 masquerading rules) |
//!
//! Sources: the service-chain rule as pkg/proxy/nftables/proxier_test.go
//! `TestOverallNFTablesRules` expects it (quoted in kubernetes/kubernetes PR #140362's
//! review, July 2026, before that PR changed it), and the rest as a v1.36.2 node lists
//! its table (`nft list table ip kube-proxy`: the `hairpin-connections` set, the two
//! masquerading rules, the marking rule in `services`). The v1.36 proxier.go itself was
//! not available to check the statement order against; kpbench keeps knftables' order
//! of 1.35 (per service its chain, its elements, its rule), with the hairpin tuples
//! after the service's other elements.
//!
//! What it does, measured (`kpbench run` of a scenario with `modes = ["nftables"]`,
//! `services = [1000, 5000]`, 10 endpoints, `profiles = ["kube-proxy"]`, `repeats = 3`
//! and `kube_proxy_version` "1.35" or "1.36"; debug build, kernel 6.18, nft 1.0.6, on a
//! 2-core VM shared with other builds and a qemu guest, so walls are inflated and
//! noisy). Full sync: median of 3 from empty (range); incremental: p50 of 3. SYN
//! transit: the in-kernel time of a connection's SYN through the VIP, p50 per position,
//! mean over 9 positions (direct to an endpoint: 3.9-4.1 us in all four runs):
//!
//! | | 1.35, 1,000 | 1.36, 1,000 | 1.35, 5,000 | 1.36, 5,000 |
//! | --- | --- | --- | --- | --- |
//! | kernel objects | 24,024 | 13,023 | 120,024 | 65,023 |
//! | `nft -f` input | 5.6 MB | 1.6 MB | 28.6 MB | 8.2 MB |
//! | full sync | 3.21 s (1.93-4.09) | 0.64 s (0.55-0.80) | 35.3 s (33.8-46.6) | 6.78 s (6.75-8.87) |
//! | full sync user / sys | 0.62 / 0.56 s | 0.22 / 0.15 s | 3.2 / 29.8 s | 1.2 / 3.5 s |
//! | add / remove / update | 2.10 / 1.44 / 1.52 s | 0.62 / 0.63 / 0.59 s | 5.97 / 5.89 / 6.32 s | 5.05 / 4.51 / 4.32 s |
//! | SYN transit, VIP | 5.75 us | 5.42 us | 5.89 us | 5.36 us |
//! | per service position | flat, -0.01 ns/svc [-0.44, 0.43] | flat, 0.04 [-0.28, 0.36] | flat, 0.03 [-0.07, 0.12] | flat, 0.02 [-0.01, 0.05] |
//!
//! So 1.36's full sync is about 5x faster at both scales (the bind walk of the anonymous
//! `numgen` maps no longer passes ten endpoint chains per service), its incremental
//! syncs are faster at 1,000 and less so at 5,000 (there the per-sync `list table`
//! dominates), and lookup stays flat in the number of services in both releases; a
//! SYN through the VIP costs about 0.3-0.5 us less in 1.36 (one chain and no
//! `jump mark-for-masquerade` fewer per packet). That last difference is not judged
//! by the statistics rule here: one run each, ranges across positions overlapping.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use crate::floor::model::{Service, ServiceSet};
use crate::floor::sync::KubeProxyVersion;

mod setup;
pub use setup::{NodePortAddresses, Setup, BASE_CHAINS, DEFAULT_NODE_IP, MASQ_MARK};

mod controller;
mod printed;
mod readback;
mod service;
mod standin;
pub use controller::{
    listed_names, listed_names_of, FloorController, KubeProxyController, FULL_SYNC_PERIOD,
    STALE_CHAIN_DELAY,
};
pub use standin::NftStandIn;

/// The table kube-proxy owns, as `nft` addresses it.
pub const TABLE: &str = "ip kube-proxy";

/// A rendered transaction plus what a full sync should leave in the kernel.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
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
        self.delete_key(e.container, &e.key);
    }

    /// knftables' `tx.Delete(&Element{..})`: the key only.
    fn delete_key(&mut self, container: &str, key: &str) {
        self.line(format_args!(
            "delete element {TABLE} {container} {{ {key} }}"
        ));
    }

    /// One `delete element` statement for many keys of one container.
    fn delete_keys(&mut self, container: &str, keys: &[&str]) {
        if keys.is_empty() {
            return;
        }
        self.line(format_args!(
            "delete element {TABLE} {container} {{ {} }}",
            keys.join(", ")
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

/// The named sets and maps kube-proxy fills, in the order it declares their element
/// storages (clusterIPs, serviceIPs, firewallIPs, noEndpointServices,
/// noEndpointNodePorts, serviceNodePorts, [1.36] hairpinConnections): the order of
/// `cleanupLeftoverKeys`. 1.35 has no `hairpin-connections` set, so it stays empty there.
const CONTAINERS: [&str; 7] = [
    "cluster-ips",
    "service-ips",
    "firewall-ips",
    "no-endpoint-services",
    "no-endpoint-nodeports",
    "service-nodeports",
    HAIRPIN_SET,
];

/// 1.36's set of (endpoint, endpoint, protocol, port) tuples whose connections the
/// `masquerading` chain masquerades (a pod reaching itself through its service).
const HAIRPIN_SET: &str = "hairpin-connections";

fn container_index(name: &str) -> usize {
    CONTAINERS
        .iter()
        .position(|c| *c == name)
        .expect("elements_of only uses the containers in CONTAINERS")
}

/// The named-set and -map elements kube-proxy keeps for one service, port by port
/// ([`service::PortView::ops`]).
fn elements_of(svc: &Service, release: KubeProxyVersion) -> Vec<Elem> {
    service::views(svc)
        .iter()
        .flat_map(|p| p.elements(release))
        .collect()
}

/// The chains a service uses (none without endpoints), port by port in `ensureChain`
/// order: 1.35 each port's endpoint chains, then its service (and local, external,
/// firewall) chains; 1.36 the same without endpoint chains unless the service has
/// ClientIP affinity.
fn chains_of(svc: &Service, release: KubeProxyVersion) -> Vec<String> {
    service::views(svc)
        .iter()
        .flat_map(|p| p.chains(release))
        .collect()
}

/// The affinity sets a service uses (`affinity-..`, one per endpoint and port of a
/// ClientIP-affinity service).
fn affinity_sets_of(svc: &Service) -> Vec<String> {
    service::views(svc)
        .iter()
        .flat_map(|p| p.affinity_sets())
        .collect()
}

/// Every service and endpoint chain `set` uses with `release`'s rules.
pub fn chains_of_set(set: &ServiceSet, release: KubeProxyVersion) -> BTreeSet<String> {
    set.services
        .iter()
        .flat_map(|svc| chains_of(svc, release))
        .collect()
}

/// Every affinity set `set` uses.
fn affinity_sets_of_set(set: &ServiceSet) -> BTreeSet<String> {
    set.services.iter().flat_map(affinity_sets_of).collect()
}

/// Whether `chain` is one of the per-service chains kube-proxy may find stale
/// (`isServiceChainName`: only they contain a "/").
pub fn is_service_chain_name(chain: &str) -> bool {
    chain.contains('/')
}

/// `ensureChain` for every chain of the service, as kube-proxy orders them.
fn write_chains(tx: &mut Tx, svc: &Service, release: KubeProxyVersion) {
    for chain in chains_of(svc, release) {
        tx.chain(&chain);
    }
}

/// Writes the statements of `svc`'s ports that belong to `part` (all of them when
/// None), in kube-proxy's order within each port.
fn write_statements(
    tx: &mut Tx,
    svc: &Service,
    release: KubeProxyVersion,
    part: Option<service::Part>,
) {
    for view in service::views(svc) {
        for st in view.statements(release) {
            if part.is_some_and(|p| p != st.part) {
                continue;
            }
            match &st.chain {
                Some(chain) => tx.rule(chain, format_args!("{}", st.text)),
                None => tx.line(format_args!("{}", st.text)),
            }
        }
    }
}

/// The rules that lead into a service's chains: 1.35's off-cluster masquerade and each
/// policy chain's dispatch, the external and firewall chains' rules (1.36: the policy
/// chains' one DNAT-map rule; see [`service`]).
fn write_service_rules(tx: &mut Tx, svc: &Service, release: KubeProxyVersion) {
    write_statements(tx, svc, release, Some(service::Part::Publish));
}

/// The affinity sets and each endpoint chain's rules (1.36 writes endpoint chains only
/// for affinity services).
fn write_endpoint_rules(tx: &mut Tx, svc: &Service, release: KubeProxyVersion) {
    write_statements(tx, svc, release, Some(service::Part::Prepare));
}

fn capacity(set: &ServiceSet) -> usize {
    set.total_endpoints() * 420 + set.len() * 600 + 8192
}

/// Every element of `set`, one `add element` statement per container (a key two
/// services share, such as a hairpin tuple, once).
fn write_batched_elements(tx: &mut Tx, set: &ServiceSet, release: KubeProxyVersion) {
    let elems = index_elements(set, release);
    for (i, container) in CONTAINERS.iter().enumerate() {
        let batch: Vec<&Elem> = elems
            .iter()
            .filter(|((c, _), _)| *c == i)
            .map(|(_, e)| e)
            .collect();
        tx.add_elems(container, &batch);
    }
}

/// Every element of `set` by (container index, key).
fn index_elements(set: &ServiceSet, release: KubeProxyVersion) -> BTreeMap<(usize, String), Elem> {
    set.services
        .iter()
        .flat_map(|svc| elements_of(svc, release))
        .map(|e| ((container_index(e.container), e.key.clone()), e))
        .collect()
}

/// kube-proxy's `nftElementStorage` for each container kpbench fills: what the previous
/// syncs wrote, key to element. kube-proxy diffs against it instead of the kernel.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ElementStorage {
    containers: [BTreeMap<String, Elem>; 7],
}

impl ElementStorage {
    /// How many elements it holds over all containers.
    pub fn len(&self) -> usize {
        self.containers.iter().map(BTreeMap::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `reset`: forgets everything (the full sync's `flush set|map` empties the kernel's).
    pub fn clear(&mut self) {
        for c in &mut self.containers {
            c.clear();
        }
    }

    /// `ensureElem`: writes `e` unless it is there with the same value; the key is no
    /// longer a leftover.
    fn ensure(&mut self, tx: &mut Tx, e: Elem, leftover: &mut [BTreeSet<String>; 7]) {
        let i = container_index(e.container);
        leftover[i].remove(&e.key);
        match self.containers[i].get(&e.key) {
            // knftables compares key and value (joined); the comment is not part of it.
            Some(prev) if prev.value == e.value => {}
            Some(_) => {
                tx.delete_elem(&e);
                tx.add_elem(&e);
                self.containers[i].insert(e.key.clone(), e);
            }
            None => {
                tx.add_elem(&e);
                self.containers[i].insert(e.key.clone(), e);
            }
        }
    }
}

/// What kube-proxy's listing at the start of a sync found in its table: chain and set
/// names (empty when the listing failed, as on a fresh namespace: kube-proxy logs the
/// error and goes on with nothing listed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    pub chains: Vec<String>,
    pub sets: Vec<String>,
}

/// The inputs of one kube-proxy transaction.
#[derive(Debug, Clone, Copy)]
pub struct KubeProxySync<'a> {
    /// The release whose rules are written.
    pub release: KubeProxyVersion,
    /// `Some` on a full sync: `setupNFTables`, and every service rewritten.
    pub setup: Option<Setup>,
    /// What the previous sync programmed: the services that differ in `new` are the
    /// changed ones (kube-proxy's service and endpoint change trackers). Ignored on a
    /// full sync.
    pub old: Option<&'a ServiceSet>,
    pub new: &'a ServiceSet,
    /// The listing made at the start of the sync.
    pub listing: &'a Listing,
}

/// One kube-proxy transaction and what it decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeProxyTx {
    pub payload: Payload,
    /// Listed service chains that are not active: flushed in this transaction, to be
    /// deleted by a later one.
    pub stale: Vec<String>,
    /// Listed service chains that are active (kube-proxy drops them from its stale list).
    pub live: Vec<String>,
}

/// kube-proxy's main transaction of one sync (pkg/proxy/nftables/proxier.go
/// `syncProxyRules`), in knftables' call order:
///
/// 1. on a full sync, `setupNFTables` (table, base chains, jump chains, sets and maps,
///    the containers flushed: `storage` is cleared with them);
/// 2. per service in rule order, per port ([`service`]): its chains (`add` + `flush`)
///    if the service changed; its elements (`ensureElem`, for every service on every
///    sync); then, if it changed, its rules and affinity sets;
/// 3. every listed chain with a "/" that no service uses: `flush chain` (deleted by a
///    later transaction, see [`render_delete_chains`]); every listed `affinity-*` set
///    no service uses: `delete set`;
/// 4. `cleanupLeftoverKeys`: `delete element` for every key no service ensured, by
///    container in kube-proxy's order.
///
/// kube-proxy iterates Go maps (services, listed chains, leftover keys) in random
/// order; kpbench uses service index and name order.
pub fn render_kube_proxy(sync: &KubeProxySync<'_>, storage: &mut ElementStorage) -> KubeProxyTx {
    let full = sync.setup.is_some();
    let release = sync.release;
    let mut tx = Tx::new(if full { capacity(sync.new) } else { 4096 });
    if let Some(setup) = sync.setup {
        setup::write_setup(&mut tx, setup, release);
        storage.clear();
    }
    let mut leftover: [BTreeSet<String>; 7] = Default::default();
    for (i, c) in storage.containers.iter().enumerate() {
        leftover[i] = c.keys().cloned().collect();
    }
    let mut active: BTreeSet<String> = BTreeSet::new();
    let mut active_sets: BTreeSet<String> = BTreeSet::new();
    for svc in &sync.new.services {
        let rewrite = full || sync.old.is_none_or(|old| old.get(svc.index) != Some(svc));
        for view in service::views(svc) {
            active.extend(view.chains(release));
            active_sets.extend(view.affinity_sets());
            for op in view.ops(release) {
                match op {
                    service::Op::Chain(chain) if rewrite => tx.chain(&chain),
                    service::Op::Chain(_) => {}
                    service::Op::Elem(e) => storage.ensure(&mut tx, e, &mut leftover),
                }
            }
            if rewrite {
                for st in view.statements(release) {
                    match &st.chain {
                        Some(chain) => tx.rule(chain, format_args!("{}", st.text)),
                        None => tx.line(format_args!("{}", st.text)),
                    }
                }
            }
        }
    }
    let listed: BTreeSet<&String> = sync.listing.chains.iter().collect();
    let mut stale = Vec::new();
    let mut live = Vec::new();
    for chain in listed {
        if !is_service_chain_name(chain) {
            continue;
        }
        if active.contains(chain) {
            live.push(chain.clone());
        } else {
            tx.line(format_args!("flush chain {TABLE} {chain}"));
            stale.push(chain.clone());
        }
    }
    let listed_sets: BTreeSet<&String> = sync.listing.sets.iter().collect();
    for set in listed_sets {
        if set.starts_with("affinity-") && !active_sets.contains(set) {
            tx.line(format_args!("delete set {TABLE} {set}"));
        }
    }
    for (i, keys) in leftover.iter().enumerate() {
        for key in keys {
            tx.delete_key(CONTAINERS[i], key);
            storage.containers[i].remove(key);
        }
    }
    KubeProxyTx {
        payload: tx.finish(),
        stale,
        live,
    }
}

/// kube-proxy's delayed delete of stale chains: a separate transaction, one
/// `delete chain` per chain (empty text for none).
pub fn render_delete_chains(chains: &[String]) -> String {
    let mut text = String::new();
    for chain in chains {
        let _ = writeln!(text, "delete chain {TABLE} {chain}");
    }
    text
}

/// The floor's full sync from an empty table, "prepare then publish":
///
/// - **prepare**: `setupNFTables`, then per service its chains (`add` + `flush`) and its
///   endpoint-chain rules. Nothing refers to these chains yet.
/// - **publish**: per service its service-chain rules (each `numgen ... vmap` binds its
///   anonymous map while this transaction is still short), then every element, one
///   `add element` per container.
///
/// Same statements as kube-proxy `release`'s transaction, so the same objects.
pub fn render_floor_full(
    set: &ServiceSet,
    setup: Setup,
    release: KubeProxyVersion,
) -> [Payload; 2] {
    let mut prepare = Tx::new(capacity(set));
    setup::write_setup(&mut prepare, setup, release);
    for svc in &set.services {
        write_chains(&mut prepare, svc, release);
        write_endpoint_rules(&mut prepare, svc, release);
    }
    let mut publish = Tx::new(set.len() * 700 + 1024);
    for svc in &set.services {
        write_service_rules(&mut publish, svc, release);
    }
    write_batched_elements(&mut publish, set, release);
    [prepare.finish(), publish.finish()]
}

/// The floor's partial sync from `old` to `new`: one transaction with the chains and
/// rules of the changed services, the element differences batched per container
/// (deletes, then adds: a changed value is deleted and added again), and a `flush` of
/// every chain no longer used, then a `delete set` of every affinity set no longer used
/// (no rule refers to it once those chains are flushed). Returns those chains, which a second transaction deletes
/// ([`render_delete_chains`]): deleting a chain in the transaction that drops the map
/// element pointing at it can fail before Linux 6.2.
pub fn render_floor_partial(
    old: &ServiceSet,
    new: &ServiceSet,
    release: KubeProxyVersion,
) -> (Payload, Vec<String>) {
    let mut tx = Tx::new(4096);
    let mut active: BTreeSet<String> = BTreeSet::new();
    let changed: Vec<&Service> = new
        .services
        .iter()
        .filter(|svc| old.get(svc.index) != Some(*svc))
        .collect();
    for svc in &new.services {
        active.extend(chains_of(svc, release));
    }
    for svc in &changed {
        write_chains(&mut tx, svc, release);
        write_endpoint_rules(&mut tx, svc, release);
    }
    for svc in &changed {
        write_service_rules(&mut tx, svc, release);
    }
    let (was, now) = (index_elements(old, release), index_elements(new, release));
    for (i, container) in CONTAINERS.iter().enumerate() {
        let deletes: Vec<&str> = was
            .iter()
            .filter(|((c, _), e)| {
                *c == i
                    && now
                        .get(&(i, e.key.clone()))
                        .is_none_or(|n| n.value != e.value)
            })
            .map(|(_, e)| e.key.as_str())
            .collect();
        tx.delete_keys(container, &deletes);
    }
    for (i, container) in CONTAINERS.iter().enumerate() {
        let adds: Vec<&Elem> = now
            .iter()
            .filter(|((c, _), e)| {
                *c == i
                    && was
                        .get(&(i, e.key.clone()))
                        .is_none_or(|w| w.value != e.value)
            })
            .map(|(_, e)| e)
            .collect();
        tx.add_elems(container, &adds);
    }
    let stale: Vec<String> = chains_of_set(old, release)
        .into_iter()
        .filter(|c| !active.contains(c))
        .collect();
    for chain in &stale {
        tx.line(format_args!("flush chain {TABLE} {chain}"));
    }
    let sets_now = affinity_sets_of_set(new);
    for set in affinity_sets_of_set(old).difference(&sets_now) {
        tx.line(format_args!("delete set {TABLE} {set}"));
    }
    (tx.finish(), stale)
}

/// Rules the kernel should hold after a full sync of `set` with `release`'s rules.
pub fn expected_rules(set: &ServiceSet, release: KubeProxyVersion) -> usize {
    fixed_rules(release)
        + set
            .services
            .iter()
            .map(|svc| rules_per_service(svc, release))
            .sum::<usize>()
}

/// Elements of the services' named sets and maps after a sync of `set` (the
/// `nodeport-ips` set holds [`NodePortAddresses::ips`] besides): two per service, and
/// in 1.36 one hairpin tuple per distinct endpoint.
pub fn expected_elements(set: &ServiceSet, release: KubeProxyVersion) -> usize {
    index_elements(set, release).len()
}

/// Rules of 1.35's fixed part (setup): 11 jumps, 4 masquerade rules, 2 cluster-ips-check
/// rules, reject-chain, 2 endpoint checks, firewall-check and 2 dispatch rules.
pub const FIXED_RULES: usize = 23;

/// Rules of 1.36's fixed part: 1.35's without the `mark-for-masquerade` chain's rule,
/// with 2 masquerading rules instead of 3 and the off-cluster marking rule in `services`.
pub const FIXED_RULES_1_36: usize = 22;

/// Rules of `release`'s fixed part.
pub fn fixed_rules(release: KubeProxyVersion) -> usize {
    match release {
        KubeProxyVersion::V1_35 => FIXED_RULES,
        KubeProxyVersion::V1_36 => FIXED_RULES_1_36,
    }
}

/// Rules a service's ports write ([`service::PortView::statements`], affinity-set
/// statements not counted). For today's one-port ClusterIP with `e` endpoints: 1.35 has
/// 2 in the service chain and 2 per endpoint chain; 1.36 one DNAT-map rule in the
/// service chain.
pub fn rules_per_service(svc: &Service, release: KubeProxyVersion) -> usize {
    service::views(svc)
        .iter()
        .map(|p| {
            p.statements(release)
                .iter()
                .filter(|st| st.chain.is_some())
                .count()
        })
        .sum()
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_features;

mod apply;
pub use apply::{count_objects, normalized_listing, NftablesBackend};
