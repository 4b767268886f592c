//! The ipvs mode's faults through the run engine: an IPVS request the kernel answers
//! with an errno (EEXIST, ENOMEM, ENOENT) or an `ipset` that fails fails its case,
//! naming the step and the error; the run goes on with the next case, results.json
//! keeps every finished one, and no namespace is left.
//!
//! This host's kernel has no IPVS (the lab's has, and the lab's kernel holds the
//! stand-in to account: standin_ipvs.rs). So the run engine is driven here with its
//! real backends and namespaces, and one seam changed: the case's executor answers the
//! ipvs mode's kernel requests (IPVS, kube-ipvs0 and its addresses, its sysctls) from
//! the mode's stand-in and refuses the chosen one with the mode's own refusal
//! (`Request::refused`, the words a real refusal has), while its tools (`ipset`,
//! `iptables`) run for real in the case's namespace, a fake `ipset` in place of the
//! real one where that is the fault. The read-back of an ipvs case counts the
//! stand-in's IPVS table. Needs root: without feature `root-tests` reported as ignored.

mod reliability;
mod tier;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use dataplane::floor::exec::{Cost, Output};
use dataplane::floor::model::ServiceSet;
use dataplane::floor::sync::standin::StandIn;
use dataplane::floor::sync::{Controller, Executor, MeasuredExecutor, Request, ToolCall};
use dataplane::ipvs::standin::Node;
use dataplane::{
    ApplyError, Backend, Deadline, KernelFeature, Mode, ModeSpec, Netns, NotImplemented, Objects,
    Prerequisites, Profile, SyncReport,
};
use harness::datapath::measure::MeasureError;
use harness::results::{Datapath, Environment, Transit};
use harness::run::lab::{LabCases, LabRunError};
use harness::run::seams::{
    Backends, CaseSandbox, Host, Namespaces, RealBackends, RealHost, Sandbox,
};
use harness::run::{RunPlan, Runner};
use harness::sandbox::TopologyError;
use harness::scenario::{self, Scenario};
use reliability::*;

/// What the executor of one case does wrong.
#[derive(Debug, Clone)]
enum Fault {
    /// The `nth` request of `step` is refused with `errno`.
    Refuse {
        step: &'static str,
        nth: u32,
        errno: i32,
    },
    /// Runs `fake` in place of `program`.
    Tool {
        program: &'static str,
        fake: PathBuf,
    },
}

/// The stand-in of the ipvs case running now, for its read-back.
type Current = Arc<Mutex<Option<Node>>>;

/// The real namespaces, with the case's executor changed as the module docs say.
struct FaultySandbox {
    /// By case index (the `-cN` of the namespace prefix).
    faults: BTreeMap<usize, Fault>,
    current: Current,
}

impl Sandbox for FaultySandbox {
    fn create(&self, prefix: &str) -> Result<Box<dyn CaseSandbox>, TopologyError> {
        let index: usize = prefix.rsplit("-c").next().unwrap().parse().unwrap();
        let inner = Namespaces.create(prefix)?;
        let node = Node::new();
        *self.current.lock().unwrap() = Some(node.clone());
        Ok(Box::new(FaultyCase {
            inner,
            fault: self.faults.get(&index).cloned(),
            node,
        }))
    }
}

struct FaultyCase {
    inner: Box<dyn CaseSandbox>,
    fault: Option<Fault>,
    node: Node,
}

impl FaultyCase {
    fn seam<'a>(&self, io: Box<dyn MeasuredExecutor + 'a>, node: &Node) -> Seam<'a> {
        Seam {
            io,
            ns: self.inner.node().clone(),
            standins: node.standins(),
            fault: self.fault.clone(),
            seen: 0,
        }
    }
}

impl CaseSandbox for FaultyCase {
    fn node(&self) -> &Netns {
        self.inner.node()
    }

    fn executor(&self) -> Box<dyn MeasuredExecutor + '_> {
        Box::new(self.seam(self.inner.executor(), &self.node))
    }

    fn scratch_executor(&self, k: usize) -> Result<Box<dyn MeasuredExecutor + '_>, TopologyError> {
        let io = self.inner.scratch_executor(k)?;
        Ok(Box::new(self.seam(io, &Node::new())))
    }

    fn measure_datapath(
        &self,
        set: &ServiceSet,
        cfg: &scenario::Datapath,
        deadline: Deadline,
        step: &mut dyn FnMut(String),
    ) -> Result<Datapath, MeasureError> {
        self.inner.measure_datapath(set, cfg, deadline, step)
    }

    fn measure_transit(
        &self,
        set: &ServiceSet,
        cfg: &scenario::Datapath,
        r: usize,
    ) -> Result<Option<Transit>, MeasureError> {
        self.inner.measure_transit(set, cfg, r)
    }
}

