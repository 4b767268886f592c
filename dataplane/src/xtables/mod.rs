//! The x_tables tooling kube-proxy's iptables and IPVS modes share: which binaries
//! (the nf_tables backend or legacy x_tables), its EnsureChain and EnsureRule calls, the
//! `iptables-restore --noflush --counters` invocation, and `iptables-save` parsing.

use crate::floor::deadline::Deadline;
use crate::floor::error::ApplyError;
use crate::floor::exec::{first_lines, which, ExecError, Tool};
use crate::floor::netns::Netns;
use crate::floor::prereq::{KernelFeature, ToolNeed};
use crate::floor::sync::{Category, Executor, ToolCall};

pub(crate) mod canonical;
pub(crate) mod readback;
pub mod standin;

/// The wait flags kube-proxy puts before every `iptables` operation for iptables 1.6.1
/// and later (`getIPTablesWaitFlag` in pkg/util/iptables/iptables.go): wait up to 5 s
/// for the xtables lock, polling every 100,000 us.
pub const WAIT_FLAGS: [&str; 4] = ["-w", "5", "-W", "100000"];

/// kube-proxy's `RestoreAll(data, NoFlushTables, RestoreCounters)` argv for
/// iptables-restore 1.6.2 and later (`restoreInternal`): the wait flags, `--noflush`,
/// `--counters`; no `-T`, so every table in the payload.
pub const KUBE_RESTORE_ARGS: [&str; 6] = ["-w", "5", "-W", "100000", "--noflush", "--counters"];

/// kube-proxy's `GetChainsFromTable`: the chain names declared (`:NAME ...`) in
/// `iptables-save` output, built-in ones included.
pub fn chains_in_save(save: &str) -> std::collections::BTreeSet<String> {
    save.lines()
        .filter_map(|l| l.strip_prefix(':'))
        .filter_map(|rest| rest.split(' ').next())
        .filter(|name| !name.is_empty())
        .map(str::to_string)
        .collect()
}

/// One rule kube-proxy ensures with an individual `iptables -C`/`-I` call (EnsureRule):
/// a jump from a built-in chain into a kube-proxy chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JumpRule {
    pub table: &'static str,
    pub from: &'static str,
    pub to: &'static str,
    /// Rule arguments, without `-t`, `-C/-I` and the chain.
    pub args: Vec<String>,
}

impl JumpRule {
    /// A commented jump from `from` to `to`, in kube-proxy's argument order
    /// (`syncProxyRules`: `args := jump.extraArgs; if jump.comment != "" { args =
    /// append(args, "-m", "comment", "--comment", jump.comment) }; args = append(args,
    /// "-j", dst)`): the `extra` match arguments first, then the comment match, then
    /// `-j`. An empty comment writes no comment match (kubelet's KUBE-FIREWALL jumps).
    pub fn new(
        table: &'static str,
        from: &'static str,
        to: &'static str,
        comment: &str,
        extra: &[&str],
    ) -> Self {
        let mut args: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        if !comment.is_empty() {
            args.extend([
                "-m".into(),
                "comment".into(),
                "--comment".into(),
                comment.to_string(),
            ]);
        }
        args.extend(["-j".to_string(), to.to_string()]);
        JumpRule {
            table,
            from,
            to,
            args,
        }
    }

    /// kube-proxy's argv for this rule with `op` (`-C`, `-I`, `-D`): the wait flags,
    /// the operation, the chain, `-t TABLE`, then the rule (`runContext` +
    /// `makeFullArgs` in pkg/util/iptables/iptables.go).
    pub fn kube_argv(&self, op: &str) -> Vec<String> {
        let mut v: Vec<String> = WAIT_FLAGS.iter().map(|s| s.to_string()).collect();
        v.extend([
            op.to_string(),
            self.from.to_string(),
            "-t".into(),
            self.table.to_string(),
        ]);
        v.extend(self.args.iter().cloned());
        v
    }

    /// The rule as an `iptables-restore` line appending it to its chain (`-A FROM ...`),
    /// arguments with spaces quoted.
    pub fn restore_line(&self) -> String {
        let mut line = format!("-A {}", self.from);
        for a in &self.args {
            line.push(' ');
            if a.contains(' ') {
                line.push('"');
                line.push_str(a);
                line.push('"');
            } else {
                line.push_str(a);
            }
        }
        line
    }

    /// The rule as a shell-quoted command line, for display.
    pub fn display(&self, op: &str) -> String {
        let args: Vec<String> = self
            .args
            .iter()
            .map(|a| {
                if a.contains(' ') {
                    format!("\"{a}\"")
                } else {
                    a.clone()
                }
            })
            .collect();
        format!("-t {} {op} {} {}", self.table, self.from, args.join(" "))
    }
}

/// Counts `-A` rules in `iptables-save` output.
pub fn count_rules(save_output: &str) -> usize {
    save_output.lines().filter(|l| l.starts_with("-A ")).count()
}

/// The three x_tables binaries of one backend: `iptables`, `iptables-restore` and
/// `iptables-save`, through nf_tables or legacy x_tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Xtables {
    pub iptables: &'static str,
    pub restore: &'static str,
    pub save: &'static str,
    /// The kernel side they program.
    pub feature: KernelFeature,
}

