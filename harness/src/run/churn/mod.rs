//! The churn phase of a case: endpoint changes arrive at the scenario's rate and the
//! case's controller syncs them as its mode's agent would ([`batch`]), on real time,
//! so kube-proxy's timers (the large-cluster `iptables-save`, nftables' delayed chain
//! deletes, IPVS graceful termination) fire where they would. What each sync cost and
//! when each change was programmed is logged for the data path's latencies and the
//! controller's CPU.

pub mod batch;
pub mod changes;
pub mod observe;
pub mod summary;

use std::time::{Duration, Instant};

use dataplane::floor::exec::{self, Cost};
use dataplane::floor::model::ServiceSet;
use dataplane::floor::sync::{Category, Controller, MeasuredExecutor, StepLog};
use dataplane::{ApplyError, Deadline, Mode};

use crate::datapath::churn::BackgroundSpec;
use crate::run::seams::CaseSandbox;
use crate::scenario::Churn;
use batch::{Batcher, Batching};
use changes::{Change, Churner};

/// How `mode`'s agent batches changes: kube-proxy's modes (both profiles) at most one
/// sync per `min_sync_period`; the eBPF modes per change, as Cilium's agent does.
pub fn batching_for(mode: Mode, min_sync_period: Duration) -> Batching {
    match mode {
        Mode::Ebpf | Mode::EbpfTc => Batching::PerChange,
        _ => Batching::MinSyncPeriod(min_sync_period),
    }
}

/// One phase of a case: the scenario's `[churn]` at one of its rates, the `index`-th
/// (a sweep runs its rates one after the other in the same case).
#[derive(Debug, Clone, Copy)]
pub struct Phase<'a> {
    pub cfg: &'a Churn,
    pub rate_per_s: f64,
    pub index: usize,
}

impl<'a> Phase<'a> {
    /// Every phase of `cfg`, in the order of its rates.
    pub fn all(cfg: &'a Churn) -> Vec<Phase<'a>> {
        (cfg.rates_per_s.iter().enumerate())
            .map(|(index, &rate_per_s)| Phase {
                cfg,
                rate_per_s,
                index,
            })
            .collect()
    }

    /// The changes the phase offers: `duration_s x rate_per_s`, rounded down.
    pub fn count(&self) -> usize {
        (self.cfg.duration_s * self.rate_per_s).floor() as usize
    }

    /// The `k`-th change's arrival, from the phase's start.
    pub fn arrival(&self, k: usize) -> Duration {
        Duration::from_secs_f64(k as f64 / self.rate_per_s)
    }
}

/// One sync of the phase, times from the phase's start.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncRecord {
    pub start: Duration,
    pub end: Duration,
    /// Changes it programmed.
    pub changes: usize,
    /// Its wall time and the CPU of the controller's thread and every tool it ran.
    pub cost: Cost,
    /// What it wrote to the kernel, by step: (name, calls). See [`writes`].
    pub writes: Vec<(String, u32)>,
}

/// The kernel writes among a sync's steps, (name, calls): iptables-legacy's
/// whole-table swaps and iptables-nft's and nftables' transactions (category
/// `restore`: `iptables-restore`, `nft -f`), ipset writes, IPVS netlink requests and
/// BPF map updates.
pub fn writes(steps: &StepLog) -> Vec<(String, u32)> {
    (steps.steps.iter())
        .filter(|s| {
            matches!(
                s.category,
                Category::Restore | Category::Ipset | Category::Netlink | Category::Bpf
            )
        })
        .map(|s| (s.name.clone(), s.calls))
        .collect()
}

/// One change of the phase, times from the phase's start.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeRecord {
    pub change: Change,
    pub arrival: Duration,
    /// When the sync that programmed it ended (`None`: the phase stopped first).
    pub programmed: Option<Duration>,
}

