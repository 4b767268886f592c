//! An in-memory model of the x_tables tools for the recording executor: `iptables -N`
//! answers "already exists" the second time, `-C` answers 1 until `-I` ran,
//! `iptables-save` lists what restores created, and `iptables-restore` applies its
//! payload atomically per table (or fails, changing nothing), so the decisions a
//! controller takes from these answers come out as against a real kernel.

use std::collections::BTreeMap;

use super::canonical::canonical;
use super::Xtables;
use crate::floor::exec::Output;
use crate::floor::sync::standin::{failed, ok, StandIn};

/// The built-in chains of an x_tables table, in `iptables-save` order.
fn builtins(table: &str) -> &'static [&'static str] {
    match table {
        "filter" => &["INPUT", "FORWARD", "OUTPUT"],
        "nat" => &["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"],
        "mangle" => &["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"],
        "raw" => &["PREROUTING", "OUTPUT"],
        "security" => &["INPUT", "FORWARD", "OUTPUT"],
        _ => &[],
    }
}

/// One rule: its arguments after the chain name, unquoted.
type Rule = Vec<String>;

#[derive(Debug, Clone, Default, PartialEq)]
struct Table {
    /// Every chain, built-in ones included, with its rules in order.
    chains: BTreeMap<String, Vec<Rule>>,
}

impl Table {
    fn new(name: &str) -> Self {
        Table {
            chains: builtins(name)
                .iter()
                .map(|c| (c.to_string(), Vec::new()))
                .collect(),
        }
    }

    /// Whether a rule anywhere in the table jumps or goes to `chain`.
    fn referenced(&self, chain: &str) -> bool {
        self.chains.values().flatten().any(|rule| {
            rule.windows(2)
                .any(|w| (w[0] == "-j" || w[0] == "-g") && w[1] == chain)
        })
    }

    /// Applies one command line of a restore payload (`-A`, `-I`, `-D`, `-N`, `-F`,
    /// `-X`) to this table, named `name`; the reason when iptables-restore would fail
    /// it.
    fn restore_command(&mut self, name: &str, line: &str) -> Result<(), String> {
        let tokens = tokenize(line);
        let (op, chain) = match (tokens.first(), tokens.get(1)) {
            (Some(op), Some(chain)) => (op.as_str(), chain.clone()),
            _ => return Err("short line".into()),
        };
        let rest: Rule = tokens[2..].to_vec();
        match op {
            "-A" | "-I" => self.restore_insert(op, &chain, rest),
            "-D" => self.restore_delete(&chain, &rest),
            "-N" => {
                if self.chains.contains_key(&chain) {
                    return Err("chain exists".into());
                }
                self.chains.insert(chain, Vec::new());
                Ok(())
            }
            "-F" => match self.chains.get_mut(&chain) {
                Some(rules) => {
                    rules.clear();
                    Ok(())
                }
                None => Err(format!("chain {chain} does not exist")),
            },
            "-X" => self.restore_delete_chain(name, &chain),
            _ => Err(format!("unknown command {op}")),
        }
    }

    /// A restore's `-A` (append) or `-I` (insert, at a 1-based position if given).
    fn restore_insert(&mut self, op: &str, chain: &str, mut rest: Rule) -> Result<(), String> {
        let position = if op == "-I" {
            rest.first().and_then(|a| a.parse::<usize>().ok())
        } else {
            None
        };
        if position.is_some() {
            rest.remove(0);
        }
        let rest = canonical(&rest);
        if let Some(target) = rest
            .windows(2)
            .find(|w| w[0] == "-j" || w[0] == "-g")
            .map(|w| w[1].clone())
        {
            // A jump to one of kube-proxy's chains needs the chain; the
            // other targets are extensions (DNAT, MARK, RETURN, ...).
            let known = self.chains.contains_key(&target) || !target.starts_with("KUBE-");
            if !known {
                return Err(format!("target {target} does not exist"));
            }
        }
        let Some(rules) = self.chains.get_mut(chain) else {
            return Err(format!("chain {chain} does not exist"));
        };
        match position {
            Some(p) => {
                let at = p.saturating_sub(1).min(rules.len());
                rules.insert(at, rest);
            }
            None if op == "-I" => rules.insert(0, rest),
            None => rules.push(rest),
        }
        Ok(())
    }

    /// A restore's `-D` of a rule given by its arguments.
    fn restore_delete(&mut self, chain: &str, rest: &[String]) -> Result<(), String> {
        let Some(rules) = self.chains.get_mut(chain) else {
            return Err(format!("chain {chain} does not exist"));
        };
        let rest = canonical(rest);
        match rules.iter().position(|r| *r == rest) {
            Some(i) => {
                rules.remove(i);
                Ok(())
            }
            None => Err("no such rule".into()),
        }
    }

