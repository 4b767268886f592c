//! When a controller syncs under a stream of changes, as a pure state machine over
//! time measured from the start of the churn phase, so the rule is tested over virtual
//! time and the real driver calls the same code with the clock.
//!
//! - kube-proxy (and the floor profile, for the controller's share) batches: a change
//!   makes a sync due no sooner than `minSyncPeriod` after the last sync started, and
//!   never while one runs; every change that arrived until the sync starts goes into it
//!   (`BoundedFrequencyRunner` with kube-proxy's `minSyncPeriod`).
//! - The eBPF modes sync as Cilium's agent does: each change its own sync, as soon as
//!   the one before has ended, with no batching period.

use std::collections::VecDeque;
use std::time::Duration;

/// How a controller batches the changes that arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Batching {
    /// kube-proxy: at most one sync per period, pending changes batched.
    MinSyncPeriod(Duration),
    /// Cilium's agent: one sync per change, back to back.
    PerChange,
}

/// A change waiting for its sync: its number in the phase and when it arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pending {
    pub id: usize,
    pub at: Duration,
}

/// The changes waiting and when the last sync ran.
#[derive(Debug, Clone)]
pub struct Batcher {
    batching: Batching,
    pending: VecDeque<Pending>,
    last_start: Option<Duration>,
    last_end: Duration,
}

impl Batcher {
    pub fn new(batching: Batching) -> Batcher {
        Batcher {
            batching,
            pending: VecDeque::new(),
            last_start: None,
            last_end: Duration::ZERO,
        }
    }

    /// Change `id` arrived at `at` (arrivals come in time order).
    pub fn arrive(&mut self, id: usize, at: Duration) {
        self.pending.push_back(Pending { id, at });
    }

    /// Whether changes are waiting.
    pub fn idle(&self) -> bool {
        self.pending.is_empty()
    }

    /// When the next sync may start: `None` with nothing pending.
    pub fn due(&self) -> Option<Duration> {
        let first = self.pending.front()?.at;
        let mut due = first.max(self.last_end);
        if let (Batching::MinSyncPeriod(p), Some(start)) = (self.batching, self.last_start) {
            due = due.max(start + p);
        }
        Some(due)
    }

    /// The changes the sync starting now programs: every pending one (kube-proxy) or
    /// the oldest (per change).
    pub fn take(&mut self) -> Vec<Pending> {
        match self.batching {
            Batching::MinSyncPeriod(_) => self.pending.drain(..).collect(),
            Batching::PerChange => self.pending.pop_front().into_iter().collect(),
        }
    }

    /// A sync ran from `start` to `end`.
    pub fn synced(&mut self, start: Duration, end: Duration) {
        self.last_start = Some(start);
        self.last_end = end;
    }
}

/// One sync of a simulated phase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimSync {
    pub start: Duration,
    pub end: Duration,
    /// The changes it programmed.
    pub changes: Vec<usize>,
}

/// The syncs that changes arriving at `arrivals` (ascending) cause, when a sync of
/// `n` changes takes `sync_time(n)`: the rule of [`Batcher`] over virtual time.
pub fn simulate(
    arrivals: &[Duration],
    batching: Batching,
    sync_time: impl Fn(usize) -> Duration,
) -> Vec<SimSync> {
    let mut b = Batcher::new(batching);
    let mut syncs = Vec::new();
    let mut next = arrivals.iter().copied().enumerate().peekable();
    loop {
        let due = b.due();
        match (next.peek().copied(), due) {
            (Some((id, at)), due) if due.is_none_or(|d| at <= d) => {
                b.arrive(id, at);
                next.next();
            }
            (_, Some(start)) => {
                let changes: Vec<usize> = b.take().iter().map(|p| p.id).collect();
                let end = start + sync_time(changes.len());
                b.synced(start, end);
                syncs.push(SimSync {
                    start,
                    end,
                    changes,
                });
            }
            (_, None) => return syncs,
        }
    }
}

/// `n` arrivals at `rate_per_s`, the first at zero.
pub fn steady(rate_per_s: f64, n: usize) -> Vec<Duration> {
    (0..n)
        .map(|k| Duration::from_secs_f64(k as f64 / rate_per_s))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    const SECOND: Batching = Batching::MinSyncPeriod(Duration::from_secs(1));

    #[test]
    fn ten_changes_a_second_for_ten_seconds_sync_once_a_second() {
        // The first change syncs at once; each later second's ten changes wait for the
        // period and go in one sync: 1 + 10 syncs for 100 changes.
        let syncs = simulate(&steady(10.0, 100), SECOND, |_| ms(50));
        assert_eq!(syncs.len(), 11);
        assert_eq!(syncs[0].changes, vec![0]);
        assert_eq!(syncs[1].start, ms(1000));
        assert_eq!(syncs[1].changes, (1..=10).collect::<Vec<_>>());
        for w in syncs.windows(2) {
            assert!(w[1].start >= w[0].start + ms(1000), "{w:?}");
        }
        let all: Vec<usize> = syncs.iter().flat_map(|s| s.changes.clone()).collect();
        assert_eq!(all, (0..100).collect::<Vec<_>>());
    }

    #[test]
    fn changes_further_apart_than_the_period_each_get_their_own_sync_at_arrival() {
        let arrivals = [ms(0), ms(1500), ms(4000)];
        let syncs = simulate(&arrivals, SECOND, |_| ms(10));
        let starts: Vec<Duration> = syncs.iter().map(|s| s.start).collect();
        assert_eq!(starts, arrivals);
    }

    #[test]
    fn a_sync_longer_than_the_period_delays_the_next_to_its_end() {
        // Each sync takes 1.5 s: the next starts at the end of the last, not sooner.
        let syncs = simulate(&steady(10.0, 30), SECOND, |_| ms(1500));
        assert_eq!(syncs[1].start, ms(1500));
        assert_eq!(syncs[2].start, ms(3000));
        assert_eq!(syncs.len(), 3);
        assert_eq!(syncs[1].changes.len(), 15);
    }

    #[test]
    fn per_change_syncs_every_change_alone_back_to_back() {
        let syncs = simulate(&steady(10.0, 20), Batching::PerChange, |_| ms(250));
        assert_eq!(syncs.len(), 20);
        assert!(syncs.iter().all(|s| s.changes.len() == 1));
        // At 4 syncs a second against 10 changes a second the queue grows: the last
        // change waits until 19 syncs of 250 ms have run.
        assert_eq!(syncs[19].start, ms(19 * 250));
        let quick = simulate(&steady(10.0, 20), Batching::PerChange, |_| ms(5));
        assert!(quick
            .iter()
            .zip(steady(10.0, 20))
            .all(|(s, a)| s.start == a));
    }

    #[test]
    fn a_zero_period_batches_only_what_arrived_during_a_sync() {
        let syncs = simulate(
            &steady(100.0, 10),
            Batching::MinSyncPeriod(Duration::ZERO),
            |_| ms(35),
        );
        assert_eq!(syncs[0].changes, vec![0]);
        assert_eq!(syncs[1].start, ms(35));
        assert_eq!(syncs[1].changes, vec![1, 2, 3]);
    }
}
