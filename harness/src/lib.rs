//! kpbench's engine: scenarios, namespace topology, runner, load generator, metrics,
//! results, reports and the kernel lab. `main.rs` only parses arguments and maps errors
//! to exit codes.

pub mod capacity;
pub mod charts;
pub mod clean;
pub mod cli;
pub mod compare;
pub mod cpustat;
pub mod datapath;
pub mod environment;
pub mod exitcode;
pub mod lab;
pub mod labrun;
pub mod load;
pub mod metrics;
pub mod progress;
pub mod report;
pub mod results;
pub mod runner;
pub mod scenario;
pub mod serve;
pub mod topology;