    /// A restore's `-X` of a chain of table `name`: not a built-in one, nor one a rule
    /// still jumps to.
    fn restore_delete_chain(&mut self, name: &str, chain: &str) -> Result<(), String> {
        if !self.chains.contains_key(chain) || builtins(name).contains(&chain) {
            return Err(format!("chain {chain} does not exist"));
        }
        if self.referenced(chain) {
            return Err(format!("chain {chain} is referenced"));
        }
        self.chains.remove(chain);
        Ok(())
    }
}

/// The model of one host's x_tables state, answering the three binaries of `xt`.
#[derive(Debug, Clone)]
pub struct XtablesStandIn {
    xt: Xtables,
    tables: BTreeMap<String, Table>,
}

/// Splits an `iptables-restore` line into arguments: whitespace-separated, double
/// quotes grouping (and removed), `\"` an escaped quote.
fn tokenize(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut any = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
                any = true;
            }
            '"' => {
                quoted = !quoted;
                any = true;
            }
            c if c.is_whitespace() && !quoted => {
                if any {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            c => {
                cur.push(c);
                any = true;
            }
        }
    }
    if any {
        out.push(cur);
    }
    out
}

fn quote(arg: &str) -> String {
    if arg.is_empty() || arg.contains(' ') {
        format!("\"{arg}\"")
    } else {
        arg.to_string()
    }
}

/// A rule's arguments as `iptables-save` and `-S` print them: quoted where they have
/// spaces, and a comment always quoted (the comment match prints its text with
/// `xtables_save_string`, which quotes every string).
pub(crate) fn printed(rule: &[String]) -> String {
    let mut out: Vec<String> = Vec::with_capacity(rule.len());
    for (i, a) in rule.iter().enumerate() {
        if i > 0 && rule[i - 1] == "--comment" {
            out.push(format!(
                "\"{}\"",
                a.replace('\\', "\\\\").replace('"', "\\\"")
            ));
        } else {
            out.push(quote(a));
        }
    }
    out.join(" ")
}

/// An `iptables` command line, parsed.
struct Command<'a> {
    table: &'a str,
    op: &'a str,
    chain: &'a str,
    position: Option<usize>,
    rule: Rule,
}

fn parse_command(args: &[String]) -> Option<Command<'_>> {
    let mut table = "filter";
    let mut i = 0;
    let mut op = None;
    while i < args.len() {
        match args[i].as_str() {
            "-w" => {
                i += 1;
                if args.get(i).is_some_and(|a| a.parse::<u32>().is_ok()) {
                    i += 1;
                }
            }
            "-W" => i += 2,
            "-t" => {
                table = args.get(i + 1)?;
                i += 2;
            }
            _ => {
                op = Some(args[i].as_str());
                i += 1;
                break;
            }
        }
    }
    let op = op?;
    let chain = args.get(i).map(String::as_str).unwrap_or("");
    i += 1;
    let mut position = None;
    if op == "-I" {
        if let Some(n) = args.get(i).and_then(|a| a.parse::<usize>().ok()) {
            position = Some(n);
            i += 1;
        }
    }
    if args.get(i).map(String::as_str) == Some("-t") {
        table = args.get(i + 1)?;
        i += 2;
    }
    Some(Command {
        table,
        op,
        chain,
        position,
        // Kept, and matched by -C and -D, in the form the kernel prints back.
        rule: canonical(&args[i.min(args.len())..]),
    })
}

impl XtablesStandIn {
    /// An empty host (no tables yet) answering `xt`'s binaries.
    pub fn new(xt: Xtables) -> Self {
        XtablesStandIn {
            xt,
            tables: BTreeMap::new(),
        }
    }

    fn table(&mut self, name: &str) -> &mut Table {
        self.tables
            .entry(name.to_string())
            .or_insert_with(|| Table::new(name))
    }

