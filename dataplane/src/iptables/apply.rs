//! Programming kube-proxy's iptables payload into a namespace, as kube-proxy does:
//! EnsureChain/EnsureRule calls for the jumps on full syncs, then one
//! `iptables-restore -w --noflush --counters` with the payload on stdin.

use std::time::{Duration, Instant};

use super::{expected_rules, jump_rules, render, JumpRule};
use crate::backend::{ApplyError, Backend, Mode, SyncReport};
use crate::exec::{which, Cost, Tool};
use crate::model::ServiceSet;
use crate::netns::Netns;

/// iptables through the nf_tables backend (`iptables-nft*`) or x_tables (`iptables-legacy*`).
#[derive(Debug, Clone)]
pub struct IptablesBackend {
    mode: Mode,
    iptables: &'static str,
    restore: &'static str,
    save: &'static str,
}

impl IptablesBackend {
    /// Mode `iptables`: the nf_tables backend, as current kube-proxy images use.
    pub fn nft() -> Self {
        // Debian's plain `iptables` may point at either backend through alternatives;
        // the explicit -nft names cannot.
        let explicit =
            which("iptables-nft-restore").is_some() || which("iptables-restore").is_none();
        IptablesBackend {
            mode: Mode::Iptables,
            iptables: if explicit { "iptables-nft" } else { "iptables" },
            restore: if explicit {
                "iptables-nft-restore"
            } else {
                "iptables-restore"
            },
            save: if explicit {
                "iptables-nft-save"
            } else {
                "iptables-save"
            },
        }
    }

    /// Mode `iptables-legacy`: the same payload through x_tables.
    pub fn legacy() -> Self {
        IptablesBackend {
            mode: Mode::IptablesLegacy,
            iptables: "iptables-legacy",
            restore: "iptables-legacy-restore",
            save: "iptables-legacy-save",
        }
    }

    /// kube-proxy's EnsureChain + EnsureRule(Prepend) for every jump rule.
    fn ensure_jumps(&self, ns: &Netns, deadline: Instant) -> Result<Cost, ApplyError> {
        let mut cost = Cost::default();
        let mut made: Vec<(&str, &str)> = Vec::new();
        for jump in jump_rules() {
            if !made.contains(&(jump.table, jump.to)) {
                cost += ensure_chain(self.iptables, ns, jump.table, jump.to, deadline)?;
                made.push((jump.table, jump.to));
            }
            cost += ensure_rule(self.iptables, ns, &jump, deadline)?;
        }
        Ok(cost)
    }

    fn restore(&self, ns: &Netns, payload: &str, deadline: Instant) -> Result<Cost, ApplyError> {
        let out = Tool::new(self.restore, &["-w", "--noflush", "--counters"])
            .stdin(payload.as_bytes())
            .netns(ns)
            .timeout(remaining(deadline))
            .run_ok()?;
        Ok(out.cost)
    }
}

/// What is left of `deadline`, at least 1 ms (a tool always gets a bounded timeout).
pub(crate) fn remaining(deadline: Instant) -> Duration {
    deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(1))
}

/// kube-proxy's EnsureChain: `iptables -N CHAIN`, where "already exists" is success.
pub(crate) fn ensure_chain(
    iptables: &str,
    ns: &Netns,
    table: &str,
    chain: &str,
    deadline: Instant,
) -> Result<Cost, ApplyError> {
    let out = Tool::new(iptables, &["-w", "-t", table, "-N", chain])
        .netns(ns)
        .timeout(remaining(deadline))
        .output()?;
    if out.status != 0 && !out.stderr.contains("already exists") {
        return Err(ApplyError::Other(format!(
            "{iptables} -t {table} -N {chain}: {}",
            out.stderr.trim()
        )));
    }
    Ok(out.cost)
}

/// kube-proxy's EnsureRule(Prepend): `iptables -C`, then `-I` when the rule is missing.
pub(crate) fn ensure_rule(
    iptables: &str,
    ns: &Netns,
    jump: &JumpRule,
    deadline: Instant,
) -> Result<Cost, ApplyError> {
    let mut args: Vec<&str> = vec!["-w", "-t", jump.table, "-C", jump.from];
    args.extend(jump.args.iter().map(String::as_str));
    let check = Tool::new(iptables, &args)
        .netns(ns)
        .timeout(remaining(deadline))
        .output()?;
    let mut cost = check.cost;
    if check.status != 0 {
        args[3] = "-I";
        cost += Tool::new(iptables, &args)
            .netns(ns)
            .timeout(remaining(deadline))
            .run_ok()?
            .cost;
    }
    Ok(cost)
}

/// Counts `-A` rules in `iptables-save` output.
pub fn count_rules(save_output: &str) -> usize {
    save_output.lines().filter(|l| l.starts_with("-A ")).count()
}

impl Backend for IptablesBackend {
    fn mode(&self) -> Mode {
        self.mode
    }

    fn tools(&self) -> Vec<&'static str> {
        vec![self.iptables, self.restore, self.save]
    }

    fn render(&self, old: Option<&ServiceSet>, new: &ServiceSet) -> String {
        let payload = render(old, new);
        let mut text = String::new();
        if old.is_none() {
            text.push_str("# kube-proxy ensures these jumps with one iptables call each (EnsureRule) on a full sync:\n");
            for j in jump_rules() {
                text.push_str(&format!("# {} -w {}\n", self.iptables, j.display("-I")));
            }
            text.push_str(&format!(
                "# then pipes the following to: {} -w --noflush --counters\n",
                self.restore
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
        timeout: Duration,
    ) -> Result<SyncReport, ApplyError> {
        let deadline = Instant::now() + timeout;
        // Rendering is part of what kube-proxy does per sync; it is timed too, but it
        // costs far less than the restore (see the criterion bench).
        let start = Instant::now();
        let payload = render(old, new);
        let mut cost = Cost::default();
        if old.is_none() {
            cost += self.ensure_jumps(ns, deadline)?;
        }
        cost += self.restore(ns, &payload.text, deadline)?;
        cost.wall = start.elapsed();
        Ok(SyncReport {
            cost,
            payload_bytes: payload.text.len(),
        })
    }

    fn read_back(&self, ns: &Netns, timeout: Duration) -> Result<usize, ApplyError> {
        let mut total = 0;
        for table in ["filter", "nat"] {
            let out = Tool::new(self.save, &["-t", table])
                .netns(ns)
                .timeout(timeout)
                .run_ok()?;
            total += count_rules(&out.stdout);
        }
        Ok(total)
    }

    fn expected_objects(&self, set: &ServiceSet) -> usize {
        expected_rules(set)
    }

    fn object_kind(&self) -> &'static str {
        "iptables rules"
    }
}
