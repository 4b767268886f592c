//! Running a scenario: plan the cases, give each a fresh sandbox, sync and read back
//! through its backend, measure the data path, and record every finished case at once.
//! ipvs cases go to the kernel lab when the host has no IPVS (`lab`), with the
//! scenario's iptables, nftables and eBPF modes at IPVS's scales for a same-kernel
//! comparison.
//!
//! - `plan`: the cases of a scenario, in order;
//! - `case`: one case, step by step;
//! - `runner`: the loop over cases, giving up on a mode after a timeout, recording;
//! - `memory`: what a run needs in memory, checked before it starts;
//! - `seams`: what the runner needs from outside (backends, sandbox, host), with fakes
//!   in `testing` for tests that need no root.

pub mod case;
pub mod churn;
pub mod environment;
pub mod lab;
pub mod memory;
pub mod metrics;
pub mod picks;
pub mod plan;
pub mod runner;
pub mod seams;
#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;

pub use runner::{run, Event, RunError, RunPlan, Runner};
