//! The two ways an iptables sync is driven (see [`crate::floor::sync`]).
//!
//! [`KubeProxyController`] replays pkg/proxy/iptables/proxier.go `syncProxyRules`:
//!
//! - **full sync** (the first one, then when [`FULL_SYNC_PERIOD`] has passed since the
//!   last, or after a failed one): for each of the 14 jumps, in order, `EnsureChain`
//!   (`iptables -w 5 -W 100000 -N DST -t TABLE`, not de-duplicated, exit 1 meaning
//!   "already exists") then `EnsureRule(Prepend)` (`-C`, then `-I` only if `-C` exited
//!   1); then as a partial sync, with every service's chains written;
//! - **every sync**: `iptables-save -t nat` while the cluster has 1,000 endpoints or
//!   fewer; above that (largeClusterMode) only when more than [`SYNC_PERIOD`] has
//!   passed since the last one ran (the first sync always runs it). The chains the save
//!   lists that are kube-proxy's per-service chains and no longer active are flushed
//!   and deleted in the restore (`:CHAIN` + `-X CHAIN`). Then one
//!   `iptables-restore -w 5 -W 100000 --noflush --counters`, filter then nat.
//!
//! What the profile does not replay of `syncProxyRules`' tail, which writes no rule:
//! the UDP conntrack clean-up (pkg/proxy/conntrack `CleanStaleEntries`, run after the
//! restore only when a UDP service port's endpoints changed,
//! `ConntrackCleanupRequired`: one netlink dump of the conntrack table and a delete
//! per UDP flow whose reply source is no longer a serving endpoint), so a sync that
//! changes a UDP service's endpoints is timed without it; the health-check server's
//! update (`serviceHealthServer.SyncServices`, a listener per health-check node port,
//! which kpbench's shapes do not allocate, so neither is the KUBE-NODEPORTS
//! `health check node port` ACCEPT rule written); and the nfacct counters (the
//! localhost node-port and INVALID-drop counters need the `nfacct` netlink
//! subsystem, which kube-proxy probes; kpbench writes the rules without them).
//!
//! The timer is modelled over the syncs' virtual times: a service removed while the
//! save is skipped leaves its chains until the first sync more than 30 virtual seconds
//! after the last save; [`Controller::settle`] runs that sync.
//!
//! [`FloorController`] reaches the same objects with the fewest processes: the first
//! sync is one `iptables-restore -w` without `--noflush` into the empty namespace with
//! the jumps in its payload, and every later sync one `iptables-restore -w --noflush`
//! of only what changed (nothing is listed: the floor knows what it wrote): the
//! changed services' chains, their KUBE-SERVICES rules deleted (`-D`) or inserted at
//! their place (`-I KUBE-SERVICES N`) instead of the whole chain rewritten, and the
//! chains no longer used deleted in the same restore.

use std::collections::BTreeSet;
use std::time::Duration;

use super::{
    active_chains, changed, is_service_chain, jump_rules, large_cluster, render_floor_full,
    render_floor_partial, render_sync,
};
use crate::floor::error::ApplyError;
use crate::floor::model::ServiceSet;
use crate::floor::sync::{Controller, Executor, KubeProxyVersion, Profile};
use crate::xtables::{chains_in_save, Xtables, KUBE_RESTORE_ARGS};

/// kube-proxy's `syncPeriod` default (`--iptables-sync-period`, 30 s): in
/// largeClusterMode, `iptables-save` runs only when more than this has passed since the
/// last one.
pub const SYNC_PERIOD: Duration = Duration::from_secs(30);

/// kube-proxy's `proxyutil.FullSyncPeriod` (1 h): a sync more than this after the last
/// full sync is a full sync again.
pub const FULL_SYNC_PERIOD: Duration = Duration::from_secs(3600);

/// kube-proxy's iptables sync loop with the state it keeps between syncs.
#[derive(Debug, Clone)]
pub struct KubeProxyController {
    xt: Xtables,
    version: KubeProxyVersion,
    /// When the last full sync succeeded (`lastFullSync`); None: `needFullSync`.
    last_full: Option<Duration>,
    /// When `iptables-save` last ran (`lastIPTablesCleanup`); None: the zero time.
    last_cleanup: Option<Duration>,
    /// Chains went out of use while the save was skipped: they are still in the
    /// kernel until the next sync that runs the save.
    pending_cleanup: bool,
}

