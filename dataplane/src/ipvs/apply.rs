//! Programming kube-proxy's IPVS mode into a namespace: sysctls, the `kube-ipvs0`
//! dummy with every ClusterIP, virtual services and real servers over generic netlink
//! (many requests per send), the ipsets, and the fixed iptables rules.

use super::client::{IpvsClient, IpvsError};
use super::controller::{FloorController, KubeProxyController, Settings};
use super::message::{RealServer, VirtualService};
use super::standin::Node;
use crate::floor::backend::{Backend, Objects};
use crate::floor::deadline::Deadline;
use crate::floor::error::ApplyError;
use crate::floor::model::ServiceSet;
use crate::floor::netns::Netns;
use crate::floor::prereq::{KernelFeature, Prerequisites, ToolNeed};
use crate::floor::sync::standin::StandIn;
use crate::floor::sync::{Controller, Executor, Profile};
use crate::mode::{IpvsScheduler, Mode, ModeSpec};
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

    /// How many virtual services and real servers a full sync of `set` leaves (node
    /// ports on [`super::ports::NODE_IP`], as [`Settings::detect`] configures them).
    pub fn expected_objects(&self, set: &ServiceSet) -> usize {
        let node_ips = [super::ports::NODE_IP];
        set.services
            .iter()
            .map(|s| super::ports::objects(s, &node_ips))
            .sum()
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
}

impl Backend for IpvsBackend {
    /// Every shape feature ([`super::ports::RENDERS`]).
    fn renders(&self) -> &'static [crate::floor::spec::Feature] {
        super::ports::RENDERS
    }

    /// kube-proxy's IPVS `syncProxyRules` (the same calls in 1.35 and 1.36), or the floor.
    fn controller(&self, profile: Profile) -> Box<dyn Controller> {
        IpvsBackend::controller_with(profile, Settings::detect(self.scheduler, self.xt))
    }

    /// One modelled node: IPVS, kube-ipvs0 and its addresses, ipsets, x_tables rules.
    fn standins(&self) -> Vec<Box<dyn StandIn>> {
        Node::new().standins()
    }

    /// `ipvsadm -S -n`, `ipset list` and `iptables-save`, normalised.
    fn readback(&self, io: &mut dyn Executor) -> Result<String, ApplyError> {
        super::readback::read(io)
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

    fn verify(
        &self,
        ns: &Netns,
        expected: &ServiceSet,
        deadline: Deadline,
    ) -> Result<Objects, ApplyError> {
        let dump = IpvsBackend::dump(ns, deadline)?;
        // A real server kube-proxy removed while it still had connections stays at
        // weight 0 until its graceful-termination loop sees none (IPVS keeps a closed
        // TCP connection's entry for minutes): it takes no new connections and is not
        // part of what was programmed.
        let serving = |d: &Vec<RealServer>| d.iter().filter(|r| r.weight > 0).count();
        Objects::check(
            "IPVS virtual services + real servers (weight > 0)",
            dump.iter().map(|(_, d)| 1 + serving(d)).sum(),
            self.expected_objects(expected),
        )
    }
}
