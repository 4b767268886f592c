//! The nftables mode's two sync profiles as [`Controller`]s.
//!
//! **kube-proxy** replays pkg/proxy/nftables/proxier.go `syncProxyRules` as knftables
//! runs it (`Run`: `nft -f -` with the transaction on stdin, no `--check`):
//!
//! 1. if stale chains are waiting and one went stale at least 1 s (virtual) before this
//!    sync, a separate `nft -f -` deleting those chains (kernels before 6.2 can refuse
//!    the delete in the transaction that dropped the last map element pointing at a
//!    chain); if it fails, kube-proxy counts a cleanup failure and makes this sync full;
//! 2. the listing, on every sync, full or partial: 1.35 runs knftables v0.0.18/19's
//!    `List(ctx, "chains")` and `List(ctx, "sets")` (`nft --json list chains ip`, then
//!    `nft --json list sets ip`: family-wide, filtered to the table by name); 1.36 runs
//!    `ListAll` (`nft --json --terse list table ip kube-proxy`). On a fresh namespace
//!    the table listing fails ("No such file or directory"): kube-proxy logs it and
//!    goes on with nothing listed, and so does this controller;
//! 3. the main `nft -f -` ([`render_kube_proxy`]): setupNFTables on full syncs, the
//!    changed services' chains and rules, element diffs, listed chains no service
//!    uses flushed (recorded with the sync's virtual time) and leftover elements
//!    deleted. If it fails, the stale list is cleared and the next sync is full.
//!
//! A sync is full on the first sync, after a failure, after a failed stale-chain
//! delete, when `old` is None, and once an hour (`proxyutil.FullSyncPeriod`) of virtual
//! time after the last full sync.
//!
//! **Timers** (module docs of [`crate::floor::sync`]): a chain flushed at virtual time `t` is
//! deleted at the start of the first sync at `at >= t + 1 s`. kube-proxy compares real
//! times (`modtime.Before(start - 1s)`), and a real sync starts strictly after the
//! previous one did plus its own duration; virtual times are exact, so the comparison
//! is `>=`, or syncs spaced exactly 1 s apart would never delete. Like kube-proxy, a
//! sync before the delay is over finds the chain listed again, flushes it again and
//! restarts its delay. [`Controller::settle`] runs the delete transaction for every
//! chain still waiting.
//!
//! The rule text is each release's own: 1.35 has per-endpoint chains (`numgen ...
//! vmap` to them, `jump mark-for-masquerade`); 1.36 (PRs #135800 and #136499) has none:
//! each service chain is one `dnat ip addr . port to numgen random mod N map { .. }`,
//! off-cluster traffic is marked once in `services`, and hairpin traffic is matched by
//! the `hairpin-connections` set (see [`super::render_kube_proxy`]).
//!
//! **floor** reaches the same objects as the release it is built for
//! ([`FloorController::new`]) the fastest way kpbench knows: a full sync is
//! "prepare then publish" ([`render_floor_full`], two transactions); a partial sync is
//! one transaction with batched element diffs ([`render_floor_partial`]), then a second
//! deleting the chains it left unused. No listing: the floor knows what it programmed.
//! If that delete fails (a kernel that still sees the chain referenced), the chains are
//! retried at the start of the next sync and by `settle`.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{
    render_delete_chains, render_floor_full, render_floor_partial, render_kube_proxy,
    ElementStorage, KubeProxySync, Listing, NodePortAddresses, Setup,
};
use crate::floor::error::ApplyError;
use crate::floor::exec::{first_lines, ExecError, Output};
use crate::floor::model::ServiceSet;
use crate::floor::sync::{Category, Controller, Executor, KubeProxyVersion, Profile, ToolCall};

/// How long kube-proxy leaves a flushed chain before deleting it.
pub const STALE_CHAIN_DELAY: Duration = Duration::from_secs(1);

/// `proxyutil.FullSyncPeriod`: a sync this long after the last full sync is full.
pub const FULL_SYNC_PERIOD: Duration = Duration::from_secs(3600);

