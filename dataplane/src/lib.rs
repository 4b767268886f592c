//! kpbench's dataplane library: the synthetic service model and one backend per
//! kube-proxy mode. Rendering (services -> rules) is pure; applying talks to the kernel.
//! No CLI, no printing.

pub mod backend;
pub mod bpf;
pub mod conformance;
pub mod deadline;
pub mod ebpf;
pub mod error;
pub mod exec;
pub mod iptables;
pub mod ipvs;
pub mod mode;
pub mod model;
pub mod names;
pub mod netns;
pub mod nftables;
pub mod prereq;
pub mod registry;
pub mod sync;
pub mod xtables;

pub use backend::{Backend, NotImplemented, Objects, SyncKind};
pub use deadline::Deadline;
pub use error::ApplyError;
pub use mode::{IpvsScheduler, Mode, ModeSpec, UnknownScheduler};
pub use model::{Endpoint, Service, ServiceSet};
pub use netns::Netns;
pub use prereq::{KernelFeature, Prerequisites, ToolNeed, Unavailable};
pub use registry::backend;
pub use sync::{Controller, KubeProxyVersion, Profile, ProfileKind, SyncReport};