impl Xtables {
    /// The nf_tables backend, as current kube-proxy images use. Debian's plain
    /// `iptables` may point at either backend through alternatives; the explicit `-nft`
    /// names cannot, so they are used whenever they exist (or nothing does).
    pub fn nft() -> Self {
        let explicit =
            which("iptables-nft-restore").is_some() || which("iptables-restore").is_none();
        let pick = |nft: &'static str, plain: &'static str| if explicit { nft } else { plain };
        Xtables {
            iptables: pick("iptables-nft", "iptables"),
            restore: pick("iptables-nft-restore", "iptables-restore"),
            save: pick("iptables-nft-save", "iptables-save"),
            feature: KernelFeature::NfTables,
        }
    }

    /// Legacy x_tables (`iptables-legacy*`).
    pub fn legacy() -> Self {
        Xtables {
            iptables: "iptables-legacy",
            restore: "iptables-legacy-restore",
            save: "iptables-legacy-save",
            feature: KernelFeature::IpTables,
        }
    }

    /// A binary of these tools, with its package.
    pub fn need(program: &'static str) -> ToolNeed {
        ToolNeed::new(program, "iptables")
    }

    /// Counts the `-A` rules of `tables` with one `iptables-save -t TABLE` each.
    pub fn count_rules(
        &self,
        ns: &Netns,
        tables: &[&str],
        deadline: Deadline,
    ) -> Result<usize, ApplyError> {
        let mut total = 0;
        for table in tables {
            let out = Tool::new(self.save, &["-t", table])
                .netns(ns)
                .deadline(deadline)
                .run_ok()?;
            total += count_rules(&out.stdout);
        }
        Ok(total)
    }
}

/// kube-proxy's iptables calls through a sync [`Executor`], named as steps of the sync
/// (`iptables -N`, `iptables -C`, `iptables -I` under [`Category::Ensure`],
/// `iptables-save` under [`Category::Listing`], `iptables-restore` under
/// [`Category::Restore`]). Used by the iptables and IPVS controllers.
impl Xtables {
    /// kube-proxy's `EnsureChain(table, chain)`: `iptables -w 5 -W 100000 -N CHAIN -t
    /// TABLE`; exit status 1 ("Chain already exists") is success. Returns whether the
    /// chain already existed.
    pub fn ensure_chain_io(
        &self,
        io: &mut dyn Executor,
        table: &str,
        chain: &str,
    ) -> Result<bool, ApplyError> {
        let mut args: Vec<&str> = WAIT_FLAGS.to_vec();
        args.extend(["-N", chain, "-t", table]);
        let call = ToolCall::new("iptables -N", Category::Ensure, self.iptables, &args);
        let line = call.command_line();
        let out = io.tool(call)?;
        match out.status {
            0 => Ok(false),
            1 => Ok(true),
            status => Err(ExecError::Failed {
                tool: line,
                status,
                stderr: first_lines(&out.stderr, 6),
            }
            .into()),
        }
    }

    /// kube-proxy's `EnsureRule(Prepend, ...)`: `iptables -C` (exit 0: present, 1:
    /// missing, else an error), then `iptables -I` only when it is missing. Returns
    /// whether the rule already existed.
    pub fn ensure_rule_io(
        &self,
        io: &mut dyn Executor,
        jump: &JumpRule,
    ) -> Result<bool, ApplyError> {
        let check = jump.kube_argv("-C");
        let check: Vec<&str> = check.iter().map(String::as_str).collect();
        let call = ToolCall::new("iptables -C", Category::Ensure, self.iptables, &check);
        let line = call.command_line();
        let out = io.tool(call)?;
        match out.status {
            0 => return Ok(true),
            1 => {}
            status => {
                return Err(ExecError::Failed {
                    tool: line,
                    status,
                    stderr: first_lines(&out.stderr, 6),
                }
                .into())
            }
        }
        let insert = jump.kube_argv("-I");
        let insert: Vec<&str> = insert.iter().map(String::as_str).collect();
        io.tool_ok(ToolCall::new(
            "iptables -I",
            Category::Ensure,
            self.iptables,
            &insert,
        ))?;
        Ok(false)
    }

    /// kube-proxy's `SaveInto(table)`: `iptables-save -t TABLE`, no wait flag. None when
    /// it failed (kube-proxy logs it and skips the stale-chain cleanup).
    pub fn save_io(
        &self,
        io: &mut dyn Executor,
        table: &str,
    ) -> Result<Option<String>, ApplyError> {
        let out = io.tool(ToolCall::new(
            "iptables-save",
            Category::Listing,
            self.save,
            &["-t", table],
        ))?;
        Ok((out.status == 0).then_some(out.stdout))
    }

