//! Fakes for the runner's seams, so tests drive the whole engine without root and
//! check exact numbers: a backend whose syncs cost what it says, a sandbox that
//! creates nothing, a host with a fixed environment, clock and lab.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dataplane::floor::exec::{Cost, ExecError, Output};
use dataplane::floor::model::ServiceSet;
use dataplane::floor::sync::standin::StandIn;
use dataplane::floor::sync::{
    Category, Controller, Executor, MeasuredExecutor, Profile, Request, StepLog, ToolCall,
};
use dataplane::{
    ApplyError, Backend, Deadline, Mode, ModeSpec, Netns, NotImplemented, Objects, Prerequisites,
    SyncReport, ToolNeed,
};

use crate::datapath::measure::MeasureError;
use crate::results::{Case, Datapath, Environment, Transit};
use crate::run::lab::{LabCases, LabRunError};
use crate::run::seams::{Backends, CaseSandbox, Host, Sandbox};
use crate::run::{RunPlan, Runner};
use crate::sandbox::TopologyError;
use crate::scenario::{self, Scenario};

/// Everything the fakes did, in order, for assertions.
pub type Log = Arc<Mutex<Vec<String>>>;

fn log(l: &Log, line: String) {
    l.lock().unwrap().push(line);
}

/// What a fake backend does.
#[derive(Debug, Clone, Default)]
pub struct Script {
    /// Programs it says it runs (a missing one makes its cases skipped).
    pub tools: Vec<ToolNeed>,
    /// From this many services on, a full sync times out (the tool is killed).
    pub timeout_from: Option<usize>,
    /// The time-out hits the kube-proxy profile only: the floor reaches every scale.
    pub floor_in_time: bool,
    /// A full sync fails as if the kernel lacked IPVS.
    pub no_kernel_feature: bool,
    /// The read-back finds this many objects fewer than were programmed.
    pub short_by: usize,
    /// The service features it renders (none: N x E's ClusterIPs only).
    pub renders: &'static [dataplane::floor::spec::Feature],
}

/// The cost of a fake sync, all exact milliseconds: a full sync of N services takes
/// N ms of wall time, N/10 ms of user and N/5 ms of system CPU; adding a service
/// takes 2 ms, removing one 3 ms, changing endpoints 4 ms, each with 1 ms user and
/// 1 ms system CPU.
pub fn fake_cost(old: Option<&ServiceSet>, new: &ServiceSet) -> Cost {
    let ms = Duration::from_millis;
    let n = new.len() as u64;
    match old {
        None => Cost {
            wall: ms(n),
            user: ms(n / 10),
            sys: ms(n / 5),
        },
        Some(old) => {
            let wall = match new.len().cmp(&old.len()) {
                std::cmp::Ordering::Greater => 2,
                std::cmp::Ordering::Less => 3,
                std::cmp::Ordering::Equal => 4,
            };
            Cost {
                wall: ms(wall),
                user: ms(1),
                sys: ms(1),
            }
        }
    }
}

/// A backend that programs nothing: its controller runs one fake tool per sync
/// costing [`fake_cost`]; its payload is one byte per service and its objects one per
/// service and endpoint.
pub struct FakeBackend {
    spec: ModeSpec,
    script: Script,
}

/// The fake backend's controller: fails as its script says, else "runs" one tool whose
/// cost the [`FakeExecutor`] reports exactly.
struct FakeController {
    spec: ModeSpec,
    profile: Profile,
    script: Script,
}

impl Controller for FakeController {
    fn profile(&self) -> Profile {
        self.profile
    }

