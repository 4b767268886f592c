//! What a case measures: a kube-proxy [`Mode`] and, for IPVS, its [`IpvsScheduler`],
//! together a [`ModeSpec`]. Names are a contract: scenarios, the command line and
//! results use them.

use std::fmt;
use std::str::FromStr;

/// A kube-proxy dataplane mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Mode {
    Iptables,
    IptablesLegacy,
    Nftables,
    Ipvs,
    /// Cilium's socket load balancer (cgroup connect4).
    Ebpf,
    /// Cilium's per-packet tc DNAT (not implemented yet).
    EbpfTc,
}

impl Mode {
    pub const ALL: [Mode; 6] = [
        Mode::Iptables,
        Mode::IptablesLegacy,
        Mode::Nftables,
        Mode::Ipvs,
        Mode::Ebpf,
        Mode::EbpfTc,
    ];

    /// The name used in scenarios, on the command line and in results.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Iptables => "iptables",
            Mode::IptablesLegacy => "iptables-legacy",
            Mode::Nftables => "nftables",
            Mode::Ipvs => "ipvs",
            Mode::Ebpf => "ebpf",
            Mode::EbpfTc => "ebpf-tc",
        }
    }

    /// Parses a mode name. A mode kpbench does not implement yet (ebpf-tc) parses: a
    /// scenario may list it, and its cases are recorded as skipped; making its backend
    /// fails with `NotImplemented` (in `floor/backend.rs`).
    pub fn parse(s: &str) -> Option<Mode> {
        Mode::ALL.into_iter().find(|m| m.name() == s)
    }
}

impl serde::Serialize for Mode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An IPVS scheduler kpbench measures (kube-proxy's `--ipvs-scheduler`). The kernel
/// ships more (`ip_vs_<name>.ko`: also wlc, lblc, lblcr, sed, nq, fo, ovf, mh); these
/// are the ones scenarios and `--scheduler` accept, and the one list of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum IpvsScheduler {
    /// Round robin, kube-proxy's default.
    #[default]
    Rr,
    /// Least connection.
    Lc,
    /// Source hashing.
    Sh,
    /// Destination hashing.
    Dh,
    /// Weighted round robin.
    Wrr,
}

impl IpvsScheduler {
    pub const ALL: [IpvsScheduler; 5] = [
        IpvsScheduler::Rr,
        IpvsScheduler::Lc,
        IpvsScheduler::Sh,
        IpvsScheduler::Dh,
        IpvsScheduler::Wrr,
    ];

    /// The kernel's name for it (`ip_vs_<name>`, `ipvsadm -s <name>`).
    pub fn name(self) -> &'static str {
        match self {
            IpvsScheduler::Rr => "rr",
            IpvsScheduler::Lc => "lc",
            IpvsScheduler::Sh => "sh",
            IpvsScheduler::Dh => "dh",
            IpvsScheduler::Wrr => "wrr",
        }
    }

    /// Parses a scheduler name.
    pub fn parse(s: &str) -> Result<IpvsScheduler, UnknownScheduler> {
        IpvsScheduler::ALL
            .into_iter()
            .find(|x| x.name() == s)
            .ok_or_else(|| UnknownScheduler {
                name: s.to_string(),
            })
    }

    /// Every accepted name, comma-separated, for messages.
    pub fn names() -> String {
        IpvsScheduler::ALL.map(IpvsScheduler::name).join(", ")
    }
}

/// A scheduler name kpbench does not accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown IPVS scheduler {name:?}; use one of {}",
    IpvsScheduler::names()
)]
pub struct UnknownScheduler {
    pub name: String,
}

impl FromStr for IpvsScheduler {
    type Err = UnknownScheduler;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        IpvsScheduler::parse(s)
    }
}

impl fmt::Display for IpvsScheduler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl serde::Serialize for IpvsScheduler {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> serde::Deserialize<'de> for IpvsScheduler {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        IpvsScheduler::parse(&name).map_err(serde::de::Error::custom)
    }
}

/// A mode as one case runs it: the mode and, for ipvs only, its scheduler.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ModeSpec {
    mode: Mode,
    scheduler: Option<IpvsScheduler>,
}

impl ModeSpec {
    /// `mode` with its defaults (ipvs: rr).
    pub fn new(mode: Mode) -> Self {
        ModeSpec::with_scheduler(mode, IpvsScheduler::default())
    }

    /// `mode` with an IPVS scheduler, which only ipvs keeps: the other modes have none.
    pub fn with_scheduler(mode: Mode, scheduler: IpvsScheduler) -> Self {
        ModeSpec {
            mode,
            scheduler: (mode == Mode::Ipvs).then_some(scheduler),
        }
    }

    pub fn mode(self) -> Mode {
        self.mode
    }

    /// The IPVS scheduler (Some for ipvs only).
    pub fn scheduler(self) -> Option<IpvsScheduler> {
        self.scheduler
    }
}

impl From<Mode> for ModeSpec {
    fn from(mode: Mode) -> Self {
        ModeSpec::new(mode)
    }
}

/// `ipvs (rr)`, `iptables`: how progress lines name a case's mode.
impl fmt::Display for ModeSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.scheduler {
            Some(s) => write!(f, "{} ({s})", self.mode),
            None => write!(f, "{}", self.mode),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for m in Mode::ALL {
            assert_eq!(Mode::parse(m.name()), Some(m));
        }
        for s in IpvsScheduler::ALL {
            assert_eq!(s.name().parse::<IpvsScheduler>(), Ok(s));
        }
        assert_eq!(Mode::parse("bogus"), None);
        assert_eq!(IpvsScheduler::names(), "rr, lc, sh, dh, wrr");
        let err = IpvsScheduler::parse("mh2").unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown IPVS scheduler \"mh2\"; use one of rr, lc, sh, dh, wrr"
        );
    }

    #[test]
    fn only_ipvs_keeps_a_scheduler() {
        let ipvs = ModeSpec::with_scheduler(Mode::Ipvs, IpvsScheduler::Sh);
        assert_eq!(ipvs.scheduler(), Some(IpvsScheduler::Sh));
        assert_eq!(ipvs.to_string(), "ipvs (sh)");
        assert_eq!(
            ModeSpec::new(Mode::Ipvs).scheduler(),
            Some(IpvsScheduler::Rr)
        );
        let ipt = ModeSpec::with_scheduler(Mode::Iptables, IpvsScheduler::Sh);
        assert_eq!(ipt.scheduler(), None);
        assert_eq!(ipt, ModeSpec::from(Mode::Iptables));
        assert_eq!(ipt.to_string(), "iptables");
    }
}
