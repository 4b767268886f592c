//! Programming kube-proxy's IPVS mode into a namespace: sysctls, the `kube-ipvs0`
//! dummy with every ClusterIP, virtual services and real servers over generic netlink
//! (many requests per send), the ipsets, and the fixed iptables rules.

use std::time::{Duration, Instant};

use super::client::{IpvsClient, IpvsError};
use super::link::{self, DUMMY_DEVICE};
use super::message::{Op, RealServer, VirtualService};
use super::render::{self, Changes, CLUSTER_IP_SET};
use crate::backend::{ApplyError, Backend, Mode, SyncReport};
use crate::exec::{which, Cost, ExecError, Tool};
use crate::iptables::{ensure_chain, ensure_rule, remaining};
use crate::model::ServiceSet;
use crate::netns::{write_sysctl, Netns};

/// Schedulers the kernel ships (`ip_vs_<name>.ko`); kpbench's scenarios use rr
/// (kube-proxy's default), lc, sh, dh and wrr.
pub const SCHEDULERS: [&str; 13] = [
    "rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh",
];

/// kube-proxy's IPVS mode.
#[derive(Debug, Clone)]
pub struct IpvsBackend {
    scheduler: String,
    iptables: &'static str,
    restore: &'static str,
}

impl Default for IpvsBackend {
    fn default() -> Self {
        IpvsBackend::new("rr")
    }
}

impl IpvsBackend {
    /// A backend whose virtual services use `scheduler` (kube-proxy's `--ipvs-scheduler`,
    /// default `rr`). The kernel refuses names it has no module for.
    pub fn new(scheduler: &str) -> Self {
        let explicit =
            which("iptables-nft-restore").is_some() || which("iptables-restore").is_none();
        IpvsBackend {
            scheduler: scheduler.to_string(),
            iptables: if explicit { "iptables-nft" } else { "iptables" },
            restore: if explicit {
                "iptables-nft-restore"
            } else {
                "iptables-restore"
            },
        }
    }

    pub fn scheduler(&self) -> &str {
        &self.scheduler
    }

    /// Every virtual service with its real servers, read from the kernel with one
    /// GET_SERVICE dump and one GET_DEST dump per service.
    pub fn dump(
        ns: &Netns,
        timeout: Duration,
    ) -> Result<Vec<(VirtualService, Vec<RealServer>)>, ApplyError> {
        ns.run(move || -> Result<_, IpvsError> {
            let mut c = IpvsClient::open()?;
            c.set_timeout(timeout)?;
            let mut out = Vec::new();
            for s in c.services()? {
                let d = c.destinations(&s)?;
                out.push((s, d));
            }
            Ok(out)
        })?
        .map_err(ipvs_error)
    }

    /// kube-proxy's EnsureChain + EnsureRule(Prepend) for its chains and jumps; it runs
    /// them on every IPVS sync.
    fn ensure_jumps(&self, ns: &Netns, deadline: Instant) -> Result<Cost, ApplyError> {
        let mut cost = Cost::default();
        for (table, chain) in render::kube_chains() {
            cost += ensure_chain(self.iptables, ns, table, chain, deadline)?;
        }
        for jump in render::jump_rules() {
            cost += ensure_rule(self.iptables, ns, &jump, deadline)?;
        }
        Ok(cost)
    }

