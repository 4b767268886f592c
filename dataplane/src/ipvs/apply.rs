//! Programming kube-proxy's IPVS mode into a namespace: sysctls, the `kube-ipvs0`
//! dummy with every ClusterIP, virtual services and real servers over generic netlink
//! (many requests per send), the ipsets, and the fixed iptables rules.

use std::time::Duration;

use super::client::{IpvsClient, IpvsError};
use super::controller::{
    release_before, tolerated, FloorController, KubeProxyController, Settings,
};
use super::link::{self, DUMMY_DEVICE};
use super::message::{RealServer, VirtualService};
use super::render::{self, Changes, CLUSTER_IP_SET};
use super::standin::Node;
use crate::backend::{ApplyError, Backend, Objects, SyncReport};
use crate::deadline::Deadline;
use crate::exec::{thread_cpu, Cost, Meter, Tool};
use crate::mode::{IpvsScheduler, Mode, ModeSpec};
use crate::model::ServiceSet;
use crate::netns::{write_sysctl, Netns};
use crate::prereq::{kernel_release, KernelFeature, Prerequisites, ToolNeed};
use crate::sync::record::StandIn;
use crate::sync::{Controller, Profile};
use crate::xtables::Xtables;

/// kube-proxy's IPVS mode.
#[derive(Debug, Clone)]
pub struct IpvsBackend {
    scheduler: IpvsScheduler,
    xt: Xtables,
}

impl Default for IpvsBackend {
    fn default() -> Self {
        IpvsBackend::new(IpvsScheduler::default())
    }
}

impl IpvsBackend {
    /// A backend whose virtual services use `scheduler` (kube-proxy's `--ipvs-scheduler`,
    /// default rr). The kernel refuses a scheduler it has no module for.
    pub fn new(scheduler: IpvsScheduler) -> Self {
        IpvsBackend::with_xtables(scheduler, Xtables::nft())
    }

    /// A backend that runs these x_tables binaries (the trace tests name them as
    /// kube-proxy does: `iptables`, `iptables-restore`).
    pub fn with_xtables(scheduler: IpvsScheduler, xt: Xtables) -> Self {
        IpvsBackend { scheduler, xt }
    }

    /// A controller for `profile` on a kernel as `settings` describe it.
    pub fn controller_with(profile: Profile, settings: Settings) -> Box<dyn Controller> {
        match profile {
            Profile::KubeProxy(_) => Box::new(KubeProxyController::new(profile, settings)),
            Profile::Floor => Box::new(FloorController::new(settings)),
        }
    }

    pub fn scheduler(&self) -> IpvsScheduler {
        self.scheduler
    }

    /// How many virtual services and real servers a full sync of `set` leaves.
    pub fn expected_objects(&self, set: &ServiceSet) -> usize {
        set.len() + set.total_endpoints()
    }

    /// Every virtual service with its real servers, read from the kernel with one
    /// GET_SERVICE dump and one GET_DEST dump per service.
    pub fn dump(
        ns: &Netns,
        deadline: Deadline,
    ) -> Result<Vec<(VirtualService, Vec<RealServer>)>, ApplyError> {
        Ok(ns.run(move || -> Result<_, IpvsError> {
            let mut c = IpvsClient::open()?;
            c.set_timeout(deadline.budget())?;
            let mut out = Vec::new();
            for s in c.services()? {
                let d = c.destinations(&s)?;
                out.push((s, d));
            }
            Ok(out)
        })??)
    }

