//! kpbench's engine, one folder per stage of the pipeline:
//!
//! ```text
//! cli -> scenario -> run -> sandbox (namespaces) -> dataplane backend (sync)
//!                        -> datapath (server, load, CPU) -> results -> analysis -> report
//!                        -> lab (the same run inside a booted kernel)
//! ```
//!
//! Dependencies point down that list only. `cli` is the edge: it parses arguments,
//! prints, and maps errors to exit codes; no other module prints. `main.rs` only
//! dispatches. docs/architecture.md has the file for each stage and how to add a mode.

pub mod analysis;
pub mod cli;
pub mod datapath;
pub mod exitcode;
pub mod lab;
pub mod report;
pub mod results;
pub mod run;
pub mod sandbox;
pub mod scenario;
