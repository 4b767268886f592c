//! Which service a shaped scenario's incremental syncs add, remove and update, by a
//! named pick: `typical` (the shape's most common type, then its most common port
//! count, then the median endpoint count, then its most common set of features),
//! `largest` (the most endpoints) and `nodeport` (the typical one among the NodePort
//! services). Ties go to the service nearest the middle of the rule order, counting
//! up from it, as N x E's update picks its service. Each round runs every pick, so
//! each pick's samples of each kind are a distribution of their own, `repeats` long.
//!
//! N x E scenarios have no picks: their syncs stay as they were.

use std::cmp::Reverse;
use std::collections::BTreeMap;

use dataplane::floor::model::{self, Service, ServiceSet};
use dataplane::floor::spec::ServiceType;

use crate::results::{DurationSummary, PickedSyncs};
use crate::run::metrics::Samples;

/// A named choice of service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pick {
    Typical,
    Largest,
    NodePort,
}

impl Pick {
    /// Every pick, in the order each round runs them.
    pub const ALL: [Pick; 3] = [Pick::Typical, Pick::Largest, Pick::NodePort];

    /// As results name it.
    pub fn name(self) -> &'static str {
        match self {
            Pick::Typical => "typical",
            Pick::Largest => "largest",
            Pick::NodePort => "nodeport",
        }
    }
}

/// The service a pick found, as results describe it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chosen {
    pub index: usize,
    pub kind: ServiceType,
    pub ports: usize,
    pub endpoints: usize,
}

impl Chosen {
    fn of(s: &Service) -> Chosen {
        Chosen {
            index: s.index,
            kind: s.spec.kind,
            ports: 1 + s.spec.extra_ports.len(),
            endpoints: s.endpoints.len(),
        }
    }
}

/// Every pick on `set`, in [`Pick::ALL`] order: the service chosen, or why there is
/// none.
pub fn choose(set: &ServiceSet) -> Vec<(Pick, Result<Chosen, String>)> {
    let n = set.len();
    let middle_first: Vec<&Service> = (0..n).map(|k| &set.services[(n / 2 + k) % n]).collect();
    Pick::ALL
        .into_iter()
        .map(|pick| {
            let found = match pick {
                Pick::Typical => typical(middle_first.clone()).ok_or("the case has no service"),
                Pick::Largest => middle_first
                    .iter()
                    .copied()
                    .min_by_key(|s| Reverse(s.endpoints.len()))
                    .ok_or("the case has no service"),
                Pick::NodePort => typical(
                    middle_first
                        .iter()
                        .copied()
                        .filter(|s| s.spec.kind == ServiceType::NodePort)
                        .collect(),
                )
                .ok_or("the shape has no service of type NodePort"),
            };
            (pick, found.map(Chosen::of).map_err(str::to_string))
        })
        .collect()
}

/// The typical service of `among` (in middle-first order); `None` when it is empty.
fn typical(among: Vec<&Service>) -> Option<&Service> {
    let among = modal(among, |s| s.spec.kind);
    let among = modal(among, |s| s.spec.extra_ports.len());
    let mut counts: Vec<usize> = among.iter().map(|s| s.endpoints.len()).collect();
    counts.sort_unstable();
    let median = *counts.get(counts.len().saturating_sub(1) / 2)?;
    let among = among
        .into_iter()
        .filter(|s| s.endpoints.len() == median)
        .collect();
    modal(among, |s| s.spec.features()).into_iter().next()
}

/// The members of `among` whose key is the most common one (on a tie, the smallest
/// key), in their order.
fn modal<K: Ord>(among: Vec<&Service>, key: impl Fn(&Service) -> K) -> Vec<&Service> {
    let mut counts: BTreeMap<K, usize> = BTreeMap::new();
    for s in &among {
        *counts.entry(key(s)).or_default() += 1;
    }
    let Some(best) = counts
        .iter()
        .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
        .map(|(k, _)| k)
    else {
        return Vec::new();
    };
    among.into_iter().filter(|s| key(s) == *best).collect()
}

/// Round `r`'s endpoint update of `svc`: endpoint `r` (modulo its count) replaced by
/// spare address `spare`, a new ready endpoint on another node as a rolling update
/// makes it; why not, when the service has no endpoint.
pub fn updated(svc: &Service, r: usize, spare: u32) -> Result<Service, String> {
    if svc.endpoints.is_empty() {
        return Err(format!(
            "svc-{} has no endpoint to replace, so no update_endpoints",
            svc.index
        ));
    }
    let mut changed = svc.clone();
    let j = r % changed.endpoints.len();
    let old = changed.endpoints[j].ip;
    changed.spec.conditions.remove(&old);
    changed.endpoints[j].ip = model::spare_endpoint_ip(spare);
    Ok(changed)
}

/// The samples of the three kinds of incremental sync.
#[derive(Debug, Default)]
pub struct Kinds {
    pub adds: Samples,
    pub removes: Samples,
    pub updates: Samples,
}

impl Kinds {
    /// (add, remove, update) summaries, each None without samples.
    pub fn summaries(
        &self,
    ) -> (
        Option<DurationSummary>,
        Option<DurationSummary>,
        Option<DurationSummary>,
    ) {
        (
            self.adds.summary(),
            self.removes.summary(),
            self.updates.summary(),
        )
    }
}

/// One pick over a case's rounds: what it chose, its samples, and why it has fewer
/// than the rounds.
#[derive(Debug)]
pub struct PickRun {
    pub pick: Pick,
    pub chosen: Result<Chosen, String>,
    pub kinds: Kinds,
    /// Why the update was left out (no endpoint to replace).
    pub no_update: Option<String>,
    /// Set when the case's time limit stopped the pick: the rounds it ran.
    pub stopped_after: Option<usize>,
}

impl PickRun {
    pub fn new((pick, chosen): (Pick, Result<Chosen, String>)) -> PickRun {
        PickRun {
            pick,
            chosen,
            kinds: Kinds::default(),
            no_update: None,
            stopped_after: None,
        }
    }

    /// The picked service's index, when the pick runs (found and not stopped).
    pub fn runs(&self) -> Option<usize> {
        match (&self.chosen, self.stopped_after) {
            (Ok(c), None) => Some(c.index),
            _ => None,
        }
    }

    /// The pick as results record it, for a case of `repeats` rounds.
    pub fn record(&self, repeats: usize) -> PickedSyncs {
        let (add_service, remove_service, update_endpoints) = self.kinds.summaries();
        let chosen = self.chosen.as_ref().ok();
        let stopped = self.stopped_after.map(|k| {
            format!(
                "stopped after {k} of {repeats} rounds: the case's time limit left room \
                 for the typical pick's rounds only"
            )
        });
        let reasons: Vec<String> = [self.chosen.clone().err(), self.no_update.clone(), stopped]
            .into_iter()
            .flatten()
            .collect();
        PickedSyncs {
            pick: self.pick.name().to_string(),
            service_index: chosen.map(|c| c.index as u64),
            kind: chosen.map(|c| c.kind.name().to_string()),
            ports: chosen.map(|c| c.ports as u64),
            endpoints: chosen.map(|c| c.endpoints as u64),
            add_service,
            remove_service,
            update_endpoints,
            reason: (!reasons.is_empty()).then(|| reasons.join("; ")),
        }
    }
}

#[cfg(test)]
mod tests;
