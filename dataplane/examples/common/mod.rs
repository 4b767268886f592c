//! Helpers shared by the profile examples (`iptables_profiles`, `nft_full_sync`).

use std::time::Duration;

use dataplane::exec::Cost;
use dataplane::Netns;

/// A namespace deleted when dropped.
pub struct NsGuard(pub Netns);

impl Drop for NsGuard {
    fn drop(&mut self) {
        let _ = self.0.delete();
    }
}

/// Wall, user and sys seconds on one line.
pub fn fmt(c: &Cost) -> String {
    format!(
        "wall {:7.3} s  user {:7.3} s  sys {:7.3} s",
        c.wall.as_secs_f64(),
        c.user.as_secs_f64(),
        c.sys.as_secs_f64()
    )
}

/// The median (the upper one of an even count).
pub fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}