    fn sync(
        &mut self,
        io: &mut dyn Executor,
        old: Option<&ServiceSet>,
        new: &ServiceSet,
        _at: Duration,
    ) -> Result<(), ApplyError> {
        let kind = if old.is_none() { "full" } else { "partial" };
        let what = format!("{} {kind} sync of {}", self.spec, new.len());
        let cost = fake_cost(old, new);
        let ms = |d: Duration| d.as_millis().to_string();
        io.tool(ToolCall::new(
            "fake-restore",
            Category::Restore,
            "fake-restore",
            &[&ms(cost.wall), &ms(cost.user), &ms(cost.sys), &what],
        ))?;
        io.wrote(new.len());
        if old.is_none() {
            let floor_in_time = self.script.floor_in_time && self.profile == Profile::Floor;
            if !floor_in_time && self.script.timeout_from.is_some_and(|n| new.len() >= n) {
                return Err(ExecError::Timeout {
                    tool: "fake-restore".into(),
                    after: Duration::from_secs(1),
                }
                .into());
            }
            if self.script.no_kernel_feature {
                return Err(dataplane::Unavailable::KernelFeature {
                    feature: dataplane::KernelFeature::IpVs,
                    release: "6.18.0-test".into(),
                }
                .into());
            }
        }
        Ok(())
    }

    fn settle(
        &mut self,
        _io: &mut dyn Executor,
        _set: &ServiceSet,
        _at: Duration,
    ) -> Result<(), ApplyError> {
        Ok(())
    }
}

/// Runs nothing: a `fake-restore` call costs exactly the milliseconds its first three
/// arguments say (wall, user, sys) and is logged with its fourth and the namespace.
pub struct FakeExecutor {
    node: String,
    log: Log,
    steps: StepLog,
    cost: Cost,
    bytes: usize,
}

impl Executor for FakeExecutor {
    fn tool(&mut self, call: ToolCall<'_>) -> Result<Output, ApplyError> {
        let ms = |i: usize| Duration::from_millis(call.args[i].parse().unwrap_or(0));
        let cost = Cost {
            wall: ms(0),
            user: ms(1),
            sys: ms(2),
        };
        log(&self.log, format!("{} in {}", call.args[3], self.node));
        self.steps.add(call.step, call.category, cost);
        self.cost += cost;
        Ok(Output {
            status: 0,
            stdout: String::new(),
            stderr: String::new(),
            cost,
        })
    }

    fn request(&mut self, req: &mut dyn Request) -> Result<(), ApplyError> {
        req.unanswered();
        Ok(())
    }

    fn wrote(&mut self, bytes: usize) {
        self.bytes += bytes;
    }
}

impl MeasuredExecutor for FakeExecutor {
    fn begin(&mut self, _deadline: Deadline) {
        self.steps = StepLog::default();
        self.cost = Cost::default();
        self.bytes = 0;
    }

    fn finish(&mut self) -> SyncReport {
        SyncReport {
            cost: self.cost,
            payload_bytes: self.bytes,
            steps: std::mem::take(&mut self.steps),
        }
    }
}

impl Backend for FakeBackend {
    fn controller(&self, profile: Profile) -> Box<dyn Controller> {
        Box::new(FakeController {
            spec: self.spec,
            profile,
            script: self.script.clone(),
        })
    }

    fn standins(&self) -> Vec<Box<dyn StandIn>> {
        Vec::new()
    }

    /// A fake programs no kernel state, so it lists none.
    fn readback(&self, _io: &mut dyn Executor) -> Result<String, ApplyError> {
        Ok(String::new())
    }

    fn spec(&self) -> ModeSpec {
        self.spec
    }

    fn prerequisites(&self) -> Prerequisites {
        Prerequisites {
            tools: self.script.tools.clone(),
            kernel: Vec::new(),
        }
    }

    fn inspect_command(&self) -> &'static str {
        "true"
    }

    fn renders(&self) -> &'static [dataplane::floor::spec::Feature] {
        self.script.renders
    }

    fn verify(
        &self,
        _ns: &Netns,
        expected: &ServiceSet,
        _deadline: Deadline,
    ) -> Result<Objects, ApplyError> {
        let want = expected.len() + expected.total_endpoints();
        Objects::check("fake objects", want - self.script.short_by, want)
    }
}

