//! One case, step by step: a fresh sandbox, a full sync, read-back, the data path,
//! incremental syncs (add a service, remove it, change one endpoint; each repeated),
//! and a last read-back. Every step runs by the case's deadline.
//!
//! Syncs are driven by the case's profile through one controller, which keeps
//! kube-proxy's state between syncs. Each sync happens at a virtual time, the scenario's
//! `sync_interval_s` after the one before, so kube-proxy's timers (the delayed nftables
//! chain delete, the large-cluster `iptables-save`, IPVS graceful termination) fire
//! where they would; before the last read-back the pending ones are fired untimed.
//!
//! **Over the limit.** When a kube-proxy full sync runs past its limit (the scenario's
//! `sync_limit_s`, by default the case's), the case keeps that sync's partial timings
//! (`sync_over_limit_s`), then programs the identical objects through the floor profile
//! in a fresh sandbox, by the case's limit, and
//! still reads them back and measures the data path (`programmed_by: "floor"`). Only
//! when the floor cannot reach them either does the case time out, and its mode give up
//! larger scales.

use std::time::Duration;

use dataplane::floor::model::{self, Service, ServiceSet};
use dataplane::floor::sync::{Controller, MeasuredExecutor, StepLog};
use dataplane::{floor::exec, ApplyError, Backend, Deadline, Profile, ProfileKind};

use crate::datapath::measure::MeasureError;
use crate::results::{Case, Datapath, Rules, Status, Sync};
use crate::run::metrics::{Sample, Samples};
use crate::run::picks::{self, Kinds, Pick, PickRun};
use crate::run::plan::CaseSpec;
use crate::run::seams::{CaseSandbox, Sandbox};
use crate::run::Event;
use crate::sandbox::TopologyError;
use crate::scenario::Scenario;

/// The least time a read-back gets, even past the case's deadline: it only reads.
const MIN_READ_BACK: Duration = Duration::from_secs(1);

/// How long a churn phase's background traffic goes on past its last change and one
/// sync interval, so the last changes' endpoints are seen reached or left.
const CHURN_TAIL: Duration = Duration::from_secs(2);

/// A step of a case, as reasons name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    FullSync,
    ReadBack,
    AddService,
    RemoveService,
    UpdateEndpoints,
    ReadBackAfterIncremental,
    Churn,
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Step::FullSync => "full sync",
            Step::ReadBack => "read-back after full sync",
            Step::AddService => "add_service",
            Step::RemoveService => "remove_service",
            Step::UpdateEndpoints => "update_endpoints",
            Step::ReadBackAfterIncremental => "read-back after incremental syncs",
            Step::Churn => "churn",
        })
    }
}

/// Why a case stopped before its end.
#[derive(Debug, thiserror::Error)]
pub enum CaseError {
    #[error("topology: {0}")]
    Sandbox(#[source] TopologyError),
    #[error("{step}: case time limit of {:.0} s reached ({source})", limit.as_secs_f64())]
    TimedOut {
        step: Step,
        limit: Duration,
        #[source]
        source: ApplyError,
    },
    #[error("{step}: {source}")]
    Step {
        step: Step,
        #[source]
        source: ApplyError,
    },
    #[error("interrupted")]
    Interrupted,
}

impl CaseError {
    pub(crate) fn at(step: Step, limit: Duration) -> impl FnOnce(ApplyError) -> CaseError {
        move |source| {
            if source.is_timeout() {
                CaseError::TimedOut {
                    step,
                    limit,
                    source,
                }
            } else {
                CaseError::Step { step, source }
            }
        }
    }

    /// `skipped` when the machine lacks something the mode needs, else `failed`.
    pub fn status(&self) -> Status {
        match self {
            CaseError::Step { source, .. } if source.is_unavailable() => Status::Skipped,
            _ => Status::Failed,
        }
    }

