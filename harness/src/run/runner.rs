//! Runs a scenario: for every mode and scale, a fresh namespace topology, a full sync,
//! read-back, incremental syncs and (when enabled) the data path. Results are written
//! after every case; a case past its time limit fails and the larger scales of its mode
//! are skipped, so one slow mode cannot hang a run.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use dataplane::model::{self, ServiceSet};
use dataplane::{exec, ApplyError, Backend, Mode};

use crate::run::metrics::{summarize, thread_cpu, Sample};
use crate::results::{
    Case, Environment, Results, ResultsError, Rules, RunInfo, ScenarioInfo, Status, Sync,
};
use crate::scenario::Scenario;
use crate::sandbox::topology::Topology;

/// Progress of a run, for whatever UI shows it.
#[derive(Debug, Clone)]
pub enum Event {
    /// A case starts: `index` of `total`.
    CaseStarted {
        index: usize,
        total: usize,
        label: String,
    },
    /// A step inside the current case.
    Step(String),
    /// A case ended (its record is in the results already).
    CaseFinished { index: usize, case: Box<Case> },
}

/// What to run and where to write.
pub struct RunPlan {
    pub scenario: Scenario,
    pub scenario_file: Option<String>,
    pub run_id: String,
    pub out_dir: PathBuf,
}

/// Errors that stop a whole run (case failures do not).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Results(#[from] ResultsError),
}

/// A mode, its IPVS scheduler (ipvs only) and its backend, if implemented.
type ModeBackend = (Mode, Option<String>, Option<Box<dyn Backend>>);

/// One planned case.
#[derive(Debug, Clone)]
struct CaseSpec {
    mode: Mode,
    scheduler: Option<String>,
    services: usize,
}

impl CaseSpec {
    fn label(&self) -> String {
        match &self.scheduler {
            Some(s) => format!("{} ({s}) x {} services", self.mode, self.services),
            None => format!("{} x {} services", self.mode, self.services),
        }
    }
}

/// A case record for `spec`, `skipped` with no reason yet and nothing measured.
fn skipped_case(environment: &str, spec: &CaseSpec, endpoints: usize) -> Case {
    Case {
        environment: environment.to_string(),
        mode: spec.mode.name().into(),
        ipvs_scheduler: spec.scheduler.clone(),
        services: spec.services as u64,
        endpoints_per_service: endpoints as u64,
        status: Status::Skipped,
        reason: None,
        rules: None,
        sync: None,
        datapath: None,
        elapsed_s: None,
    }
}

/// The IPVS schedulers a mode is measured with: each its own case for ipvs, none
/// for the other modes.
fn schedulers(s: &Scenario, mode: Mode) -> Vec<Option<String>> {
    if mode == Mode::Ipvs {
        s.ipvs_schedulers.iter().cloned().map(Some).collect()
    } else {
        vec![None]
    }
}

fn plan(s: &Scenario) -> Vec<CaseSpec> {
    let mut v = Vec::new();
    for &mode in &s.modes {
        for sched in schedulers(s, mode) {
            for &n in s.scales_for(mode) {
                v.push(CaseSpec {
                    mode,
                    scheduler: sched.clone(),
                    services: n,
                });
            }
        }
    }
    v
}