    /// `iptables-save [-t TABLE]` of the model: built-in chains first, then the
    /// others by name; rules as their arguments, quoted where they have spaces.
    pub fn save(&self, only: Option<&str>) -> String {
        let mut out = String::from("# Generated by iptables-save (kpbench stand-in)\n");
        for (name, t) in &self.tables {
            if only.is_some_and(|o| o != name) {
                continue;
            }
            out.push_str(&format!("*{name}\n"));
            let bi = builtins(name);
            let order = bi.iter().map(|c| c.to_string()).chain(
                t.chains
                    .keys()
                    .filter(|c| !bi.contains(&c.as_str()))
                    .cloned(),
            );
            let order: Vec<String> = order.collect();
            for c in &order {
                let policy = if bi.contains(&c.as_str()) {
                    "ACCEPT"
                } else {
                    "-"
                };
                out.push_str(&format!(":{c} {policy} [0:0]\n"));
            }
            for c in &order {
                for rule in &t.chains[c] {
                    out.push_str(&format!("-A {c} {}\n", printed(rule)));
                }
            }
            out.push_str("COMMIT\n");
        }
        out
    }

    fn iptables(&mut self, args: &[String]) -> Output {
        let Some(cmd) = parse_command(args) else {
            return failed(2, "iptables: bad command line (stand-in)\n");
        };
        let builtin = builtins(cmd.table).contains(&cmd.chain);
        let t = self.table(cmd.table);
        let missing = || failed(1, "iptables: No chain/target/match by that name.\n");
        match cmd.op {
            "-N" => {
                if t.chains.contains_key(cmd.chain) {
                    return failed(1, "iptables: Chain already exists.\n");
                }
                t.chains.insert(cmd.chain.to_string(), Vec::new());
                ok("")
            }
            "-C" => match t.chains.get(cmd.chain) {
                Some(rules) if rules.contains(&cmd.rule) => ok(""),
                Some(_) => failed(
                    1,
                    "iptables: Bad rule (does a matching rule exist in that chain?).\n",
                ),
                None => missing(),
            },
            "-I" | "-A" => {
                let Some(rules) = t.chains.get_mut(cmd.chain) else {
                    return missing();
                };
                if cmd.op == "-A" {
                    rules.push(cmd.rule);
                } else {
                    let at = cmd.position.unwrap_or(1).saturating_sub(1).min(rules.len());
                    rules.insert(at, cmd.rule);
                }
                ok("")
            }
            "-D" => {
                let Some(rules) = t.chains.get_mut(cmd.chain) else {
                    return missing();
                };
                match rules.iter().position(|r| *r == cmd.rule) {
                    Some(i) => {
                        rules.remove(i);
                        ok("")
                    }
                    None => failed(
                        1,
                        "iptables: Bad rule (does a matching rule exist in that chain?).\n",
                    ),
                }
            }
            "-F" => match t.chains.get_mut(cmd.chain) {
                Some(rules) => {
                    rules.clear();
                    ok("")
                }
                None => missing(),
            },
            "-X" => {
                if builtin || !t.chains.contains_key(cmd.chain) {
                    return missing();
                }
                if t.referenced(cmd.chain) {
                    return failed(1, "iptables: Too many links.\n");
                }
                t.chains.remove(cmd.chain);
                ok("")
            }
            "-S" => match t.chains.get(cmd.chain) {
                Some(rules) => {
                    let mut out = if builtin {
                        format!("-P {} ACCEPT\n", cmd.chain)
                    } else {
                        format!("-N {}\n", cmd.chain)
                    };
                    for r in rules {
                        out.push_str(&format!("-A {} {}\n", cmd.chain, printed(r)));
                    }
                    ok(out)
                }
                None => missing(),
            },
            _ => failed(
                2,
                format!("iptables: unknown option {} (stand-in)\n", cmd.op),
            ),
        }
    }

    fn restore(&mut self, args: &[String], stdin: &[u8]) -> Output {
        let noflush = args.iter().any(|a| a == "--noflush" || a == "-n");
        let only = args
            .iter()
            .position(|a| a == "-T")
            .and_then(|i| args.get(i + 1))
            .cloned();
        let text = String::from_utf8_lossy(stdin);
        let mut staged: Option<(String, Table)> = None;
        let mut done: Vec<(String, Table)> = Vec::new();
        let fail = |n: usize, why: &str| {
            failed(
                1,
                format!("iptables-restore: line {n} failed: {why} (stand-in)\n"),
            )
        };
        for (i, line) in text.lines().enumerate() {
            let n = i + 1;
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some(name) = line.strip_prefix('*') {
                let current = if noflush {
                    self.tables
                        .get(name)
                        .cloned()
                        .unwrap_or_else(|| Table::new(name))
                } else {
                    Table::new(name)
                };
                staged = Some((name.to_string(), current));
                continue;
            }
            let Some((name, t)) = staged.as_mut() else {
                return fail(n, "no table");
            };
            if line == "COMMIT" {
                done.push(staged.take().expect("checked above"));
                continue;
            }
            if let Some(rest) = line.strip_prefix(':') {
                let chain = rest.split(' ').next().unwrap_or("");
                if builtins(name).contains(&chain) {
                    continue;
                }
                t.chains.insert(chain.to_string(), Vec::new());
                continue;
            }
            if let Err(why) = t.restore_command(name, line) {
                return fail(n, &why);
            }
        }
        if staged.is_some() {
            return failed(
                1,
                "iptables-restore: COMMIT expected at line end (stand-in)\n",
            );
        }
        for (name, t) in done {
            if only.as_ref().is_some_and(|o| *o != name) {
                continue;
            }
            self.tables.insert(name, t);
        }
        ok("")
    }
}

