//! Running a scenario: plan the cases, give each a fresh sandbox, sync and read back
//! through its backend, measure the data path, and record every finished case at once.
//! ipvs cases go to the kernel lab when the host has no IPVS (`lab`).

pub mod environment;
pub mod lab;
pub mod metrics;
pub mod runner;

pub use runner::{run, Event, RunError, RunPlan};
