//! Runs a scenario: for every mode, profile and scale, a fresh sandbox, a full sync, read-back,
//! incremental syncs and (when enabled) the data path. Results are written after every
//! case; a case past its time limit fails and the larger scales of its mode and profile
//! are skipped, so one slow mode cannot hang a run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use dataplane::floor::spec::{self, Feature};
use dataplane::{
    floor::exec, Backend, KernelFeature, Mode, ModeSpec, NotImplemented, Profile, ProfileKind,
    Unavailable,
};

use crate::results::{Case, Environment, Results, ResultsError, RunInfo, ScenarioInfo};
use crate::run::case::run_case;
use crate::run::plan::{plan, CaseSpec};
use crate::run::seams::{Backends, Host, Namespaces, RealBackends, RealHost, Sandbox};
use crate::scenario::Scenario;

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

/// Why a case was not attempted; its `skipped` reason.
#[derive(Debug, thiserror::Error)]
enum NotRun {
    #[error("{0}; run the other modes")]
    NotImplemented(NotImplemented),
    #[error("{0}{hint}", hint = lab_hint(.0))]
    Unavailable(Unavailable),
    /// The case's services use a feature its mode does not render yet.
    #[error("{0}")]
    Unrendered(String),
    #[error("not attempted: {mode} ({profile} profile) timed out at {services} services; raise case_timeout_s in the scenario to try larger scales")]
    GaveUp {
        mode: Mode,
        profile: ProfileKind,
        services: usize,
    },
}

/// Why `b` cannot run `spec`'s services, if a feature of theirs is one it does not
/// render yet (only a shape has such services).
fn unrendered(b: &dyn Backend, s: &Scenario, spec: &CaseSpec) -> Option<String> {
    if !s.is_shaped() {
        return None;
    }
    let set = s.service_set(spec.services);
    let left = spec::unrendered(set.services.iter().map(|s| &s.spec), b.renders());
    spec::skip_reason(&spec.mode.to_string(), &left)
}

/// What `b`'s data path does not exercise of the features `spec`'s services use (only
/// a shape has such services).
fn unexercised(b: &dyn Backend, s: &Scenario, spec: &CaseSpec) -> Vec<String> {
    if !s.is_shaped() {
        return Vec::new();
    }
    let set = s.service_set(spec.services);
    let used: Vec<Feature> = spec::unrendered(set.services.iter().map(|s| &s.spec), &[])
        .into_keys()
        .collect();
    b.unexercised(&used)
}

/// For a kernel without IPVS: the lab has one.
fn lab_hint(e: &Unavailable) -> String {
    match e.kernel_feature() {
        Some(KernelFeature::IpVs) => format!(
            "; or run the ipvs cases in the kernel lab, `kpbench lab --kernel {} run --modes ipvs`",
            crate::lab::DEFAULT_KERNEL
        ),
        _ => String::new(),
    }
}

/// Runs the plan on this machine, reporting progress through `on_event`. Returns the
/// results as written to `out_dir`.
pub fn run(plan: &RunPlan, on_event: impl FnMut(Event)) -> Result<Results, RunError> {
    Runner::real().run(plan, on_event)
}

/// The engine with its seams: the real ones for [`run`], fakes in tests.
pub struct Runner<'a> {
    pub backends: &'a dyn Backends,
    pub sandbox: &'a dyn Sandbox,
    pub host: &'a dyn Host,
}

/// The results of a run in progress and where they are written.
struct Recorder<'a> {
    results: Results,
    out_dir: &'a Path,
    host: &'a dyn Host,
}

