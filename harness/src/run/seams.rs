//! The runner's seams: what it needs from outside itself, one small trait each, with
//! the real implementation here and fakes in `testing`, so the engine's logic is tested
//! without root, as hyperfine tests its scheduler with a mock executor.
//!
//! - [`Backends`] makes the backend of a mode;
//! - [`Sandbox`] creates the namespaces of a case ([`CaseSandbox`]), which also carry
//!   the data path;
//! - [`Host`] is the machine: its environment record, the clock, and the kernel lab.

use std::time::{Duration, Instant};

use dataplane::floor::exec::Output;
use dataplane::floor::model::ServiceSet;
use dataplane::floor::sync::{Executor, MeasuredExecutor, RealExecutor, Request, ToolCall};
use dataplane::{ApplyError, SyncReport};
use dataplane::{
    Backend, Deadline, KernelFeature, KubeProxyVersion, Mode, ModeSpec, Netns, NotImplemented,
};

use crate::datapath::churn::{Background, BackgroundError, BackgroundSpec};
use crate::datapath::measure::MeasureError;
use crate::results::{Datapath, Environment, Transit};
use crate::run::lab::{LabCases, LabRunError};
use crate::sandbox::{Topology, TopologyError};
use crate::scenario::{self, Scenario};

/// Makes the backend of a mode, for the kube-proxy release the run replays (the
/// release whose objects the floor programs where releases differ).
pub trait Backends {
    fn backend(
        &self,
        spec: ModeSpec,
        release: KubeProxyVersion,
    ) -> Result<Box<dyn Backend>, NotImplemented>;
}

/// The dataplane crate's backends.
#[derive(Debug, Clone, Copy, Default)]
pub struct RealBackends;

impl Backends for RealBackends {
    fn backend(
        &self,
        spec: ModeSpec,
        release: KubeProxyVersion,
    ) -> Result<Box<dyn Backend>, NotImplemented> {
        dataplane::backend_for_release(spec, release)
    }
}

/// Creates the namespaces a case runs in.
pub trait Sandbox {
    /// Creates them, named after `prefix` (run-unique); dropping the result removes them.
    fn create(&self, prefix: &str) -> Result<Box<dyn CaseSandbox>, TopologyError>;
}

/// The namespaces of one case.
pub trait CaseSandbox {
    /// The node namespace: where the dataplane under test is programmed.
    fn node(&self) -> &Netns;

    /// Where a case's syncs run: tools and netlink in the node namespace, timed.
    fn executor(&self) -> Box<dyn MeasuredExecutor + '_>;

    /// An executor in a new, empty namespace of its own (the `k`th), removed when it is
    /// dropped: a full sync from empty can be repeated there for its noise.
    fn scratch_executor(&self, k: usize) -> Result<Box<dyn MeasuredExecutor + '_>, TopologyError>;

    /// Measures the data path through the rules now programmed for `set`.
    fn measure_datapath(
        &self,
        set: &ServiceSet,
        cfg: &scenario::Datapath,
        deadline: Deadline,
        step: &mut dyn FnMut(String),
    ) -> Result<Datapath, MeasureError>;

    /// Replicate `r` (from 1) of the transit pass through the rules now programmed for
    /// `set` in this sandbox's own node: only the pass. `None` without a fitted cost
    /// per position.
    fn measure_transit(
        &self,
        set: &ServiceSet,
        cfg: &scenario::Datapath,
        r: usize,
    ) -> Result<Option<Transit>, MeasureError>;

    /// Starts a churn phase's background traffic through the rules now programmed:
    /// `None` where the sandbox carries no traffic (the fakes).
    fn background(&self, _spec: &BackgroundSpec) -> Result<Option<Background>, BackgroundError> {
        Ok(None)
    }
}

/// The real sandbox: client, node and backend namespaces wired over rtnetlink.
#[derive(Debug, Clone, Copy, Default)]
pub struct Namespaces;

impl Sandbox for Namespaces {
    fn create(&self, prefix: &str) -> Result<Box<dyn CaseSandbox>, TopologyError> {
        Ok(Box::new(Topology::create(prefix)?))
    }
}

impl CaseSandbox for Topology {
    fn node(&self) -> &Netns {
        &self.node
    }