/// The real executor of a case, with the ipvs mode's requests answered by its
/// stand-in and the case's fault.
struct Seam<'a> {
    io: Box<dyn MeasuredExecutor + 'a>,
    ns: Netns,
    standins: Vec<Box<dyn StandIn>>,
    fault: Option<Fault>,
    /// Requests of the faulty step so far.
    seen: u32,
}

impl Executor for Seam<'_> {
    fn tool(&mut self, call: ToolCall<'_>) -> Result<Output, ApplyError> {
        match &self.fault {
            Some(Fault::Tool { program, fake }) if call.program == *program => {
                let fake = fake.to_str().expect("utf-8 path");
                self.io.tool(ToolCall {
                    program: fake,
                    ..call
                })
            }
            _ => self.io.tool(call),
        }
    }

    fn request(&mut self, req: &mut dyn Request) -> Result<(), ApplyError> {
        if let Some(Fault::Refuse { step, nth, errno }) = self.fault {
            if req.step() == step {
                self.seen += 1;
                if self.seen == nth {
                    return Err(req.refused(&self.ns, errno));
                }
            }
        }
        for s in &mut self.standins {
            if req.answer(s.as_mut()) {
                return Ok(());
            }
        }
        self.io.request(req)
    }

    fn wrote(&mut self, bytes: usize) {
        self.io.wrote(bytes)
    }

    fn exclude(&mut self, cost: Cost) {
        self.io.exclude(cost)
    }
}

impl MeasuredExecutor for Seam<'_> {
    fn begin(&mut self, deadline: Deadline) {
        self.io.begin(deadline)
    }

    fn finish(&mut self) -> SyncReport {
        self.io.finish()
    }
}

/// The real backends, the ipvs one without the kernel's IPVS: it needs none (the
/// stand-in answers for it), and its read-back counts the stand-in's table.
struct WithoutIpvs {
    current: Current,
}

impl Backends for WithoutIpvs {
    fn backend(
        &self,
        spec: ModeSpec,
        release: dataplane::KubeProxyVersion,
    ) -> Result<Box<dyn Backend>, NotImplemented> {
        let real = RealBackends.backend(spec, release)?;
        Ok(match spec.mode() {
            Mode::Ipvs => Box::new(StandInIpvs {
                real,
                current: self.current.clone(),
            }),
            _ => real,
        })
    }
}

struct StandInIpvs {
    real: Box<dyn Backend>,
    current: Current,
}

impl Backend for StandInIpvs {
    fn spec(&self) -> ModeSpec {
        self.real.spec()
    }

    fn prerequisites(&self) -> Prerequisites {
        let mut p = self.real.prerequisites();
        p.kernel.retain(|&f| f != KernelFeature::IpVs);
        p
    }

    fn inspect_command(&self) -> &'static str {
        self.real.inspect_command()
    }

    fn controller(&self, profile: Profile) -> Box<dyn Controller> {
        self.real.controller(profile)
    }

    fn standins(&self) -> Vec<Box<dyn StandIn>> {
        self.real.standins()
    }

    fn readback(&self, io: &mut dyn Executor) -> Result<String, ApplyError> {
        self.real.readback(io)
    }

    /// As the real read-back counts: virtual services and their serving real servers.
    fn verify(
        &self,
        _ns: &Netns,
        expected: &ServiceSet,
        _deadline: Deadline,
    ) -> Result<Objects, ApplyError> {
        let node = self.current.lock().unwrap().clone().expect("a case runs");
        let state = node.state();
        let found = state
            .services
            .iter()
            .map(|(_, d)| 1 + d.iter().filter(|r| r.weight > 0).count())
            .sum();
        let want = expected.len() + expected.total_endpoints();
        Objects::check(
            "IPVS virtual services + real servers (stand-in)",
            found,
            want,
        )
    }
}

/// This machine, with the ipvs cases run here rather than in the lab.
struct HereHost;

impl Host for HereHost {
    fn environment(&self, tools: &[&str]) -> Environment {
        RealHost.environment(tools)
    }

    fn needs_lab(&self, _spec: ModeSpec) -> bool {
        false
    }

    fn run_in_lab(
        &self,
        _s: &Scenario,
        _run_id: &str,
        _step: &mut dyn FnMut(String),
    ) -> Result<LabCases, LabRunError> {
        unreachable!("no case needs the lab")
    }

    fn now(&self) -> Instant {
        RealHost.now()
    }

    fn timestamp(&self) -> String {
        RealHost.timestamp()
    }
}

