//! The two ways an IPVS sync is driven (see [`crate::floor::sync`]):
//!
//! - [`KubeProxyController`]: kube-proxy's `syncProxyRules` (`pkg/proxy/ipvs/proxier.go`),
//!   which walks **every** service on every sync, one request waiting for its answer at
//!   a time, ensures its 11 chains, 9 jumps and 17 ipsets, lists every set and writes
//!   each changed entry with its own `ipset` process, and deletes removed real servers
//!   gracefully (`graceful_termination.go`);
//! - [`FloorController`]: the same kernel objects from the difference alone: one IPVS
//!   batch, one `ipset restore`, one bind and one unbind batch, and an `iptables-restore`
//!   only when the rules change.
//!
//! Where kube-proxy iterates a Go map (services, endpoints, ipsets), a random order per
//! sync, kpbench uses the service set's order and the declaration order of `ipsetInfo`.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use super::attrs::IPPROTO_TCP;
use super::exchange::Netlink;
use super::link::DUMMY_DEVICE;
use super::message::{Op, RealServer, VirtualService};
use super::ports::{wanted, NODE_IP};
use super::render::{
    self, kube_proxy_ipset_create, Changes, Filled, IPVS_IPS_SET, KUBE_PROXY_CHAINS,
    KUBE_PROXY_IPSETS,
};
use super::request::{NlReply, NlRequest};
use crate::floor::error::ApplyError;
use crate::floor::exec::{first_lines, ExecError};
use crate::floor::model::ServiceSet;
use crate::floor::prereq::kernel_release;
use crate::floor::sync::{Category, Controller, Executor, Profile, ToolCall};
use crate::mode::IpvsScheduler;
use crate::xtables::Xtables;

/// The wait flags kube-proxy gives every `iptables` and `iptables-restore` run
/// (iptables >= 1.6.1 / 1.6.2: `-w 5 -W 100000`, `pkg/util/iptables` getIPTablesWaitFlag).
const WAIT: [&str; 4] = ["-w", "5", "-W", "100000"];

/// The loopback device's index in a fresh namespace: the address dump kube-proxy's
/// `GetAllLocalAddressesExcept(kube-ipvs0)` makes for the namespace's other interface.
const LO_INDEX: u32 = 1;

/// kube-proxy's graceful-termination loop period (`rsCheckDeleteInterval`).
pub const GRACEFUL_PERIOD: Duration = Duration::from_secs(60);

/// What both controllers need to know about the node.
#[derive(Debug, Clone)]
pub struct Settings {
    pub scheduler: IpvsScheduler,
    /// The x_tables binaries the iptables part runs.
    pub xt: Xtables,
    /// Whether the kernel predates 5.9: kube-proxy then sets `conn_reuse_mode=0`
    /// (kubernetes#93297).
    pub old_kernel: bool,
    /// The node IPs `--nodeport-addresses` selects: each node port gets a virtual
    /// service on every one ([`NODE_IP`] by default).
    pub node_ips: Vec<Ipv4Addr>,
}

impl Settings {
    /// The settings for this machine's kernel.
    pub fn detect(scheduler: IpvsScheduler, xt: Xtables) -> Self {
        Settings {
            scheduler,
            xt,
            old_kernel: release_before(&kernel_release(), 5, 9),
            node_ips: vec![NODE_IP],
        }
    }

    /// The sysctls kube-proxy's `NewProxier` ensures, in its order.
    pub fn sysctls(&self) -> Vec<(&'static str, &'static str)> {
        let mut list = vec![("net/ipv4/vs/conntrack", "1")];
        if self.old_kernel {
            list.push(("net/ipv4/vs/conn_reuse_mode", "0"));
        }
        list.extend([
            ("net/ipv4/vs/expire_nodest_conn", "1"),
            ("net/ipv4/vs/expire_quiescent_template", "1"),
            ("net/ipv4/ip_forward", "1"),
        ]);
        list
    }
}

