//! One type for time limits: a [`Deadline`] is a point in time, so a limit passes
//! through nested calls (a case, its syncs, their tools and sockets) without each step
//! restarting the clock.

use std::time::{Duration, Instant};

/// The least time a tool or socket is given, even past the deadline: a timeout of zero
/// would mean "no timeout" to a socket, and a tool that is started must be bounded.
pub const MIN_BUDGET: Duration = Duration::from_millis(1);

/// How far ahead [`Deadline::after`] reaches at most (about 30 years): later instants
/// may not be representable, and nothing kpbench waits for takes that long.
const FOREVER: Duration = Duration::from_secs(1 << 30);

/// The instant by which an operation must finish.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Deadline(Instant);

impl Deadline {
    /// The deadline at `instant`.
    pub fn at(instant: Instant) -> Self {
        Deadline(instant)
    }

    /// The deadline `limit` from now.
    pub fn after(limit: Duration) -> Self {
        Deadline::after_from(Instant::now(), limit)
    }

    /// The deadline `limit` after `start`.
    pub fn after_from(start: Instant, limit: Duration) -> Self {
        let limit = limit.min(FOREVER);
        Deadline(start.checked_add(limit).unwrap_or(start + FOREVER))
    }

    pub fn instant(self) -> Instant {
        self.0
    }

    /// Time left, zero once it has passed.
    pub fn remaining(self) -> Duration {
        self.0.saturating_duration_since(Instant::now())
    }

    /// Whether it has passed.
    pub fn expired(self) -> bool {
        self.remaining().is_zero()
    }

    /// Time left as a timeout for a tool or a socket: at least [`MIN_BUDGET`].
    pub fn budget(self) -> Duration {
        self.remaining().max(MIN_BUDGET)
    }

    /// The earlier of the two.
    pub fn min(self, other: Deadline) -> Deadline {
        Deadline(self.0.min(other.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_passed_deadline_has_no_time_left_but_a_minimal_budget() {
        let d = Deadline::at(Instant::now());
        assert!(d.expired());
        assert_eq!(d.remaining(), Duration::ZERO);
        assert_eq!(d.budget(), MIN_BUDGET);
    }

    #[test]
    fn a_future_deadline_counts_down() {
        let d = Deadline::after(Duration::from_secs(60));
        assert!(!d.expired());
        assert!(d.remaining() > Duration::from_secs(59));
        assert!(d.remaining() <= Duration::from_secs(60));
        let sooner = Deadline::after(Duration::from_secs(1));
        assert_eq!(d.min(sooner), sooner);
    }

    #[test]
    fn a_huge_limit_does_not_overflow() {
        let d = Deadline::after(Duration::MAX);
        assert!(d.remaining() > Duration::from_secs(1 << 29));
    }
}
