//! Names of what a run creates: every namespace carries the run's id, so runs never
//! collide and `kpbench clean` finds a crashed run's leftovers.

/// Prefix of every namespace kpbench creates.
pub const NETNS_PREFIX: &str = "kpb-";

/// The namespace name for a role in a run.
pub fn netns_name(run_id: &str, role: &str) -> String {
    format!("{NETNS_PREFIX}{run_id}-{role}")
}