/// The step names of the calls, as the step log shows them.
mod step {
    pub const LIST_CHAINS: &str = "nft list chains";
    pub const LIST_SETS: &str = "nft list sets";
    pub const LIST_TABLE: &str = "nft list table";
    pub const TRANSACTION: &str = "nft -f";
    pub const DELETE_CHAINS: &str = "nft -f (delete stale chains)";
    pub const PREPARE: &str = "nft -f (prepare)";
    pub const PUBLISH: &str = "nft -f (publish)";
}

/// The table kube-proxy lists, by name.
const TABLE_NAME: &str = "kube-proxy";

/// The part of a listed object kube-proxy reads; everything else (rule expressions,
/// set elements) is skipped unparsed.
#[derive(serde::Deserialize)]
struct Named<'a> {
    #[serde(borrow, default)]
    table: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    name: Option<std::borrow::Cow<'a, str>>,
}

#[derive(serde::Deserialize)]
struct NftJson<'a> {
    #[serde(borrow)]
    nftables: Vec<BTreeMap<&'a str, Named<'a>>>,
}

/// Names of the objects of each kind in `kinds` ("chain", "set") in an
/// `nft --json list` output that belong to kube-proxy's table, in output order
/// (knftables `List` / `ListAll`: objects of other tables are skipped, objects without
/// a name ignored).
pub fn listed_names_of(json: &str, kinds: &[&str]) -> Result<Vec<Vec<String>>, serde_json::Error> {
    let doc: NftJson<'_> = serde_json::from_str(json)?;
    let mut out = vec![Vec::new(); kinds.len()];
    for obj in &doc.nftables {
        for (kind, body) in obj {
            let Some(i) = kinds.iter().position(|k| k == kind) else {
                continue;
            };
            if body.table.as_deref() != Some(TABLE_NAME) {
                continue;
            }
            if let Some(name) = &body.name {
                out[i].push(name.to_string());
            }
        }
    }
    Ok(out)
}

/// [`listed_names_of`] for one kind.
pub fn listed_names(json: &str, kind: &str) -> Result<Vec<String>, serde_json::Error> {
    Ok(listed_names_of(json, &[kind])?.remove(0))
}

/// Runs one `nft -f -` and fails unless it exits 0, naming what it ran.
fn transaction(io: &mut dyn Executor, step: &str, text: &str) -> Result<Output, ApplyError> {
    io.tool(ToolCall::new(step, Category::Restore, "nft", &["-f", "-"]).stdin(text.as_bytes()))
}

fn failed(step: &str, out: &Output) -> ApplyError {
    ExecError::Failed {
        tool: format!("nft -f - ({step})"),
        status: out.status,
        stderr: first_lines(&out.stderr, 6),
    }
    .into()
}

/// kube-proxy's nftables sync loop for one release, with the state it keeps between
/// syncs.
#[derive(Debug, Clone)]
pub struct KubeProxyController {
    version: KubeProxyVersion,
    node_ports: NodePortAddresses,
    /// `needFullSync`: true until a sync succeeds, and again after a failure.
    need_full_sync: bool,
    /// `flushed`: the one-off add+delete of the base chains has been written.
    flushed: bool,
    /// Virtual time of the last successful full sync.
    last_full_sync: Option<Duration>,
    /// `staleChains`: flushed chains waiting for their delete, with the virtual time of
    /// the sync that (last) flushed them.
    stale_chains: BTreeMap<String, Duration>,
    /// The containers' elements as the previous syncs wrote them.
    elements: ElementStorage,
}

impl KubeProxyController {
    pub fn new(version: KubeProxyVersion, node_ports: NodePortAddresses) -> Self {
        KubeProxyController {
            version,
            node_ports,
            need_full_sync: true,
            flushed: false,
            last_full_sync: None,
            stale_chains: BTreeMap::new(),
            elements: ElementStorage::default(),
        }
    }

    /// Chains flushed and waiting for their delayed delete, with the virtual time they
    /// (last) went stale.
    pub fn stale_chains(&self) -> &BTreeMap<String, Duration> {
        &self.stale_chains
    }

