//! A stand-in for `nft` and the kernel's `ip kube-proxy` table, for the recording
//! executor: `nft -f -` applies a transaction all or nothing, `nft --json list ...`
//! answers from what transactions created, with nft's own output shapes and errors.
//!
//! It models what the controllers' decisions depend on, and what a kernel refuses:
//! objects that do not exist ("No such file or directory"), an element added again with
//! another value ("File exists"), deleting a chain that still has rules or that a rule
//! or map element jumps to, or a set a rule uses ("Device or resource busy"). A rule or
//! element jumping to a missing chain is refused too. It does not parse rule
//! expressions beyond `jump`/`goto` targets and `@set` references, and it releases
//! references at once, as kernels from 6.2 do.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{json, Value};

use crate::floor::exec::Output;
use crate::floor::sync::standin::{failed, ok, StandIn};

/// The family and table the stand-in holds.
const FAMILY: &str = "ip";
const TABLE: &str = "kube-proxy";

#[derive(Debug, Clone, Default)]
struct Chain {
    handle: u64,
    /// `(type, hook, priority)` of a base chain.
    base: Option<(String, String, i64)>,
    rules: Vec<String>,
}

#[derive(Debug, Clone, Default)]
struct Set {
    handle: u64,
    map: bool,
    /// key -> the element as written (key, comment, value).
    elems: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default)]
struct Table {
    handle: u64,
    chains: BTreeMap<String, Chain>,
    sets: BTreeMap<String, Set>,
}

/// The kernel state: kube-proxy's table, if it exists.
#[derive(Debug, Clone, Default)]
struct State {
    table: Option<Table>,
    next_handle: u64,
}

/// The stand-in. Clones share one state, so a test can keep a clone to look at what
/// the recorder's copy was told.
#[derive(Debug, Clone, Default)]
pub struct NftStandIn {
    state: Arc<Mutex<State>>,
}

/// A statement the kernel refused: errno text and the statement.
struct Refused {
    errno: &'static str,
    line: String,
}

const ENOENT: &str = "No such file or directory";
const EEXIST: &str = "File exists";
const EBUSY: &str = "Device or resource busy";

/// The `goto`/`jump` targets in a rule or element value.
fn targets(text: &str) -> impl Iterator<Item = &str> {
    let mut words = text.split_whitespace().peekable();
    std::iter::from_fn(move || {
        while let Some(w) = words.next() {
            if w == "goto" || w == "jump" {
                if let Some(t) = words.next() {
                    return Some(t.trim_end_matches([',', '}']));
                }
            }
        }
        None
    })
}

/// The named sets a rule uses (`@name`).
fn set_refs(text: &str) -> impl Iterator<Item = &str> {
    text.split_whitespace().filter_map(|w| w.strip_prefix('@'))
}

/// The element bodies between `{ ` and ` }`, split at top-level `, `.
fn elements(rest: &str) -> Vec<&str> {
    let inner = rest
        .trim()
        .strip_prefix('{')
        .and_then(|r| r.strip_suffix('}'))
        .unwrap_or("")
        .trim();
    if inner.is_empty() {
        return Vec::new();
    }
    inner.split(", ").map(str::trim).collect()
}

/// An element's key: what comes before its comment or value.
fn element_key(body: &str) -> &str {
    let end = [body.find(" comment "), body.find(" : ")]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(body.len());
    body[..end].trim()
}

/// `type T hook H priority P` in a chain's `{ ... }`.
fn base_chain(spec: &str) -> Option<(String, String, i64)> {
    let words: Vec<&str> = spec.split_whitespace().collect();
    let after = |key: &str| {
        words
            .iter()
            .position(|w| *w == key)
            .and_then(|i| words.get(i + 1))
            .copied()
    };
    Some((
        after("type")?.to_string(),
        after("hook")?.to_string(),
        after("priority")?.parse().ok()?,
    ))
}

impl Table {
    /// `add chain`: a new chain gets `handle`; a base chain's `{ type .. hook ..
    /// priority .. }` is kept.
    fn add_chain(&mut self, name: &str, rest: &str, handle: u64) {
        let chain = self.chains.entry(name.to_string()).or_insert(Chain {
            handle,
            ..Chain::default()
        });
        if let Some(base) = base_chain(rest) {
            chain.base = Some(base);
        }
    }

