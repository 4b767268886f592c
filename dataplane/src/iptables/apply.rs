//! The iptables backends (nf_tables and legacy binaries). Syncs are driven by the
//! controllers of [`super::controller`] (`Backend::controller`), which the recording
//! executor replays against [`XtablesStandIn`]; the one-shot `Backend::sync` below
//! (EnsureChain/EnsureRule for the jumps on a full sync, then one
//! `iptables-restore -w --noflush --counters`) stays until the runner is switched.

use super::{expected_rules, jump_rules, render};
use crate::backend::{ApplyError, Backend, Objects, SyncReport};
use crate::deadline::Deadline;
use crate::exec::{Cost, Meter};
use crate::mode::{Mode, ModeSpec};
use crate::model::ServiceSet;
use crate::netns::Netns;
use crate::prereq::Prerequisites;
use crate::sync::record::StandIn;
use crate::sync::{Controller, Profile};
use crate::xtables::standin::XtablesStandIn;
use crate::xtables::{Xtables, KUBE_RESTORE_ARGS};

use super::controller::{FloorController, KubeProxyController};

/// Arguments joined for display, quoted where they have spaces.
fn quoted(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            if a.contains(' ') {
                format!("\"{a}\"")
            } else {
                a.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

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

    /// kube-proxy's EnsureChain + EnsureRule(Prepend) for every jump rule.
    fn ensure_jumps(&self, ns: &Netns, deadline: Deadline) -> Result<Cost, ApplyError> {
        let mut cost = Cost::default();
        let mut made: Vec<(&str, &str)> = Vec::new();
        for jump in jump_rules() {
            if !made.contains(&(jump.table, jump.to)) {
                cost += self.xt.ensure_chain(ns, jump.table, jump.to, deadline)?;
                made.push((jump.table, jump.to));
            }
            cost += self.xt.ensure_rule(ns, &jump, deadline)?;
        }
        Ok(cost)
    }
}

impl Backend for IptablesBackend {
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

    fn render(&self, old: Option<&ServiceSet>, new: &ServiceSet) -> String {
        let payload = render(old, new);
        let mut text = String::new();
        if old.is_none() {
            text.push_str("# kube-proxy ensures each jump's chain (EnsureChain) and the jump (EnsureRule: -C, then -I) with one iptables call each on a full sync:\n");
            for j in jump_rules() {
                text.push_str(&format!(
                    "# {ipt} -w 5 -W 100000 -N {} -t {}\n# {ipt} {}\n",
                    j.to,
                    j.table,
                    quoted(&j.kube_argv("-I")),
                    ipt = self.xt.iptables,
                ));
            }
            text.push_str(&format!(
                "# then saves the nat table ({} -t nat) and pipes the following to: {} {}\n",
                self.xt.save,
                self.xt.restore,
                KUBE_RESTORE_ARGS.join(" ")
            ));
        }
        text.push_str(&payload.text);
        text
    }

    fn sync(
        &self,
        ns: &Netns,
        old: Option<&ServiceSet>,
        new: &ServiceSet,
        deadline: Deadline,
    ) -> Result<SyncReport, ApplyError> {
        // Rendering is part of what kube-proxy does per sync; it is timed too, but it
        // costs far less than the restore (see the criterion bench).
        let meter = Meter::start();
        let payload = render(old, new);
        let mut tools = Cost::default();
        if old.is_none() {
            tools += self.ensure_jumps(ns, deadline)?;
        }
        tools += self.xt.restore(ns, &payload.text, deadline)?;
        Ok(SyncReport {
            cost: meter.finish(tools),
            payload_bytes: payload.text.len(),
            steps: Default::default(),
        })
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