/// Fake backends by mode; modes without a script have no backend (not implemented).
#[derive(Default)]
pub struct FakeBackends {
    pub scripts: BTreeMap<Mode, Script>,
}

impl FakeBackends {
    /// Every mode but ebpf, scripted to succeed.
    pub fn all_ok() -> Self {
        let scripts = Mode::ALL
            .into_iter()
            .filter(|&m| m != Mode::Ebpf)
            .map(|m| (m, Script::default()))
            .collect();
        FakeBackends { scripts }
    }
}

impl Backends for FakeBackends {
    fn backend(
        &self,
        spec: ModeSpec,
        _release: dataplane::KubeProxyVersion,
    ) -> Result<Box<dyn Backend>, NotImplemented> {
        let script = self
            .scripts
            .get(&spec.mode())
            .ok_or(NotImplemented(spec.mode()))?;
        Ok(Box::new(FakeBackend {
            spec,
            script: script.clone(),
        }))
    }
}

/// A sandbox that only names its node namespace, logs what it creates and removes,
/// and answers the data path with `datapath` (None: as if the load failed).
#[derive(Default)]
pub struct FakeSandbox {
    /// Prefixes whose creation fails.
    pub failing: BTreeSet<String>,
    pub datapath: Option<Datapath>,
    pub log: Log,
}

struct FakeNamespaces {
    node: Netns,
    datapath: Option<Datapath>,
    log: Log,
}

impl Sandbox for FakeSandbox {
    fn create(&self, prefix: &str) -> Result<Box<dyn CaseSandbox>, TopologyError> {
        if self.failing.contains(prefix) {
            return Err(TopologyError::Netlink {
                ns: format!("kpb-{prefix}-node"),
                what: "add veth veth-client".into(),
                detail: "fake failure".into(),
            });
        }
        log(&self.log, format!("create {prefix}"));
        Ok(Box::new(FakeNamespaces {
            node: Netns::named(&format!("kpb-{prefix}-node")),
            datapath: self.datapath.clone(),
            log: self.log.clone(),
        }))
    }
}

impl CaseSandbox for FakeNamespaces {
    fn node(&self) -> &Netns {
        &self.node
    }

    fn executor(&self) -> Box<dyn MeasuredExecutor + '_> {
        Box::new(FakeExecutor {
            node: self.node.name.clone(),
            log: self.log.clone(),
            steps: StepLog::default(),
            cost: Cost::default(),
            bytes: 0,
        })
    }

    fn scratch_executor(&self, k: usize) -> Result<Box<dyn MeasuredExecutor + '_>, TopologyError> {
        Ok(Box::new(FakeExecutor {
            node: format!("{}-f{k}", self.node.name),
            log: self.log.clone(),
            steps: StepLog::default(),
            cost: Cost::default(),
            bytes: 0,
        }))
    }

    fn measure_datapath(
        &self,
        _set: &ServiceSet,
        _cfg: &scenario::Datapath,
        _deadline: Deadline,
        step: &mut dyn FnMut(String),
    ) -> Result<Datapath, MeasureError> {
        step("data path: fake".into());
        self.datapath.clone().ok_or(MeasureError::Interrupted)
    }

    fn measure_transit(
        &self,
        _set: &ServiceSet,
        _cfg: &scenario::Datapath,
        r: usize,
    ) -> Result<Option<Transit>, MeasureError> {
        log(
            &self.log,
            format!("transit replicate {r} in {}", self.node.name),
        );
        Ok(self.datapath.as_ref().and_then(|d| d.transit.clone()))
    }
}

impl Drop for FakeNamespaces {
    fn drop(&mut self) {
        log(&self.log, format!("remove {}", self.node.name));
    }
}

/// A host with a fixed environment and clock; `lab` answers for the modes in
/// `lab_modes`: the guest's cases, or the console log of a guest that wrote none.
pub struct FakeHost {
    pub now: Instant,
    pub lab_modes: BTreeSet<Mode>,
    pub lab: Result<LabCases, PathBuf>,
}