    /// Whether the case ran out of time (its mode then gives up on larger scales).
    pub fn timed_out(&self) -> bool {
        matches!(self, CaseError::TimedOut { .. })
    }
}

/// What a case measured.
#[derive(Debug)]
pub struct CaseDone {
    pub rules: Rules,
    pub sync: Sync,
    pub datapath: Option<Datapath>,
    /// The churn phases, one per rate of the scenario's `[churn]` (none without one).
    pub churn: Vec<crate::results::Churn>,
    /// Why a further phase of a churn sweep stopped (the phases before it stand).
    pub churn_error: Option<String>,
    /// Why the data path could not be measured, when it could not.
    pub datapath_error: Option<MeasureError>,
    /// Set when the kube-proxy full sync ran past the case's limit (this limit) and the
    /// floor programmed the objects measured.
    pub over_limit: Option<Duration>,
}

impl CaseDone {
    /// Fills `case` in: `ok`, or `failed` when the data path could not be measured
    /// (the sync numbers are kept).
    pub fn record_into(self, case: &mut Case) {
        case.status = Status::Ok;
        case.rules = Some(self.rules);
        case.sync = Some(self.sync);
        case.datapath = self.datapath;
        if let Some(limit) = self.over_limit {
            case.sync_over_limit_s = Some(limit.as_secs_f64());
            case.programmed_by = Some(ProfileKind::Floor.name().to_string());
            case.reason = Some(format!(
                "kube-proxy's full sync ran past the case's limit of {:.0} s (sync.full holds \
                 its timings up to it); the read-back and the data path are those of the \
                 identical objects programmed by the floor profile",
                limit.as_secs_f64()
            ));
        }
        let mut phases = self.churn.into_iter();
        case.churn = phases.next();
        case.churn_sweep = phases.collect();
        if let Some(why) = self.datapath_error {
            case.status = Status::Failed;
            case.reason = Some(format!("data path: {why}"));
        }
        if let Some(why) = self.churn_error {
            case.status = Status::Failed;
            case.reason = Some(match case.reason.take() {
                Some(r) => format!("{r}; {why}"),
                None => why,
            });
        }
    }
}

/// A further transit replicate: its full sync from empty, and its pass (`None`
/// without a fitted cost per position).
type ReplicateDone = ((Sample, usize, StepLog), Option<crate::results::Transit>);

/// The samples of the incremental syncs: N x E's, or a shape's per pick.
#[derive(Debug, Default)]
struct Incremental {
    plain: Kinds,
    picks: Vec<PickRun>,
}

impl Incremental {
    /// The case's `sync` from its full syncs: for a shape, `add_service` and the
    /// others are the typical pick's, and every pick is recorded beside them.
    fn sync(&self, full: &Samples, repeats: usize) -> Sync {
        let typical = self.picks.iter().find(|p| p.pick == Pick::Typical);
        let (add_service, remove_service, update_endpoints) =
            typical.map_or(&self.plain, |p| &p.kinds).summaries();
        Sync {
            full: full.summary().expect("one sample at least"),
            add_service,
            remove_service,
            update_endpoints,
            picks: self.picks.iter().map(|p| p.record(repeats)).collect(),
        }
    }
}

/// One case in progress: its backend, sandbox, scenario and deadline, the controller
/// driving its syncs, and the virtual time of the next sync.
struct CaseRun<'a, F: FnMut(Event)> {
    backend: &'a dyn Backend,
    sandbox: &'a dyn CaseSandbox,
    scenario: &'a Scenario,
    deadline: Deadline,
    limit: Duration,
    on_event: &'a mut F,
    controller: Box<dyn Controller>,
    io: Box<dyn MeasuredExecutor + 'a>,
    at: Duration,
    /// The last sync that failed, as far as it got: (sample, payload bytes, steps).
    partial: Option<(Sample, usize, StepLog)>,
}