    /// The stale-chain delete transaction of `chains`, which leave the stale list
    /// whether or not it succeeds (kube-proxy: "if the chains still exist, they'll just
    /// get added back (with a later timestamp) at the end of the sync").
    fn delete_chains(
        &mut self,
        io: &mut dyn Executor,
        chains: &[String],
    ) -> Result<Output, ApplyError> {
        for chain in chains {
            self.stale_chains.remove(chain);
        }
        transaction(io, step::DELETE_CHAINS, &render_delete_chains(chains))
    }

    /// One listing call; None if nft failed or printed something unparsable (kube-proxy
    /// logs "Failed to list existing chains/sets" and goes on).
    fn list(
        io: &mut dyn Executor,
        step: &str,
        args: &[&str],
        kinds: &[&str],
    ) -> Result<Option<Vec<Vec<String>>>, ApplyError> {
        let out = io.tool(ToolCall::new(step, Category::Listing, "nft", args))?;
        if out.status != 0 {
            tracing::debug!(step, stderr = %first_lines(&out.stderr, 2), "nft listing failed; nothing listed");
            return Ok(None);
        }
        match listed_names_of(&out.stdout, kinds) {
            Ok(all) => Ok(Some(all)),
            Err(e) => {
                tracing::warn!(step, error = %e, "unparsable nft listing; nothing listed");
                Ok(None)
            }
        }
    }

    /// The listing at the start of a sync, as this release makes it.
    fn listing(&self, io: &mut dyn Executor) -> Result<Listing, ApplyError> {
        let mut listing = Listing::default();
        match self.version {
            KubeProxyVersion::V1_35 => {
                let chains = ["--json", "list", "chains", "ip"];
                if let Some(mut v) = Self::list(io, step::LIST_CHAINS, &chains, &["chain"])? {
                    listing.chains = v.remove(0);
                }
                let sets = ["--json", "list", "sets", "ip"];
                if let Some(mut v) = Self::list(io, step::LIST_SETS, &sets, &["set"])? {
                    listing.sets = v.remove(0);
                }
            }
            KubeProxyVersion::V1_36 => {
                let args = ["--json", "--terse", "list", "table", "ip", TABLE_NAME];
                if let Some(mut v) = Self::list(io, step::LIST_TABLE, &args, &["chain", "set"])? {
                    listing.sets = v.remove(1);
                    listing.chains = v.remove(0);
                }
            }
        }
        Ok(listing)
    }
}

impl Controller for KubeProxyController {
    fn profile(&self) -> Profile {
        Profile::KubeProxy(self.version)
    }

    fn sync(
        &mut self,
        io: &mut dyn Executor,
        old: Option<&ServiceSet>,
        new: &ServiceSet,
        at: Duration,
    ) -> Result<(), ApplyError> {
        let mut full = self.need_full_sync
            || old.is_none()
            || self
                .last_full_sync
                .is_none_or(|t| at.saturating_sub(t) > FULL_SYNC_PERIOD);

        // 1. Stale chains old enough: a transaction of their own, before anything else.
        let due: Vec<String> = self
            .stale_chains
            .iter()
            .filter(|(_, &t)| at >= t + STALE_CHAIN_DELAY)
            .map(|(c, _)| c.clone())
            .collect();
        if !due.is_empty() && self.delete_chains(io, &due)?.status != 0 {
            // NFTablesCleanupFailuresTotal, and a full sync; the chains come back from
            // the listing.
            full = true;
        }

        // 2. The listing (kube-proxy writes setupNFTables into the transaction first,
        //    in memory; nothing runs before the listing).
        let listing = self.listing(io)?;

        // 3. The transaction.
        let setup = full.then(|| {
            let setup = Setup {
                first: !self.flushed,
                node_ports: self.node_ports,
            };
            self.flushed = true;
            setup
        });
        let tx = render_kube_proxy(
            &KubeProxySync {
                release: self.version,
                setup,
                old,
                new,
                listing: &listing,
            },
            &mut self.elements,
        );
        for chain in &tx.stale {
            self.stale_chains.insert(chain.clone(), at);
        }
        for chain in &tx.live {
            self.stale_chains.remove(chain);
        }
        let out = transaction(io, step::TRANSACTION, &tx.payload.text)?;
        if out.status != 0 {
            self.stale_chains.clear();
            self.need_full_sync = true;
            return Err(failed(step::TRANSACTION, &out));
        }
        self.need_full_sync = false;
        if full {
            self.last_full_sync = Some(at);
        }
        Ok(())
    }

