//! The floor every mode builds on. It names no mode (it imports only [`crate::mode`],
//! the mode names) and no mode's types: a mode's own kernel requests and stand-ins are
//! the mode's, run and answered through the traits here.
//!
//! - [`model`]: the synthetic services, [`spec`]: what a service is beyond one TCP
//!   port of a ClusterIP, [`shape`]: a cluster's services as structure and the
//!   services built from one; [`topology`]: which endpoints each traffic policy
//!   uses; [`names`]: their kernel names;
//! - [`exec`]: tool runs; [`thread_cpu`]: the calling thread's exact CPU; [`netns`]: namespaces; [`deadline`]: deadlines;
//! - [`prereq`]: what a mode needs of the machine; [`bpf`]: the embedded BPF objects;
//! - [`error`]: [`error::ApplyError`], what programming or reading a dataplane can
//!   fail with; [`errno`]: kernel errors by their errno name;
//! - [`sync`]: how a sync is driven: profiles, the [`sync::Controller`] trait, the
//!   [`sync::Executor`] seam (real and recording) and the [`sync::standin::StandIn`]
//!   trait;
//! - [`backend`]: the [`backend::Backend`] trait every mode implements.

pub mod backend;
pub mod bpf;
pub mod deadline;
pub mod errno;
pub mod error;
pub mod exec;
pub mod model;
pub mod names;
pub mod netns;
pub mod prereq;
pub mod shape;
pub mod spec;
pub mod sync;
pub mod thread_cpu;
pub mod topology;
