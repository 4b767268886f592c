//! Stand-ins for what an IPVS sync touches (see [`crate::floor::sync::record`]): one in-memory
//! model of the node's IPVS table, `kube-ipvs0` and its addresses, ipsets and the
//! `nat`/`filter` x_tables rules, answering `iptables`, `iptables-restore`,
//! `iptables-save`, `ipset` and the netlink requests as the kernel and the tools would,
//! so that a controller's decisions (EnsureChain's "already exists", `-C` before `-I`,
//! `ipset list`, GET_SERVICE, GET_DEST with connection counts) come out as on a node.
//!
//! The model is shared: [`Node::standins`] boxes it for a
//! [`Recorder`](crate::floor::sync::record::Recorder) and the [`Node`] handle keeps reading it
//! (tests compare two profiles' final state, or give a real server connections).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex, MutexGuard};

use super::attrs::IP_VS_SVC_F_HASHED;
use super::message::{Op, RealServer, VirtualService};
use super::request::{NlReply, NlRequest};
use crate::floor::exec::Output;
use crate::floor::sync::standin::{failed, ok, StandIn};

/// Built-in chains of the two tables kube-proxy's IPVS mode writes.
const BUILTIN: [(&str, &[&str]); 2] = [
    ("nat", &["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"]),
    ("filter", &["INPUT", "FORWARD", "OUTPUT"]),
];

/// The dummy device's index in the model (after `lo`, 1).
pub const FIRST_LINK_INDEX: u32 = 2;

/// One ipset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ipset {
    pub kind: String,
    /// The create options as `ipset list` prints them in `Header:`.
    pub header: String,
    pub entries: BTreeSet<String>,
}

/// The modelled node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeState {
    /// (table, chain) -> rules, each as its arguments after `-A CHAIN`, quoted as
    /// `iptables-save` prints them.
    pub chains: BTreeMap<(String, String), Vec<String>>,
    pub ipsets: BTreeMap<String, Ipset>,
    /// Virtual services in creation order, each with its real servers.
    pub services: Vec<(VirtualService, Vec<RealServer>)>,
    /// Links by name, with their index.
    pub links: BTreeMap<String, u32>,
    pub addresses: BTreeMap<u32, BTreeSet<Ipv4Addr>>,
    pub sysctls: BTreeMap<String, String>,
}

impl Default for NodeState {
    fn default() -> Self {
        let mut chains = BTreeMap::new();
        for (table, names) in BUILTIN {
            for c in names {
                chains.insert((table.to_string(), c.to_string()), Vec::new());
            }
        }
        NodeState {
            chains,
            ipsets: BTreeMap::new(),
            services: Vec::new(),
            links: BTreeMap::from([("lo".to_string(), 1)]),
            addresses: BTreeMap::new(),
            sysctls: BTreeMap::new(),
        }
    }
}

fn builtin(table: &str, chain: &str) -> bool {
    BUILTIN
        .iter()
        .any(|(t, names)| *t == table && names.contains(&chain))
}

