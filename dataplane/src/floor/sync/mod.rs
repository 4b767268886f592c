//! How a sync is driven, apart from what it programs.
//!
//! kube-proxy does more per sync than write its payload: it lists what is in the kernel,
//! ensures chains and sets, writes ipset entries one process each, walks every IPVS
//! service, and defers work to timers. kpbench replays that with two **profiles**:
//!
//! - [`Profile::KubeProxy`]: the tool runs and netlink requests kube-proxy's sync loop
//!   makes, in its order, for a named [`KubeProxyVersion`];
//! - [`Profile::Floor`]: the fastest way kpbench knows to reach the identical kernel
//!   objects. kube-proxy minus floor is the controller's overhead; floor is the kernel's.
//!
//! A [`Controller`] is one profile of one mode with the state kube-proxy keeps between
//! syncs (stale chains waiting for their delayed delete, the time of the last
//! `iptables-save`, real servers in graceful termination). It acts only through an
//! [`Executor`]: the real one runs tools and kernel requests in the case's namespace and times
//! every step; the recording one ([`record::Recorder`]) answers from stand-ins and keeps
//! the calls, for `kpbench rules --profile` and the trace tests.
//!
//! **Timers.** kube-proxy acts on timers that a benchmark cannot wait for in real time.
//! Each sync is given its virtual time `at`: the runner spaces measured syncs by the
//! scenario's `sync_interval_s` (kube-proxy's minSyncPeriod, 1 s, by default), so a
//! timer of T seconds fires at the first sync at least T virtual seconds after it was
//! set. [`Controller::settle`] fires every pending timer, as the next sync after the
//! longest timer would.

pub mod executor;
pub mod record;
pub mod standin;

use std::time::Duration;

pub use executor::{
    Executor, Handles, Kernel, MeasuredExecutor, RealExecutor, Request, Timing, ToolCall,
};

use crate::floor::error::ApplyError;
use crate::floor::exec::Cost;
use crate::floor::model::ServiceSet;

/// A kube-proxy release whose sync loop is replayed, where releases differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum KubeProxyVersion {
    /// 1.35.0: lists `nft --json list chains ip` and `nft --json list sets ip` per sync.
    V1_35,
    /// 1.36: one `nft --json --terse list table ip kube-proxy` per sync.
    #[default]
    V1_36,
}

impl KubeProxyVersion {
    pub const ALL: [KubeProxyVersion; 2] = [KubeProxyVersion::V1_35, KubeProxyVersion::V1_36];

    /// The release as users write it: "1.35", "1.36".
    pub fn name(self) -> &'static str {
        match self {
            KubeProxyVersion::V1_35 => "1.35",
            KubeProxyVersion::V1_36 => "1.36",
        }
    }

    pub fn parse(s: &str) -> Option<KubeProxyVersion> {
        let s = s.trim().trim_start_matches('v');
        KubeProxyVersion::ALL
            .into_iter()
            .find(|v| s == v.name() || s.starts_with(&format!("{}.", v.name())))
    }
}

impl std::fmt::Display for KubeProxyVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Which of the two ways a sync is driven.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum ProfileKind {
    #[default]
    KubeProxy,
    Floor,
}

impl ProfileKind {
    pub const ALL: [ProfileKind; 2] = [ProfileKind::KubeProxy, ProfileKind::Floor];

    /// The name in scenarios, on the command line and in results.
    pub fn name(self) -> &'static str {
        match self {
            ProfileKind::KubeProxy => "kube-proxy",
            ProfileKind::Floor => "floor",
        }
    }

    pub fn parse(s: &str) -> Option<ProfileKind> {
        ProfileKind::ALL.into_iter().find(|p| p.name() == s.trim())
    }

    /// Every name, comma-separated, for messages.
    pub fn names() -> String {
        ProfileKind::ALL.map(ProfileKind::name).join(", ")
    }
}

impl std::fmt::Display for ProfileKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A profile with its kube-proxy release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Profile {
    KubeProxy(KubeProxyVersion),
    Floor,
}

impl Default for Profile {
    fn default() -> Self {
        Profile::KubeProxy(KubeProxyVersion::default())
    }
}

impl Profile {
    pub fn new(kind: ProfileKind, version: KubeProxyVersion) -> Profile {
        match kind {
            ProfileKind::KubeProxy => Profile::KubeProxy(version),
            ProfileKind::Floor => Profile::Floor,
        }
    }

    pub fn kind(self) -> ProfileKind {
        match self {
            Profile::KubeProxy(_) => ProfileKind::KubeProxy,
            Profile::Floor => ProfileKind::Floor,
        }
    }
}

impl std::fmt::Display for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Profile::KubeProxy(v) => write!(f, "kube-proxy {v}"),
            Profile::Floor => f.write_str("floor"),
        }
    }
}

