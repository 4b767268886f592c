//! The seam between the runner and the modes: one [`Backend`] per kube-proxy mode.
//! `render` is pure; `sync` and `read_back` talk to the kernel inside a namespace.

use std::time::Duration;

use crate::exec::{Cost, ExecError};
use crate::model::ServiceSet;
use crate::netns::{Netns, NetnsError};

/// A kube-proxy dataplane mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Mode {
    Iptables,
    IptablesLegacy,
    Nftables,
    Ipvs,
    Ebpf,
}

impl Mode {
    pub const ALL: [Mode; 5] = [
        Mode::Iptables,
        Mode::IptablesLegacy,
        Mode::Nftables,
        Mode::Ipvs,
        Mode::Ebpf,
    ];

    /// The name used in scenarios, on the command line and in results.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Iptables => "iptables",
            Mode::IptablesLegacy => "iptables-legacy",
            Mode::Nftables => "nftables",
            Mode::Ipvs => "ipvs",
            Mode::Ebpf => "ebpf",
        }
    }

    /// Parses a mode name.
    pub fn parse(s: &str) -> Option<Mode> {
        Mode::ALL.into_iter().find(|m| m.name() == s)
    }
}

impl serde::Serialize for Mode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Whether a sync programs everything from scratch or only what changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncKind {
    Full,
    Partial,
}

/// What one sync cost and how large its payload was.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SyncReport {
    pub cost: Cost,
    pub payload_bytes: usize,
}

/// Errors programming or reading a dataplane.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Exec(#[from] ExecError),
    #[error(transparent)]
    Netns(#[from] NetnsError),
    #[error("read-back mismatch: the kernel holds {found} {what}, {expected} were programmed")]
    Mismatch {
        what: &'static str,
        found: usize,
        expected: usize,
    },
    #[error("{0}")]
    Other(String),
    #[error("mode {0} is not implemented in this version of kpbench")]
    Unsupported(Mode),
}

impl ApplyError {
    /// Whether the error means the environment lacks a tool or kernel feature (the
    /// case is then `skipped`, not `failed`).
    pub fn is_missing_tool(&self) -> bool {
        matches!(
            self,
            ApplyError::Exec(ExecError::NotFound { .. }) | ApplyError::Unsupported(_)
        )
    }
}

/// One kube-proxy mode: how it renders services and how it programs the kernel.
pub trait Backend: Send + Sync {
    fn mode(&self) -> Mode;

    /// External programs this backend runs (for availability checks and the
    /// environment's tool versions).
    fn tools(&self) -> Vec<&'static str>;

    /// The exact payload a sync from `old` (None: empty, a full sync) to `new` would
    /// program, as text.
    fn render(&self, old: Option<&ServiceSet>, new: &ServiceSet) -> String;

    /// Programs the change from `old` (None: full sync from empty) to `new` into `ns`.
    fn sync(
        &self,
        ns: &Netns,
        old: Option<&ServiceSet>,
        new: &ServiceSet,
        timeout: Duration,
    ) -> Result<SyncReport, ApplyError>;

    /// Counts the kernel objects this mode programmed, read back from the kernel.
    fn read_back(&self, ns: &Netns, timeout: Duration) -> Result<usize, ApplyError>;

    /// How many kernel objects a full sync of `set` should leave.
    fn expected_objects(&self, set: &ServiceSet) -> usize;

    /// What [`Backend::read_back`] counts, for messages ("iptables rules").
    fn object_kind(&self) -> &'static str;
}

/// The backend for a mode with an IPVS scheduler (ignored by other modes; None means
/// the default, rr), or None where kpbench does not implement the mode yet.
pub fn backend_with(mode: Mode, ipvs_scheduler: Option<&str>) -> Option<Box<dyn Backend>> {
    match (mode, ipvs_scheduler) {
        (Mode::Ipvs, Some(s)) => Some(Box::new(crate::ipvs::IpvsBackend::new(s))),
        _ => backend(mode),
    }
}

/// The backend for a mode, or None where kpbench does not implement it yet.
pub fn backend(mode: Mode) -> Option<Box<dyn Backend>> {
    match mode {
        Mode::Iptables => Some(Box::new(crate::iptables::IptablesBackend::nft())),
        Mode::IptablesLegacy => Some(Box::new(crate::iptables::IptablesBackend::legacy())),
        Mode::Nftables => Some(Box::new(crate::nftables::NftablesBackend::new())),
        Mode::Ipvs => Some(Box::new(crate::ipvs::IpvsBackend::new("rr"))),
        _ => None,
    }
}
