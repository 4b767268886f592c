//! The endpoint changes of a churn phase, made one at a time against the set as the
//! changes before it left it: a rolling replacement, a scale up or down, or a whole
//! service's endpoints replaced. New endpoints take addresses never used before in the
//! case, so a connection reaching one is unambiguous.

use std::net::Ipv4Addr;

use dataplane::floor::model::{self, Endpoint, ServiceSet, ENDPOINT_PORT};

use crate::scenario::ChurnKind;

/// The first spare address a churn phase uses; below it are the incremental syncs'.
const FIRST_SPARE: u32 = 1 << 20;
/// Spare addresses each phase of a rate sweep has to itself: phase `p` starts at
/// `FIRST_SPARE + p * PHASE_SPARES`; the scenario allows at most
/// `scenario::MAX_CHURN_RATES` phases, which share the rest of the spare pool (about
/// 131,000 new endpoints each, where the pool would wrap round).
const PHASE_SPARES: u32 =
    (model::MAX_ENDPOINTS_TOTAL as u32 - FIRST_SPARE) / crate::scenario::MAX_CHURN_RATES as u32;

/// One endpoint change to one service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The service's index.
    pub service: usize,
    pub added: Vec<Ipv4Addr>,
    pub removed: Vec<Ipv4Addr>,
}

impl Change {
    /// Applies it to `set` (a set the changes before it were applied to).
    pub fn apply(&self, set: &mut ServiceSet) {
        let Some(mut svc) = set.get(self.service).cloned() else {
            return;
        };
        svc.endpoints.retain(|e| !self.removed.contains(&e.ip));
        svc.endpoints.extend(self.added.iter().map(|&ip| Endpoint {
            ip,
            port: ENDPOINT_PORT,
        }));
        set.upsert(svc);
    }
}

/// Makes the changes of a phase, round the churned services in turn.
#[derive(Debug, Clone)]
pub struct Churner {
    kind: ChurnKind,
    services: Vec<usize>,
    /// Per churned service: whether its next scale change goes up.
    up: Vec<bool>,
    next: usize,
    spare: u32,
}

impl Churner {
    /// Changes of `kind` to `count` services of `set` (at most all), the middle ones of
    /// the rule order, for phase `phase` of a case (0 unless the case sweeps rates):
    /// each phase's new endpoints come from a block of spare addresses of its own.
    pub fn new(kind: ChurnKind, set: &ServiceSet, count: usize, phase: usize) -> Churner {
        let n = set.len();
        let k = count.min(n);
        let first = n / 2 - k / 2;
        let services = set.services[first..first + k]
            .iter()
            .map(|s| s.index)
            .collect();
        Churner {
            kind,
            services,
            up: vec![true; k],
            next: 0,
            spare: FIRST_SPARE + phase as u32 * PHASE_SPARES,
        }
    }

    /// The services changed, by index.
    pub fn services(&self) -> &[usize] {
        &self.services
    }

    fn fresh(&mut self) -> Ipv4Addr {
        let ip = model::spare_endpoint_ip(self.spare);
        self.spare += 1;
        ip
    }