/// What a step of a sync spends its time on, for the report's breakdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Category {
    /// Reading the kernel's state before writing (`iptables-save`, `nft list`, `ipset list`).
    Listing,
    /// Making sure chains, jumps and sets exist (EnsureChain/EnsureRule, `ipset create -exist`).
    Ensure,
    /// Writing ipset entries.
    Ipset,
    /// Writing the payload with a restore tool or an `nft -f` transaction.
    Restore,
    /// Netlink requests (IPVS, addresses, links).
    Netlink,
    /// BPF map requests (the ebpf mode's `bpf(2)` calls).
    Bpf,
    /// kpbench's own work in the calling thread (rendering, parsing), outside any tool.
    Controller,
}

impl Category {
    pub fn name(self) -> &'static str {
        match self {
            Category::Listing => "listing",
            Category::Ensure => "ensure",
            Category::Ipset => "ipset",
            Category::Restore => "restore",
            Category::Netlink => "netlink",
            Category::Bpf => "bpf",
            Category::Controller => "controller",
        }
    }
}

/// One named step of a sync with everything it cost; calls of the same name in one
/// sync (e.g. 1,000 `ipset add` processes) add up into one step.
#[derive(Debug, Clone, PartialEq)]
pub struct StepCost {
    /// What ran: the tool and its verb (`iptables-restore`, `ipset add`), or the
    /// netlink request (`IPVS GET_SERVICE`).
    pub name: String,
    pub category: Category,
    /// How many times it ran in the sync.
    pub calls: u32,
    /// Wall time and CPU; for tools, their own user/sys (wait4).
    pub cost: Cost,
}

/// The steps of one sync, in the order they first ran.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StepLog {
    pub steps: Vec<StepCost>,
}

impl StepLog {
    /// The step named `name`, if it ran.
    pub fn get(&self, name: &str) -> Option<&StepCost> {
        self.steps.iter().find(|s| s.name == name)
    }

    /// Adds one call of `name`.
    pub fn add(&mut self, name: &str, category: Category, cost: Cost) {
        self.add_calls(name, category, 1, cost);
    }

    /// Adds `calls` calls of `name` that cost `cost` together.
    pub fn add_calls(&mut self, name: &str, category: Category, calls: u32, cost: Cost) {
        match self.steps.iter_mut().find(|s| s.name == name) {
            Some(s) => {
                s.calls += calls;
                s.cost += cost;
            }
            None => self.steps.push(StepCost {
                name: name.to_string(),
                category,
                calls,
                cost,
            }),
        }
    }
}

/// What one sync cost, how large its payload was, and where the time went.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SyncReport {
    /// The whole sync: wall time from the call to the return, and CPU of the calling
    /// thread (rendering, netlink) plus every tool and helper thread it ran.
    pub cost: Cost,
    pub payload_bytes: usize,
    /// Each tool run and netlink request, by name (empty where a backend does not
    /// record steps).
    pub steps: StepLog,
}

/// One profile of one mode, with the state kube-proxy keeps between syncs. Created per
/// case: the first sync is from an empty namespace.
pub trait Controller: Send {
    /// The profile it replays.
    fn profile(&self) -> Profile;

    /// Programs the change from `old` (None: nothing programmed yet, the first full
    /// sync) to `new` at virtual time `at` (see the module docs on timers).
    fn sync(
        &mut self,
        io: &mut dyn Executor,
        old: Option<&ServiceSet>,
        new: &ServiceSet,
        at: Duration,
    ) -> Result<(), ApplyError>;

    /// Fires every timer still pending after the sync at `at` (delayed deletes,
    /// graceful terminations, large-cluster cleanups), as kube-proxy's next sync after
    /// the longest of them would. `set` is what is programmed.
    fn settle(
        &mut self,
        io: &mut dyn Executor,
        set: &ServiceSet,
        at: Duration,
    ) -> Result<(), ApplyError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_and_profiles_parse_by_their_names() {
        assert_eq!(
            KubeProxyVersion::parse("1.35"),
            Some(KubeProxyVersion::V1_35)
        );
        assert_eq!(
            KubeProxyVersion::parse("v1.36.2"),
            Some(KubeProxyVersion::V1_36)
        );
        assert_eq!(KubeProxyVersion::parse("1.3"), None);
        assert_eq!(ProfileKind::parse("floor"), Some(ProfileKind::Floor));
        assert_eq!(
            ProfileKind::parse("kube-proxy"),
            Some(ProfileKind::KubeProxy)
        );
        assert_eq!(ProfileKind::parse("kubeproxy"), None);
        assert_eq!(Profile::default().kind(), ProfileKind::KubeProxy);
    }

    #[test]
    fn steps_of_one_name_add_up_in_first_run_order() {
        let ms = |n| Cost {
            wall: Duration::from_millis(n),
            user: Duration::from_millis(n / 2),
            sys: Duration::ZERO,
        };
        let mut log = StepLog::default();
        log.add("ipset create", Category::Ensure, ms(2));
        log.add("ipset add", Category::Ipset, ms(4));
        log.add("ipset create", Category::Ensure, ms(6));
        assert_eq!(log.steps.len(), 2);
        assert_eq!(log.steps[0].name, "ipset create");
        assert_eq!(log.steps[0].calls, 2);
        assert_eq!(log.steps[0].cost.wall, Duration::from_millis(8));
        assert_eq!(log.steps[1].calls, 1);
    }
}
