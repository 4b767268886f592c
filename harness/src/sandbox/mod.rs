//! The sandbox a case runs in: three network namespaces (client, node, backend) with no
//! link to the host's root namespace, named after the run, registered while the run
//! lives, and removed by a guard or by `kpbench clean` after a crash.

pub mod clean;
pub mod names;
pub mod registry;
pub mod topology;

pub use topology::{Topology, TopologyError};
