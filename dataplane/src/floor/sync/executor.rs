//! The seam between a [`super::Controller`] and the kernel: every tool run and kernel
//! request of a sync goes through an [`Executor`]. [`RealExecutor`] runs them in the
//! case's namespace and times each step; the recording executor answers from
//! stand-ins (see [`super::record`]).
//!
//! The executor knows no mode. Tool runs are the same for every mode ([`ToolCall`]);
//! other kernel requests (IPVS and rtnetlink messages, BPF map calls) are types their
//! mode defines, each implementing [`Request`]: how the real executor runs it
//! ([`Request::run`], with the namespace and the handles it keeps in [`Kernel`]), how
//! a stand-in answers it ([`Request::answer`]), and how it is timed ([`Timing`]).

use std::any::Any;
use std::time::Instant;

use super::standin::StandIn;
use super::{Category, StepLog, SyncReport};
use crate::floor::deadline::Deadline;
use crate::floor::error::ApplyError;
use crate::floor::exec::{first_lines, thread_cpu, Cost, ExecError, Meter, Output, Tool};
use crate::floor::netns::{Netns, NsThread};

/// One run of an external tool, as a named step of the sync.
#[derive(Debug, Clone)]
pub struct ToolCall<'a> {
    /// The step it counts under (`ipset add`, `iptables-restore`); calls of one name add up.
    pub step: &'a str,
    pub category: Category,
    pub program: &'a str,
    pub args: Vec<String>,
    pub stdin: Option<&'a [u8]>,
}

impl<'a> ToolCall<'a> {
    pub fn new(step: &'a str, category: Category, program: &'a str, args: &[&str]) -> Self {
        ToolCall {
            step,
            category,
            program,
            args: args.iter().map(|a| a.to_string()).collect(),
            stdin: None,
        }
    }

    pub fn stdin(mut self, data: &'a [u8]) -> Self {
        self.stdin = Some(data);
        self
    }

    /// The command line, shell-quoted where an argument has spaces.
    pub fn command_line(&self) -> String {
        let mut line = self.program.to_string();
        for a in &self.args {
            line.push(' ');
            if a.is_empty() || a.contains(' ') || a.contains('"') {
                line.push_str(&format!("{a:?}"));
            } else {
                line.push_str(a);
            }
        }
        line
    }
}

/// How the real executor times a [`Request`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timing {
    /// Wall time and the thread's CPU around each call (netlink requests).
    PerCall,
    /// Consecutive calls of one step share one reading of the thread's CPU at the ends
    /// of the run (BPF map calls): reading a thread's CPU time is a system call that
    /// costs about as much as a map update, so reading it around every one of 100,000
    /// updates would add a third to the sync it measures.
    Run,
    /// Start-up work the real agent does once, not per sync (loading and attaching BPF
    /// programs): left out of the sync's cost and of its steps.
    Untimed,
}

/// A kernel request a mode defines, with room for its reply: the executor runs it and
/// the mode's typed wrapper takes the reply out afterwards. Requests borrow what they
/// send (a floor's batch of 100,000 map entries is not copied on the measured path),
/// so a request cannot be `Any`; a stand-in owns its state and can, which is why the
/// request looks for its stand-in ([`Request::answer`]) and not the other way round.
pub trait Request {
    /// The step it counts under (`IPVS NEW_SERVICE`, `bpf MAP_UPDATE_ELEM`).
    fn step(&self) -> &'static str;

    /// What the step spends its time on.
    fn category(&self) -> Category;

    fn timing(&self) -> Timing {
        Timing::PerCall
    }

    /// How traces name its kind: `netlink`, `bpf`.
    fn kind(&self) -> &'static str;

    /// A one-line description for traces.
    fn describe(&self) -> String;

    /// The bytes it writes that are known before it runs (BPF keys and values); what
    /// only the kernel's answer tells (netlink message sizes), [`Request::run`] adds
    /// with [`Kernel::wrote`].
    fn bytes(&self) -> usize {
        0
    }