impl KubeProxyController {
    /// A kube-proxy that has not synced yet, running `xt`'s binaries.
    pub fn new(xt: Xtables, version: KubeProxyVersion) -> Self {
        KubeProxyController {
            xt,
            version,
            last_full: None,
            last_cleanup: None,
            pending_cleanup: false,
        }
    }

    /// `syncProxyRules` at virtual time `at`; `old` is what is programmed.
    fn sync_rules(
        &mut self,
        io: &mut dyn Executor,
        old: Option<&ServiceSet>,
        new: &ServiceSet,
        at: Duration,
    ) -> Result<(), ApplyError> {
        let full = old.is_none()
            || self
                .last_full
                .is_none_or(|t| at.saturating_sub(t) > FULL_SYNC_PERIOD);
        if full {
            // Every jump of iptablesJumpChains + iptablesKubeletJumpChains, in order;
            // any error returns before the restore.
            for jump in jump_rules() {
                self.xt.ensure_chain_io(io, jump.table, jump.to)?;
                self.xt.ensure_rule_io(io, &jump)?;
            }
        }
        let large = large_cluster(new);
        let active = active_chains(new);
        let mut delete = BTreeSet::new();
        let save_due = !large
            || self
                .last_cleanup
                .is_none_or(|t| at.saturating_sub(t) > SYNC_PERIOD);
        let mut saved = false;
        if save_due {
            // A failed save is logged by kube-proxy and the cleanup skipped.
            if let Some(save) = self.xt.save_io(io, "nat")? {
                delete = chains_in_save(&save)
                    .into_iter()
                    .filter(|c| is_service_chain(c) && !active.contains(c))
                    .collect();
                self.last_cleanup = Some(at);
                saved = true;
            }
        }
        if !saved {
            // What this sync leaves behind stays in the kernel until a later save.
            if let Some(old) = old {
                if active_chains(old).iter().any(|c| !active.contains(c)) {
                    self.pending_cleanup = true;
                }
            }
        } else {
            self.pending_cleanup = false;
        }
        let payload = render_sync(
            new,
            |svc| full || old.is_none_or(|old| changed(old, svc)),
            large,
            &delete,
        );
        self.xt
            .restore_io(io, &KUBE_RESTORE_ARGS, payload.text.as_bytes())?;
        if full {
            self.last_full = Some(at);
        }
        Ok(())
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
        let result = self.sync_rules(io, old, new, at);
        if result.is_err() {
            // The deferred handler of syncProxyRules: the change trackers were already
            // drained, so the next sync must be a full one.
            self.last_full = None;
        }
        result
    }

    /// The pending large-cluster cleanup: kube-proxy's next sync more than
    /// [`SYNC_PERIOD`] after the last `iptables-save` (a partial sync with nothing
    /// changed) saves the nat table and deletes the stale chains.
    fn settle(
        &mut self,
        io: &mut dyn Executor,
        set: &ServiceSet,
        at: Duration,
    ) -> Result<(), ApplyError> {
        if !self.pending_cleanup {
            return Ok(());
        }
        let due = self
            .last_cleanup
            .map_or(at, |t| t + SYNC_PERIOD + Duration::from_secs(1));
        self.sync(io, Some(set), set, due.max(at + Duration::from_secs(1)))
    }
}

/// The fastest way kpbench knows to the objects kube-proxy's syncs leave.
#[derive(Debug, Clone)]
pub struct FloorController {
    xt: Xtables,
}

impl FloorController {
    pub fn new(xt: Xtables) -> Self {
        FloorController { xt }
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
        match old {
            // The namespace is empty: no table to keep, so no `--noflush` (whose
            // cache building dominates iptables-nft-restore), and the jumps ride in
            // the payload instead of 42 iptables processes.
            None => {
                let payload = render_floor_full(new);
                self.xt.restore_io(io, &["-w"], payload.text.as_bytes())
            }
            Some(old) => {
                let payload = render_floor_partial(old, new);
                if payload.text.is_empty() {
                    return Ok(());
                }
                self.xt
                    .restore_io(io, &["-w", "--noflush"], payload.text.as_bytes())
            }
        }
    }

    /// Nothing waits: stale chains are deleted in the sync that leaves them.
    fn settle(
        &mut self,
        _io: &mut dyn Executor,
        _set: &ServiceSet,
        _at: Duration,
    ) -> Result<(), ApplyError> {
        Ok(())
    }
}