/// What a churn phase did.
#[derive(Debug, Clone)]
pub struct ChurnLog {
    /// The instant the phase started (time zero of every record).
    pub started: Instant,
    pub syncs: Vec<SyncRecord>,
    pub changes: Vec<ChangeRecord>,
    /// What is programmed at the end.
    pub set: ServiceSet,
    /// From the start to the end of the last sync.
    pub wall: Duration,
    /// The services changed, by index.
    pub services: Vec<usize>,
}

impl ChurnLog {
    /// The CPU of every sync (user plus sys of the controller's thread and its tools).
    pub fn cpu(&self) -> Duration {
        self.syncs.iter().map(|s| s.cost.user + s.cost.sys).sum()
    }
}

/// Why a churn phase stopped.
#[derive(Debug, thiserror::Error)]
pub enum ChurnStop {
    #[error(transparent)]
    Sync(ApplyError),
    #[error("interrupted")]
    Interrupted,
}

/// The churn phase's driver: the controller, where it syncs, the programmed set.
pub struct Driver<'a> {
    pub controller: &'a mut dyn Controller,
    pub io: &'a mut dyn MeasuredExecutor,
    pub batching: Batching,
    /// The controller's time (for its timers) at the phase's start.
    pub at: Duration,
    pub deadline: Deadline,
}

impl Driver<'_> {
    /// Runs `phase` on `set` (programmed): changes arrive at its rate for the
    /// scenario's `duration_s`, synced as the batching says; the changes still pending
    /// at the end are synced too. `started` is time zero.
    pub fn run(
        &mut self,
        set: ServiceSet,
        phase: Phase<'_>,
        started: Instant,
    ) -> Result<ChurnLog, ChurnStop> {
        let cfg = phase.cfg;
        let mut churner = Churner::new(cfg.kind, &set, cfg.services, phase.index);
        let (mut desired, mut programmed) = (set.clone(), set);
        let mut batcher = Batcher::new(self.batching);
        let mut log = ChurnLog {
            started,
            syncs: Vec::new(),
            changes: Vec::new(),
            set: ServiceSet::default(),
            wall: Duration::ZERO,
            services: churner.services().to_vec(),
        };
        let (count, arrival) = (phase.count(), |k: usize| phase.arrival(k));
        let mut next = 0;
        loop {
            if exec::cancelled() {
                return Err(ChurnStop::Interrupted);
            }
            let now = started.elapsed();
            while next < count && arrival(next) <= now {
                let Some(change) = churner.next(&desired) else {
                    break;
                };
                change.apply(&mut desired);
                batcher.arrive(next, arrival(next));
                log.changes.push(ChangeRecord {
                    change,
                    arrival: arrival(next),
                    programmed: None,
                });
                next += 1;
            }
            if (next >= count || log.services.is_empty()) && batcher.idle() {
                break;
            }
            match batcher.due() {
                Some(due) if due <= now => self.sync(&mut batcher, &mut log, &mut programmed)?,
                due => {
                    let wake = [due, (next < count).then(|| arrival(next))]
                        .into_iter()
                        .flatten()
                        .min()
                        .unwrap_or(now);
                    std::thread::sleep(wake.saturating_sub(now).min(Duration::from_millis(50)));
                }
            }
        }
        log.wall = log.syncs.last().map_or(started.elapsed(), |s| s.end);
        log.set = programmed;
        Ok(log)
    }

    /// One sync of the changes the batcher gives now.
    fn sync(
        &mut self,
        batcher: &mut Batcher,
        log: &mut ChurnLog,
        programmed: &mut ServiceSet,
    ) -> Result<(), ChurnStop> {
        let taken = batcher.take();
        let mut next = programmed.clone();
        for p in &taken {
            log.changes[p.id].change.apply(&mut next);
        }
        if self.deadline.expired() {
            return Err(ChurnStop::Sync(ApplyError::Expired));
        }
        let start = log.started.elapsed();
        self.io.begin(self.deadline);
        let done = self
            .controller
            .sync(&mut *self.io, Some(programmed), &next, self.at + start);
        let report = self.io.finish();
        done.map_err(ChurnStop::Sync)?;
        let end = log.started.elapsed();
        batcher.synced(start, end);
        for p in &taken {
            log.changes[p.id].programmed = Some(end);
        }
        log.syncs.push(SyncRecord {
            start,
            end,
            changes: taken.len(),
            cost: report.cost,
            writes: writes(&report.steps),
        });
        *programmed = next;
        Ok(())
    }
}