impl<F: FnMut(Event)> CaseRun<'_, F> {
    fn step(&mut self, what: impl Into<String>) {
        (self.on_event)(Event::Step(what.into()));
    }

    /// One sync by the case's controller at the next virtual time: (sample, payload
    /// bytes, steps).
    fn sync(
        &mut self,
        step: Step,
        old: Option<&ServiceSet>,
        new: &ServiceSet,
    ) -> Result<(Sample, usize, StepLog), CaseError> {
        let fail = CaseError::at(step, self.limit);
        if self.deadline.expired() {
            return Err(fail(ApplyError::Expired));
        }
        self.io.begin(self.deadline);
        let done = self.controller.sync(self.io.as_mut(), old, new, self.at);
        let report = self.io.finish();
        if let Err(e) = done {
            self.partial = Some((
                Sample::from(report.cost),
                report.payload_bytes,
                report.steps,
            ));
            return Err(fail(e));
        }
        self.at += self.scenario.sync_interval();
        Ok((
            Sample::from(report.cost),
            report.payload_bytes,
            report.steps,
        ))
    }

    /// Repeats the full sync from empty, each in a fresh namespace with a fresh
    /// controller, up to the scenario's `full_sync_repeats` samples in all (the transit
    /// replicates' full syncs already among them), as long as the case's time limit can
    /// take one more (twice the first one's time).
    fn repeat_full_sync(
        &mut self,
        sb: &dyn CaseSandbox,
        spec: &CaseSpec,
        fulls: &mut Samples,
    ) -> Result<(), CaseError> {
        let wanted = self.scenario.full_sync_repeats;
        let first = fulls.samples()[0].wall;
        let set = self.scenario.service_set(spec.services);
        for k in fulls.samples().len()..wanted {
            if exec::cancelled() {
                return Err(CaseError::Interrupted);
            }
            if self.deadline.remaining() < first * 2 {
                break;
            }
            self.step(format!("full sync {}/{wanted} in a fresh namespace", k + 1));
            let mut io = sb.scratch_executor(k).map_err(CaseError::Sandbox)?;
            let mut ctl = self.backend.controller(spec.profile);
            io.begin(self.deadline);
            let done = ctl.sync(io.as_mut(), None, &set, Duration::ZERO);
            let report = io.finish();
            done.map_err(CaseError::at(Step::FullSync, self.limit))?;
            fulls.push((
                Sample::from(report.cost),
                report.payload_bytes,
                report.steps,
            ));
        }
        Ok(())
    }

    /// Fires kube-proxy's pending timers (untimed), so the kernel holds what it will
    /// once they have.
    fn settle(&mut self, step: Step, set: &ServiceSet) -> Result<(), CaseError> {
        self.io.begin(self.deadline);
        let done = self.controller.settle(self.io.as_mut(), set, self.at);
        self.io.finish();
        done.map_err(CaseError::at(step, self.limit))
    }

    /// Reads back and checks the kernel's objects against `set`; their count.
    fn verify(&mut self, step: Step, set: &ServiceSet) -> Result<u64, CaseError> {
        let budget = self
            .scenario
            .command_timeout()
            .min(self.deadline.remaining().max(MIN_READ_BACK));
        let found = self
            .backend
            .verify(self.sandbox.node(), set, Deadline::after(budget))
            .map_err(CaseError::at(step, self.limit))?;
        Ok(found.count as u64)
    }

    /// The data path through the rules for `set`, when the scenario measures it. The
    /// floor profile leaves the identical kernel objects as kube-proxy's, so its data
    /// path is measured only when the scenario has no kube-proxy profile to measure it.
    fn datapath(&mut self, set: &ServiceSet) -> (Option<Datapath>, Option<MeasureError>) {
        let measured_elsewhere = self.controller.profile() == Profile::Floor
            && self.scenario.profiles.contains(&ProfileKind::KubeProxy);
        if !self.scenario.datapath.enabled || measured_elsewhere {
            return (None, None);
        }
        let on_event = &mut *self.on_event;
        let mut step = |m: String| on_event(Event::Step(m));
        match self
            .sandbox
            .measure_datapath(set, &self.scenario.datapath, self.deadline, &mut step)
        {
            Ok(d) => (Some(d), None),
            Err(e) => (None, Some(e)),
        }
    }

    /// The further replicates of the transit pass (the scenario's `replicates`, the
    /// first being the one `d` holds): each in a fresh sandbox named `<prefix>r<k>`,
    /// fully synced by a fresh controller with the VIPs shuffled over the services,
    /// then only the pass; pooled into `d`'s cost per position. A replicate is skipped
    /// when the case's time limit could not take it (twice the last one's time, or
    /// twice the full sync plus 20 s before the first); one that fails is logged and
    /// the rest skipped, the figures of those done stand. Returns the replicates' full
    /// syncs: each is a full sync from empty in a fresh namespace by a fresh controller,
    /// timed as the case's own, so they count among its `full_sync_repeats`.
    fn replicates(
        &mut self,
        factory: &dyn Sandbox,
        prefix: &str,
        profile: Profile,
        set: &ServiceSet,
        full_sync: Duration,
        d: &mut Datapath,
    ) -> Vec<(Sample, usize, StepLog)> {
        use crate::datapath::replicates::{assign_vips, pool, vip_seed};
        let k = self.scenario.datapath.replicates;
        let mut fulls = Vec::new();
        let Some(first) = d.transit.as_mut() else {
            return fulls;
        };
        let mut all = vec![(vip_seed(0), first.clone())];
        let mut need = full_sync * 2 + Duration::from_secs(20);
        for r in 1..k {
            if exec::cancelled() || self.deadline.remaining() < need {
                break;
            }
            self.step(format!(
                "in-kernel transit: replicate {}/{k} in a fresh node namespace",
                r + 1
            ));
            let started = std::time::Instant::now();
            let shuffled = assign_vips(set, vip_seed(r));
            match self.replicate(factory, &format!("{prefix}r{r}"), profile, &shuffled, r) {
                Ok((full, t)) => {
                    fulls.push(full);
                    all.extend(t.map(|t| (vip_seed(r), t)));
                }
                Err(e) => {
                    tracing::warn!(
                        "transit replicate {}: {e}; the replicates done stand",
                        r + 1
                    );
                    break;
                }
            }
            need = started.elapsed() * 2;
        }
        pool(first, &all);
        fulls
    }

    /// One further replicate: a fresh sandbox, `set` programmed into it (the full
    /// sync's sample), the pass.
    fn replicate(
        &mut self,
        factory: &dyn Sandbox,
        prefix: &str,
        profile: Profile,
        set: &ServiceSet,
        r: usize,
    ) -> Result<ReplicateDone, String> {
        let sb = factory.create(prefix).map_err(|e| e.to_string())?;
        let full = {
            let mut io = sb.executor();
            let mut ctl = self.backend.controller(profile);
            io.begin(self.deadline);
            let done = ctl.sync(io.as_mut(), None, set, Duration::ZERO);
            let report = io.finish();
            done.map_err(|e| format!("full sync: {e}"))?;
            (
                Sample::from(report.cost),
                report.payload_bytes,
                report.steps,
            )
        };
        let pass = sb
            .measure_transit(set, &self.scenario.datapath, r)
            .map_err(|e| e.to_string())?;
        Ok((full, pass))
    }

    /// `repeats` rounds of: add a service, remove it, replace one endpoint of a service
    /// in the middle of the rule order; for a shape, each round does so for every pick
    /// ([`picks`]). Returns the samples and the final set.
    fn incremental(
        &mut self,
        mut set: ServiceSet,
        services: usize,
    ) -> Result<(Incremental, ServiceSet), CaseError> {
        if self.scenario.is_shaped() {
            return self.incremental_by_pick(set, services);
        }
        let (repeats, e) = (self.scenario.repeats, self.scenario.endpoints_per_service);
        let mut done = Incremental::default();
        for r in 0..repeats {
            if exec::cancelled() {
                return Err(CaseError::Interrupted);
            }
            self.step(format!("incremental syncs {}/{repeats}", r + 1));
            let mut grown = set.clone();
            grown.upsert(model::service(services, e));
            done.plain
                .adds
                .push(self.sync(Step::AddService, Some(&set), &grown)?);
            done.plain
                .removes
                .push(self.sync(Step::RemoveService, Some(&grown), &set)?);
            if let Some(changed) = changed_service(&set, services, e, r) {
                let mut next = set.clone();
                next.upsert(changed);
                done.plain
                    .updates
                    .push(self.sync(Step::UpdateEndpoints, Some(&set), &next)?);
                set = next;
            }
        }
        Ok((done, set))
    }

    /// A shape's rounds: each runs every pick that found a service, in
    /// [`Pick::ALL`] order, so the picks share the machine's speed phases. A pick
    /// after the typical one stops, for the rest of the case, when the time left
    /// could not take twice the typical pick's remaining rounds at the slowest pick's
    /// pace so far (it records the rounds it ran).
    fn incremental_by_pick(
        &mut self,
        mut set: ServiceSet,
        services: usize,
    ) -> Result<(Incremental, ServiceSet), CaseError> {
        let repeats = self.scenario.repeats;
        let mut runs: Vec<PickRun> = picks::choose(&set).into_iter().map(PickRun::new).collect();
        let mut slowest = Duration::ZERO;
        for r in 0..repeats {
            if exec::cancelled() {
                return Err(CaseError::Interrupted);
            }
            for (p, run) in runs.iter_mut().enumerate() {
                let Some(index) = run.runs() else { continue };
                let need = slowest * 2 * (repeats - r) as u32;
                if p > 0 && self.deadline.remaining() < need {
                    run.stopped_after = Some(r);
                    continue;
                }
                self.step(format!(
                    "incremental syncs {}/{repeats}, {} service svc-{index}",
                    r + 1,
                    run.pick.name()
                ));
                let started = std::time::Instant::now();
                let spare = (r * Pick::ALL.len() + p) as u32;
                set = self.pick_round(set, services, run, index, (r, spare))?;
                slowest = slowest.max(started.elapsed());
            }
        }
        let done = Incremental {
            plain: Kinds::default(),
            picks: runs,
        };
        Ok((done, set))
    }

    /// One round of one pick on `set`: add a copy of service `index` (at index
    /// `services`), remove it, replace endpoint `r` of the service with spare address
    /// `spare`. Returns the set the update left.
    fn pick_round(
        &mut self,
        set: ServiceSet,
        services: usize,
        run: &mut PickRun,
        index: usize,
        (r, spare): (usize, u32),
    ) -> Result<ServiceSet, CaseError> {
        let picked = set
            .get(index)
            .expect("a pick is a service of the set")
            .clone();
        let mut grown = set.clone();
        grown.upsert(set.fresh_copy(&picked, services));
        run.kinds
            .adds
            .push(self.sync(Step::AddService, Some(&set), &grown)?);
        run.kinds
            .removes
            .push(self.sync(Step::RemoveService, Some(&grown), &set)?);
        match picks::updated(&picked, r, spare) {
            Ok(changed) => {
                let mut next = set.clone();
                next.upsert(changed);
                run.kinds
                    .updates
                    .push(self.sync(Step::UpdateEndpoints, Some(&set), &next)?);
                Ok(next)
            }
            Err(why) => {
                run.no_update = Some(why);
                Ok(set)
            }
        }
    }

    /// The scenario's churn phases on `set` (programmed), when it has them: one per
    /// rate, in order, each on the rules the one before left, with changes at its rate
    /// synced by the case's controller as the mode's agent batches them, on real time,
    /// with background traffic through the churned services when the data path is
    /// measured (as for [`CaseRun::datapath`]). Returns the phases measured, the set
    /// programmed at the end, and why a further phase of a sweep stopped (the phases
    /// before it stand); a first phase that stops fails the case.
    fn churn(&mut self, mut set: ServiceSet) -> Result<ChurnDone, CaseError> {
        use crate::run::churn::Phase;
        let mode = self.backend.mode();
        let scenario = self.scenario;
        let Some(cfg) = (scenario.churn.as_ref()).filter(|c| c.applies(mode, set.len())) else {
            return Ok((vec![], set, None));
        };
        let mut phases = Vec::new();
        for phase in Phase::all(cfg) {
            match self.churn_phase(set.clone(), phase) {
                Ok((churn, next)) => {
                    phases.push(churn);
                    set = next;
                }
                Err(e) if phase.index == 0 || matches!(e, CaseError::Interrupted) => return Err(e),
                Err(e) => {
                    let why = format!("churn at {} changes/s: {e}", phase.rate_per_s);
                    return Ok((phases, self.resync(set)?, Some(why)));
                }
            }
        }
        Ok((phases, set, None))
    }

    /// After a further phase of a sweep failed: programs `set` (what the phases before
    /// it left) again from what the controller holds, so the read-back checks it.
    fn resync(&mut self, set: ServiceSet) -> Result<ServiceSet, CaseError> {
        self.deadline = Deadline::after(self.scenario.command_timeout() * 4);
        self.sync(Step::Churn, None, &set)?;
        Ok(set)
    }

    /// One phase of the churn sweep on `set`.
    fn churn_phase(
        &mut self,
        set: ServiceSet,
        phase: crate::run::churn::Phase<'_>,
    ) -> Result<(crate::results::Churn, ServiceSet), CaseError> {
        use crate::datapath::churn::BackgroundSpec;
        use crate::run::churn::{batching_for, run_phase, ChurnStop, Driver, Traffic};
        let cfg = phase.cfg;
        let measured_elsewhere = self.controller.profile() == Profile::Floor
            && self.scenario.profiles.contains(&ProfileKind::KubeProxy);
        let traffic = (self.scenario.datapath.enabled && !measured_elsewhere).then(|| Traffic {
            sandbox: self.sandbox,
            spec: BackgroundSpec {
                targets: vec![],
                rate_per_s: cfg.background_rate_per_s,
                duration: cfg.duration(),
                request_timeout: Duration::from_millis(self.scenario.datapath.request_timeout_ms),
            },
            tail: self.scenario.sync_interval() + CHURN_TAIL,
        });
        let batching = batching_for(self.backend.mode(), self.scenario.sync_interval());
        let mut driver = Driver {
            controller: self.controller.as_mut(),
            io: self.io.as_mut(),
            batching,
            at: self.at,
            deadline: self.deadline,
        };
        let on_event = &mut *self.on_event;
        let mut step = |m: String| on_event(Event::Step(m));
        let limit = self.limit;
        let (churn, set) =
            run_phase(&mut driver, set, phase, traffic, &mut step).map_err(|e| match e {
                ChurnStop::Interrupted => CaseError::Interrupted,
                ChurnStop::Sync(source) => CaseError::at(Step::Churn, limit)(source),
            })?;
        let wall = churn.sync_events.last().map_or(0.0, |e| e.end_ms);
        self.at += Duration::from_secs_f64(wall / 1000.0) + self.scenario.sync_interval();
        Ok((churn, set))
    }
}