impl Recorder<'_> {
    /// Adds a finished case, rewrites the result files (so nothing finished is lost)
    /// and reports it.
    fn record(
        &mut self,
        case: Case,
        index: usize,
        on_event: &mut impl FnMut(Event),
    ) -> Result<(), RunError> {
        self.results.cases.push(case.clone());
        self.results.run.finished_at = self.host.timestamp();
        // Every verdict again with the margin its environment now has.
        crate::analysis::lookup::decide(&mut self.results);
        self.results.write(self.out_dir)?;
        on_event(Event::CaseFinished {
            index,
            case: Box::new(case),
        });
        Ok(())
    }

    /// Marks the run finished (or interrupted) and writes the result files last.
    fn finish(mut self, total: usize, s: &Scenario, env_id: &str) -> Result<Results, RunError> {
        let r = &mut self.results;
        r.run.incomplete = exec::cancelled()
            .then(|| format!("interrupted after {} of {} cases", r.cases.len(), total));
        if r.cases.is_empty() {
            // The schema wants at least one case; say why there is none.
            let mode = s.modes.first().copied().unwrap_or(Mode::Iptables);
            let spec = CaseSpec {
                mode: ModeSpec::new(mode),
                profile: Profile::new(
                    s.profiles.first().copied().unwrap_or_default(),
                    s.kube_proxy_version,
                ),
                services: 0,
            };
            let mut case = spec.skipped(env_id, s.endpoints_per_service);
            case.ipvs_scheduler = None;
            case.reason = Some("the run was interrupted before its first case".into());
            r.cases.push(case);
        }
        r.run.finished_at = self.host.timestamp();
        crate::analysis::lookup::decide(r);
        r.write(self.out_dir)?;
        Ok(self.results)
    }
}

/// Each mode's backend, or why it has none.
type BackendMap = BTreeMap<ModeSpec, Result<Box<dyn Backend>, NotImplemented>>;

/// What the run has learnt so far that decides later cases.
#[derive(Debug, Default)]
struct Tally {
    /// The environment cases here run in.
    env_id: String,
    /// Modes (with their profile) that timed out, with the scale they timed out at.
    gave_up: BTreeMap<(ModeSpec, ProfileKind), usize>,
    /// Whether the lab has had its cases.
    lab_done: bool,
}

impl Runner<'static> {
    /// The engine on this machine: dataplane's backends, real namespaces, the lab.
    pub fn real() -> Self {
        Runner {
            backends: &RealBackends,
            sandbox: &Namespaces,
            host: &RealHost,
        }
    }
}