    /// The ipsets: a full sync pipes everything to `ipset restore -exist` (one process
    /// instead of kube-proxy's one per entry, so a 10,000-service sync does not time
    /// 10,000 process starts); a partial sync runs kube-proxy's per-set `create -exist`
    /// and one `ipset add/del` per changed entry.
    fn sync_ipsets(
        &self,
        ns: &Netns,
        full: Option<&ServiceSet>,
        changes: &Changes,
        deadline: Instant,
    ) -> Result<(Cost, usize), ApplyError> {
        let mut cost = Cost::default();
        if let Some(set) = full {
            let input = render::ipset_restore(set);
            cost += Tool::new("ipset", &["restore", "-exist"])
                .stdin(input.as_bytes())
                .netns(ns)
                .timeout(remaining(deadline))
                .run_ok()?
                .cost;
            return Ok((cost, input.len()));
        }
        let mut bytes = 0;
        let mut run = |args: Vec<String>| -> Result<(), ApplyError> {
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            bytes += args.iter().map(|a| a.len() + 1).sum::<usize>();
            cost += Tool::new("ipset", &refs)
                .netns(ns)
                .timeout(remaining(deadline))
                .run_ok()?
                .cost;
            Ok(())
        };
        for (name, kind) in render::ipsets() {
            let mut args = render::ipset_create_args(name, kind);
            args.push("-exist".into());
            run(args)?;
        }
        for e in &changes.ipset_add {
            run(vec![
                "add".into(),
                CLUSTER_IP_SET.into(),
                e.clone(),
                "-exist".into(),
            ])?;
        }
        for e in &changes.ipset_del {
            run(vec![
                "del".into(),
                CLUSTER_IP_SET.into(),
                e.clone(),
                "-exist".into(),
            ])?;
        }
        Ok((cost, bytes))
    }
}

/// Maps an IPVS error: a kernel without IPVS is a missing feature (the case is skipped).
fn ipvs_error(e: IpvsError) -> ApplyError {
    match e {
        IpvsError::NoIpvs => ApplyError::Exec(ExecError::NotFound {
            tool: "IPVS (the kernel's ip_vs module)".into(),
            package: "kernel with ip_vs (run the ipvs mode under `kpbench lab`); linux-image"
                .into(),
        }),
        IpvsError::Netns(e) => ApplyError::Netns(e),
        other => ApplyError::Other(other.to_string()),
    }
}

/// The sysctls kube-proxy's IPVS proxier sets (EnsureSysctl), written from a thread
/// inside the node namespace. `conn_reuse_mode=0` only on kernels before 5.9, as
/// kube-proxy leaves it alone on fixed kernels (kubernetes#93297).
fn write_sysctls() -> Result<(), ApplyError> {
    let mut list = vec![
        ("net/ipv4/vs/conntrack", "1"),
        ("net/ipv4/vs/expire_nodest_conn", "1"),
        ("net/ipv4/vs/expire_quiescent_template", "1"),
        ("net/ipv4/ip_forward", "1"),
    ];
    if kernel_before(5, 9) {
        list.push(("net/ipv4/vs/conn_reuse_mode", "0"));
    }
    for (key, value) in list {
        write_sysctl(key, value)
            .map_err(|e| ApplyError::Other(format!("sysctl {key}={value}: {e}")))?;
    }
    Ok(())
}

/// Whether the running kernel's release is older than `major.minor`.
fn kernel_before(major: u32, minor: u32) -> bool {
    // SAFETY: uname fills the struct it is given.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    if unsafe { libc::uname(&mut u) } != 0 {
        return false;
    }
    // SAFETY: release is NUL-terminated by uname.
    let release = unsafe { std::ffi::CStr::from_ptr(u.release.as_ptr()) }.to_string_lossy();
    let mut parts = release
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let (a, b) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (a, b) < (major, minor)
}

/// The user and system CPU of the calling thread so far.
fn thread_cpu() -> Cost {
    // SAFETY: plain syscall with a valid out-pointer.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) };
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    Cost {
        wall: Duration::ZERO,
        user: tv(ru.ru_utime),
        sys: tv(ru.ru_stime),
    }
}

/// Errnos that mean "already in the wanted state".
fn tolerated(op: &Op<'_>, errno: i32) -> bool {
    match op {
        Op::NewService(_) | Op::NewDest(..) => errno == libc::EEXIST,
        Op::DelService(_) => errno == libc::ESRCH,
        Op::DelDest(..) => errno == libc::ENOENT,
        _ => false,
    }
}