/// The churn phases of a case (one per rate), the set programmed at their end, and
/// why a further phase of a sweep stopped.
type ChurnDone = (Vec<crate::results::Churn>, ServiceSet, Option<String>);

/// Round `r`'s endpoint update of N x E: the service in the middle of the rule order
/// (moving on by `r`) with endpoint `r` replaced by a spare address. None without
/// endpoints.
fn changed_service(set: &ServiceSet, services: usize, e: usize, r: usize) -> Option<Service> {
    if e == 0 {
        return None;
    }
    let mut changed = set.services[(services / 2 + r) % services].clone();
    changed.endpoints[r % e].ip = model::spare_endpoint_ip(r as u32);
    Some(changed)
}

/// Runs one case of `spec` with `backend` in a sandbox named after `ns_prefix`, by the
/// scenario's case time limit counted from `start`.
pub fn run_case(
    backend: &dyn Backend,
    sandbox: &dyn Sandbox,
    s: &Scenario,
    spec: &CaseSpec,
    ns_prefix: &str,
    start: std::time::Instant,
    on_event: &mut impl FnMut(Event),
) -> Result<CaseDone, CaseError> {
    let limit = s.case_timeout();
    on_event(Event::Step("creating namespaces".into()));
    let sb = sandbox.create(ns_prefix).map_err(CaseError::Sandbox)?;
    let mut run = CaseRun {
        backend,
        sandbox: sb.as_ref(),
        scenario: s,
        deadline: Deadline::after_from(start, limit),
        limit,
        on_event,
        controller: backend.controller(spec.profile),
        io: sb.executor(),
        at: Duration::ZERO,
        partial: None,
    };
    let set = s.service_set(spec.services);
    run.step(format!("full sync of {} services", spec.services));
    // kube-proxy's first full sync runs by the scenario's sync limit (at most the
    // case's): past it, the floor programs the identical objects.
    let kube_proxy = spec.profile.kind() == ProfileKind::KubeProxy;
    let sync_limit = if kube_proxy {
        s.sync_limit().min(limit)
    } else {
        limit
    };
    run.deadline = Deadline::after_from(start, sync_limit);
    run.limit = sync_limit;
    let first = run.sync(Step::FullSync, None, &set);
    run.deadline = Deadline::after_from(start, limit);
    run.limit = limit;
    let (full, payload_bytes, full_steps) = match first {
        Ok(done) => done,
        Err(e) if e.timed_out() && kube_proxy => {
            let partial = run.partial.take();
            drop(run);
            drop(sb);
            let over = OverLimit {
                limit: sync_limit,
                partial,
                error: e,
            };
            return floor_programmed(backend, sandbox, s, spec, ns_prefix, over, on_event);
        }
        Err(e) => return Err(e),
    };
    run.step("reading rules back");
    let objects = run.verify(Step::ReadBack, &set)?;
    let mut fulls = Samples::default();
    fulls.push((full, payload_bytes, full_steps));
    let (mut datapath, datapath_error) = run.datapath(&set);
    if let Some(d) = datapath.as_mut() {
        for f in run.replicates(sandbox, ns_prefix, spec.profile, &set, full.wall, d) {
            fulls.push(f);
        }
    }
    let (inc, set) = run.incremental(set, spec.services)?;
    let (churn, set, churn_error) = run.churn(set)?;
    run.step("reading rules back after incremental syncs");
    run.settle(Step::ReadBackAfterIncremental, &set)?;
    run.verify(Step::ReadBackAfterIncremental, &set)?;
    run.repeat_full_sync(sb.as_ref(), spec, &mut fulls)?;
    Ok(CaseDone {
        rules: Rules {
            kernel_objects: objects,
            payload_bytes: Some(payload_bytes as u64),
            kernel_memory_bytes: None,
        },
        sync: inc.sync(&fulls, s.repeats),
        datapath,
        churn,
        churn_error,
        datapath_error,
        over_limit: None,
    })
}