    /// The next change against `set` (which holds every change made so far); `None`
    /// when no service is churned.
    pub fn next(&mut self, set: &ServiceSet) -> Option<Change> {
        if self.services.is_empty() {
            return None;
        }
        let slot = self.next % self.services.len();
        self.next += 1;
        let service = self.services[slot];
        let now: Vec<Ipv4Addr> = set
            .get(service)
            .map(|s| s.endpoints.iter().map(|e| e.ip).collect())
            .unwrap_or_default();
        let (added, removed) = match self.kind {
            ChurnKind::Rolling => {
                let removed = now.first().copied().into_iter().collect();
                (vec![self.fresh()], removed)
            }
            ChurnKind::Scale => {
                let up = self.up[slot] || now.len() <= 1;
                self.up[slot] = !up;
                if up {
                    (vec![self.fresh()], vec![])
                } else {
                    (vec![], vec![now[0]])
                }
            }
            ChurnKind::Replace => {
                let added = (0..now.len().max(1)).map(|_| self.fresh()).collect();
                (added, now)
            }
        };
        Some(Change {
            service,
            added,
            removed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(kind: ChurnKind, n: usize) -> (ServiceSet, Vec<Change>) {
        let mut set = ServiceSet::generate(20, 3);
        let mut c = Churner::new(kind, &set, 4, 0);
        let mut changes = Vec::new();
        for _ in 0..n {
            let ch = c.next(&set).unwrap();
            ch.apply(&mut set);
            changes.push(ch);
        }
        (set, changes)
    }

    #[test]
    fn the_middle_services_are_churned_in_turn() {
        let set = ServiceSet::generate(20, 3);
        assert_eq!(
            Churner::new(ChurnKind::Rolling, &set, 4, 0).services(),
            &[8, 9, 10, 11]
        );
        assert_eq!(
            Churner::new(ChurnKind::Rolling, &set, 50, 0)
                .services()
                .len(),
            20
        );
        let (_, changes) = run(ChurnKind::Rolling, 5);
        let order: Vec<usize> = changes.iter().map(|c| c.service).collect();
        assert_eq!(order, vec![8, 9, 10, 11, 8]);
    }

    #[test]
    fn rolling_replaces_the_oldest_endpoint_and_keeps_the_count() {
        let (set, changes) = run(ChurnKind::Rolling, 12);
        assert!(set.services.iter().all(|s| s.endpoints.len() == 3));
        // Three rounds over service 8: every original endpoint is gone.
        let s8 = set.get(8).unwrap();
        assert!(s8.endpoints.iter().all(|e| changes[0].added[0] <= e.ip));
        assert_eq!(changes[0].removed, vec![model::endpoint_ip(8, 0, 3)]);
    }

    #[test]
    fn scale_goes_up_then_down_and_replace_swaps_every_endpoint() {
        let (set, changes) = run(ChurnKind::Scale, 8);
        assert_eq!(changes[0].added.len(), 1);
        assert_eq!(changes[4].removed.len(), 1);
        assert!(set.services.iter().all(|s| s.endpoints.len() == 3));
        let (set, changes) = run(ChurnKind::Replace, 1);
        assert_eq!(changes[0].removed.len(), 3);
        assert_eq!(changes[0].added.len(), 3);
        let s8 = set.get(8).unwrap();
        assert!(s8
            .endpoints
            .iter()
            .all(|e| changes[0].added.contains(&e.ip)));
    }

    #[test]
    fn new_addresses_are_never_reused_nor_those_of_the_generated_set() {
        let (set, changes) = run(ChurnKind::Replace, 40);
        let mut added: Vec<Ipv4Addr> = changes.iter().flat_map(|c| c.added.clone()).collect();
        let n = added.len();
        added.sort();
        added.dedup();
        assert_eq!(added.len(), n);
        let original = ServiceSet::generate(20, 3);
        assert!(original
            .services
            .iter()
            .flat_map(|s| &s.endpoints)
            .all(|e| !added.contains(&e.ip)));
        assert_eq!(set.total_endpoints(), 60);
    }

    #[test]
    fn each_phase_of_a_sweep_adds_addresses_of_its_own() {
        use crate::scenario::MAX_CHURN_RATES;
        let set = ServiceSet::generate(20, 3);
        let first = |phase: usize| {
            let mut c = Churner::new(ChurnKind::Rolling, &set, 4, phase);
            c.next(&set).unwrap().added[0]
        };
        let starts: Vec<Ipv4Addr> = (0..MAX_CHURN_RATES).map(first).collect();
        for w in starts.windows(2) {
            assert_eq!(u32::from(w[1]) - u32::from(w[0]), PHASE_SPARES);
        }
        // The last phase's block still lies inside the spare pool (no wrap-around).
        let last = FIRST_SPARE + MAX_CHURN_RATES as u32 * PHASE_SPARES - 1;
        assert_eq!(
            u32::from(model::spare_endpoint_ip(last)) - u32::from(starts[0]),
            last - FIRST_SPARE
        );
    }
}