    /// kube-proxy's EnsureChain + EnsureRule(Prepend) for its chains and jumps; it runs
    /// them on every IPVS sync.
    fn ensure_jumps(&self, ns: &Netns, deadline: Deadline) -> Result<Cost, ApplyError> {
        let mut cost = Cost::default();
        for (table, chain) in render::kube_chains() {
            cost += self.xt.ensure_chain(ns, table, chain, deadline)?;
        }
        for jump in render::jump_rules() {
            cost += self.xt.ensure_rule(ns, &jump, deadline)?;
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
        deadline: Deadline,
    ) -> Result<(Cost, usize), ApplyError> {
        let mut cost = Cost::default();
        if let Some(set) = full {
            let input = render::ipset_restore(set);
            cost += Tool::new("ipset", &["restore", "-exist"])
                .stdin(input.as_bytes())
                .netns(ns)
                .deadline(deadline)
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
                .deadline(deadline)
                .run_ok()?
                .cost;
            Ok(())
        };
        for (name, kind) in render::ipsets() {
            let mut args = render::ipset_create_args(name, kind);
            args.push("-exist".into());
            run(args)?;
        }
        for (op, entries) in [("add", &changes.ipset_add), ("del", &changes.ipset_del)] {
            for e in entries {
                run(vec![
                    op.into(),
                    CLUSTER_IP_SET.into(),
                    e.clone(),
                    "-exist".into(),
                ])?;
            }
        }
        Ok((cost, bytes))
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
    if release_before(&kernel_release(), 5, 9) {
        list.push(("net/ipv4/vs/conn_reuse_mode", "0"));
    }
    for (key, value) in list {
        write_sysctl(key, value).map_err(|source| ApplyError::Sysctl { key, value, source })?;
    }
    Ok(())
}

/// The netlink part of a sync, run on a thread inside the namespace: sysctls (full
/// sync), `kube-ipvs0` and its new addresses, IPVS, then stale addresses. Returns
/// (bytes sent, this thread's CPU).
fn sync_netlink(
    changes: &Changes,
    full: bool,
    deadline: Deadline,
) -> Result<(usize, Cost), ApplyError> {
    let before = thread_cpu();
    let mut ipvs = IpvsClient::open()?;
    ipvs.set_timeout(deadline.budget())?;
    if full {
        write_sysctls()?;
    }
    let nl_err = |what: &str| {
        let what = what.to_string();
        move |source: std::io::Error| ApplyError::Netlink { what, source }
    };
    // kube-ipvs0 and its addresses first, as kube-proxy binds a ClusterIP before it adds
    // real servers: the kernel checks a real server's address type against the local
    // routing table, which a namespace gets with its first address.
    let mut rt = link::open().map_err(nl_err("rtnetlink socket"))?;
    rt.set_timeout(deadline.budget())
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
    bytes += ipvs.execute_ok(&changes.ops(), tolerated)?.bytes;
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
    /// kube-proxy's IPVS `syncProxyRules` (the same calls in 1.35 and 1.36), or the floor.
    fn controller(&self, profile: Profile) -> Box<dyn Controller> {
        IpvsBackend::controller_with(profile, Settings::detect(self.scheduler, self.xt))
    }

    /// One modelled node: IPVS, kube-ipvs0 and its addresses, ipsets, x_tables rules.
    fn standins(&self) -> Vec<Box<dyn StandIn>> {
        Node::new().standins()
    }

    fn spec(&self) -> ModeSpec {
        ModeSpec::with_scheduler(Mode::Ipvs, self.scheduler)
    }

    fn prerequisites(&self) -> Prerequisites {
        Prerequisites {
            tools: vec![
                ToolNeed::new("ipset", "ipset"),
                Xtables::need(self.xt.iptables),
                Xtables::need(self.xt.restore),
            ],
            kernel: vec![KernelFeature::IpVs, KernelFeature::IpSet, self.xt.feature],
        }
    }

    fn inspect_command(&self) -> &'static str {
        "ipvsadm -S -n"
    }

    fn render(&self, old: Option<&ServiceSet>, new: &ServiceSet) -> String {
        render::render(
            old,
            new,
            self.scheduler.name(),
            self.xt.iptables,
            self.xt.restore,
        )
    }

    fn sync(
        &self,
        ns: &Netns,
        old: Option<&ServiceSet>,
        new: &ServiceSet,
        deadline: Deadline,
    ) -> Result<SyncReport, ApplyError> {
        let meter = Meter::start();
        let full = old.is_none();
        let mut changes = Changes::compute(old, new, self.scheduler.name());
        // The ipset part runs after the netlink part; keep its entries here.
        let ipset_changes = Changes {
            ipset_add: std::mem::take(&mut changes.ipset_add),
            ipset_del: std::mem::take(&mut changes.ipset_del),
            ..Changes::default()
        };
        let (mut bytes, mut others) = ns.run(move || sync_netlink(&changes, full, deadline))??;
        let (c, b) = self.sync_ipsets(ns, full.then_some(new), &ipset_changes, deadline)?;
        others += c;
        bytes += b;
        others += self.ensure_jumps(ns, deadline)?;
        let payload = render::iptables_payload();
        others += self.xt.restore(ns, &payload, deadline)?;
        bytes += payload.len();
        Ok(SyncReport {
            cost: meter.finish(others),
            payload_bytes: bytes,
            steps: Default::default(),
        })
    }

    fn verify(
        &self,
        ns: &Netns,
        expected: &ServiceSet,
        deadline: Deadline,
    ) -> Result<Objects, ApplyError> {
        let dump = IpvsBackend::dump(ns, deadline)?;
        Objects::check(
            "IPVS virtual services + real servers",
            dump.iter().map(|(_, d)| 1 + d.len()).sum(),
            self.expected_objects(expected),
        )
    }
}