    /// `iptables-restore ARGS` with `payload` on stdin, failing unless it exits 0.
    pub fn restore_io(
        &self,
        io: &mut dyn Executor,
        args: &[&str],
        payload: &[u8],
    ) -> Result<(), ApplyError> {
        io.tool_ok(
            ToolCall::new("iptables-restore", Category::Restore, self.restore, args).stdin(payload),
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_rules_counts_appends_only() {
        let save = "# Generated\n*nat\n:KUBE-SERVICES - [0:0]\n-A KUBE-SERVICES -j X\n-A PREROUTING -j KUBE-SERVICES\nCOMMIT\n";
        assert_eq!(count_rules(save), 2);
    }

    #[test]
    fn a_jump_displays_as_a_command_line() {
        let j = JumpRule::new(
            "nat",
            "OUTPUT",
            "KUBE-SERVICES",
            "kubernetes service portals",
            &["-m", "conntrack", "--ctstate", "NEW"],
        );
        assert_eq!(
            j.display("-I"),
            "-t nat -I OUTPUT -m conntrack --ctstate NEW -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES"
        );
    }

    #[test]
    fn a_jump_has_kube_proxys_argv_and_restore_line() {
        let j = JumpRule::new(
            "filter",
            "INPUT",
            "KUBE-EXTERNAL-SERVICES",
            "kubernetes externally-visible service portals",
            &["-m", "conntrack", "--ctstate", "NEW"],
        );
        assert_eq!(
            j.kube_argv("-C").join(" "),
            "-w 5 -W 100000 -C INPUT -t filter -m conntrack --ctstate NEW -m comment --comment kubernetes externally-visible service portals -j KUBE-EXTERNAL-SERVICES"
        );
        assert_eq!(j.kube_argv("-I")[8 + 6], "--comment");
        assert_eq!(
            j.kube_argv("-I")[8 + 7],
            "kubernetes externally-visible service portals"
        );
        assert_eq!(
            j.restore_line(),
            "-A INPUT -m conntrack --ctstate NEW -m comment --comment \"kubernetes externally-visible service portals\" -j KUBE-EXTERNAL-SERVICES"
        );
        // kubelet's KUBE-FIREWALL jumps have no comment.
        let fw = JumpRule::new("filter", "OUTPUT", "KUBE-FIREWALL", "", &[]);
        assert_eq!(fw.restore_line(), "-A OUTPUT -j KUBE-FIREWALL");
        assert_eq!(
            fw.kube_argv("-C").join(" "),
            "-w 5 -W 100000 -C OUTPUT -t filter -j KUBE-FIREWALL"
        );
    }

    #[test]
    fn chains_are_read_from_save_output_as_kube_proxy_does() {
        let save = "# Generated by iptables-save\n*nat\n:PREROUTING ACCEPT [0:0]\n:KUBE-SVC-X - [0:0]\n-A KUBE-SERVICES -j KUBE-SVC-X\nCOMMIT\n";
        let chains = chains_in_save(save);
        assert_eq!(
            chains.into_iter().collect::<Vec<_>>(),
            ["KUBE-SVC-X", "PREROUTING"]
        );
    }

    #[test]
    fn ensure_calls_go_through_the_executor_in_kube_proxys_shape() {
        use crate::floor::sync::record::Recorder;
        let xt = Xtables::legacy();
        let mut io = Recorder::new(vec![Box::new(standin::XtablesStandIn::new(xt))]);
        let j = JumpRule::new(
            "nat",
            "OUTPUT",
            "KUBE-SERVICES",
            "kubernetes service portals",
            &[],
        );
        assert!(!xt.ensure_chain_io(&mut io, "nat", "KUBE-SERVICES").unwrap());
        assert!(xt.ensure_chain_io(&mut io, "nat", "KUBE-SERVICES").unwrap());
        assert!(!xt.ensure_rule_io(&mut io, &j).unwrap());
        assert!(xt.ensure_rule_io(&mut io, &j).unwrap());
        let save = xt.save_io(&mut io, "nat").unwrap().unwrap();
        assert!(chains_in_save(&save).contains("KUBE-SERVICES"));
        xt.restore_io(
            &mut io,
            &KUBE_RESTORE_ARGS,
            b"*nat\n:KUBE-MARK-MASQ - [0:0]\nCOMMIT\n",
        )
        .unwrap();
        assert_eq!(
            io.lines(),
            [
                "$ iptables-legacy -w 5 -W 100000 -N KUBE-SERVICES -t nat",
                "$ iptables-legacy -w 5 -W 100000 -N KUBE-SERVICES -t nat",
                "$ iptables-legacy -w 5 -W 100000 -C OUTPUT -t nat -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES",
                "$ iptables-legacy -w 5 -W 100000 -I OUTPUT -t nat -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES",
                "$ iptables-legacy -w 5 -W 100000 -C OUTPUT -t nat -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES",
                "$ iptables-legacy-save -t nat",
                "$ iptables-legacy-restore -w 5 -W 100000 --noflush --counters",
            ]
        );
    }

    #[test]
    fn legacy_tools_are_named_explicitly() {
        let x = Xtables::legacy();
        assert_eq!(
            [x.iptables, x.restore, x.save],
            [
                "iptables-legacy",
                "iptables-legacy-restore",
                "iptables-legacy-save"
            ]
        );
        assert_eq!(x.feature, KernelFeature::IpTables);
        assert_eq!(Xtables::nft().feature, KernelFeature::NfTables);
    }
}
