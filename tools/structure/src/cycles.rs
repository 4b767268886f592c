//! Import cycles: the strongly connected groups of the module graph (Tarjan's
//! algorithm), each reported with the imports that close it.

use crate::imports::Edge;
use crate::tree::Module;

/// A group of modules each reachable from every other through imports.
#[derive(Debug)]
pub struct Cycle {
    pub modules: Vec<String>,
    /// The imports inside the group: `from -> to (file:line)`.
    pub imports: Vec<String>,
}

impl std::fmt::Display for Cycle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "import cycle among {}: {}",
            self.modules.join(", "),
            self.imports.join("; ")
        )
    }
}

/// Every cycle of the graph, in module order.
pub fn find(modules: &[Module], edges: &[Edge]) -> Vec<Cycle> {
    let mut graph = vec![Vec::new(); modules.len()];
    for e in edges {
        graph[e.from].push(e.to);
    }
    let mut tarjan = Tarjan::new(modules.len());
    for v in 0..modules.len() {
        if tarjan.index[v].is_none() {
            tarjan.connect(v, &graph);
        }
    }
    let mut out: Vec<Cycle> = tarjan
        .groups
        .into_iter()
        .filter(|g| g.len() > 1)
        .map(|mut group| {
            group.sort_unstable();
            let imports = edges
                .iter()
                .filter(|e| group.contains(&e.from) && group.contains(&e.to))
                .map(|e| {
                    format!(
                        "{} -> {} ({})",
                        modules[e.from].name(),
                        modules[e.to].name(),
                        e.at
                    )
                })
                .collect();
            Cycle {
                modules: group.iter().map(|&i| modules[i].name()).collect(),
                imports,
            }
        })
        .collect();
    out.sort_by(|a, b| a.modules.cmp(&b.modules));
    out
}

struct Tarjan {
    next: usize,
    index: Vec<Option<usize>>,
    low: Vec<usize>,
    on_stack: Vec<bool>,
    stack: Vec<usize>,
    groups: Vec<Vec<usize>>,
}

impl Tarjan {
    fn new(n: usize) -> Self {
        Tarjan {
            next: 0,
            index: vec![None; n],
            low: vec![0; n],
            on_stack: vec![false; n],
            stack: Vec::new(),
            groups: Vec::new(),
        }
    }

    fn connect(&mut self, v: usize, graph: &[Vec<usize>]) {
        self.index[v] = Some(self.next);
        self.low[v] = self.next;
        self.next += 1;
        self.stack.push(v);
        self.on_stack[v] = true;
        for &w in &graph[v] {
            match self.index[w] {
                None => {
                    self.connect(w, graph);
                    self.low[v] = self.low[v].min(self.low[w]);
                }
                Some(iw) if self.on_stack[w] => self.low[v] = self.low[v].min(iw),
                Some(_) => {}
            }
        }
        if Some(self.low[v]) == self.index[v] {
            let mut group = Vec::new();
            while let Some(w) = self.stack.pop() {
                self.on_stack[w] = false;
                group.push(w);
                if w == v {
                    break;
                }
            }
            self.groups.push(group);
        }
    }
}