    /// Runs it against the kernel in the executor's namespace, keeping the reply.
    fn run(&mut self, kernel: &mut Kernel<'_>) -> Result<(), ApplyError>;

    /// Offers it to `standin`; true once it answered (the reply kept).
    fn answer(&mut self, standin: &mut dyn StandIn) -> bool;

    /// Keeps the reply of an executor that models nothing of it ("done").
    fn unanswered(&mut self);

    /// The error the kernel's refusal of it with `errno` in `ns` gives, in its mode's
    /// words (its step, what it asked, the errno by name), as [`Request::run`] reports
    /// one: for an executor that answers for the kernel and refuses (a test's faults).
    fn refused(&self, ns: &Netns, errno: i32) -> ApplyError;
}

/// The handles an executor keeps open between requests (an IPVS socket, an rtnetlink
/// socket, a loaded datapath's maps), one per type, as kube-proxy keeps its handles;
/// which types they are is the modes' business.
#[derive(Default)]
pub struct Handles(Vec<Box<dyn Any + Send>>);

impl Handles {
    /// The handle of type `T`, if one is kept.
    pub fn get<T: Any + Send>(&mut self) -> Option<&mut T> {
        self.0.iter_mut().find_map(|h| h.downcast_mut::<T>())
    }

    /// Keeps `handle`, replacing one of its type.
    pub fn put<T: Any + Send>(&mut self, handle: T) {
        self.0.retain(|h| !h.is::<T>());
        self.0.push(Box::new(handle));
    }
}

/// What a [`Request`] reaches when the real executor runs it.
pub struct Kernel<'a> {
    /// The namespace the sync runs in.
    pub ns: &'a Netns,
    pub deadline: Deadline,
    pub handles: &'a mut Handles,
    bytes: &'a mut usize,
}

impl Kernel<'_> {
    /// Counts bytes the request wrote to the kernel (the payload size).
    pub fn wrote(&mut self, bytes: usize) {
        *self.bytes += bytes;
    }

    /// The handle of type `T`, opened by `open` in this namespace on first use.
    pub fn handle<T: Any + Send>(
        &mut self,
        open: impl FnOnce(&Netns) -> Result<T, ApplyError>,
    ) -> Result<&mut T, ApplyError> {
        if self.handles.get::<T>().is_none() {
            let h = open(self.ns)?;
            self.handles.put(h);
        }
        Ok(self.handles.get::<T>().expect("kept above"))
    }
}

/// Where a controller's tool runs and kernel requests go.
pub trait Executor {
    /// Runs a tool inside the sync's namespace; its output whatever its exit status.
    fn tool(&mut self, call: ToolCall<'_>) -> Result<Output, ApplyError>;

    /// Runs a kernel request of a mode inside the sync's namespace; the reply is kept
    /// in `req` (each mode's typed wrapper takes it out: `ipvs::Netlink`,
    /// `ebpf::BpfMaps`).
    fn request(&mut self, req: &mut dyn Request) -> Result<(), ApplyError>;

    /// Counts bytes a step wrote to the kernel or a tool (the payload size).
    fn wrote(&mut self, bytes: usize);

    /// Leaves `cost` out of the sync's: work a controller does that belongs to what
    /// feeds the real agent, not to the agent (the eBPF controllers' search for the
    /// changed services, which Cilium's watcher hands its agent one by one).
    fn exclude(&mut self, _cost: Cost) {}

    /// A listing tool's stdout (a read-back: `iptables-save`, `nft list`, ...), failing
    /// unless it exits 0.
    fn listing(&mut self, program: &str, args: &[&str]) -> Result<String, ApplyError> {
        Ok(self
            .tool_ok(ToolCall::new("read-back", Category::Listing, program, args))?
            .stdout)
    }

    /// Runs a tool and fails unless it exits 0.
    fn tool_ok(&mut self, call: ToolCall<'_>) -> Result<Output, ApplyError> {
        let line = call.command_line();
        let out = self.tool(call)?;
        if out.status != 0 {
            return Err(ExecError::Failed {
                tool: line,
                status: out.status,
                stderr: first_lines(&out.stderr, 6),
            }
            .into());
        }
        Ok(out)
    }
}

/// An executor that measures: [`MeasuredExecutor::begin`] starts a sync,
/// [`MeasuredExecutor::finish`] reports what it cost and where the time went.
pub trait MeasuredExecutor: Executor {
    /// Starts timing a sync; `deadline` bounds it.
    fn begin(&mut self, deadline: Deadline);

