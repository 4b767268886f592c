//! kpbench's engine: scenarios, namespace topology, runner, load generator, metrics,
//! results, reports and the kernel lab. `main.rs` only parses arguments and maps errors
//! to exit codes.