    /// `delete chain`: refused while it has rules or anything jumps to it.
    fn delete_chain(&mut self, name: &str) -> Result<(), &'static str> {
        let chain = self.chains.get(name).ok_or(ENOENT)?;
        if !chain.rules.is_empty() || State::referenced(self, name) {
            return Err(EBUSY);
        }
        self.chains.remove(name);
        Ok(())
    }

    /// `add rule`: its jump targets and the sets it uses must exist.
    fn add_rule(&mut self, chain: &str, rule: &str) -> Result<(), &'static str> {
        for t in targets(rule) {
            if !self.chains.contains_key(t) {
                return Err(ENOENT);
            }
        }
        for s in set_refs(rule) {
            if !self.sets.contains_key(s) {
                return Err(ENOENT);
            }
        }
        let chain = self.chains.get_mut(chain).ok_or(ENOENT)?;
        chain.rules.push(rule.to_string());
        Ok(())
    }

    /// `delete set` or `delete map`: refused while a rule uses it.
    fn delete_set(&mut self, name: &str) -> Result<(), &'static str> {
        self.sets.get(name).ok_or(ENOENT)?;
        let used = self
            .chains
            .values()
            .flat_map(|c| &c.rules)
            .any(|r| set_refs(r).any(|s| s == name));
        if used {
            return Err(EBUSY);
        }
        self.sets.remove(name);
        Ok(())
    }

    /// `add element`: every element's jump targets must exist, and an element already
    /// there must be the same.
    fn add_elements(&mut self, set: &str, rest: &str) -> Result<(), &'static str> {
        let bodies = elements(rest);
        for body in &bodies {
            for t in targets(body) {
                if !self.chains.contains_key(t) {
                    return Err(ENOENT);
                }
            }
        }
        let set = self.sets.get_mut(set).ok_or(ENOENT)?;
        for body in bodies {
            let key = element_key(body).to_string();
            match set.elems.get(&key) {
                Some(prev) if prev != body => return Err(EEXIST),
                _ => {
                    set.elems.insert(key, body.to_string());
                }
            }
        }
        Ok(())
    }
}

impl State {
    fn handle(&mut self) -> u64 {
        self.next_handle += 1;
        self.next_handle
    }

    /// Whether any rule or map element of `table` jumps to `chain`.
    fn referenced(table: &Table, chain: &str) -> bool {
        let in_rules = table
            .chains
            .values()
            .flat_map(|c| &c.rules)
            .any(|r| targets(r).any(|t| t == chain));
        in_rules
            || table
                .sets
                .values()
                .flat_map(|s| s.elems.values())
                .any(|e| targets(e).any(|t| t == chain))
    }