    /// The report of the sync since `begin`.
    fn finish(&mut self) -> SyncReport;
}

/// Runs tools and kernel requests in the case's namespace by a deadline, timing every
/// step. Handles (sockets, maps) are opened once inside the namespace and reused, as
/// kube-proxy's are.
pub struct RealExecutor<'a> {
    /// The namespace (a name; kept by value so an executor can outlive the borrow it
    /// was made from, e.g. for a scratch namespace it owns with its guard).
    ns: Netns,
    _ns: std::marker::PhantomData<&'a Netns>,
    deadline: Deadline,
    log: StepLog,
    meter: Meter,
    /// CPU of the tools run since [`RealExecutor::begin`] (their own rusage).
    tools: Cost,
    bytes: usize,
    /// What the modes' requests keep open (see [`Handles`]).
    handles: Handles,
    /// Started at the first tool run.
    thread: Option<NsThread>,
    /// Time spent in this sync on work that is not the sync's ([`Timing::Untimed`]
    /// requests): left out of its cost.
    excluded: Cost,
    /// The [`Timing::Run`] calls of one step in a row, not yet in the step log.
    run: Option<Run>,
}

/// Consecutive calls of one [`Timing::Run`] step: each call's wall time, and the
/// thread's CPU read once at the ends of the run.
#[derive(Debug)]
struct Run {
    step: &'static str,
    category: Category,
    calls: u32,
    wall: std::time::Duration,
    cpu: crate::floor::thread_cpu::ThreadCpu,
}

impl<'a> RealExecutor<'a> {
    pub fn new(ns: &'a Netns, deadline: Deadline) -> Self {
        RealExecutor::owned(ns.clone(), deadline)
    }

    /// An executor for `ns` that holds no borrow of it.
    pub fn owned(ns: Netns, deadline: Deadline) -> Self {
        RealExecutor {
            ns,
            _ns: std::marker::PhantomData,
            deadline,
            log: StepLog::default(),
            meter: Meter::start(),
            tools: Cost::default(),
            bytes: 0,
            handles: Handles::default(),
            thread: None,
            excluded: Cost::default(),
            run: None,
        }
    }

    /// Puts the calls of the run in a row into the step log, with the CPU since the
    /// first.
    fn flush_run(&mut self) {
        if let Some(run) = self.run.take() {
            let (user, sys) = thread_cpu().since(run.cpu);
            self.log.add_calls(
                run.step,
                run.category,
                run.calls,
                Cost {
                    wall: run.wall,
                    user,
                    sys,
                },
            );
        }
    }

    /// Runs `req` with what it reaches in this executor.
    fn run_request(&mut self, req: &mut dyn Request) -> Result<(), ApplyError> {
        let mut kernel = Kernel {
            ns: &self.ns,
            deadline: self.deadline,
            handles: &mut self.handles,
            bytes: &mut self.bytes,
        };
        req.run(&mut kernel)
    }

    /// A request timed on its own: wall and thread CPU around it, one step entry.
    fn per_call(&mut self, req: &mut dyn Request) -> Result<(), ApplyError> {
        let cpu = thread_cpu();
        let start = Instant::now();
        self.run_request(req)?;
        let (user, sys) = thread_cpu().since(cpu);
        self.log.add(
            req.step(),
            req.category(),
            Cost {
                wall: start.elapsed(),
                user,
                sys,
            },
        );
        Ok(())
    }

    /// A request timed as part of a run of its step (see [`Timing::Run`]).
    fn in_run(&mut self, req: &mut dyn Request) -> Result<(), ApplyError> {
        let step = req.step();
        if self.run.as_ref().is_some_and(|r| r.step != step) {
            self.flush_run();
        }
        if self.run.is_none() {
            self.run = Some(Run {
                step,
                category: req.category(),
                calls: 0,
                wall: std::time::Duration::ZERO,
                cpu: thread_cpu(),
            });
        }
        let start = Instant::now();
        let reply = self.run_request(req);
        let wall = start.elapsed();
        if let Some(run) = self.run.as_mut() {
            run.calls += 1;
            run.wall += wall;
        }
        self.bytes += req.bytes();
        if reply.is_err() {
            self.flush_run();
        }
        reply
    }

    /// A request left out of the sync's cost (see [`Timing::Untimed`]).
    fn untimed(&mut self, req: &mut dyn Request) -> Result<(), ApplyError> {
        let meter = Meter::start();
        let done = self.run_request(req);
        self.excluded += meter.finish(Cost::default());
        done
    }

