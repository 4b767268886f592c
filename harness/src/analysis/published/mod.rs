//! Published figures beside kpbench's: the experiments people quote (the Kubernetes
//! nftables blog, Huawei's KubeCon 2017 talk, Tigera's 2019 comparison), kept with their
//! source and setup in `scenarios/published.json` (embedded), and, for each, kpbench's
//! measurement of the same quantity in one environment, with the one rule's verdict on
//! whether the published shape ("iptables grows, nftables flat") holds here.
//!
//! The comparison is of shapes, never of absolute values: the sources ran other
//! machines, kernels and releases, and each entry lists what differs.

mod measure;

use serde::Deserialize;

use crate::analysis::cases::{self, EnvKey, Row};
use crate::results::{Results, Trend};

pub use measure::{Measured, Point};

/// The committed data file, embedded so every report can draw it.
pub const PUBLISHED_JSON: &str = include_str!("../../../../scenarios/published.json");

/// `scenarios/published.json`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Published {
    pub format: String,
    pub entries: Vec<Entry>,
}

/// One published experiment and the quantity it reports.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub id: String,
    pub source: Source,
    /// The setup as the source states it.
    pub setup: String,
    pub quantity: Quantity,
    /// Which statistic the source reports (p50, p99, a single timing...).
    pub statistic: String,
    /// The published figures, as the source gives them.
    pub figures: Vec<Figure>,
    /// The shapes the source draws from them, one per mode (or pair of modes).
    pub shapes: Vec<Shape>,
    /// What differs between the source's setup and kpbench's.
    pub differences: Vec<String>,
    /// What could not be verified in the source, if anything.
    #[serde(default)]
    pub caveat: Option<String>,
}

impl Entry {
    /// The smallest and largest service count of its figures: kpbench's cases in that
    /// range stand beside them (the source's shape is over that range; kpbench need not
    /// have run its exact counts).
    pub fn range(&self) -> (u64, u64) {
        let n = self.figures.iter().map(|f| f.services);
        (n.clone().min().unwrap_or(0), n.max().unwrap_or(0))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    pub title: String,
    pub org: String,
    pub date: String,
    pub url: String,
}

/// The quantity an entry reports, and so the kpbench figure set beside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Quantity {
    /// Latency of a new connection's first packet: kpbench's in-kernel SYN transit at
    /// the first and last service position, and its cost per position.
    FirstPacketLatency,
    /// The time to program one added service with the others present: kpbench's
    /// add-service sync.
    AddServiceSync,
    /// The dataplane's CPU at a fixed request rate: kpbench's in-kernel node time per
    /// request.
    DataplaneCpu,
}

impl Quantity {
    /// What kpbench measures for it, in words.
    pub fn kpbench_words(self) -> &'static str {
        match self {
            Quantity::FirstPacketLatency => {
                "the SYN's transit through the node, timed inside the kernel (p50 at the first \
                 and last service position, ns), and the cost per service position with its \
                 interval across replicates"
            }
            Quantity::AddServiceSync => {
                "the add-one-service sync with the others present (p50 with its interval, ms)"
            }
            Quantity::DataplaneCpu => {
                "the node's in-kernel time for a new connection's SYN and SYN-ACK, timed by the \
                 transit probes (median over the service positions with its interval, us; at \
                 1,000 new connections per second, 1 us is 0.1% of a core)"
            }
        }
    }
}

/// One published figure.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Figure {
    /// As the source names the mode ("iptables", "IPVS").
    pub mode: String,
    pub services: u64,
    /// The figure; `None` when the source only draws it (then `quote` says so).
    #[serde(default)]
    pub value: Option<f64>,
    pub unit: String,
    /// The statistic when the entry gives several (`p50`, `p99`).
    #[serde(default)]
    pub statistic: Option<String>,
    /// The source's words for it, or where in a chart it is.
    pub quote: String,
}