/// A kube-proxy full sync that ran past the case's limit: the limit, the sync as far
/// as it got, and the time-out itself.
struct OverLimit {
    limit: Duration,
    partial: Option<(Sample, usize, StepLog)>,
    error: CaseError,
}

/// The rest of a case whose kube-proxy full sync ran past its limit: the identical
/// objects programmed by the floor profile in a fresh sandbox (`<prefix>f`), by a limit
/// of its own, read back and measured. Returns the time-out when the floor cannot reach
/// them either (the mode then gives up larger scales), or when nothing was timed.
fn floor_programmed(
    backend: &dyn Backend,
    sandbox: &dyn Sandbox,
    s: &Scenario,
    spec: &CaseSpec,
    ns_prefix: &str,
    over: OverLimit,
    on_event: &mut impl FnMut(Event),
) -> Result<CaseDone, CaseError> {
    let Some(partial) = over.partial else {
        return Err(over.error);
    };
    on_event(Event::Step(format!(
        "kube-proxy's full sync ran past {:.0} s: programming the identical objects through the floor profile",
        over.limit.as_secs_f64()
    )));
    let sb = sandbox
        .create(&format!("{ns_prefix}f"))
        .map_err(CaseError::Sandbox)?;
    let deadline = Deadline::after(s.case_timeout());
    let set = s.service_set(spec.services);
    {
        let mut io = sb.executor();
        let mut ctl = backend.controller(Profile::Floor);
        io.begin(deadline);
        let done = ctl.sync(io.as_mut(), None, &set, Duration::ZERO);
        io.finish();
        if let Err(e) = done {
            tracing::warn!(
                "the floor could not program {} services either: {e}",
                spec.services
            );
            return Err(over.error);
        }
    }
    // The read-back and the data path get limits of their own too: the floor's sync
    // may have used most of its own, and listing a large table takes a while.
    on_event(Event::Step("reading rules back".into()));
    let found = backend
        .verify(sb.node(), &set, Deadline::after(s.command_timeout()))
        .map_err(CaseError::at(Step::ReadBack, s.command_timeout()))?;
    let deadline = Deadline::after(s.case_timeout());
    let (datapath, datapath_error) = if s.datapath.enabled {
        let mut step = |m: String| on_event(Event::Step(m));
        match sb.measure_datapath(&set, &s.datapath, deadline, &mut step) {
            Ok(d) => (Some(d), None),
            Err(e) => (None, Some(e)),
        }
    } else {
        (None, None)
    };
    let payload = partial.1;
    let mut fulls = Samples::default();
    fulls.push(partial);
    Ok(CaseDone {
        rules: Rules {
            kernel_objects: found.count as u64,
            payload_bytes: Some(payload as u64),
            kernel_memory_bytes: None,
        },
        sync: Sync {
            full: fulls.summary().expect("one sample"),
            add_service: None,
            remove_service: None,
            update_endpoints: None,
            picks: Vec::new(),
        },
        datapath,
        datapath_error,
        over_limit: Some(over.limit),
        churn: vec![],
        churn_error: None,
    })
}