    fn settle(
        &mut self,
        io: &mut dyn Executor,
        _set: &ServiceSet,
        _at: Duration,
    ) -> Result<(), ApplyError> {
        if self.stale_chains.is_empty() {
            return Ok(());
        }
        let chains: Vec<String> = self.stale_chains.keys().cloned().collect();
        let out = self.delete_chains(io, &chains)?;
        if out.status != 0 {
            self.need_full_sync = true;
            return Err(failed(step::DELETE_CHAINS, &out));
        }
        Ok(())
    }
}

/// The fastest way kpbench knows to the objects kube-proxy `release` leaves.
#[derive(Debug, Clone)]
pub struct FloorController {
    node_ports: NodePortAddresses,
    /// The release whose objects the floor programs.
    release: KubeProxyVersion,
    /// Chains whose delete failed, retried at the next sync and by `settle`.
    pending: Vec<String>,
}

impl FloorController {
    pub fn new(node_ports: NodePortAddresses, release: KubeProxyVersion) -> Self {
        FloorController {
            node_ports,
            release,
            pending: Vec::new(),
        }
    }

    /// Deletes the pending chains; keeps them pending if the kernel refused.
    fn delete_pending(&mut self, io: &mut dyn Executor) -> Result<Option<Output>, ApplyError> {
        if self.pending.is_empty() {
            return Ok(None);
        }
        let out = transaction(
            io,
            step::DELETE_CHAINS,
            &render_delete_chains(&self.pending),
        )?;
        if out.status == 0 {
            self.pending.clear();
        } else {
            tracing::debug!(stderr = %first_lines(&out.stderr, 2), "floor: stale chains not deleted yet");
        }
        Ok(Some(out))
    }
}

impl Controller for FloorController {
    fn profile(&self) -> Profile {
        Profile::Floor
    }

    fn sync(
        &mut self,
        io: &mut dyn Executor,
        old: Option<&ServiceSet>,
        new: &ServiceSet,
        _at: Duration,
    ) -> Result<(), ApplyError> {
        self.delete_pending(io)?;
        match old {
            None => {
                let setup = Setup {
                    first: true,
                    node_ports: self.node_ports,
                };
                let [prepare, publish] = render_floor_full(new, setup, self.release);
                for (step, payload) in [(step::PREPARE, prepare), (step::PUBLISH, publish)] {
                    let out = transaction(io, step, &payload.text)?;
                    if out.status != 0 {
                        return Err(failed(step, &out));
                    }
                }
            }
            Some(old) => {
                let (payload, stale) = render_floor_partial(old, new, self.release);
                let out = transaction(io, step::TRANSACTION, &payload.text)?;
                if out.status != 0 {
                    return Err(failed(step::TRANSACTION, &out));
                }
                self.pending.extend(stale);
                self.delete_pending(io)?;
            }
        }
        Ok(())
    }

    fn settle(
        &mut self,
        io: &mut dyn Executor,
        _set: &ServiceSet,
        _at: Duration,
    ) -> Result<(), ApplyError> {
        // A kernel that releases map-element references asynchronously (before 6.2)
        // may need a moment: retry for up to about a second.
        for attempt in 0..20 {
            match self.delete_pending(io)? {
                None => return Ok(()),
                Some(out) if out.status == 0 => return Ok(()),
                Some(out) if attempt == 19 => return Err(failed(step::DELETE_CHAINS, &out)),
                Some(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
        Ok(())
    }
}