    /// Applies one statement to `state`.
    fn apply(&mut self, state: &mut Option<Table>, line: &str) -> Result<(), &'static str> {
        let words: Vec<&str> = line.split_whitespace().collect();
        let (verb, kind) = match words.as_slice() {
            [verb, kind, family, table, ..] if *family == FAMILY && *table == TABLE => {
                (*verb, *kind)
            }
            _ => return Err("Operation not supported"),
        };
        if kind == "table" {
            return self.apply_table(state, verb);
        }
        let handle = self.handle();
        let table = state.as_mut().ok_or(ENOENT)?;
        let name = *words.get(4).ok_or("syntax error")?;
        // What follows the name, as written.
        let rest = line
            .splitn(6, char::is_whitespace)
            .nth(5)
            .unwrap_or("")
            .trim();
        match (verb, kind) {
            ("add", "chain") => {
                table.add_chain(name, rest, handle);
                Ok(())
            }
            ("flush", "chain") => {
                table.chains.get_mut(name).ok_or(ENOENT)?.rules.clear();
                Ok(())
            }
            ("delete", "chain") => table.delete_chain(name),
            ("add", "rule") => table.add_rule(name, rest),
            ("add", "set" | "map") => {
                table.sets.entry(name.to_string()).or_insert(Set {
                    handle,
                    map: kind == "map",
                    elems: BTreeMap::new(),
                });
                Ok(())
            }
            ("flush", "set" | "map") => {
                table.sets.get_mut(name).ok_or(ENOENT)?.elems.clear();
                Ok(())
            }
            ("delete", "set" | "map") => table.delete_set(name),
            ("add", "element") => table.add_elements(name, rest),
            ("delete", "element") => {
                let set = table.sets.get_mut(name).ok_or(ENOENT)?;
                for body in elements(rest) {
                    set.elems.remove(element_key(body)).ok_or(ENOENT)?;
                }
                Ok(())
            }
            _ => Err("Operation not supported"),
        }
    }

    /// `add`, `delete` or `flush` of the table itself.
    fn apply_table(&mut self, state: &mut Option<Table>, verb: &str) -> Result<(), &'static str> {
        match verb {
            "add" => {
                if state.is_none() {
                    *state = Some(Table {
                        handle: self.handle(),
                        ..Table::default()
                    });
                }
                Ok(())
            }
            "delete" => state.take().map(|_| ()).ok_or(ENOENT),
            "flush" => {
                let t = state.as_mut().ok_or(ENOENT)?;
                t.chains.values_mut().for_each(|c| c.rules.clear());
                t.sets.values_mut().for_each(|s| s.elems.clear());
                Ok(())
            }
            _ => Err("Operation not supported"),
        }
    }

    /// `nft -f -`: every statement or none.
    fn transaction(&mut self, stdin: &str) -> Output {
        let mut state = self.table.clone();
        let mut refused: Vec<Refused> = Vec::new();
        for line in stdin.lines().map(str::trim).filter(|l| !l.is_empty()) {
            if let Err(errno) = self.apply(&mut state, line) {
                refused.push(Refused {
                    errno,
                    line: line.to_string(),
                });
                // The kernel aborts the batch at the first error.
                break;
            }
        }
        if refused.is_empty() {
            self.table = state;
            return ok("");
        }
        let mut stderr = String::new();
        for (i, r) in refused.iter().enumerate() {
            stderr.push_str(&format!(
                "/dev/stdin:{}:1-{}: Error: Could not process rule: {}\n{}\n",
                i + 1,
                r.line.len(),
                r.errno,
                r.line
            ));
        }
        failed(1, stderr)
    }

    fn chain_json(name: &str, c: &Chain) -> Value {
        let mut body = json!({"family": FAMILY, "table": TABLE, "name": name, "handle": c.handle});
        if let Some((kind, hook, prio)) = &c.base {
            body["type"] = json!(kind);
            body["hook"] = json!(hook);
            body["prio"] = json!(prio);
            body["policy"] = json!("accept");
        }
        json!({ "chain": body })
    }

    fn set_json(name: &str, s: &Set, with_elems: bool) -> Value {
        let kind = if s.map { "map" } else { "set" };
        let mut body = json!({"family": FAMILY, "name": name, "table": TABLE, "handle": s.handle});
        if with_elems && !s.elems.is_empty() {
            body["elem"] = Value::Array(s.elems.values().map(|e| json!(e)).collect());
        }
        json!({ kind: body })
    }

    /// `nft --json list ...`: only the shapes the controllers and tests use.
    fn list(&self, args: &[&str]) -> Output {
        let meta = json!({"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}});
        let mut objects = vec![meta];
        let terse = args.contains(&"--terse");
        let rest: Vec<&str> = args
            .iter()
            .copied()
            .filter(|a| *a != "--json" && *a != "--terse")
            .collect();
        match rest.as_slice() {
            ["list", "chains", FAMILY] => {
                if let Some(t) = &self.table {
                    objects.extend(t.chains.iter().map(|(n, c)| Self::chain_json(n, c)));
                }
            }
            ["list", "sets", FAMILY] => {
                if let Some(t) = &self.table {
                    objects.extend(
                        t.sets
                            .iter()
                            .filter(|(_, s)| !s.map)
                            .map(|(n, s)| Self::set_json(n, s, true)),
                    );
                }
            }
            ["list", "table", FAMILY, TABLE] => {
                let Some(t) = &self.table else {
                    return failed(
                        1,
                        "Error: No such file or directory\nlist table ip kube-proxy\n              ^^^^^^^^^^\n",
                    );
                };
                objects
                    .push(json!({"table": {"family": FAMILY, "name": TABLE, "handle": t.handle}}));
                objects.extend(t.sets.iter().map(|(n, s)| Self::set_json(n, s, !terse)));
                for (name, c) in &t.chains {
                    objects.push(Self::chain_json(name, c));
                }
                for (name, c) in &t.chains {
                    for rule in &c.rules {
                        objects.push(json!({"rule": {"family": FAMILY, "table": TABLE, "chain": name, "rule": rule}}));
                    }
                }
            }
            _ => return failed(1, format!("nft stand-in: unsupported listing {args:?}")),
        }
        ok(json!({ "nftables": objects }).to_string())
    }
}

/// `nft list table ip kube-proxy` (text) of the model: its state in the form the kernel
/// lists it (rules through [`printed::rule`]), for the conformance tests. Set types,
/// flags and comments are not modelled, so they are not listed.
impl State {
    fn list_text(&self) -> Output {
        let Some(t) = &self.table else {
            return failed(
                1,
                "Error: No such file or directory\nlist table ip kube-proxy\n",
            );
        };
        let mut out = format!("table {FAMILY} {TABLE} {{\n");
        for (name, s) in &t.sets {
            out.push_str(&format!(
                "\t{} {name} {{\n",
                if s.map { "map" } else { "set" }
            ));
            if !s.elems.is_empty() {
                let elems: Vec<&str> = s.elems.values().map(String::as_str).collect();
                out.push_str(&format!(
                    "\t\telements = {{ {} }}\n",
                    elems.join(",\n\t\t\t     ")
                ));
            }
            out.push_str("\t}\n");
        }
        for (name, c) in &t.chains {
            out.push_str(&format!("\tchain {name} {{\n"));
            if let Some((kind, hook, prio)) = &c.base {
                out.push_str(&format!(
                    "\t\ttype {kind} hook {hook} priority {prio}; policy accept;\n"
                ));
            }
            for r in &c.rules {
                out.push_str(&format!("\t\t{}\n", super::printed::rule(r)));
            }
            out.push_str("\t}\n");
        }
        out.push_str("}\n");
        ok(out)
    }
}

impl NftStandIn {
    /// An empty kernel: no kube-proxy table.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether kube-proxy's table exists.
    pub fn has_table(&self) -> bool {
        self.state().table.is_some()
    }

    /// The chains of the table, by name.
    pub fn chains(&self) -> Vec<String> {
        self.state()
            .table
            .as_ref()
            .map(|t| t.chains.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// The rules of a chain, as written after the chain name.
    pub fn rules(&self, chain: &str) -> Vec<String> {
        self.state()
            .table
            .as_ref()
            .and_then(|t| t.chains.get(chain))
            .map(|c| c.rules.clone())
            .unwrap_or_default()
    }

    /// The elements of a set or map, as written, in key order.
    pub fn elements(&self, set: &str) -> Vec<String> {
        self.state()
            .table
            .as_ref()
            .and_then(|t| t.sets.get(set))
            .map(|s| s.elems.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Every chain with its rules and every set with its elements, one line each in
    /// name order: two stand-ins hold the same objects exactly when these are equal.
    pub fn dump(&self) -> String {
        let state = self.state();
        let Some(t) = state.table.as_ref() else {
            return String::new();
        };
        let mut out = String::new();
        for (name, c) in &t.chains {
            out.push_str(&format!("chain {name} {:?}\n", c.base));
            for r in &c.rules {
                out.push_str(&format!("  rule {r}\n"));
            }
        }
        for (name, s) in &t.sets {
            out.push_str(&format!("{} {name}\n", if s.map { "map" } else { "set" }));
            for e in s.elems.values() {
                out.push_str(&format!("  elem {e}\n"));
            }
        }
        out
    }
}

impl StandIn for NftStandIn {
    fn tool(&mut self, program: &str, args: &[String], stdin: Option<&[u8]>) -> Option<Output> {
        if program != "nft" {
            return None;
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut state = self.state();
        Some(match args.as_slice() {
            ["-f", "-"] => state.transaction(&String::from_utf8_lossy(stdin.unwrap_or_default())),
            ["list", "table", FAMILY, TABLE] => state.list_text(),
            a if a.first() == Some(&"--json") => state.list(a),
            a => failed(1, format!("nft stand-in: unsupported invocation {a:?}")),
        })
    }
}
