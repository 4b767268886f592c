//! kpbench's exit codes: a stable contract for scripts and CI.

/// Everything ran (cases may still be `skipped` or `failed`: see the summary).
pub const OK: i32 = 0;
/// An internal error (a bug or an unexpected I/O failure).
pub const INTERNAL: i32 = 1;
/// Bad input: a flag, a scenario file or a kernel spec; the message names it and the fix.
pub const USAGE: i32 = 2;
/// `kpbench compare` found a regression beyond the threshold and the noise.
pub const REGRESSION: i32 = 3;
/// The environment cannot run it: not root, a missing tool or kernel feature (EX_UNAVAILABLE).
pub const UNAVAILABLE: i32 = 69;
/// The kernel lab's infrastructure failed: the guest did not boot, panicked or timed out.
pub const LAB_INFRA: i32 = 70;
/// The run was interrupted (SIGINT/SIGTERM); finished cases are kept.
pub const INTERRUPTED: i32 = 130;