#[cfg(test)]
mod tests;

/// A churn phase's background traffic: where it runs and what it sends.
pub struct Traffic<'a> {
    pub sandbox: &'a dyn CaseSandbox,
    /// The churned services' VIPs are filled in by [`run_phase`]; the duration is the
    /// quiet phase's (the churn phase adds `tail`).
    pub spec: BackgroundSpec,
    /// How long traffic goes on after the last change arrived, so the last changes'
    /// endpoints can be seen reached or left.
    pub tail: Duration,
}

/// The phase with its background traffic, when given: a quiet phase of the same length
/// first, then the changes with the traffic running through them. A traffic failure is
/// recorded in the result; the controller's figures stand.
pub fn run_phase(
    driver: &mut Driver<'_>,
    set: ServiceSet,
    phase: Phase<'_>,
    traffic: Option<Traffic<'_>>,
    step: &mut dyn FnMut(String),
) -> Result<(crate::results::Churn, ServiceSet), ChurnStop> {
    let profile = driver.controller.profile().kind();
    let cfg = phase.cfg;
    let Some(mut t) = traffic else {
        let log = driver.run(set, phase, Instant::now())?;
        let churn = summary::record(&log, phase, driver.batching, profile);
        return Ok((churn, log.set));
    };
    let k = Churner::new(cfg.kind, &set, cfg.services, phase.index);
    t.spec.targets = k
        .services()
        .iter()
        .filter_map(|&i| set.get(i))
        .map(|s| std::net::SocketAddr::from((s.vip, s.port)))
        .collect();
    step(format!(
        "churn: quiet phase, {} connections/s for {} s",
        t.spec.rate_per_s, cfg.duration_s
    ));
    let quiet = t
        .sandbox
        .background(&t.spec)
        .and_then(|b| b.map(|b| b.finish()).transpose());
    step(format!(
        "churn: {} {} changes/s for {} s",
        cfg.kind.name(),
        phase.rate_per_s,
        cfg.duration_s
    ));
    let busy = BackgroundSpec {
        duration: t.spec.duration + t.tail,
        ..t.spec.clone()
    };
    let running = match &quiet {
        Ok(Some(_)) => t.sandbox.background(&busy),
        Ok(None) => Ok(None),
        Err(_) => Ok(None),
    };
    let log = driver.run(set, phase, Instant::now())?;
    let mut seen = running.and_then(|b| b.map(|b| b.finish()).transpose());
    if let Ok(Some(s)) = &mut seen {
        // Syncs slower than the phase ran past its traffic: the last changes'
        // endpoints are watched for one more tail, from the end of the last sync.
        if log.wall + t.tail / 2 > busy.duration {
            step("churn: traffic after the last sync".into());
            let after = BackgroundSpec {
                duration: t.tail,
                ..t.spec.clone()
            };
            match t
                .sandbox
                .background(&after)
                .and_then(|b| b.map(|b| b.finish()).transpose())
            {
                Ok(Some(more)) => s.hits.extend(more.hits),
                Ok(None) => {}
                Err(e) => seen = Err(e),
            }
        }
    }
    let mut churn = summary::record(&log, phase, driver.batching, profile);
    match (quiet, seen) {
        (Ok(Some(quiet)), Ok(Some(seen))) => summary::observed(&mut churn, &log, &quiet, &seen),
        (Err(e), _) | (_, Err(e)) => churn.datapath_error = Some(e.to_string()),
        _ => {}
    }
    Ok((churn, log.set))
}
