//! kpbench's dataplane library: the synthetic service model and one backend per
//! kube-proxy mode. Rendering (services -> rules) is pure; applying talks to the kernel.
//! No CLI, no printing.

pub mod backend;
pub mod exec;
pub mod iptables;
pub mod ipvs;
pub mod model;
pub mod names;
pub mod netns;
pub mod nftables;

pub use backend::{backend, ApplyError, Backend, Mode, SyncKind, SyncReport};
pub use model::{Endpoint, Service, ServiceSet};
pub use netns::Netns;