impl Runner<'_> {
    /// Runs the plan, reporting progress through `on_event`. Returns the results as
    /// written to `out_dir`.
    pub fn run(&self, p: &RunPlan, mut on_event: impl FnMut(Event)) -> Result<Results, RunError> {
        let s = &p.scenario;
        let cases = plan(s);
        let backends: BackendMap = s
            .mode_specs()
            .into_iter()
            .map(|m| (m, self.backends.backend(m, s.kube_proxy_version)))
            .collect();
        let env = self.host.environment(&tools_of(&backends));
        let mut tally = Tally {
            env_id: env.id.clone(),
            ..Tally::default()
        };
        let mut rec = self.start(p, env);
        for (index, spec) in cases.iter().enumerate() {
            if exec::cancelled() {
                break;
            }
            if self.host.needs_lab(spec.mode) {
                if !tally.lab_done {
                    tally.lab_done = true;
                    self.run_lab(p, &cases, index, &tally, &mut rec, &mut on_event)?;
                }
                continue;
            }
            on_event(Event::CaseStarted {
                index,
                total: cases.len(),
                label: spec.label(),
            });
            let backend = &backends[&spec.mode];
            let case = self.attempt(p, (index, spec), backend, &mut tally, &mut on_event);
            rec.record(case, index, &mut on_event)?;
        }
        rec.finish(cases.len(), s, &tally.env_id)
    }

    /// The results of a run that starts now, with nothing recorded yet.
    fn start<'r>(&'r self, p: &'r RunPlan, env: Environment) -> Recorder<'r> {
        let now = self.host.timestamp();
        Recorder {
            results: Results {
                schema_version: crate::results::SCHEMA_VERSION.into(),
                run: RunInfo {
                    id: p.run_id.clone(),
                    started_at: now.clone(),
                    finished_at: now,
                    tool_version: env!("CARGO_PKG_VERSION").into(),
                    git_rev: option_env!("KPBENCH_GIT_REV").map(String::from),
                    git_dirty: option_env!("KPBENCH_GIT_DIRTY").and_then(|d| d.parse().ok()),
                    scenario: ScenarioInfo {
                        name: p.scenario.name.clone(),
                        file: p.scenario_file.clone(),
                        resolved: serde_json::to_value(&p.scenario).unwrap_or_default(),
                    },
                    incomplete: Some("running".into()),
                },
                environments: vec![env],
                cases: Vec::new(),
            },
            out_dir: &p.out_dir,
            host: self.host,
        }
    }

    /// Why `spec` cannot run, if it cannot: no backend, something missing here, or its
    /// mode gave up at a smaller scale.
    fn not_run<'b>(
        &self,
        scenario: &Scenario,
        spec: &CaseSpec,
        backend: &'b Result<Box<dyn Backend>, NotImplemented>,
        gave_up: &BTreeMap<(ModeSpec, ProfileKind), usize>,
    ) -> Result<&'b dyn Backend, NotRun> {
        let b = backend.as_deref().map_err(|e| NotRun::NotImplemented(*e))?;
        if let Some(why) = unrendered(b, scenario, spec) {
            return Err(NotRun::Unrendered(why));
        }
        b.prerequisites().check().map_err(NotRun::Unavailable)?;
        match gave_up.get(&(spec.mode, spec.profile.kind())) {
            Some(&services) => Err(NotRun::GaveUp {
                mode: spec.mode.mode(),
                profile: spec.profile.kind(),
                services,
            }),
            None => Ok(b),
        }
    }

    /// Runs case `index` (or says why not) and returns its record.
    fn attempt(
        &self,
        p: &RunPlan,
        (index, spec): (usize, &CaseSpec),
        backend: &Result<Box<dyn Backend>, NotImplemented>,
        tally: &mut Tally,
        on_event: &mut impl FnMut(Event),
    ) -> Case {
        let s = &p.scenario;
        let started = self.host.now();
        let mut case = spec.skipped(&tally.env_id, s.endpoints_per_service);
        match self.not_run(s, spec, backend, &tally.gave_up) {
            Err(why) => case.reason = Some(why.to_string()),
            Ok(b) => {
                case.notes = unexercised(b, s, spec);
                let prefix = format!("{}-c{index}", p.run_id);
                match run_case(b, self.sandbox, s, spec, &prefix, started, on_event) {
                    Ok(done) => done.record_into(&mut case),
                    Err(e) => {
                        if e.timed_out() {
                            tally
                                .gave_up
                                .insert((spec.mode, spec.profile.kind()), spec.services);
                        }
                        case.status = e.status();
                        case.reason = Some(e.to_string());
                    }
                }
            }
        }
        case.elapsed_s = Some(
            self.host
                .now()
                .saturating_duration_since(started)
                .as_secs_f64(),
        );
        case
    }

    /// Hands every case that needs the lab to it at once, and records what comes back:
    /// the guest's cases and environments, or each case `skipped` with the reason.
    fn run_lab(
        &self,
        p: &RunPlan,
        cases: &[CaseSpec],
        index: usize,
        tally: &Tally,
        rec: &mut Recorder<'_>,
        on_event: &mut impl FnMut(Event),
    ) -> Result<(), RunError> {
        let s = &p.scenario;
        let mine: Vec<&CaseSpec> = cases
            .iter()
            .filter(|c| self.host.needs_lab(c.mode))
            .collect();
        on_event(Event::CaseStarted {
            index,
            total: cases.len(),
            label: if s.lab_compare {
                format!(
                    "ipvs ({} cases) in the kernel lab, with the other modes at its scales for a same-kernel comparison",
                    mine.len()
                )
            } else {
                format!("ipvs ({} cases) in the kernel lab", mine.len())
            },
        });
        let mut step = |m: String| on_event(Event::Step(m));
        let lab_cases = match self.host.run_in_lab(s, &p.run_id, &mut step) {
            Ok((envs, lab_cases)) => {
                let known = &mut rec.results.environments;
                for e in envs {
                    if !known.iter().any(|x| x.id == e.id) {
                        known.push(e);
                    }
                }
                lab_cases
            }
            Err(why) => mine
                .iter()
                .map(|c| {
                    let mut case = c.skipped(&tally.env_id, s.endpoints_per_service);
                    case.reason = Some(why.to_string());
                    case
                })
                .collect(),
        };
        for case in lab_cases {
            rec.record(case, index, on_event)?;
        }
        Ok(())
    }
}

/// The programs every implemented backend runs, sorted, once each.
fn tools_of(backends: &BackendMap) -> Vec<&'static str> {
    let mut tools: Vec<&str> = backends
        .values()
        .flatten()
        .flat_map(|b| b.tools())
        .collect();
    tools.sort_unstable();
    tools.dedup();
    tools
}
