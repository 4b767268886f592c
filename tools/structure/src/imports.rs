//! The imports between modules: every `use` and every path in code that starts with
//! `crate`, `self`, `super` or the name of a child module, resolved to the deepest
//! module it names. Doc comments and macro bodies are not code, so they import nothing.

use crate::tree::Module;
use std::collections::{BTreeMap, HashSet};
use syn::visit::Visit;

/// An import of module `to` by module `from` (indices into the module list), first
/// seen at `file:line`.
#[derive(Debug, Clone)]
pub struct Edge {
    pub from: usize,
    pub to: usize,
    pub at: String,
}

/// Imports between modules, one per (from, to) pair. An import between a module and
/// one of its own ancestors or descendants is left out: a parent declaring, composing
/// and re-exporting its children, and a child using what its parent defines, is the
/// module tree itself, not a dependency between parts of the program.
pub fn edges(modules: &[Module]) -> Vec<Edge> {
    let index: BTreeMap<&[String], usize> = modules
        .iter()
        .enumerate()
        .map(|(i, m)| (m.path.as_slice(), i))
        .collect();
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (from, module) in modules.iter().enumerate() {
        let mut paths = Paths::default();
        for item in &module.items {
            paths.visit_item(item);
        }
        for (segments, line) in paths.found {
            let Some(absolute) = resolve(&module.path, &segments, &index) else {
                continue;
            };
            let Some(to) = deepest(&absolute, &index) else {
                continue;
            };
            let target = &modules[to].path;
            if related(&module.path, target) || !seen.insert((from, to)) {
                continue;
            }
            out.push(Edge {
                from,
                to,
                at: format!("{}:{line}", module.file.display()),
            });
        }
    }
    out
}

/// Whether one path is a prefix of the other (the same module, an ancestor or a
/// descendant).
fn related(a: &[String], b: &[String]) -> bool {
    let n = a.len().min(b.len());
    a[..n] == b[..n]
}

/// The path made absolute (below `crate`), or `None` for a path outside the crate.
fn resolve(
    here: &[String],
    segments: &[String],
    index: &BTreeMap<&[String], usize>,
) -> Option<Vec<String>> {
    let first = segments.first()?;
    let (mut base, rest) = match first.as_str() {
        "crate" => (Vec::new(), &segments[1..]),
        "self" => (here.to_vec(), &segments[1..]),
        "super" => (here.to_vec(), segments),
        _ => {
            let mut child = here.to_vec();
            child.push(first.clone());
            if !index.contains_key(child.as_slice()) {
                return None;
            }
            (here.to_vec(), segments)
        }
    };
    let mut rest = rest;
    while rest.first().map(String::as_str) == Some("super") {
        base.pop()?;
        rest = &rest[1..];
    }
    base.extend(rest.iter().cloned());
    Some(base)
}

/// The deepest module that `path` lies in (a path may end in an item of it).
fn deepest(path: &[String], index: &BTreeMap<&[String], usize>) -> Option<usize> {
    (0..=path.len())
        .rev()
        .find_map(|n| index.get(&path[..n]).copied())
}

/// Paths collected from one module's items, each with the line it starts on.
#[derive(Default)]
struct Paths {
    found: Vec<(Vec<String>, usize)>,
}

impl Paths {
    fn use_tree(&mut self, prefix: &mut Vec<String>, tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                self.use_tree(prefix, &p.tree);
                prefix.pop();
            }
            syn::UseTree::Name(n) => self.push_use(prefix, Some(&n.ident)),
            syn::UseTree::Rename(r) => self.push_use(prefix, Some(&r.ident)),
            syn::UseTree::Glob(_) => self.push_use(prefix, None),
            syn::UseTree::Group(g) => {
                for tree in &g.items {
                    self.use_tree(prefix, tree);
                }
            }
        }
    }

    fn push_use(&mut self, prefix: &[String], last: Option<&syn::Ident>) {
        let mut segments = prefix.to_vec();
        let mut line = 0;
        if let Some(ident) = last {
            line = ident.span().start().line;
            if ident != "self" {
                segments.push(ident.to_string());
            }
        }
        self.found.push((segments, line));
    }
}

impl<'ast> Visit<'ast> for Paths {
    fn visit_item_use(&mut self, item: &'ast syn::ItemUse) {
        let line = item.use_token.span.start().line;
        let before = self.found.len();
        self.use_tree(&mut Vec::new(), &item.tree);
        for entry in &mut self.found[before..] {
            if entry.1 == 0 {
                entry.1 = line;
            }
        }
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        if path.leading_colon.is_none() && path.segments.len() > 1 {
            let segments = path.segments.iter().map(|s| s.ident.to_string()).collect();
            let line = path.segments[0].ident.span().start().line;
            self.found.push((segments, line));
        }
        syn::visit::visit_path(self, path);
    }

    // An inline module's items are its own module's, read separately.
    fn visit_item_mod(&mut self, _: &'ast syn::ItemMod) {}
}