/// Whether a kernel release (`6.1.0-56-cloud-amd64`) is older than `major.minor`; an
/// unreadable one counts as new.
pub fn release_before(release: &str, major: u32, minor: u32) -> bool {
    let mut parts = release
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let (a, b) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (a, b) < (major, minor)
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn reply_index(r: NlReply) -> u32 {
    match r {
        NlReply::Index(i) => i,
        _ => 0,
    }
}

fn reply_addresses(r: NlReply) -> Vec<Ipv4Addr> {
    match r {
        NlReply::Addresses(a) => a,
        _ => Vec::new(),
    }
}

fn reply_dests(r: NlReply) -> Vec<RealServer> {
    match r {
        NlReply::Dests(d) => d,
        _ => Vec::new(),
    }
}

/// The entries of `ipset list NAME` output, as kube-proxy's `ListEntries` reads them:
/// everything after the last `Members:` line, one non-empty line each.
pub fn ipset_members(output: &str) -> BTreeSet<String> {
    let rest = match output.rfind("Members:\n") {
        Some(pos) if pos == 0 || output.as_bytes()[pos - 1] == b'\n' => &output[pos + 9..],
        _ => output,
    };
    rest.lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// A real server kube-proxy has set to weight 0 and retries deleting every minute.
#[derive(Debug, Clone)]
struct Terminating {
    vs: VirtualService,
    rs: RealServer,
}

impl Terminating {
    fn is(&self, vs: &VirtualService, rs: &RealServer) -> bool {
        self.vs.same_key(vs) && self.rs.same_key(rs)
    }
}

/// kube-proxy's IPVS `syncProxyRules`, with the state its proxier keeps between syncs:
/// the first-sync flag, the graceful-termination list and the virtual time its 1-minute
/// loop next runs.
pub struct KubeProxyController {
    profile: Profile,
    settings: Settings,
    initial_sync: bool,
    terminating: Vec<Terminating>,
    /// The virtual time of the graceful-termination loop's next run (`wait.Until` from
    /// the proxier's start, every [`GRACEFUL_PERIOD`]).
    next_tick: Duration,
}

impl KubeProxyController {
    pub fn new(profile: Profile, settings: Settings) -> Self {
        KubeProxyController {
            profile,
            settings,
            initial_sync: true,
            terminating: Vec::new(),
            next_tick: GRACEFUL_PERIOD,
        }
    }

    /// How many real servers wait in graceful termination.
    pub fn terminating(&self) -> usize {
        self.terminating.len()
    }

    fn scheduler(&self) -> &'static str {
        self.settings.scheduler.name()
    }

    /// `iptables -w 5 -W 100000 OP CHAIN -t TABLE ARGS...` (`pkg/util/iptables` runContext).
    fn iptables(
        &self,
        io: &mut dyn Executor,
        step: &str,
        op: &str,
        table: &str,
        chain: &str,
        rule: &[String],
    ) -> Result<crate::floor::exec::Output, ApplyError> {
        let mut args: Vec<&str> = WAIT.to_vec();
        args.extend([op, chain, "-t", table]);
        args.extend(strs(rule));
        io.tool(ToolCall::new(
            step,
            Category::Ensure,
            self.settings.xt.iptables,
            &args,
        ))
    }

    /// `createAndLinkKubeChain`: EnsureChain for the 11 chains, EnsureRule(Prepend) for
    /// the 9 jumps (`-C`, then `-I` when `-C` exits 1).
    fn create_and_link_kube_chain(&self, io: &mut dyn Executor) -> Result<(), ApplyError> {
        for (table, chain) in KUBE_PROXY_CHAINS {
            let out = self.iptables(io, "iptables -N", "-N", table, chain, &[])?;
            // Exit status 1 is "already exists" (EnsureChain).
            if out.status != 0 && out.status != 1 {
                return Err(self.failed(&format!("-N {chain} -t {table}"), &out));
            }
        }
        for j in render::kube_proxy_jumps() {
            let out = self.iptables(io, "iptables -C", "-C", j.table, j.from, &j.args)?;
            match out.status {
                0 => {}
                1 => {
                    let out = self.iptables(io, "iptables -I", "-I", j.table, j.from, &j.args)?;
                    if out.status != 0 {
                        return Err(self.failed(&format!("-I {} -t {}", j.from, j.table), &out));
                    }
                }
                _ => return Err(self.failed(&format!("-C {} -t {}", j.from, j.table), &out)),
            }
        }
        Ok(())
    }

    fn failed(&self, what: &str, out: &crate::floor::exec::Output) -> ApplyError {
        ExecError::Failed {
            tool: format!("{} {what}", self.settings.xt.iptables),
            status: out.status,
            stderr: first_lines(&out.stderr, 6),
        }
        .into()
    }

    /// `syncService`: GET_SERVICE, then NEW_SERVICE when missing or SET_SERVICE when it
    /// differs; binds `bind` unless it already is.
    fn sync_service(
        &self,
        io: &mut dyn Executor,
        vs: &VirtualService,
        bind: Option<Ipv4Addr>,
        index: u32,
        already_bound: &BTreeSet<Ipv4Addr>,
    ) -> Result<(), ApplyError> {
        let applied = match io.netlink(NlRequest::GetService(vs))? {
            NlReply::Service(s) => s,
            _ => None,
        };
        match applied {
            None => {
                io.netlink(NlRequest::Ipvs(Op::NewService(vs)))?;
            }
            Some(a) if !vs.kube_proxy_equal(&a) => {
                io.netlink(NlRequest::Ipvs(Op::SetService(vs)))?;
            }
            Some(_) => {}
        }
        if let Some(ip) = bind {
            if !already_bound.contains(&ip) {
                io.netlink(NlRequest::AddAddresses(index, &[ip]))?;
            }
        }
        Ok(())
    }

    /// `syncEndpoint`: GET_SERVICE again, the GET_DEST dump, NEW_DEST for every endpoint
    /// the kernel lacks, graceful deletion for every real server no endpoint wants.
    fn sync_endpoint(
        &mut self,
        io: &mut dyn Executor,
        vs: &VirtualService,
        wanted: &[RealServer],
    ) -> Result<(), ApplyError> {
        let applied = match io.netlink(NlRequest::GetService(vs))? {
            NlReply::Service(Some(s)) => s,
            // "IPVS virtual service does not exist": logged, the service is skipped.
            _ => return Ok(()),
        };
        let current = reply_dests(io.netlink(NlRequest::DumpDests(&applied))?);
        for new in wanted {
            if current.iter().any(|c| c.same_key(new)) {
                if self.initial_sync {
                    // kube-proxy resets weights on its first sync, once per current
                    // destination whose weight differs (and with the new one's).
                    for c in &current {
                        if c.weight != new.weight {
                            io.netlink(NlRequest::Ipvs(Op::SetDest(&applied, *new)))?;
                        }
                    }
                }
                let Some(pos) = self.terminating.iter().position(|t| t.is(vs, new)) else {
                    continue;
                };
                // MoveRSOutofGracefulDeleteList: deleted now, then added back below.
                let t = self.terminating.remove(pos);
                io.netlink(NlRequest::Ipvs(Op::DelDest(&t.vs, t.rs)))?;
            }
            io.netlink(NlRequest::Ipvs(Op::NewDest(&applied, *new)))?;
        }
        for cur in &current {
            if wanted.iter().any(|w| w.same_key(cur)) {
                continue;
            }
            if self.terminating.iter().any(|t| t.is(vs, cur)) {
                continue;
            }
            let rs = RealServer::masq(cur.addr, cur.port);
            self.graceful_delete_rs(io, &applied, rs)?;
        }
        Ok(())
    }

    /// `GracefulDeleteRS`: deleted at once when it has no connections, else weight 0
    /// and onto the list the 1-minute loop retries.
    fn graceful_delete_rs(
        &mut self,
        io: &mut dyn Executor,
        vs: &VirtualService,
        mut rs: RealServer,
    ) -> Result<(), ApplyError> {
        if delete_rs(io, vs, &rs)? {
            return Ok(());
        }
        rs.weight = 0;
        io.netlink(NlRequest::Ipvs(Op::SetDest(vs, rs)))?;
        self.terminating.push(Terminating { vs: vs.clone(), rs });
        Ok(())
    }

    /// `tryDeleteRs`: one pass of the loop over the list.
    fn try_delete_rs(&mut self, io: &mut dyn Executor) -> Result<(), ApplyError> {
        let mut kept = Vec::new();
        for t in std::mem::take(&mut self.terminating) {
            if !delete_rs(io, &t.vs, &t.rs)? {
                kept.push(t);
            }
        }
        self.terminating = kept;
        Ok(())
    }

    /// Runs the graceful-termination loop if it has come due by `at`.
    fn tick(&mut self, io: &mut dyn Executor, at: Duration) -> Result<(), ApplyError> {
        if at < self.next_tick {
            return Ok(());
        }
        while self.next_tick <= at {
            self.next_tick += GRACEFUL_PERIOD;
        }
        self.try_delete_rs(io)
    }

    /// `set.syncIPSetEntries()`: `ipset list`, then one `ipset del` per stale entry and
    /// one `ipset add ... -exist` per missing one, in sorted order.
    fn sync_ipset_entries(
        &self,
        io: &mut dyn Executor,
        name: &str,
        active: &BTreeSet<String>,
    ) -> Result<(), ApplyError> {
        let out = io.tool(ToolCall::new(
            "ipset list",
            Category::Listing,
            "ipset",
            &["list", name],
        ))?;
        if out.status != 0 {
            // "Failed to list ip set entries": logged, the set is left as it is.
            return Ok(());
        }
        let current = ipset_members(&out.stdout);
        if &current == active {
            return Ok(());
        }
        for e in current.difference(active) {
            // A failure is logged and the sync goes on.
            io.tool(ToolCall::new(
                "ipset del",
                Category::Ipset,
                "ipset",
                &["del", name, e],
            ))?;
        }
        for e in active.difference(&current) {
            io.tool_ok(ToolCall::new(
                "ipset add",
                Category::Ipset,
                "ipset",
                &["add", name, e, "-exist"],
            ))?;
        }
        Ok(())
    }
}

/// `deleteRsFunc`: GET_DEST dump of the service; the real server is deleted (DEL_DEST)
/// when its active + inactive connections are 0, or at once for UDP
/// (`IsRsGracefulTerminationNeeded`: only TCP waits). True when it is gone (or was not
/// found), false when it must wait.
fn delete_rs(
    io: &mut dyn Executor,
    vs: &VirtualService,
    rs: &RealServer,
) -> Result<bool, ApplyError> {
    let dests = match io.netlink(NlRequest::DumpDests(vs)) {
        Ok(r) => reply_dests(r),
        Err(e) if e.is_timeout() => return Err(e),
        // kube-proxy logs the error and keeps the real server on its list.
        Err(_) => return Ok(false),
    };
    let Some(found) = dests.iter().find(|d| d.same_key(rs)) else {
        return Ok(true);
    };
    if vs.protocol == IPPROTO_TCP && found.active_conns + found.inact_conns != 0 {
        return Ok(false);
    }
    io.netlink(NlRequest::Ipvs(Op::DelDest(vs, *found)))?;
    Ok(true)
}

impl Controller for KubeProxyController {
    fn profile(&self) -> Profile {
        self.profile
    }

    fn sync(
        &mut self,
        io: &mut dyn Executor,
        _old: Option<&ServiceSet>,
        new: &ServiceSet,
        at: Duration,
    ) -> Result<(), ApplyError> {
        // The graceful-termination goroutine, had it run since the last sync.
        self.tick(io, at)?;
        if self.initial_sync {
            // NewProxier's EnsureSysctl calls, before the first sync.
            let sysctls = self.settings.sysctls();
            io.netlink(NlRequest::Sysctls(&sysctls))?;
        }
        self.create_and_link_kube_chain(io)?;
        let index = reply_index(io.netlink(NlRequest::EnsureDummy(DUMMY_DEVICE))?);
        for (name, kind) in KUBE_PROXY_IPSETS {
            let args = kube_proxy_ipset_create(name, kind);
            io.tool_ok(ToolCall::new(
                "ipset create",
                Category::Ensure,
                "ipset",
                &strs(&args),
            ))?;
        }
        let already_bound: BTreeSet<Ipv4Addr> =
            reply_addresses(io.netlink(NlRequest::Addresses(index))?)
                .into_iter()
                .collect();
        // GetAllLocalAddressesExcept: only the external-IP binds use it (none here). Both
        // calls dump every address of the node (Go's `Interface.Addrs` filters in user
        // space), kube-ipvs0's N ClusterIPs included; the link lookups around them
        // (`net.InterfaceByName`, `net.Interfaces`) are not replayed.
        io.netlink(NlRequest::Addresses(LO_INDEX))?;

        let mut active_services: HashSet<(IpAddr, u16, u16)> = HashSet::with_capacity(new.len());
        let mut active_bind: BTreeSet<Ipv4Addr> = BTreeSet::new();
        let mut active: BTreeMap<&'static str, BTreeSet<String>> = BTreeMap::new();
        let mut drops: BTreeSet<String> = BTreeSet::new();
        for svc in &new.services {
            let w = wanted(svc, self.scheduler(), &self.settings.node_ips);
            drops.extend(w.no_node_access);
            for (set, e) in w.entries {
                active.entry(set).or_default().insert(e);
            }
            for v in &w.virtuals {
                self.sync_service(io, &v.vs, v.bind, index, &already_bound)?;
                active_bind.extend(v.bind);
                self.sync_endpoint(io, &v.vs, &v.dests)?;
                active_services.insert((v.vs.addr, v.vs.protocol, v.vs.port));
            }
        }
        active.insert(
            IPVS_IPS_SET,
            active_bind.iter().map(|ip| ip.to_string()).collect(),
        );
        let empty = BTreeSet::new();
        for (name, _) in KUBE_PROXY_IPSETS {
            self.sync_ipset_entries(io, name, active.get(name).unwrap_or(&empty))?;
        }
        let filled: Filled<'_> = active
            .iter()
            .filter(|(_, e)| !e.is_empty())
            .map(|(n, _)| *n)
            .collect();
        let payload = render::kube_proxy_payload(&filled, &drops);
        let mut args: Vec<&str> = WAIT.to_vec();
        args.extend(["--noflush", "--counters"]);
        io.tool_ok(
            ToolCall::new(
                "iptables-restore",
                Category::Restore,
                self.settings.xt.restore,
                &args,
            )
            .stdin(payload.as_bytes()),
        )?;
        for ip in already_bound.difference(&active_bind) {
            io.netlink(NlRequest::DelAddresses(index, &[*ip]))?;
        }
        // cleanLegacyService: every IPv4 virtual service not synced above is deleted.
        if let NlReply::Services(applied) = io.netlink(NlRequest::DumpServices)? {
            for a in &applied {
                if a.addr.is_ipv4() && !active_services.contains(&(a.addr, a.protocol, a.port)) {
                    io.netlink(NlRequest::Ipvs(Op::DelService(a)))?;
                }
            }
        }
        self.initial_sync = false;
        Ok(())
    }

    fn settle(
        &mut self,
        io: &mut dyn Executor,
        _set: &ServiceSet,
        at: Duration,
    ) -> Result<(), ApplyError> {
        if self.terminating.is_empty() {
            return Ok(());
        }
        while self.next_tick <= at {
            self.next_tick += GRACEFUL_PERIOD;
        }
        self.try_delete_rs(io)
    }
}

/// Errnos that mean "already in the wanted state" for the floor's batch.
pub fn tolerated(op: &Op<'_>, errno: i32) -> bool {
    match op {
        Op::NewService(_) | Op::NewDest(..) => errno == libc::EEXIST,
        Op::DelService(_) => errno == libc::ESRCH,
        Op::DelDest(..) => errno == libc::ENOENT,
        _ => false,
    }
}

/// The fastest way kpbench knows to kube-proxy's kernel objects: the difference between
/// the old and new service sets, in one IPVS batch, one bind and one unbind request,
/// one `ipset restore`, and an `iptables-restore` only when the rules change (its first
/// carries kube-proxy's jumps). Removed real servers are deleted at once: after
/// kube-proxy's graceful terminations have fired, the objects are the same.
pub struct FloorController {
    settings: Settings,
    /// The dummy's index, once created (the first sync).
    index: Option<u32>,
    /// How many entries each set holds (what the rules depend on), kept from the
    /// differences the floor sends.
    entries: BTreeMap<&'static str, usize>,
    /// The KUBE-IPVS-OUT-FILTER drops the rules hold.
    drops: BTreeSet<String>,
    /// The sets with entries and the drops when the rules were last written.
    written: Option<(BTreeSet<&'static str>, BTreeSet<String>)>,
}

impl FloorController {
    pub fn new(settings: Settings) -> Self {
        FloorController {
            settings,
            index: None,
            entries: BTreeMap::new(),
            drops: BTreeSet::new(),
            written: None,
        }
    }

    /// Counts the entries `del` removes and `add` adds; the sets left with entries.
    fn count(
        &mut self,
        del: &[(&'static str, String)],
        add: &[(&'static str, String)],
    ) -> BTreeSet<&'static str> {
        for (set, _) in del {
            let n = self.entries.entry(set).or_default();
            *n = n.saturating_sub(1);
        }
        for (set, _) in add {
            *self.entries.entry(set).or_default() += 1;
        }
        self.entries
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(s, _)| *s)
            .collect()
    }
}

impl Controller for FloorController {
    fn profile(&self) -> Profile {
        Profile::Floor
    }

    fn sync(
        &mut self,
        io: &mut dyn Executor,
        old: Option<&ServiceSet>,
        new: &ServiceSet,
        _at: Duration,
    ) -> Result<(), ApplyError> {
        let first = self.index.is_none();
        let index = match self.index {
            Some(i) => i,
            None => {
                let sysctls = self.settings.sysctls();
                io.netlink(NlRequest::Sysctls(&sysctls))?;
                let i = reply_index(io.netlink(NlRequest::EnsureDummy(DUMMY_DEVICE))?);
                self.index = Some(i);
                i
            }
        };
        let changes = Changes::compute(
            old,
            new,
            self.settings.scheduler.name(),
            &self.settings.node_ips,
        );

        // The sets first: the rules match them. KUBE-IPVS-IPS holds the bound addresses.
        let bound = |ip: &Ipv4Addr| (IPVS_IPS_SET, ip.to_string());
        let del: Vec<(&'static str, String)> = changes
            .ipset_del
            .iter()
            .cloned()
            .chain(changes.unbind.iter().map(bound))
            .collect();
        let add: Vec<(&'static str, String)> = changes
            .ipset_add
            .iter()
            .cloned()
            .chain(changes.bind.iter().map(bound))
            .collect();
        let filled = self.count(&del, &add);
        for r in &changes.drops_del {
            self.drops.remove(r);
        }
        self.drops.extend(changes.drops_add.iter().cloned());
        if first || !del.is_empty() || !add.is_empty() {
            let input = render::floor_ipset_restore(first, &del, &add);
            io.tool_ok(
                ToolCall::new(
                    "ipset restore",
                    Category::Ipset,
                    "ipset",
                    &["restore", "-exist"],
                )
                .stdin(input.as_bytes()),
            )?;
        }
        // VIPs before their services, as kube-proxy binds a ClusterIP before it adds
        // real servers (the kernel checks a real server against the routing table).
        if !changes.bind.is_empty() {
            io.netlink(NlRequest::AddAddresses(index, &changes.bind))?;
        }
        let ops = changes.ops();
        if !ops.is_empty() {
            io.netlink(NlRequest::IpvsBatch {
                ops: &ops,
                tolerate: tolerated,
            })?;
        }
        if !changes.unbind.is_empty() {
            io.netlink(NlRequest::DelAddresses(index, &changes.unbind))?;
        }
        let rules = (filled, self.drops.clone());
        if self.written.as_ref() != Some(&rules) {
            let payload = if first {
                render::floor_first_payload(&rules.0, &rules.1)
            } else {
                render::kube_proxy_payload(&rules.0, &rules.1)
            };
            let mut args: Vec<&str> = WAIT.to_vec();
            args.extend(["--noflush", "--counters"]);
            io.tool_ok(
                ToolCall::new(
                    "iptables-restore",
                    Category::Restore,
                    self.settings.xt.restore,
                    &args,
                )
                .stdin(payload.as_bytes()),
            )?;
            self.written = Some(rules);
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