/// Splits a restore line into arguments, honouring double quotes.
fn split_line(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut any = false;
    for c in line.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                any = true;
            }
            ' ' | '\t' if !quoted => {
                if any {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            _ => {
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

/// Rule arguments as one string in iptables-save's form: the kernel's canonical
/// order and encodings, quoted where they hold spaces, comments always quoted (the
/// conformance test found the kernel printing them so).
fn rule_text(args: &[String]) -> String {
    crate::xtables::standin::printed(&crate::xtables::canonical::canonical(args))
}

impl NodeState {
    fn chain_mut(&mut self, table: &str, chain: &str) -> Option<&mut Vec<String>> {
        self.chains.get_mut(&(table.to_string(), chain.to_string()))
    }

    /// `iptables-save -t TABLE` for the model (no counters, no comments).
    pub fn iptables_save(&self, table: &str) -> String {
        let mut out = format!("*{table}\n");
        let chains: Vec<_> = self
            .chains
            .iter()
            .filter(|((t, _), _)| t == table)
            .collect();
        for ((_, c), _) in &chains {
            if builtin(table, c) {
                out.push_str(&format!(":{c} ACCEPT [0:0]\n"));
            } else {
                out.push_str(&format!(":{c} - [0:0]\n"));
            }
        }
        for ((_, c), rules) in &chains {
            for r in rules.iter() {
                out.push_str(&format!("-A {c} {r}\n"));
            }
        }
        out.push_str("COMMIT\n");
        out
    }

    /// `ipset list [NAME]` for the model.
    pub fn ipset_list(&self, name: Option<&str>) -> Option<String> {
        let one = |n: &str, s: &Ipset| {
            let mut out = format!(
                "Name: {n}\nType: {}\nRevision: 0\nHeader: {}\nSize in memory: 0\nReferences: 0\nNumber of entries: {}\nMembers:\n",
                s.kind,
                s.header,
                s.entries.len()
            );
            for e in &s.entries {
                out.push_str(e);
                out.push('\n');
            }
            out
        };
        match name {
            Some(n) => self.ipsets.get(n).map(|s| one(n, s)),
            None => Some(
                self.ipsets
                    .iter()
                    .map(|(n, s)| one(n, s))
                    .collect::<Vec<_>>()
                    .join("\n"),
            ),
        }
    }

    /// What `ipvsadm -S -n`, `ipset list`, `iptables-save` and `ip link` / `ip addr`
    /// would show, and the sysctls: what two runs that should leave the same node
    /// compare.
    pub fn objects(&self) -> String {
        let mut out = self.ipvsadm_save().join("\n");
        out.push('\n');
        out.push_str(&self.ipset_list(None).unwrap_or_default());
        out.push_str(&self.iptables_save("nat"));
        out.push_str(&self.iptables_save("filter"));
        out.push_str(&format!(
            "{:?}\n{:?}\n{:?}\n",
            self.links, self.addresses, self.sysctls
        ));
        out
    }

    /// The IPVS table in `ipvsadm -S -n` form, sorted.
    pub fn ipvsadm_save(&self) -> Vec<String> {
        let mut lines = Vec::new();
        for (s, dests) in &self.services {
            let svc = s.name();
            lines.push(format!("-A {svc} -s {}{}", s.scheduler, s.persistence()));
            for d in dests {
                lines.push(format!(
                    "-a {svc} -r {} -m -w {}",
                    super::host_port(d.addr, d.port),
                    d.weight
                ));
            }
        }
        lines.sort();
        lines
    }

    fn iptables(&mut self, args: &[String]) -> Output {
        let mut table = "filter".to_string();
        let mut op: Option<(String, String)> = None;
        let mut rule = Vec::new();
        let mut i = 0;
        while i < args.len() {
            let a = args[i].as_str();
            match a {
                "-w" | "-W" => {
                    if args.get(i + 1).is_some_and(|n| n.parse::<u64>().is_ok()) {
                        i += 1;
                    }
                }
                "-t" => {
                    table = args.get(i + 1).cloned().unwrap_or_default();
                    i += 1;
                }
                "-N" | "-C" | "-I" | "-A" | "-D" | "-X" | "-F" | "-S" if op.is_none() => {
                    op = Some((a.to_string(), args.get(i + 1).cloned().unwrap_or_default()));
                    i += 1;
                }
                _ => rule.push(args[i].clone()),
            }
            i += 1;
        }
        let Some((op, chain)) = op else {
            return failed(2, "iptables: no command given\n");
        };
        let text = rule_text(&rule);
        let key = (table.clone(), chain.clone());
        let exists = self.chains.contains_key(&key);
        match op.as_str() {
            "-N" if exists => failed(1, "iptables: Chain already exists.\n"),
            "-N" => {
                self.chains.insert(key, Vec::new());
                ok("")
            }
            _ if !exists => failed(1, "iptables: No chain/target/match by that name.\n"),
            "-C" if self.chains[&key].contains(&text) => ok(""),
            "-C" => failed(
                1,
                "iptables: Bad rule (does a matching rule exist in that chain?).\n",
            ),
            "-I" => {
                self.chains.get_mut(&key).expect("exists").insert(0, text);
                ok("")
            }
            "-A" => {
                self.chains.get_mut(&key).expect("exists").push(text);
                ok("")
            }
            "-D" => {
                let rules = self.chains.get_mut(&key).expect("exists");
                match rules.iter().position(|r| *r == text) {
                    Some(p) => {
                        rules.remove(p);
                        ok("")
                    }
                    None => failed(1, "iptables: Bad rule.\n"),
                }
            }
            "-F" => {
                self.chains.get_mut(&key).expect("exists").clear();
                ok("")
            }
            "-X" => {
                self.chains.remove(&key);
                ok("")
            }
            _ => ok(""),
        }
    }

    fn iptables_restore(&mut self, args: &[String], input: &str) -> Output {
        let noflush = args.iter().any(|a| a == "--noflush" || a == "-n");
        let mut table = String::new();
        for (n, line) in input.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || line == "COMMIT" {
                continue;
            }
            if let Some(t) = line.strip_prefix('*') {
                table = t.to_string();
                if !noflush {
                    self.chains.retain(|(tb, c), _| tb != t || builtin(t, c));
                    for ((tb, _), rules) in self.chains.iter_mut() {
                        if tb == t {
                            rules.clear();
                        }
                    }
                }
                continue;
            }
            if let Some(decl) = line.strip_prefix(':') {
                let chain = decl.split_whitespace().next().unwrap_or_default();
                if !builtin(&table, chain) {
                    // A declared chain is created, or flushed if it exists.
                    self.chains
                        .insert((table.clone(), chain.to_string()), Vec::new());
                }
                continue;
            }
            let words = split_line(line);
            let (Some(op), Some(chain)) = (words.first(), words.get(1)) else {
                return failed(2, format!("iptables-restore: line {} failed\n", n + 1));
            };
            let text = rule_text(&words[2..]);
            let Some(rules) = self.chain_mut(&table, chain) else {
                return failed(
                    2,
                    format!("iptables-restore: line {}: no chain {chain}\n", n + 1),
                );
            };
            match op.as_str() {
                "-A" => rules.push(text),
                "-I" => rules.insert(0, text),
                "-X" => {
                    self.chains.remove(&(table.clone(), chain.clone()));
                }
                _ => return failed(2, format!("iptables-restore: line {} failed\n", n + 1)),
            }
        }
        ok("")
    }

    /// One `ipset` command (as arguments), with `-exist` from the command line or a
    /// restore.
    fn ipset_command(&mut self, words: &[String], exist: bool) -> Result<String, String> {
        let exist = exist || words.iter().any(|w| w == "-exist");
        let words: Vec<&str> = words
            .iter()
            .map(String::as_str)
            .filter(|w| *w != "-exist")
            .collect();
        let missing = |n: &str| format!("The set with the given name does not exist: {n}");
        match words.as_slice() {
            ["create", name, kind, opts @ ..] => {
                let header = header_of(kind, opts);
                match self.ipsets.get(*name) {
                    Some(s) if exist && s.kind == *kind && s.header == header => Ok(String::new()),
                    Some(_) => {
                        Err("Set cannot be created: set with the same name already exists".into())
                    }
                    None => {
                        self.ipsets.insert(
                            name.to_string(),
                            Ipset {
                                kind: kind.to_string(),
                                header,
                                entries: BTreeSet::new(),
                            },
                        );
                        Ok(String::new())
                    }
                }
            }
            ["add", name, entry] => {
                let s = self.ipsets.get_mut(*name).ok_or_else(|| missing(name))?;
                if !s.entries.insert(entry.to_string()) && !exist {
                    return Err("Element cannot be added to the set: it's already added".into());
                }
                Ok(String::new())
            }
            ["del", name, entry] => {
                let s = self.ipsets.get_mut(*name).ok_or_else(|| missing(name))?;
                if !s.entries.remove(*entry) && !exist {
                    return Err("Element cannot be deleted from the set: it's not added".into());
                }
                Ok(String::new())
            }
            ["list", name] => self.ipset_list(Some(name)).ok_or_else(|| missing(name)),
            ["list"] => Ok(self.ipset_list(None).unwrap_or_default()),
            ["flush", name] => {
                let s = self.ipsets.get_mut(*name).ok_or_else(|| missing(name))?;
                s.entries.clear();
                Ok(String::new())
            }
            ["destroy", name] => {
                self.ipsets.remove(*name).ok_or_else(|| missing(name))?;
                Ok(String::new())
            }
            other => Err(format!("unsupported command {other:?}")),
        }
    }

    fn ipset(&mut self, args: &[String], stdin: Option<&[u8]>) -> Output {
        if args.first().map(String::as_str) == Some("restore") {
            let exist = args.iter().any(|a| a == "-exist");
            let input = String::from_utf8_lossy(stdin.unwrap_or_default()).into_owned();
            for (n, line) in input.lines().enumerate() {
                let words = split_line(line);
                if words.is_empty() || words[0] == "COMMIT" {
                    continue;
                }
                if let Err(e) = self.ipset_command(&words, exist) {
                    return failed(1, format!("ipset v7.0: Error in line {}: {e}\n", n + 1));
                }
            }
            return ok("");
        }
        match self.ipset_command(args, false) {
            Ok(out) => ok(out),
            Err(e) => failed(1, format!("ipset v7.0: {e}\n")),
        }
    }

    fn service_mut(
        &mut self,
        s: &VirtualService,
    ) -> Option<&mut (VirtualService, Vec<RealServer>)> {
        self.services.iter_mut().find(|(v, _)| v.same_key(s))
    }

    /// Applies one IPVS change; the errno the kernel would answer when it refuses it.
    fn apply(&mut self, op: &Op<'_>) -> Result<(), i32> {
        match op {
            Op::NewService(s) => {
                if self.service_mut(s).is_some() {
                    return Err(libc::EEXIST);
                }
                self.services.push(((*s).clone(), Vec::new()));
            }
            Op::SetService(s) => {
                let (v, _) = self.service_mut(s).ok_or(libc::ESRCH)?;
                *v = (*s).clone();
            }
            Op::DelService(s) => {
                let before = self.services.len();
                self.services.retain(|(v, _)| !v.same_key(s));
                if self.services.len() == before {
                    return Err(libc::ESRCH);
                }
            }
            Op::NewDest(s, d) => {
                let (_, dests) = self.service_mut(s).ok_or(libc::ESRCH)?;
                if dests.iter().any(|x| x.same_key(d)) {
                    return Err(libc::EEXIST);
                }
                dests.push(RealServer {
                    active_conns: 0,
                    inact_conns: 0,
                    ..*d
                });
            }
            Op::SetDest(s, d) => {
                let (_, dests) = self.service_mut(s).ok_or(libc::ESRCH)?;
                let x = dests
                    .iter_mut()
                    .find(|x| x.same_key(d))
                    .ok_or(libc::ENOENT)?;
                *x = RealServer {
                    active_conns: x.active_conns,
                    inact_conns: x.inact_conns,
                    ..*d
                };
            }
            Op::DelDest(s, d) => {
                let (_, dests) = self.service_mut(s).ok_or(libc::ESRCH)?;
                let before = dests.len();
                dests.retain(|x| !x.same_key(d));
                if dests.len() == before {
                    return Err(libc::ENOENT);
                }
            }
            Op::Flush => self.services.clear(),
        }
        Ok(())
    }

    fn netlink(&mut self, req: &NlRequest<'_>) -> Option<NlReply> {
        let hashed = |s: &VirtualService| VirtualService {
            flags: s.flags | IP_VS_SVC_F_HASHED,
            ..s.clone()
        };
        Some(match req {
            NlRequest::Ipvs(op) => {
                let _ = self.apply(op);
                NlReply::Done
            }
            NlRequest::IpvsBatch { ops, .. } => {
                for op in ops.iter() {
                    let _ = self.apply(op);
                }
                NlReply::Done
            }
            NlRequest::GetService(s) => NlReply::Service(
                self.services
                    .iter()
                    .find(|(v, _)| v.same_key(s))
                    .map(|(v, _)| hashed(v)),
            ),
            NlRequest::DumpServices => {
                NlReply::Services(self.services.iter().map(|(v, _)| hashed(v)).collect())
            }
            NlRequest::DumpDests(s) => NlReply::Dests(
                self.services
                    .iter()
                    .find(|(v, _)| v.same_key(s))
                    .map(|(_, d)| d.clone())
                    .unwrap_or_default(),
            ),
            NlRequest::EnsureDummy(name) => {
                let next = self.links.values().max().copied().unwrap_or(1) + 1;
                let index = *self.links.entry(name.to_string()).or_insert(next);
                NlReply::Index(index)
            }
            NlRequest::Addresses(i) => NlReply::Addresses(
                self.addresses
                    .get(i)
                    .map(|a| a.iter().copied().collect())
                    .unwrap_or_default(),
            ),
            NlRequest::AddAddresses(i, ips) => {
                self.addresses.entry(*i).or_default().extend(ips.iter());
                NlReply::Done
            }
            NlRequest::DelAddresses(i, ips) => {
                if let Some(a) = self.addresses.get_mut(i) {
                    for ip in ips.iter() {
                        a.remove(ip);
                    }
                }
                NlReply::Done
            }
            NlRequest::Sysctls(list) => {
                for (k, v) in list.iter() {
                    self.sysctls.insert(k.to_string(), v.to_string());
                }
                NlReply::Done
            }
        })
    }
}

/// `ipset list`'s `Header:` for a set created with `opts` (`hash:ip` sets get ipset's
/// defaults, as the kernel reports them).
fn header_of(kind: &str, opts: &[&str]) -> String {
    if opts.is_empty() && kind.starts_with("hash:") {
        return "family inet hashsize 1024 maxelem 65536".into();
    }
    opts.join(" ")
}

/// A shared handle on a modelled node.
#[derive(Debug, Clone, Default)]
pub struct Node(Arc<Mutex<NodeState>>);

impl Node {
    pub fn new() -> Self {
        Node::default()
    }

    /// The model, to read or change (e.g. give a real server connections).
    pub fn state(&self) -> MutexGuard<'_, NodeState> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stand-ins answering from this node, for a recorder.
    pub fn standins(&self) -> Vec<Box<dyn StandIn>> {
        vec![Box::new(NodeStandIn(self.clone()))]
    }

    /// Sets the connection counts the kernel would report for a real server.
    pub fn set_conns(&self, vip: Ipv4Addr, port: u16, rs: Ipv4Addr, active: u32, inact: u32) {
        let mut st = self.state();
        for (v, dests) in st.services.iter_mut() {
            if v.addr == IpAddr::V4(vip) && v.port == port {
                for d in dests.iter_mut() {
                    if d.addr == IpAddr::V4(rs) {
                        d.active_conns = active;
                        d.inact_conns = inact;
                    }
                }
            }
        }
    }
}

struct NodeStandIn(Node);

impl StandIn for NodeStandIn {
    fn tool(&mut self, program: &str, args: &[String], stdin: Option<&[u8]>) -> Option<Output> {
        let mut st = self.0.state();
        let base = program.rsplit('/').next().unwrap_or(program);
        if base == "ipset" {
            return Some(st.ipset(args, stdin));
        }
        // `ipvsadm -S -n`, for the conformance read-back.
        if base == "ipvsadm" && args.iter().any(|a| a == "-S") {
            let mut text = st.ipvsadm_save().join("\n");
            text.push('\n');
            return Some(ok(text));
        }
        if !base.starts_with("iptables") {
            return None;
        }
        if base.ends_with("-restore") {
            let input = String::from_utf8_lossy(stdin.unwrap_or_default()).into_owned();
            return Some(st.iptables_restore(args, &input));
        }
        if base.ends_with("-save") {
            let table = args
                .iter()
                .position(|a| a == "-t")
                .and_then(|p| args.get(p + 1))
                .map(String::as_str);
            let out = match table {
                Some(t) => st.iptables_save(t),
                None => st.iptables_save("nat") + &st.iptables_save("filter"),
            };
            return Some(ok(out));
        }
        Some(st.iptables(args))
    }
}

/// The node's answer to a netlink request, when `standin` is this mode's node.
pub(crate) fn answer(standin: &mut dyn StandIn, req: &NlRequest<'_>) -> Option<NlReply> {
    let node = standin.downcast_mut::<NodeStandIn>()?;
    node.0.state().netlink(req)
}