impl StandIn for XtablesStandIn {
    fn tool(&mut self, program: &str, args: &[String], stdin: Option<&[u8]>) -> Option<Output> {
        if program == self.xt.iptables {
            Some(self.iptables(args))
        } else if program == self.xt.save {
            let only = args
                .iter()
                .position(|a| a == "-t")
                .and_then(|i| args.get(i + 1))
                .map(String::as_str);
            Some(ok(self.save(only)))
        } else if program == self.xt.restore {
            Some(self.restore(args, stdin.unwrap_or_default()))
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<String> {
        tokenize(line)
    }

    fn run(s: &mut XtablesStandIn, program: &str, line: &str, stdin: Option<&str>) -> Output {
        s.tool(program, &args(line), stdin.map(str::as_bytes))
            .expect("its own program")
    }

    #[test]
    fn ensure_calls_answer_as_iptables_does() {
        let xt = Xtables::legacy();
        let mut s = XtablesStandIn::new(xt);
        let new = "-w 5 -W 100000 -N KUBE-SERVICES -t nat";
        assert_eq!(run(&mut s, xt.iptables, new, None).status, 0);
        assert_eq!(run(&mut s, xt.iptables, new, None).status, 1);
        let rule = "-w 5 -W 100000 -C OUTPUT -t nat -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES";
        assert_eq!(run(&mut s, xt.iptables, rule, None).status, 1);
        let insert = rule.replace(" -C ", " -I ");
        assert_eq!(run(&mut s, xt.iptables, &insert, None).status, 0);
        assert_eq!(run(&mut s, xt.iptables, rule, None).status, 0);
        let save = run(&mut s, xt.save, "-t nat", None).stdout;
        assert!(save.contains(":KUBE-SERVICES - [0:0]\n"), "{save}");
        assert!(save.contains(
            "-A OUTPUT -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n"
        ));
        assert!(s.tool("nft", &[], None).is_none());
    }

    #[test]
    fn a_restore_applies_atomically_and_lists_in_save() {
        let xt = Xtables::legacy();
        let mut s = XtablesStandIn::new(xt);
        let ok_payload = "*nat\n:KUBE-SERVICES - [0:0]\n:KUBE-SVC-A - [0:0]\n-A KUBE-SERVICES -m comment --comment \"a b\" -j KUBE-SVC-A\n-A KUBE-SVC-A -j DNAT --to-destination 1.2.3.4:80\nCOMMIT\n";
        assert_eq!(
            run(&mut s, xt.restore, "--noflush", Some(ok_payload)).status,
            0
        );
        let chains = crate::xtables::chains_in_save(&s.save(Some("nat")));
        assert!(chains.contains("KUBE-SVC-A") && chains.contains("POSTROUTING"));
        // Deleting a chain still referenced fails, and changes nothing.
        let bad = "*nat\n:KUBE-SVC-A - [0:0]\n-X KUBE-SVC-A\nCOMMIT\n";
        let before = s.save(None);
        assert_eq!(run(&mut s, xt.restore, "--noflush", Some(bad)).status, 1);
        assert_eq!(s.save(None), before);
        let good = "*nat\n:KUBE-SERVICES - [0:0]\n:KUBE-SVC-A - [0:0]\n-X KUBE-SVC-A\nCOMMIT\n";
        assert_eq!(run(&mut s, xt.restore, "--noflush", Some(good)).status, 0);
        assert!(!s.save(None).contains("KUBE-SVC-A"));
        // Without --noflush the table starts from its built-in chains.
        let fresh = "*nat\n:KUBE-MARK-MASQ - [0:0]\nCOMMIT\n";
        assert_eq!(run(&mut s, xt.restore, "", Some(fresh)).status, 0);
        let chains = crate::xtables::chains_in_save(&s.save(Some("nat")));
        assert!(!chains.contains("KUBE-SERVICES") && chains.contains("KUBE-MARK-MASQ"));
    }
}