/// The netlink part of a sync, run on a thread inside the namespace: sysctls (full
/// sync), `kube-ipvs0` and its new addresses, IPVS, then stale addresses. Returns
/// (bytes sent, thread CPU).
fn sync_netlink(
    changes: &Changes,
    full: bool,
    timeout: Duration,
) -> Result<(usize, Cost), ApplyError> {
    let before = thread_cpu();
    let mut ipvs = IpvsClient::open().map_err(ipvs_error)?;
    ipvs.set_timeout(timeout).map_err(ipvs_error)?;
    if full {
        write_sysctls()?;
    }
    let nl_err = |what: &str| {
        let what = what.to_string();
        move |e: std::io::Error| ApplyError::Other(format!("{what}: {e}"))
    };
    // kube-ipvs0 and its addresses first, as kube-proxy binds a ClusterIP before it adds
    // real servers: the kernel checks a real server's address type against the local
    // routing table, which a namespace gets with its first address.
    let mut rt = link::open().map_err(nl_err("rtnetlink socket"))?;
    rt.set_timeout(timeout)
        .map_err(nl_err("rtnetlink socket"))?;
    let index = link::ensure_dummy(&mut rt, DUMMY_DEVICE).map_err(nl_err(DUMMY_DEVICE))?;
    let mut unbind = changes.unbind.clone();
    if full {
        // kube-proxy removes every address on kube-ipvs0 that no service owns.
        let wanted: std::collections::HashSet<_> = changes.bind.iter().collect();
        let present = link::addresses(&mut rt, index).map_err(nl_err(DUMMY_DEVICE))?;
        unbind.extend(present.into_iter().filter(|ip| !wanted.contains(ip)));
    }
    let mut bytes =
        link::add_addresses(&mut rt, index, &changes.bind).map_err(nl_err(DUMMY_DEVICE))?;
    let stats = ipvs
        .execute_ok(&changes.ops(), tolerated)
        .map_err(ipvs_error)?;
    bytes += stats.bytes;
    // Unbind only once the services that used the addresses are gone.
    bytes += link::del_addresses(&mut rt, index, &unbind).map_err(nl_err(DUMMY_DEVICE))?;
    let after = thread_cpu();
    Ok((
        bytes,
        Cost {
            wall: Duration::ZERO,
            user: after.user.saturating_sub(before.user),
            sys: after.sys.saturating_sub(before.sys),
        },
    ))
}

impl Backend for IpvsBackend {
    fn mode(&self) -> Mode {
        Mode::Ipvs
    }

    fn tools(&self) -> Vec<&'static str> {
        vec!["ipset", self.iptables, self.restore]
    }

    fn render(&self, old: Option<&ServiceSet>, new: &ServiceSet) -> String {
        render::render(old, new, &self.scheduler, self.iptables, self.restore)
    }

    fn sync(
        &self,
        ns: &Netns,
        old: Option<&ServiceSet>,
        new: &ServiceSet,
        timeout: Duration,
    ) -> Result<SyncReport, ApplyError> {
        let start = Instant::now();
        let deadline = start + timeout;
        let full = old.is_none();
        let mut changes = Changes::compute(old, new, &self.scheduler);
        // The ipset part runs after the netlink part; keep its entries here.
        let ipset_changes = Changes {
            ipset_add: std::mem::take(&mut changes.ipset_add),
            ipset_del: std::mem::take(&mut changes.ipset_del),
            ..Changes::default()
        };
        let (mut bytes, mut cost) = ns.run(move || sync_netlink(&changes, full, timeout))??;
        let (c, b) = self.sync_ipsets(
            ns,
            if full { Some(new) } else { None },
            &ipset_changes,
            deadline,
        )?;
        cost += c;
        bytes += b;
        cost += self.ensure_jumps(ns, deadline)?;
        let payload = render::iptables_payload();
        cost += Tool::new(self.restore, &["-w", "--noflush", "--counters"])
            .stdin(payload.as_bytes())
            .netns(ns)
            .timeout(remaining(deadline))
            .run_ok()?
            .cost;
        bytes += payload.len();
        cost.wall = start.elapsed();
        Ok(SyncReport {
            cost,
            payload_bytes: bytes,
        })
    }

    fn read_back(&self, ns: &Netns, timeout: Duration) -> Result<usize, ApplyError> {
        let dump = IpvsBackend::dump(ns, timeout)?;
        Ok(dump.iter().map(|(_, d)| 1 + d.len()).sum())
    }

    fn expected_objects(&self, set: &ServiceSet) -> usize {
        set.len() + set.total_endpoints()
    }

    fn object_kind(&self) -> &'static str {
        "IPVS virtual services + real servers"
    }
}
