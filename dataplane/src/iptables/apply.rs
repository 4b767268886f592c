//! The iptables backends (nf_tables and legacy binaries). Syncs are driven by the
//! controllers of [`super::controller`] (`Backend::controller`), which the recording
//! executor replays against [`XtablesStandIn`]; the one-shot `Backend::sync` below
//! (EnsureChain/EnsureRule for the jumps on a full sync, then one
//! `iptables-restore -w --noflush --counters`) stays until the runner is switched.

use super::expected_rules;
use crate::floor::backend::{Backend, Objects};
use crate::floor::deadline::Deadline;
use crate::floor::error::ApplyError;
use crate::floor::model::ServiceSet;
use crate::floor::netns::Netns;
use crate::floor::prereq::Prerequisites;
use crate::floor::sync::standin::StandIn;
use crate::floor::sync::{Controller, Executor, Profile};
use crate::mode::{Mode, ModeSpec};
use crate::xtables::standin::XtablesStandIn;
use crate::xtables::Xtables;

use super::controller::{FloorController, KubeProxyController};

/// iptables through the nf_tables backend (`iptables-nft*`) or x_tables (`iptables-legacy*`).
#[derive(Debug, Clone)]
pub struct IptablesBackend {
    mode: Mode,
    xt: Xtables,
}

impl IptablesBackend {
    /// Mode `iptables`: the nf_tables backend, as current kube-proxy images use.
    pub fn nft() -> Self {
        IptablesBackend {
            mode: Mode::Iptables,
            xt: Xtables::nft(),
        }
    }

    /// Mode `iptables-legacy`: the same payload through x_tables.
    pub fn legacy() -> Self {
        IptablesBackend {
            mode: Mode::IptablesLegacy,
            xt: Xtables::legacy(),
        }
    }

    /// The binaries this backend runs.
    pub fn xtables(&self) -> Xtables {
        self.xt
    }

    /// How many rules the kernel should hold after a full sync of `set`.
    pub fn expected_objects(&self, set: &ServiceSet) -> usize {
        expected_rules(set)
    }
}

impl Backend for IptablesBackend {
    /// Several TCP ports, ClientIP affinity, NodePort with Cluster policy
    /// ([`super::ports::RENDERS`]).
    fn renders(&self) -> &'static [crate::floor::spec::Feature] {
        super::ports::RENDERS
    }

    fn controller(&self, profile: Profile) -> Box<dyn Controller> {
        match profile {
            Profile::KubeProxy(version) => Box::new(KubeProxyController::new(self.xt, version)),
            Profile::Floor => Box::new(FloorController::new(self.xt)),
        }
    }

    /// The x_tables model answering this backend's three binaries.
    fn standins(&self) -> Vec<Box<dyn StandIn>> {
        vec![Box::new(XtablesStandIn::new(self.xt))]
    }

    /// `iptables-save` of this backend's binary, normalised.
    fn readback(&self, io: &mut dyn Executor) -> Result<String, ApplyError> {
        crate::xtables::readback::save(io, self.xt)
    }

    fn spec(&self) -> ModeSpec {
        ModeSpec::new(self.mode)
    }

    fn prerequisites(&self) -> Prerequisites {
        Prerequisites {
            tools: [self.xt.iptables, self.xt.restore, self.xt.save]
                .map(Xtables::need)
                .to_vec(),
            kernel: vec![self.xt.feature],
        }
    }

    fn inspect_command(&self) -> &'static str {
        self.xt.save
    }

    fn verify(
        &self,
        ns: &Netns,
        expected: &ServiceSet,
        deadline: Deadline,
    ) -> Result<Objects, ApplyError> {
        let found = self.xt.count_rules(ns, &["filter", "nat"], deadline)?;
        Objects::check("iptables rules", found, self.expected_objects(expected))
    }
}
