//! The seam between a [`super::Controller`] and the kernel: every tool run and netlink
//! request of a sync goes through an [`Executor`]. [`RealExecutor`] runs them in the
//! case's namespace and times each step; the recording executor answers from
//! stand-ins (see [`super::record`]).

use std::net::Ipv4Addr;
use std::time::Instant;

use super::{Category, StepLog};
use crate::backend::{ApplyError, SyncReport};
use crate::deadline::Deadline;
use crate::ebpf::datapath::Datapath;
use crate::ebpf::layout::{Entry, LbMap};
use crate::exec::{first_lines, thread_cpu, Cost, ExecError, Meter, Output, Tool};
use crate::ipvs::client::IpvsClient;
use crate::ipvs::link;
use crate::ipvs::message::{Op, RealServer, VirtualService};
use crate::ipvs::nl::NlSocket;
use crate::netns::{write_sysctl, Netns, NsThread};
use crate::prereq::{KernelFeature, Unavailable};

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

/// A netlink request of a sync (IPVS over generic netlink, addresses over rtnetlink).
#[derive(Debug)]
pub enum NlRequest<'a> {
    /// One IPVS change, waiting for its ACK (kube-proxy's one request at a time).
    Ipvs(Op<'a>),
    /// IPVS changes sent many per `send()`, one ACK each; errnos `tolerate` accepts
    /// are success (the floor's batch).
    IpvsBatch {
        ops: &'a [Op<'a>],
        tolerate: fn(&Op<'_>, i32) -> bool,
    },
    /// GET_SERVICE of one virtual service (kube-proxy's `GetVirtualServer`).
    GetService(&'a VirtualService),
    /// GET_SERVICE dump (`GetVirtualServers`).
    DumpServices,
    /// GET_DEST dump of one service (`GetRealServers`).
    DumpDests(&'a VirtualService),
    /// Makes sure the dummy device exists (`EnsureDummyDevice`); replies its index.
    EnsureDummy(&'a str),
    /// The IPv4 addresses on a device (`GetLocalAddresses`).
    Addresses(u32),
    /// Binds addresses to a device (`EnsureAddressBind`, one request each).
    AddAddresses(u32, &'a [Ipv4Addr]),
    /// Unbinds addresses (`UnbindAddress`).
    DelAddresses(u32, &'a [Ipv4Addr]),
    /// Writes sysctls inside the namespace (`EnsureSysctl`).
    Sysctls(&'a [(&'static str, &'static str)]),
}

impl NlRequest<'_> {
    /// The step name it counts under.
    pub fn step(&self) -> &'static str {
        match self {
            NlRequest::Ipvs(op) => match op {
                Op::NewService(_) => "IPVS NEW_SERVICE",
                Op::SetService(_) => "IPVS SET_SERVICE",
                Op::DelService(_) => "IPVS DEL_SERVICE",
                Op::NewDest(..) => "IPVS NEW_DEST",
                Op::SetDest(..) => "IPVS SET_DEST",
                Op::DelDest(..) => "IPVS DEL_DEST",
                Op::Flush => "IPVS FLUSH",
            },
            NlRequest::IpvsBatch { .. } => "IPVS batch",
            NlRequest::GetService(_) => "IPVS GET_SERVICE",
            NlRequest::DumpServices => "IPVS GET_SERVICE dump",
            NlRequest::DumpDests(_) => "IPVS GET_DEST dump",
            NlRequest::EnsureDummy(_) => "rtnetlink link",
            NlRequest::Addresses(_) => "rtnetlink address dump",
            NlRequest::AddAddresses(..) => "rtnetlink NEWADDR",
            NlRequest::DelAddresses(..) => "rtnetlink DELADDR",
            NlRequest::Sysctls(_) => "sysctl",
        }
    }

    /// A one-line description for traces.
    pub fn describe(&self) -> String {
        let ips = |v: &[Ipv4Addr]| {
            v.iter()
                .map(|ip| ip.to_string())
                .collect::<Vec<_>>()
                .join(",")
        };
        match self {
            NlRequest::Ipvs(op) => op.describe(),
            NlRequest::IpvsBatch { ops, .. } => format!("{} IPVS requests in one send", ops.len()),
            NlRequest::GetService(s) | NlRequest::DumpDests(s) => {
                format!("{} {}:{}", self.step(), s.addr, s.port)
            }
            NlRequest::DumpServices => self.step().to_string(),
            NlRequest::EnsureDummy(name) => format!("ensure dummy device {name}"),
            NlRequest::Addresses(i) => format!("addresses of link {i}"),
            NlRequest::AddAddresses(i, v) => format!("bind {} to link {i}", ips(v)),
            NlRequest::DelAddresses(i, v) => format!("unbind {} from link {i}", ips(v)),
            NlRequest::Sysctls(list) => list
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" "),
        }
    }
}

/// What a netlink request answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NlReply {
    Done,
    Service(Option<VirtualService>),
    Services(Vec<VirtualService>),
    Dests(Vec<RealServer>),
    Index(u32),
    Addresses(Vec<Ipv4Addr>),
}

/// A BPF map request of a sync (the ebpf mode's, as Cilium's agent makes them through
/// the `bpf(2)` syscall). Keys and values are the exact bytes of Cilium's structs
/// ([`crate::ebpf::layout`]).
#[derive(Debug)]
pub enum BpfRequest<'a> {
    /// `BPF_MAP_UPDATE_ELEM` of one entry (the agent's one call per entry).
    Update {
        map: LbMap,
        key: &'a [u8],
        value: &'a [u8],
    },
    /// `BPF_MAP_DELETE_ELEM` of one entry.
    Delete { map: LbMap, key: &'a [u8] },
    /// `BPF_MAP_UPDATE_BATCH` of many entries (the floor).
    UpdateBatch { map: LbMap, entries: &'a [Entry] },
    /// `BPF_MAP_DELETE_BATCH` of many keys (the floor).
    DeleteBatch { map: LbMap, keys: &'a [Vec<u8>] },
    /// Every entry, by `BPF_MAP_GET_NEXT_KEY` and `BPF_MAP_LOOKUP_ELEM` (the agent's
    /// dump at start, and the read-back).
    Dump(LbMap),
    /// Loads the datapath's programs and maps and attaches them, unless they are
    /// there: what Cilium's agent does at start, not per sync, so it is left out of
    /// the sync's cost. Every other request goes to the maps of the datapath named here.
    Attach(Datapath),
}

impl BpfRequest<'_> {
    /// The step name it counts under.
    pub fn step(&self) -> &'static str {
        match self {
            BpfRequest::Update { .. } => "bpf MAP_UPDATE_ELEM",
            BpfRequest::Delete { .. } => "bpf MAP_DELETE_ELEM",
            BpfRequest::UpdateBatch { .. } => "bpf MAP_UPDATE_BATCH",
            BpfRequest::DeleteBatch { .. } => "bpf MAP_DELETE_BATCH",
            BpfRequest::Dump(_) => "bpf map dump",
            BpfRequest::Attach(_) => "bpf load and attach",
        }
    }

    /// A one-line description for traces: the map, and each key and value with its
    /// fields and hex bytes.
    pub fn describe(&self) -> String {
        use crate::ebpf::layout::{describe_key, describe_value};
        match self {
            BpfRequest::Update { map, key, value } => format!(
                "MAP_UPDATE_ELEM {} key {} value {}",
                map.name(),
                describe_key(*map, key),
                describe_value(*map, value)
            ),
            BpfRequest::Delete { map, key } => {
                format!(
                    "MAP_DELETE_ELEM {} key {}",
                    map.name(),
                    describe_key(*map, key)
                )
            }
            BpfRequest::UpdateBatch { map, entries } => {
                let mut s = format!(
                    "MAP_UPDATE_BATCH {} of {} entries",
                    map.name(),
                    entries.len()
                );
                for e in entries.iter() {
                    s.push_str(&format!(
                        "\n  key {} value {}",
                        describe_key(*map, &e.key),
                        describe_value(*map, &e.value)
                    ));
                }
                s
            }
            BpfRequest::DeleteBatch { map, keys } => {
                let mut s = format!("MAP_DELETE_BATCH {} of {} keys", map.name(), keys.len());
                for k in keys.iter() {
                    s.push_str(&format!("\n  key {}", describe_key(*map, k)));
                }
                s
            }
            BpfRequest::Dump(map) => format!("dump {}", map.name()),
            BpfRequest::Attach(d) => format!("load and attach the {} (untimed)", d.describe()),
        }
    }

    /// The bytes it writes to the kernel (keys and values).
    pub fn bytes(&self) -> usize {
        match self {
            BpfRequest::Update { key, value, .. } => key.len() + value.len(),
            BpfRequest::Delete { key, .. } => key.len(),
            BpfRequest::UpdateBatch { entries, .. } => {
                entries.iter().map(|e| e.key.len() + e.value.len()).sum()
            }
            BpfRequest::DeleteBatch { keys, .. } => keys.iter().map(Vec::len).sum(),
            BpfRequest::Dump(_) | BpfRequest::Attach(_) => 0,
        }
    }
}

/// The answer to a [`BpfRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BpfReply {
    Done,
    /// A dump's entries (key, value), in the kernel's iteration order.
    Entries(Vec<(Vec<u8>, Vec<u8>)>),
}

/// Where a controller's tool runs and netlink requests go.
pub trait Executor {
    /// Runs a tool inside the sync's namespace; its output whatever its exit status.
    fn tool(&mut self, call: ToolCall<'_>) -> Result<Output, ApplyError>;

    /// Sends a netlink request inside the sync's namespace.
    fn netlink(&mut self, req: NlRequest<'_>) -> Result<NlReply, ApplyError>;

    /// Counts bytes a step wrote to the kernel or a tool (the payload size).
    fn wrote(&mut self, bytes: usize);

    /// Leaves `cost` out of the sync's: work a controller does that belongs to what
    /// feeds the real agent, not to the agent (the eBPF controllers' search for the
    /// changed services, which Cilium's watcher hands its agent one by one).
    fn exclude(&mut self, _cost: Cost) {}

    /// Sends a BPF map request to the maps of the sync's namespace (the ebpf mode).
    /// Executors without BPF maps refuse it.
    fn bpf(&mut self, req: BpfRequest<'_>) -> Result<BpfReply, ApplyError> {
        Err(ApplyError::Bpf {
            what: format!("{}: this executor has no BPF maps", req.step()),
            source: std::io::Error::from(std::io::ErrorKind::Unsupported),
        })
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

/// Runs tools and netlink in the case's namespace by a deadline, timing every step.
/// Sockets are created once inside the namespace and reused, as kube-proxy's handles are.
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
    ipvs: Option<IpvsClient>,
    rt: Option<NlSocket>,
    /// Started at the first tool run.
    thread: Option<NsThread>,
    /// The maps of the datapath loaded by [`BpfRequest::Attach`] (the ebpf modes).
    bpf: Option<std::sync::Arc<crate::ebpf::datapath::Maps>>,
    /// Time spent in this sync on work that is not the sync's (loading the BPF object
    /// and creating its maps, which Cilium's agent does at start): left out of its cost.
    excluded: Cost,
    /// The BPF calls of one step in a row, not yet in the step log.
    bpf_run: Option<BpfRun>,
}

/// Consecutive BPF calls of one step: each call's wall time, and the thread's CPU read
/// once at the ends of the run. Reading a thread's CPU time is a system call that costs
/// about as much as a map update, so reading it around every one of 100,000 updates
/// would add a third to the sync it measures.
#[derive(Debug)]
struct BpfRun {
    step: &'static str,
    calls: u32,
    wall: std::time::Duration,
    cpu: Cost,
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
            ipvs: None,
            rt: None,
            thread: None,
            bpf: None,
            excluded: Cost::default(),
            bpf_run: None,
        }
    }

    /// Puts the BPF calls in a row into the step log, with the CPU since the first.
    fn flush_bpf(&mut self) {
        if let Some(run) = self.bpf_run.take() {
            let now = thread_cpu();
            self.log.add_calls(
                run.step,
                Category::Bpf,
                run.calls,
                Cost {
                    wall: run.wall,
                    user: now.user.saturating_sub(run.cpu.user),
                    sys: now.sys.saturating_sub(run.cpu.sys),
                },
            );
        }
    }

    /// Loads and attaches `datapath` in this namespace (untimed), unless it is there.
    fn bpf_attach(&mut self, datapath: Datapath) -> Result<(), ApplyError> {
        let meter = Meter::start();
        let maps = crate::ebpf::datapath::maps_for(&self.ns, datapath);
        self.excluded += meter.finish(Cost::default());
        self.bpf = Some(maps?);
        Ok(())
    }

    /// The maps [`BpfRequest::Attach`] loaded.
    fn bpf_maps(
        &self,
        req: &BpfRequest<'_>,
    ) -> Result<std::sync::Arc<crate::ebpf::datapath::Maps>, ApplyError> {
        self.bpf.clone().ok_or_else(|| ApplyError::Bpf {
            what: format!("{} in {}", req.step(), self.ns.name),
            source: std::io::Error::other("no datapath is attached: send BpfRequest::Attach first"),
        })
    }

    fn bpf_call(&mut self, req: &BpfRequest<'_>) -> Result<BpfReply, ApplyError> {
        use crate::ebpf::sys;
        let maps = self.bpf_maps(req)?;
        let fail = |map: LbMap| {
            let what = format!("{} on {} in {}", req.step(), map.name(), self.ns.name);
            move |source| ApplyError::Bpf { what, source }
        };
        match req {
            BpfRequest::Update { map, key, value } => {
                sys::update(maps.fd(*map), key, value).map_err(fail(*map))?
            }
            BpfRequest::Delete { map, key } => match sys::delete(maps.fd(*map), key) {
                // The agent ignores a delete of what is already gone.
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
                r => r.map_err(fail(*map))?,
            },
            BpfRequest::UpdateBatch { map, entries } => {
                let keys: Vec<u8> = entries.iter().flat_map(|e| e.key.iter().copied()).collect();
                let values: Vec<u8> = entries
                    .iter()
                    .flat_map(|e| e.value.iter().copied())
                    .collect();
                sys::update_batch(maps.fd(*map), &keys, &values, entries.len())
                    .map_err(fail(*map))?;
            }
            BpfRequest::DeleteBatch { map, keys } => {
                let flat: Vec<u8> = keys.iter().flat_map(|k| k.iter().copied()).collect();
                match sys::delete_batch(maps.fd(*map), &flat, keys.len()) {
                    Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
                    r => {
                        r.map_err(fail(*map))?;
                    }
                }
            }
            BpfRequest::Dump(map) => {
                let (k, v) = map.sizes();
                return Ok(BpfReply::Entries(
                    sys::dump(maps.fd(*map), k, v).map_err(fail(*map))?,
                ));
            }
            BpfRequest::Attach(_) => unreachable!("answered by bpf()"),
        }
        Ok(BpfReply::Done)
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
            let after = thread_cpu();
            (
                out,
                (
                    after.user.saturating_sub(before.user),
                    after.sys.saturating_sub(before.sys),
                ),
            )
        });
        let mut out = out?;
        out.cost.user += spent.0;
        out.cost.sys += spent.1;
        Ok(out)
    }

    fn ipvs(&mut self) -> Result<&mut IpvsClient, ApplyError> {
        if self.ipvs.is_none() {
            let c = IpvsClient::open_in(&self.ns)?;
            self.ipvs = Some(c);
        }
        let c = self.ipvs.as_mut().expect("opened above");
        c.set_timeout(self.deadline.budget())?;
        Ok(c)
    }

    fn rt(&mut self) -> Result<&mut NlSocket, ApplyError> {
        if self.rt.is_none() {
            let s = self
                .ns
                .run(link::open)?
                .map_err(|source| ApplyError::Netlink {
                    what: format!("rtnetlink socket in {}", self.ns.name),
                    source,
                })?;
            self.rt = Some(s);
        }
        let s = self.rt.as_mut().expect("opened above");
        let budget = self.deadline.budget();
        s.set_timeout(budget)
            .map_err(|source| ApplyError::Netlink {
                what: "rtnetlink socket".into(),
                source,
            })?;
        Ok(s)
    }

    fn send(&mut self, req: &NlRequest<'_>) -> Result<NlReply, ApplyError> {
        let nl = |what: String| move |source: std::io::Error| ApplyError::Netlink { what, source };
        Ok(match req {
            NlRequest::Ipvs(op) => {
                let stats = self
                    .ipvs()?
                    .execute_ok(std::slice::from_ref(op), |_, _| false)?;
                self.bytes += stats.bytes;
                NlReply::Done
            }
            NlRequest::IpvsBatch { ops, tolerate } => {
                let stats = self.ipvs()?.execute_ok(ops, tolerate)?;
                self.bytes += stats.bytes;
                NlReply::Done
            }
            NlRequest::GetService(s) => NlReply::Service(self.ipvs()?.service(s)?),
            NlRequest::DumpServices => NlReply::Services(self.ipvs()?.services()?),
            NlRequest::DumpDests(s) => NlReply::Dests(self.ipvs()?.destinations(s)?),
            NlRequest::EnsureDummy(name) => {
                let what = format!("{name} in {}", self.ns.name);
                NlReply::Index(link::ensure_dummy(self.rt()?, name).map_err(nl(what))?)
            }
            NlRequest::Addresses(i) => {
                NlReply::Addresses(link::addresses(self.rt()?, *i).map_err(nl("addresses".into()))?)
            }
            NlRequest::AddAddresses(i, ips) => {
                let n = link::add_addresses(self.rt()?, *i, ips).map_err(nl("bind".into()))?;
                self.bytes += n;
                NlReply::Done
            }
            NlRequest::DelAddresses(i, ips) => {
                let n = link::del_addresses(self.rt()?, *i, ips).map_err(nl("unbind".into()))?;
                self.bytes += n;
                NlReply::Done
            }
            NlRequest::Sysctls(list) => {
                let list: Vec<(&'static str, &'static str)> = list.to_vec();
                self.ns.run(move || -> Result<(), ApplyError> {
                    for (key, value) in list {
                        write_sysctl(key, value).map_err(|source| {
                            // IPVS's sysctls exist only where the kernel has IPVS.
                            if key.starts_with("net/ipv4/vs/")
                                && source.kind() == std::io::ErrorKind::NotFound
                            {
                                return ApplyError::Unavailable(Unavailable::missing_feature(
                                    KernelFeature::IpVs,
                                ));
                            }
                            ApplyError::Sysctl { key, value, source }
                        })?;
                    }
                    Ok(())
                })??;
                NlReply::Done
            }
        })
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
        self.bpf_run = None;
    }

    /// The sync's report: its whole cost, payload size and steps, with what was spent
    /// outside every step (kpbench's rendering and parsing) as the `controller` step.
    fn finish(&mut self) -> SyncReport {
        self.flush_bpf();
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
        self.flush_bpf();
        if self.deadline.expired() {
            return Err(ApplyError::Expired);
        }
        if let Some(data) = call.stdin {
            self.bytes += data.len();
        }
        let out = self.spawn(&call)?;
        self.tools += Cost {
            wall: std::time::Duration::ZERO,
            ..out.cost
        };
        self.log.add(call.step, call.category, out.cost);
        Ok(out)
    }

    fn netlink(&mut self, req: NlRequest<'_>) -> Result<NlReply, ApplyError> {
        self.flush_bpf();
        if self.deadline.expired() {
            return Err(ApplyError::Expired);
        }
        let cpu = thread_cpu();
        let start = Instant::now();
        let reply = self.send(&req)?;
        let after = thread_cpu();
        self.log.add(
            req.step(),
            Category::Netlink,
            Cost {
                wall: start.elapsed(),
                user: after.user.saturating_sub(cpu.user),
                sys: after.sys.saturating_sub(cpu.sys),
            },
        );
        Ok(reply)
    }

    fn exclude(&mut self, cost: Cost) {
        self.flush_bpf();
        self.excluded += cost;
    }

    fn wrote(&mut self, bytes: usize) {
        self.bytes += bytes;
    }

    fn bpf(&mut self, req: BpfRequest<'_>) -> Result<BpfReply, ApplyError> {
        if self.deadline.expired() {
            return Err(ApplyError::Expired);
        }
        if let BpfRequest::Attach(datapath) = req {
            self.flush_bpf();
            self.bpf_attach(datapath)?;
            return Ok(BpfReply::Done);
        }
        let step = req.step();
        if self.bpf_run.as_ref().is_some_and(|r| r.step != step) {
            self.flush_bpf();
        }
        if self.bpf_run.is_none() {
            self.bpf_run = Some(BpfRun {
                step,
                calls: 0,
                wall: std::time::Duration::ZERO,
                cpu: thread_cpu(),
            });
        }
        let start = Instant::now();
        let reply = self.bpf_call(&req);
        let wall = start.elapsed();
        if let Some(run) = self.bpf_run.as_mut() {
            run.calls += 1;
            run.wall += wall;
        }
        self.bytes += req.bytes();
        if reply.is_err() {
            self.flush_bpf();
        }
        reply
    }
}
