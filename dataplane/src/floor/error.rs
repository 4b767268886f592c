//! [`ApplyError`]: what can go wrong programming or reading a dataplane, below the
//! `Backend` trait and the sync executor, which both return it.

use crate::floor::exec::ExecError;
use crate::floor::netns::NetnsError;
use crate::floor::prereq::Unavailable;

/// Errors programming or reading a dataplane.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Exec(#[from] ExecError),
    #[error(transparent)]
    Netns(#[from] NetnsError),
    /// The machine lacks something the mode needs (found while applying it).
    #[error(transparent)]
    Unavailable(#[from] Unavailable),
    /// An error of a mode's own kernel interface (IPVS over generic netlink), in the
    /// mode's words.
    #[error(transparent)]
    Mode(Box<dyn std::error::Error + Send + Sync>),
    #[error("read-back mismatch: the kernel holds {found} {what}, {expected} were programmed")]
    Mismatch {
        what: &'static str,
        found: usize,
        expected: usize,
    },
    #[error("sysctl {key}={value}: {source}")]
    Sysctl {
        key: &'static str,
        value: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("{what}: {}", crate::floor::errno::Named(source))]
    Netlink {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// A BPF object (program, map, link, pin, cgroup) could not be made or used.
    #[error("{what}: {}", crate::floor::errno::Named(source))]
    Bpf {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{command} in namespace {ns}: unparsable output: {source}")]
    Unparsable {
        command: &'static str,
        ns: String,
        #[source]
        source: serde_json::Error,
    },
    /// The deadline had passed before the operation could start.
    #[error("no time was left to start it")]
    Expired,
}

impl ApplyError {
    /// Whether the error means the environment lacks a tool or kernel feature (the
    /// case is then `skipped`, not `failed`).
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            ApplyError::Exec(ExecError::NotFound { .. }) | ApplyError::Unavailable(_)
        )
    }

    /// Whether a deadline ran out (a tool was killed for it, or nothing could start).
    pub fn is_timeout(&self) -> bool {
        matches!(
            self,
            ApplyError::Exec(ExecError::Timeout { .. }) | ApplyError::Expired
        )
    }
}