/// Runs `toml` with the faults by case index; returns results.json and the run id.
fn run(tag: &str, toml: &str, faults: BTreeMap<usize, Fault>) -> (serde_json::Value, String) {
    let dir = tempfile::tempdir().unwrap();
    let current = Current::default();
    let sandbox = FaultySandbox {
        faults,
        current: current.clone(),
    };
    let runner = Runner {
        backends: &WithoutIpvs { current },
        sandbox: &sandbox,
        host: &HereHost,
    };
    let id = run_id(tag);
    let plan = RunPlan {
        scenario: Scenario::parse(toml, "faults.toml", "faults").expect("a valid scenario"),
        scenario_file: None,
        run_id: id.clone(),
        out_dir: dir.path().join("out"),
    };
    let ran = runner.run(&plan, |_| {});
    // Whatever the run did, its namespaces go (a failed assertion must not leave them).
    let left = namespaces(&id);
    for n in &left {
        let _ = Netns::named(n).delete();
    }
    ran.expect("the run writes its results");
    assert!(left.is_empty(), "left: {left:?}");
    let text = std::fs::read_to_string(dir.path().join("out/results.json")).unwrap();
    (serde_json::from_str(&text).unwrap(), id)
}

const SCENARIO: &str = "modes = [\"ipvs\", \"nftables\"]\nservices = [3, 4, 5]\n\
    endpoints_per_service = 2\nrepeats = 1\nfull_sync_repeats = 1\n\
    [scales]\nnftables = [3]\n[datapath]\nenabled = false\n";

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root: scripts/test.sh runs it as root"
)]
fn ipvs_requests_refused_by_the_kernel_fail_their_case_and_the_run_goes_on() {
    tier::require_root();
    let refuse = |step, nth, errno| Fault::Refuse { step, nth, errno };
    let faults = BTreeMap::from([
        // The second service of the full sync exists already.
        (0, refuse("IPVS NEW_SERVICE", 2, libc::EEXIST)),
        // The kernel runs out of memory adding the added service's first real server.
        (1, refuse("IPVS NEW_DEST", 4 * 2 + 1, libc::ENOMEM)),
        // The real server replaced by update_endpoints is gone when it is deleted.
        (2, refuse("IPVS DEL_DEST", 1, libc::ENOENT)),
    ]);
    let (results, id) = run("ipvs", SCENARIO, faults);
    let c = cases(&results);
    let got: Vec<(&str, u64)> = c.iter().map(|c| (c.0.as_str(), c.1)).collect();
    assert_eq!(
        got,
        [("failed", 3), ("failed", 4), ("failed", 5), ("ok", 3)],
        "{c:?}"
    );
    let wanted = [
        "full sync: IPVS NEW_SERVICE (new service -t 10.",
        "add_service: IPVS NEW_DEST (new real server 10.",
        ": IPVS DEL_DEST (delete real server 10.",
    ];
    let errnos = [
        "EEXIST: File exists (os error 17)",
        "ENOMEM: Cannot allocate memory (os error 12)",
        "ENOENT: No such file or directory (os error 2)",
    ];
    for ((case, want), errno) in c.iter().zip(wanted).zip(errnos) {
        assert!(case.2.contains(want), "wanted {want:?} in {}", case.2);
        assert!(
            case.2.ends_with(errno),
            "wanted {errno:?} at the end of {}",
            case.2
        );
        eprintln!("{}", case.2);
    }
    // The finished case keeps its numbers.
    let done = &results["cases"][3];
    assert_eq!(done["mode"], "nftables", "{done}");
    assert!(done["sync"]["full"]["p50_ms"].as_f64().is_some(), "{done}");
    nothing_left(&id);
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root: scripts/test.sh runs it as root"
)]
fn a_failing_ipset_fails_its_ipvs_case_and_the_run_goes_on() {
    tier::require_root();
    const FULL: &str = "ipset v7.19: Hash is full, cannot add more elements";
    // The third `ipset add` of the full sync: its entries go in one process each.
    let fake = FakeTool::counting("ipset", "add", 3, Misbehave::Fail(FULL));
    let faults = BTreeMap::from([(
        0,
        Fault::Tool {
            program: "ipset",
            fake: fake.program(),
        },
    )]);
    let (results, id) = run("ipset", SCENARIO, faults);
    let c = cases(&results);
    let got: Vec<(&str, u64)> = c.iter().map(|c| (c.0.as_str(), c.1)).collect();
    // The ipvs cases after the first run with the real ipset and finish.
    assert_eq!(
        got,
        [("failed", 3), ("ok", 4), ("ok", 5), ("ok", 3)],
        "{c:?}"
    );
    assert!(
        c[0].2.starts_with("full sync: ") && c[0].2.contains(" add KUBE-"),
        "the step is not named: {}",
        c[0].2
    );
    assert!(c[0].2.contains(FULL), "ipset's message is lost: {}", c[0].2);
    eprintln!("{}", c[0].2);
    for i in 1..4 {
        let case = &results["cases"][i];
        assert!(case["sync"]["full"]["p50_ms"].as_f64().is_some(), "{case}");
    }
    nothing_left(&id);
}