/// The shape a source draws: a mode's figure grows with the service count or stays
/// flat; with `versus`, the mode's figure against another mode's at the same scale
/// (`grows`: higher).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Shape {
    /// As the source names the mode.
    pub mode: String,
    /// The kpbench modes that stand for it (the source's "iptables" may be either
    /// backend).
    pub kpbench: Vec<String>,
    pub expect: Expect,
    /// The kpbench mode it is compared with, for a comparison between modes.
    #[serde(default)]
    pub versus: Option<String>,
    /// The smallest service count the shape is claimed from (Tigera: "beyond 1,000
    /// services"); kpbench's smaller scales are left out of its verdict.
    #[serde(default)]
    pub from_services: Option<u64>,
    /// The source's words for the shape.
    pub words: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Expect {
    Grows,
    Flat,
}

impl Expect {
    pub fn label(self) -> &'static str {
        match self {
            Expect::Grows => "grows",
            Expect::Flat => "flat",
        }
    }
}

/// Whether kpbench's verdict on a figure agrees with the published shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Agreement {
    Agrees,
    Disagrees,
    /// kpbench's interval cannot tell.
    Inconclusive,
    /// kpbench's figure moved against physics: an artefact, never a confirmation.
    Artefact,
}

impl Agreement {
    /// The published shape `expect` against kpbench's verdict `got` on the same figure.
    pub fn of(expect: Expect, got: Trend) -> Agreement {
        match (expect, got) {
            (Expect::Grows, Trend::Grows) | (Expect::Flat, Trend::Flat) => Agreement::Agrees,
            (_, Trend::Inconclusive) => Agreement::Inconclusive,
            (_, Trend::Unexpected) => Agreement::Artefact,
            _ => Agreement::Disagrees,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Agreement::Agrees => "agrees",
            Agreement::Disagrees => "disagrees",
            Agreement::Inconclusive => "cannot tell (inconclusive)",
            Agreement::Artefact => "cannot tell (kpbench's figure is likely an artefact)",
        }
    }
}

/// The committed entries.
pub fn load() -> Published {
    parse(PUBLISHED_JSON).expect("scenarios/published.json is checked by its tests")
}

/// Reads a published-figures file.
pub fn parse(text: &str) -> Result<Published, String> {
    let p: Published = serde_json::from_str(text).map_err(|e| {
        format!("scenarios/published.json: {e}: fix the entry at that line and column")
    })?;
    if p.format != "kpbench.published/1" {
        return Err(format!(
            "scenarios/published.json: format {:?}: this kpbench reads \"kpbench.published/1\"",
            p.format
        ));
    }
    for e in &p.entries {
        for s in &e.shapes {
            if s.kpbench.is_empty() {
                return Err(format!(
                    "scenarios/published.json: entry {:?}, shape of {:?}: `kpbench` names no \
                     mode: list the kpbench modes that stand for it",
                    e.id, s.mode
                ));
            }
        }
        if e.figures.is_empty() {
            return Err(format!(
                "scenarios/published.json: entry {:?} has no figures",
                e.id
            ));
        }
    }
    Ok(p)
}

/// One entry's comparison in one environment.
#[derive(Debug, Clone)]
pub struct Compared<'e> {
    pub entry: &'e Entry,
    pub env: EnvKey,
    /// Per published shape, each kpbench mode standing for it: its figures and verdict.
    pub shapes: Vec<(&'e Shape, Vec<Measured>)>,
}

/// Every entry with a kpbench case within its range of scales, per environment. An
/// entry none of whose modes ran in that range is left out.
pub fn compare<'e>(published: &'e Published, results: &[Results]) -> Vec<Compared<'e>> {
    let rows = cases::rows(results);
    let envs = cases::envs(&rows);
    let mut out = Vec::new();
    for entry in &published.entries {
        let (lo, hi) = entry.range();
        for env in &envs {
            let here: Vec<Row<'_>> = rows
                .iter()
                .copied()
                .filter(|r| &r.env() == env && (lo..=hi).contains(&r.case.services))
                .collect();
            if here.is_empty() {
                continue;
            }
            let shapes: Vec<(&Shape, Vec<Measured>)> = entry
                .shapes
                .iter()
                .map(|s| {
                    let m = s
                        .kpbench
                        .iter()
                        .filter_map(|mode| measure::measure(entry.quantity, s, mode, &here))
                        .collect();
                    (s, m)
                })
                .collect();
            if shapes.iter().any(|(_, m)| !m.is_empty()) {
                out.push(Compared {
                    entry,
                    env: env.clone(),
                    shapes,
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;