    fn executor(&self) -> Box<dyn MeasuredExecutor + '_> {
        Box::new(RealExecutor::new(
            &self.node,
            Deadline::after(Duration::ZERO),
        ))
    }

    fn scratch_executor(&self, k: usize) -> Result<Box<dyn MeasuredExecutor + '_>, TopologyError> {
        let ns = Netns::create(&format!("{}-f{k}", self.node.name))?;
        let io = RealExecutor::owned(ns.clone(), Deadline::after(Duration::ZERO));
        Ok(Box::new(Scratch { ns, io }))
    }

    fn measure_datapath(
        &self,
        set: &ServiceSet,
        cfg: &scenario::Datapath,
        deadline: Deadline,
        step: &mut dyn FnMut(String),
    ) -> Result<Datapath, MeasureError> {
        crate::datapath::measure(self, set, cfg, deadline.instant(), step)
    }

    fn measure_transit(
        &self,
        set: &ServiceSet,
        cfg: &scenario::Datapath,
        r: usize,
    ) -> Result<Option<Transit>, MeasureError> {
        crate::datapath::measure::transit_replicate(self, set, cfg, r)
    }

    fn background(&self, spec: &BackgroundSpec) -> Result<Option<Background>, BackgroundError> {
        Background::start(self, spec).map(Some)
    }
}

/// An executor in a namespace it owns and deletes when dropped.
struct Scratch {
    ns: Netns,
    io: RealExecutor<'static>,
}

impl Executor for Scratch {
    fn tool(&mut self, call: ToolCall<'_>) -> Result<Output, ApplyError> {
        self.io.tool(call)
    }

    fn request(&mut self, req: &mut dyn Request) -> Result<(), ApplyError> {
        self.io.request(req)
    }

    fn wrote(&mut self, bytes: usize) {
        self.io.wrote(bytes)
    }

    fn exclude(&mut self, cost: dataplane::floor::exec::Cost) {
        self.io.exclude(cost)
    }
}

impl MeasuredExecutor for Scratch {
    fn begin(&mut self, deadline: Deadline) {
        self.io.begin(deadline)
    }

    fn finish(&mut self) -> SyncReport {
        self.io.finish()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Err(e) = self.ns.delete() {
            tracing::warn!(
                "removing {}: {e} (`kpbench clean` removes it)",
                self.ns.name
            );
        }
    }
}

/// The machine the run happens on.
pub trait Host {
    /// Describes this machine, with the versions of `tools`.
    fn environment(&self, tools: &[&str]) -> Environment;

    /// Whether the cases of `spec` run in the kernel lab instead of here.
    fn needs_lab(&self, spec: ModeSpec) -> bool;

    /// Runs the lab's cases of `s` in the kernel lab: its ipvs cases and, with
    /// `lab_compare`, the other modes at IPVS's scales (`run::lab::lab_scenario`).
    fn run_in_lab(
        &self,
        s: &Scenario,
        run_id: &str,
        step: &mut dyn FnMut(String),
    ) -> Result<LabCases, LabRunError>;

    /// Now, for case deadlines and elapsed times.
    fn now(&self) -> Instant;

    /// Now as an RFC 3339 timestamp, for the run's start and finish.
    fn timestamp(&self) -> String;
}

/// This machine.
#[derive(Debug, Clone, Copy, Default)]
pub struct RealHost;

impl Host for RealHost {
    fn environment(&self, tools: &[&str]) -> Environment {
        crate::run::environment::probe(tools)
    }

    /// ipvs goes to the lab when this kernel has no IPVS and this is not a lab guest
    /// already; every other mode runs here.
    fn needs_lab(&self, spec: ModeSpec) -> bool {
        spec.mode() == Mode::Ipvs && crate::run::lab::lab_needed(KernelFeature::IpVs)
    }

    fn run_in_lab(
        &self,
        s: &Scenario,
        run_id: &str,
        step: &mut dyn FnMut(String),
    ) -> Result<LabCases, LabRunError> {
        crate::run::lab::run_lab_cases(s, run_id, step)
    }

    fn now(&self) -> Instant {
        Instant::now()
    }

    fn timestamp(&self) -> String {
        time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
    }
}