/// Why a mode cannot run here, with what to do; None if it can.
fn unavailable(mode: Mode, backend: Option<&dyn Backend>) -> Option<String> {
    let Some(b) = backend else {
        return Some(format!(
            "mode {mode} is not implemented in kpbench {}; run the other modes",
            env!("CARGO_PKG_VERSION")
        ));
    };
    for tool in b.tools() {
        if exec::which(tool).is_none() {
            return Some(format!(
                "{tool} not found: install the {} package (apt-get install {})",
                exec::package_of(tool),
                exec::package_of(tool)
            ));
        }
    }
    if mode == Mode::Ipvs && !crate::run::environment::has_ipvs() {
        return Some(format!(
            "this kernel ({}) has no IPVS (CONFIG_IP_VS): run the ipvs cases in the kernel lab, `kpbench lab --kernel debian:6.1 run --modes ipvs`",
            crate::run::environment::kernel_release()
        ));
    }
    None
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn git_rev() -> Option<String> {
    option_env!("KPBENCH_GIT_REV").map(String::from)
}

/// Adds a finished case to the results, rewrites the result files (so nothing
/// finished is lost) and reports it.
fn record(
    results: &mut Results,
    out_dir: &std::path::Path,
    case: Case,
    index: usize,
    on_event: &mut impl FnMut(Event),
) -> Result<(), RunError> {
    results.cases.push(case.clone());
    results.run.finished_at = now_rfc3339();
    results.write(out_dir)?;
    on_event(Event::CaseFinished {
        index,
        case: Box::new(case),
    });
    Ok(())
}

/// Runs the plan, reporting progress through `on_event`. Returns the results as
/// written to `out_dir`.
pub fn run(plan_: &RunPlan, mut on_event: impl FnMut(Event)) -> Result<Results, RunError> {
    let s = &plan_.scenario;
    let cases = plan(s);
    let backends: Vec<ModeBackend> = s
        .modes
        .iter()
        .flat_map(|&m| {
            schedulers(s, m).into_iter().map(move |sc| {
                (
                    m,
                    sc.clone(),
                    dataplane::backend::backend_with(m, sc.as_deref()),
                )
            })
        })
        .collect();
    let mut tools: Vec<&str> = backends
        .iter()
        .flat_map(|(_, _, b)| b.as_ref().map(|b| b.tools()).unwrap_or_default())
        .collect();
    tools.sort_unstable();
    tools.dedup();
    let env: Environment = crate::run::environment::probe(&tools);
    let mut results = Results {
        schema_version: crate::results::SCHEMA_VERSION.into(),
        run: RunInfo {
            id: plan_.run_id.clone(),
            started_at: now_rfc3339(),
            finished_at: now_rfc3339(),
            tool_version: env!("CARGO_PKG_VERSION").into(),
            git_rev: git_rev(),
            scenario: ScenarioInfo {
                name: s.name.clone(),
                file: plan_.scenario_file.clone(),
                resolved: serde_json::to_value(s).unwrap_or_default(),
            },
            incomplete: Some("running".into()),
        },
        environments: vec![env.clone()],
        cases: Vec::new(),
    };
    let mut gave_up: Vec<(Mode, Option<String>, String)> = Vec::new();
    let mut lab_done = false;
    let total = cases.len();
    for (index, spec) in cases.iter().enumerate() {
        if exec::cancelled() {
            break;
        }
        if spec.mode == Mode::Ipvs && crate::run::lab::lab_needed() {
            if lab_done {
                continue;
            }
            lab_done = true;
            let n = cases.iter().filter(|c| c.mode == Mode::Ipvs).count();
            on_event(Event::CaseStarted {
                index,
                total,
                label: format!("ipvs ({n} cases) in the kernel lab"),
            });
            let mut step = |m: String| on_event(Event::Step(m));
            let lab_cases = match crate::run::lab::run_ipvs_cases(s, &plan_.run_id, &mut step) {
                Ok((envs, lab_cases)) => {
                    for e in envs {
                        if !results.environments.iter().any(|x| x.id == e.id) {
                            results.environments.push(e);
                        }
                    }
                    lab_cases
                }
                Err(reason) => cases
                    .iter()
                    .filter(|c| c.mode == Mode::Ipvs)
                    .map(|c| {
                        let mut case = skipped_case(&env.id, c, s.endpoints_per_service);
                        case.reason = Some(reason.clone());
                        case
                    })
                    .collect(),
            };
            for case in lab_cases {
                record(&mut results, &plan_.out_dir, case, index, &mut on_event)?;
            }
            continue;
        }
        on_event(Event::CaseStarted {
            index,
            total,
            label: spec.label(),
        });
        let started = Instant::now();
        let backend = backends
            .iter()
            .find(|(m, sc, _)| *m == spec.mode && *sc == spec.scheduler)
            .and_then(|(_, _, b)| b.as_deref());
        let mut case = skipped_case(&env.id, spec, s.endpoints_per_service);
        if let Some(reason) = unavailable(spec.mode, backend) {
            case.reason = Some(reason);
        } else if let Some((_, _, why)) = gave_up
            .iter()
            .find(|(m, sc, _)| *m == spec.mode && *sc == spec.scheduler)
        {
            case.reason = Some(format!(
                "not attempted: {why}; raise case_timeout_s in the scenario to try larger scales"
            ));
        } else {
            let backend = backend.expect("available backends exist");
            let ns_prefix = format!("{}-c{index}", plan_.run_id);
            match run_case(backend, s, spec, &ns_prefix, &mut on_event) {
                Ok(done) => {
                    case.status = Status::Ok;
                    case.rules = Some(done.rules);
                    case.sync = Some(done.sync);
                    case.datapath = done.datapath;
                    if let Some(why) = done.datapath_error {
                        case.status = Status::Failed;
                        case.reason = Some(format!("data path: {why}"));
                    }
                }
                Err(failure) => {
                    case.status = if failure.skipped {
                        Status::Skipped
                    } else {
                        Status::Failed
                    };
                    if failure.timed_out {
                        gave_up.push((
                            spec.mode,
                            spec.scheduler.clone(),
                            format!("{} timed out at {} services", spec.mode, spec.services),
                        ));
                    }
                    case.reason = Some(failure.reason);
                }
            }
        }
        case.elapsed_s = Some(started.elapsed().as_secs_f64());
        record(&mut results, &plan_.out_dir, case, index, &mut on_event)?;
    }
    results.run.incomplete = if exec::cancelled() {
        Some(format!(
            "interrupted after {} of {} cases",
            results.cases.len(),
            total
        ))
    } else {
        None
    };
    if results.cases.is_empty() {
        // The schema wants at least one case; say why there is none.
        let first = CaseSpec {
            mode: s.modes.first().copied().unwrap_or(Mode::Iptables),
            scheduler: None,
            services: 0,
        };
        let mut case = skipped_case(&env.id, &first, s.endpoints_per_service);
        case.reason = Some("the run was interrupted before its first case".into());
        results.cases.push(case);
    }
    results.run.finished_at = now_rfc3339();
    results.write(&plan_.out_dir)?;
    Ok(results)
}

struct CaseDone {
    rules: Rules,
    sync: Sync,
    datapath: Option<crate::results::Datapath>,
    /// Why the data path could not be measured, when it could not.
    datapath_error: Option<String>,
}

struct CaseFailure {
    reason: String,
    timed_out: bool,
    skipped: bool,
}

impl CaseFailure {
    fn from_apply(step: &str, e: ApplyError, limit: Duration) -> Self {
        let timed_out = matches!(e, ApplyError::Exec(exec::ExecError::Timeout { .. }));
        let skipped = e.is_missing_tool();
        let reason = if timed_out {
            format!(
                "{step}: case time limit of {:.0} s reached ({e})",
                limit.as_secs_f64()
            )
        } else {
            format!("{step}: {e}")
        };
        CaseFailure {
            reason,
            timed_out,
            skipped,
        }
    }
}

/// Times one sync: wall time, this thread's CPU (rendering) plus the tools' CPU.
fn timed_sync(
    backend: &dyn Backend,
    topo: &Topology,
    old: Option<&ServiceSet>,
    new: &ServiceSet,
    deadline: Instant,
) -> Result<(Sample, usize), ApplyError> {
    let remaining = deadline.saturating_duration_since(Instant::now());
    if remaining.is_zero() {
        return Err(ApplyError::Exec(exec::ExecError::Timeout {
            tool: "case".into(),
            after: Duration::ZERO,
        }));
    }
    let (u0, s0) = thread_cpu();
    let start = Instant::now();
    let report = backend.sync(&topo.node, old, new, remaining)?;
    let wall = start.elapsed();
    let (u1, s1) = thread_cpu();
    Ok((
        Sample {
            wall,
            user: report.cost.user + (u1 - u0),
            sys: report.cost.sys + (s1 - s0),
        },
        report.payload_bytes,
    ))
}

fn check_read_back(
    backend: &dyn Backend,
    topo: &Topology,
    set: &ServiceSet,
    timeout: Duration,
) -> Result<u64, ApplyError> {
    let found = backend.read_back(&topo.node, timeout)?;
    let expected = backend.expected_objects(set);
    if found != expected {
        return Err(ApplyError::Mismatch {
            what: backend.object_kind(),
            found,
            expected,
        });
    }
    Ok(found as u64)
}

fn run_case(
    backend: &dyn Backend,
    s: &Scenario,
    spec: &CaseSpec,
    ns_prefix: &str,
    on_event: &mut impl FnMut(Event),
) -> Result<CaseDone, CaseFailure> {
    let limit = s.case_timeout();
    let deadline = Instant::now() + limit;
    let fail = |step: &'static str| move |e: ApplyError| CaseFailure::from_apply(step, e, limit);
    on_event(Event::Step("creating namespaces".into()));
    let topo = Topology::create(ns_prefix).map_err(|e| CaseFailure {
        reason: format!("topology: {e}"),
        timed_out: false,
        skipped: false,
    })?;
    let e = s.endpoints_per_service;
    let mut set = ServiceSet::generate(spec.services, e);
    on_event(Event::Step(format!(
        "full sync of {} services",
        spec.services
    )));
    let (full, payload_bytes) =
        timed_sync(backend, &topo, None, &set, deadline).map_err(fail("full sync"))?;
    on_event(Event::Step("reading rules back".into()));
    let cmd_timeout = s.command_timeout().min(
        deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_secs(1)),
    );
    let objects = check_read_back(backend, &topo, &set, cmd_timeout)
        .map_err(fail("read-back after full sync"))?;
    let (mut datapath, mut datapath_error) = (None, None);
    if s.datapath.enabled {
        match crate::datapath::measure(&topo, &set, &s.datapath, deadline, |m| {
            on_event(Event::Step(m))
        }) {
            Ok(d) => datapath = Some(d),
            Err(e) => datapath_error = Some(e),
        }
    }
    let (mut adds, mut removes, mut updates) = (Vec::new(), Vec::new(), Vec::new());
    let mut spare = 0u32;
    for r in 0..s.repeats {
        if exec::cancelled() {
            return Err(CaseFailure {
                reason: "interrupted".into(),
                timed_out: false,
                skipped: false,
            });
        }
        on_event(Event::Step(format!(
            "incremental syncs {}/{}",
            r + 1,
            s.repeats
        )));
        let mut grown = set.clone();
        grown.upsert(model::service(spec.services, e));
        adds.push(
            timed_sync(backend, &topo, Some(&set), &grown, deadline)
                .map_err(fail("add_service"))?
                .0,
        );
        removes.push(
            timed_sync(backend, &topo, Some(&grown), &set, deadline)
                .map_err(fail("remove_service"))?
                .0,
        );
        if e > 0 {
            // Replace one endpoint of a service in the middle of the rule order.
            let mut changed = set.services[(spec.services / 2 + r) % spec.services].clone();
            changed.endpoints[r % e].ip = model::spare_endpoint_ip(spare);
            spare += 1;
            let mut next = set.clone();
            next.upsert(changed);
            updates.push(
                timed_sync(backend, &topo, Some(&set), &next, deadline)
                    .map_err(fail("update_endpoints"))?
                    .0,
            );
            set = next;
        }
    }
    on_event(Event::Step(
        "reading rules back after incremental syncs".into(),
    ));
    check_read_back(backend, &topo, &set, cmd_timeout)
        .map_err(fail("read-back after incremental syncs"))?;
    drop(topo);
    Ok(CaseDone {
        rules: Rules {
            kernel_objects: objects,
            payload_bytes: Some(payload_bytes as u64),
            kernel_memory_bytes: None,
        },
        sync: Sync {
            full: summarize(&[full]).expect("one sample"),
            add_service: summarize(&adds),
            remove_service: summarize(&removes),
            update_endpoints: summarize(&updates),
        },
        datapath,
        datapath_error,
    })
}
