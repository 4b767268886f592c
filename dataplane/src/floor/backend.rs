//! The seam between the runner and the modes: one [`Backend`] per kube-proxy mode, made
//! by [`backend`] from a [`ModeSpec`]. `render` is pure; `sync` and `verify` talk to the
//! kernel inside a namespace, by a [`Deadline`].

use crate::floor::deadline::Deadline;
use crate::floor::error::ApplyError;
use crate::floor::model::ServiceSet;
use crate::floor::netns::Netns;
use crate::floor::prereq::Prerequisites;
use crate::floor::spec::Feature;
use crate::floor::sync::standin::StandIn;
use crate::floor::sync::{Controller, Executor, Profile, SyncReport};
use crate::mode::{Mode, ModeSpec};

/// Whether a sync programs everything from scratch or only what changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncKind {
    Full,
    Partial,
}

/// What [`Backend::verify`] found: as many kernel objects as a full sync leaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Objects {
    pub count: usize,
    /// What was counted ("iptables rules").
    pub kind: &'static str,
}

impl std::fmt::Display for Objects {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.count, self.kind)
    }
}

impl Objects {
    /// `found` objects of `kind` where a full sync leaves `expected`: [`Objects`] when
    /// they agree, [`ApplyError::Mismatch`] when not.
    pub fn check(kind: &'static str, found: usize, expected: usize) -> Result<Self, ApplyError> {
        if found != expected {
            return Err(ApplyError::Mismatch {
                what: kind,
                found,
                expected,
            });
        }
        Ok(Objects { count: found, kind })
    }
}

/// One kube-proxy mode: what it needs, how it renders services, how it programs and
/// reads back the kernel.
pub trait Backend: Send + Sync {
    /// The mode and its settings (the IPVS scheduler).
    fn spec(&self) -> ModeSpec;

    fn mode(&self) -> Mode {
        self.spec().mode()
    }

    /// What the machine must have: the programs this backend runs (with their
    /// packages) and the kernel features it programs.
    fn prerequisites(&self) -> Prerequisites;

    /// The programs this backend runs, in [`Backend::prerequisites`] order (for the
    /// environment's tool versions).
    fn tools(&self) -> Vec<&'static str> {
        self.prerequisites().programs()
    }

    /// The service features ([`crate::floor::spec::Feature`]) this mode renders as
    /// kube-proxy (or Cilium's agent) does; a case whose services use another is
    /// skipped, saying which (default none: N x E ClusterIPs only).
    fn renders(&self) -> &'static [Feature] {
        &[]
    }

    /// What this mode's data path does not do as the real one does for the features
    /// in `used` (of [`Backend::renders`]), one sentence each: their kernel objects
    /// are programmed as they should be, but traffic through kpbench's programs does
    /// not take that path. A case whose services use them records these notes
    /// (default none: the mode's data path is the real one).
    fn unexercised(&self, _used: &[Feature]) -> Vec<String> {
        Vec::new()
    }

    /// The command that shows what this mode programmed, to run inside the namespace
    /// (`ipvsadm -S -n`, `nft list table ip kube-proxy`, ...).
    fn inspect_command(&self) -> &'static str;

    /// Programs the change from `old` (None: full sync from empty) to `new` into `ns`
    /// in one go, with a fresh kube-proxy controller (the default profile): for tools
    /// and tests that program a namespace once. A case's syncs go through one
    /// [`Backend::controller`] instead, which keeps kube-proxy's state between them.
    fn sync(
        &self,
        ns: &Netns,
        old: Option<&ServiceSet>,
        new: &ServiceSet,
        deadline: Deadline,
    ) -> Result<SyncReport, ApplyError> {
        use crate::floor::sync::{MeasuredExecutor, RealExecutor};
        let mut ctl = self.controller(Profile::default());
        let mut io = RealExecutor::new(ns, deadline);
        io.begin(deadline);
        let done = ctl.sync(&mut io, old, new, std::time::Duration::ZERO);
        let report = io.finish();
        done.map(|()| report)
    }

    /// A controller that drives this mode's syncs the way `profile` says, with the
    /// state kube-proxy keeps between syncs; one per case.
    fn controller(&self, profile: Profile) -> Box<dyn Controller>;

    /// Stand-ins for the kernel state this mode's tools and requests touch, for the
    /// recording executor (`kpbench rules --profile`, trace tests).
    fn standins(&self) -> Vec<Box<dyn StandIn>>;

    /// The mode's kernel state as its listing tools or map dumps give it, sent through
    /// `io` so that the kernel and the stand-ins answer the very same requests, and
    /// normalised alike on both sides (each normalisation says why it hides nothing
    /// the stand-in claims to model): what the conformance tests diff.
    fn readback(&self, io: &mut dyn Executor) -> Result<String, ApplyError>;

    /// Makes what this mode programmed into `ns` outlive this process (`kpbench
    /// apply`); where it is kept, when that is not the namespace itself. Only the ebpf
    /// mode has anything to keep: its maps and links live only as long as their
    /// descriptors unless pinned.
    fn keep(&self, _ns: &Netns) -> Result<Option<String>, ApplyError> {
        Ok(None)
    }

    /// Reads this mode's objects back from the kernel in `ns` and checks them against
    /// what a full sync of `expected` leaves: [`ApplyError::Mismatch`] when they differ.
    fn verify(
        &self,
        ns: &Netns,
        expected: &ServiceSet,
        deadline: Deadline,
    ) -> Result<Objects, ApplyError>;
}

/// A mode kpbench has no backend for: every mode has one now; a run records such a
/// mode's cases as skipped, saying so (the runner's tests use it with fake backends).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("mode {0} is not implemented in kpbench {version}", version = env!("CARGO_PKG_VERSION"))]
pub struct NotImplemented(pub Mode);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_count_that_disagrees_is_a_mismatch() {
        assert_eq!(
            Objects::check("rules", 3, 3).unwrap().to_string(),
            "3 rules"
        );
        let e = Objects::check("rules", 2, 3).unwrap_err();
        assert_eq!(
            e.to_string(),
            "read-back mismatch: the kernel holds 2 rules, 3 were programmed"
        );
    }
}