    /// Runs a tool from the thread that lives in the namespace (so it is spawned, not
    /// forked with a setns in between); that thread's CPU for starting and waiting on
    /// it counts as the tool's.
    fn spawn(&mut self, call: &ToolCall<'_>) -> Result<Output, ApplyError> {
        if self.thread.is_none() {
            self.thread = Some(self.ns.thread()?);
        }
        let program = call.program.to_string();
        let args = call.args.clone();
        let stdin = call.stdin.map(<[u8]>::to_vec);
        let deadline = self.deadline;
        let thread = self.thread.as_ref().expect("started above");
        let (out, spent) = thread.run(move || {
            let before = thread_cpu();
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            let mut tool = Tool::new(&program, &refs).deadline(deadline);
            if let Some(data) = &stdin {
                tool = tool.stdin(data);
            }
            let out = tool.output();
            (out, thread_cpu().since(before))
        });
        let mut out = out?;
        out.cost.user += spent.0;
        out.cost.sys += spent.1;
        Ok(out)
    }
}

impl MeasuredExecutor for RealExecutor<'_> {
    /// Starts timing a sync; `deadline` bounds it.
    fn begin(&mut self, deadline: Deadline) {
        self.deadline = deadline;
        self.log = StepLog::default();
        self.meter = Meter::start();
        self.tools = Cost::default();
        self.bytes = 0;
        self.excluded = Cost::default();
        self.run = None;
    }

    /// The sync's report: its whole cost, payload size and steps, with what was spent
    /// outside every step (kpbench's rendering and parsing) as the `controller` step.
    fn finish(&mut self) -> SyncReport {
        self.flush_run();
        let whole = std::mem::replace(&mut self.meter, Meter::start()).finish(self.tools);
        let excluded = std::mem::take(&mut self.excluded);
        let cost = Cost {
            wall: whole.wall.saturating_sub(excluded.wall),
            user: whole.user.saturating_sub(excluded.user),
            sys: whole.sys.saturating_sub(excluded.sys),
        };
        let mut log = std::mem::take(&mut self.log);
        let mut inside = Cost::default();
        for s in &log.steps {
            inside += s.cost;
        }
        let own = Cost {
            wall: cost.wall.saturating_sub(inside.wall),
            user: cost.user.saturating_sub(inside.user),
            sys: cost.sys.saturating_sub(inside.sys),
        };
        log.add("kpbench (render, parse)", Category::Controller, own);
        SyncReport {
            cost,
            payload_bytes: self.bytes,
            steps: log,
        }
    }
}

impl Executor for RealExecutor<'_> {
    fn tool(&mut self, call: ToolCall<'_>) -> Result<Output, ApplyError> {
        self.flush_run();
        if self.deadline.expired() {
            return Err(ApplyError::Expired);
        }
        if let Some(data) = call.stdin {
            self.bytes += data.len();
        }
        let started = std::time::Instant::now();
        let out = match self.spawn(&call) {
            Ok(out) => out,
            Err(e) => {
                // A tool killed at the deadline keeps its wall time in its own step, so
                // the partial timings of a sync past its limit say where it went (its
                // CPU is not known: it was not waited for to the end).
                if e.is_timeout() {
                    let wall = started.elapsed();
                    self.log.add(
                        call.step,
                        call.category,
                        Cost {
                            wall,
                            ..Cost::default()
                        },
                    );
                }
                return Err(e);
            }
        };
        self.tools += Cost {
            wall: std::time::Duration::ZERO,
            ..out.cost
        };
        self.log.add(call.step, call.category, out.cost);
        Ok(out)
    }

    fn request(&mut self, req: &mut dyn Request) -> Result<(), ApplyError> {
        let timing = req.timing();
        if timing != Timing::Run {
            self.flush_run();
        }
        if self.deadline.expired() {
            return Err(ApplyError::Expired);
        }
        match timing {
            Timing::PerCall => self.per_call(req),
            Timing::Run => self.in_run(req),
            Timing::Untimed => self.untimed(req),
        }
    }

    fn exclude(&mut self, cost: Cost) {
        self.flush_run();
        self.excluded += cost;
    }

    fn wrote(&mut self, bytes: usize) {
        self.bytes += bytes;
    }
}
