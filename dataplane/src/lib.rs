//! kpbench's dataplane library: the synthetic service model and one backend per
//! kube-proxy mode. Rendering (services -> rules) is pure; applying talks to the kernel.
//! No CLI, no printing.
//!
//! Layers, each importing only those below it: [`mode`] (the mode names); the
//! [`floor`] (the service model, names, tool runs, namespaces, deadlines,
//! prerequisites, the `Backend` and `Controller` traits and the executor seam), which
//! names no mode; one folder per mode ([`iptables`], [`nftables`], [`ipvs`], [`ebpf`],
//! with [`xtables`] shared by iptables and IPVS); on top, [`registry`], the one file
//! that names every mode, and [`conformance`], which holds each stand-in against the kernel.

pub mod conformance;
pub mod ebpf;
pub mod floor;
pub mod iptables;
pub mod ipvs;
pub mod mode;
pub mod nftables;
pub mod registry;
pub mod xtables;

pub use floor::backend::{Backend, NotImplemented, Objects, SyncKind};
pub use floor::deadline::Deadline;
pub use floor::error::ApplyError;
pub use floor::model::{Endpoint, Service, ServiceSet};
pub use floor::netns::Netns;
pub use floor::prereq::{KernelFeature, Prerequisites, ToolNeed, Unavailable};
pub use floor::sync::{Controller, KubeProxyVersion, Profile, ProfileKind, SyncReport};
pub use mode::{IpvsScheduler, Mode, ModeSpec, UnknownScheduler};
pub use registry::{backend, backend_for_release};