impl Default for FakeHost {
    fn default() -> Self {
        FakeHost {
            now: Instant::now(),
            lab_modes: BTreeSet::new(),
            lab: Ok((Vec::new(), Vec::new())),
        }
    }
}

/// The environment [`FakeHost`] reports: tools at version `fake 1.0`.
pub fn fake_environment(id: &str, tools: &[&str]) -> Environment {
    Environment {
        id: id.into(),
        kind: "host".into(),
        kernel_release: "6.18.0-test".into(),
        kernel_source: None,
        cpus: 2,
        cpu_model: None,
        memory_bytes: None,
        machine: None,
        cpu: None,
        tools: tools
            .iter()
            .map(|t| (t.to_string(), "fake 1.0".to_string()))
            .collect(),
    }
}

/// The timestamp [`FakeHost`] reports.
pub const FAKE_TIME: &str = "2026-01-02T03:04:05Z";

impl Host for FakeHost {
    fn environment(&self, tools: &[&str]) -> Environment {
        fake_environment("host", tools)
    }

    fn needs_lab(&self, spec: ModeSpec) -> bool {
        self.lab_modes.contains(&spec.mode())
    }

    fn run_in_lab(
        &self,
        _s: &Scenario,
        run_id: &str,
        step: &mut dyn FnMut(String),
    ) -> Result<LabCases, LabRunError> {
        step(format!("lab: booting for {run_id}"));
        self.lab
            .clone()
            .map_err(|console_log| LabRunError::NoResults {
                exit_code: 1,
                console_log,
            })
    }

    fn now(&self) -> Instant {
        self.now
    }

    fn timestamp(&self) -> String {
        FAKE_TIME.into()
    }
}

/// A scenario of `modes` at `services`, 2 endpoints, 3 repeats, no data path.
pub fn scenario(modes: &[Mode], services: &[usize]) -> Scenario {
    let mut s = Scenario::parse("", "test.toml", "test").expect("the empty scenario");
    s.modes = modes.to_vec();
    s.services = services.to_vec();
    s.endpoints_per_service = 2;
    s.repeats = 3;
    s.datapath.enabled = false;
    s
}

/// A plan for `s` writing to `out`.
pub fn run_plan(s: Scenario, out: &std::path::Path) -> RunPlan {
    RunPlan {
        scenario: s,
        scenario_file: None,
        run_id: "t1".into(),
        out_dir: out.to_path_buf(),
    }
}

/// Runs `s` on the fakes, returning the results and every event's one-line form.
pub fn run_fake(
    s: Scenario,
    backends: &FakeBackends,
    sandbox: &FakeSandbox,
    host: &FakeHost,
    out: &std::path::Path,
) -> (crate::results::Results, Vec<String>) {
    let mut events = Vec::new();
    let runner = Runner {
        backends,
        sandbox,
        host,
    };
    let results = runner
        .run(&run_plan(s, out), |e| events.push(event_line(&e)))
        .expect("the run writes its results");
    (results, events)
}

fn event_line(e: &crate::run::Event) -> String {
    match e {
        crate::run::Event::CaseStarted {
            index,
            total,
            label,
        } => format!("start {}/{total} {label}", index + 1),
        crate::run::Event::Step(s) => format!("  {s}"),
        crate::run::Event::CaseFinished { index, case } => {
            format!("end {} {:?}", index + 1, case.status)
        }
    }
}

/// A lab case record as the guest would write it.
pub fn lab_case(services: u64) -> Case {
    Case {
        environment: "lab-6.1.0".into(),
        mode: "ipvs".into(),
        ipvs_scheduler: Some("rr".into()),
        profile: None,
        kube_proxy_version: None,
        services,
        endpoints_per_service: 2,
        status: crate::results::Status::Ok,
        reason: None,
        rules: None,
        sync: None,
        datapath: None,
        churn: None,
        churn_sweep: vec![],
        notes: vec![],
        elapsed_s: Some(1.5),
        programmed_by: None,
        sync_over_limit_s: None,
    }
}
