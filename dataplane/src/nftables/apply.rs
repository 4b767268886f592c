//! Programming kube-proxy's nftables transaction into a namespace, as knftables does:
//! the whole transaction on stdin of one `nft -f -`; reads with `nft --json list`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{expected_elements, expected_rules, render_full_shaped, render_partial, Shape};
use crate::backend::{ApplyError, Backend, Mode, SyncReport};
use crate::exec::Tool;
use crate::model::ServiceSet;
use crate::netns::Netns;

/// kube-proxy's nftables mode.
#[derive(Debug, Clone, Default)]
pub struct NftablesBackend {
    /// Statement order of full syncs.
    pub shape: Shape,
}

impl NftablesBackend {
    pub fn new() -> Self {
        Self::default()
    }

    /// A backend writing full syncs in a given statement order (for the investigation
    /// in `examples/nft_full_sync.rs`).
    pub fn with_shape(shape: Shape) -> Self {
        NftablesBackend { shape }
    }

    fn payload(&self, old: Option<&ServiceSet>, new: &ServiceSet) -> super::Payload {
        match old {
            None => render_full_shaped(new, self.shape),
            Some(old) => render_partial(old, new),
        }
    }
}

/// `nft --json list table ip kube-proxy` in `ns`, parsed.
fn list_json(ns: &Netns, timeout: Duration) -> Result<Value, ApplyError> {
    let out = Tool::new("nft", &["--json", "list", "table", "ip", "kube-proxy"])
        .netns(ns)
        .timeout(timeout)
        .run_ok()?;
    serde_json::from_str(&out.stdout).map_err(|e| {
        ApplyError::Other(format!(
            "nft --json list table ip kube-proxy in namespace {}: unparsable output: {e}",
            ns.name
        ))
    })
}

fn objects(listing: &Value) -> impl Iterator<Item = (&str, &serde_json::Map<String, Value>)> {
    listing["nftables"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|o| o.as_object())
        .filter_map(|o| {
            let (kind, body) = o.iter().next()?;
            Some((kind.as_str(), body.as_object()?))
        })
}

/// Counts (rules, named set and map elements) in an `nft --json list` output.
pub fn count_objects(listing: &Value) -> (usize, usize) {
    let mut rules = 0;
    let mut elements = 0;
    for (kind, body) in objects(listing) {
        match kind {
            "rule" => rules += 1,
            "set" | "map" => {
                elements += body
                    .get("elem")
                    .and_then(Value::as_array)
                    .map_or(0, Vec::len)
            }
            _ => {}
        }
    }
    (rules, elements)
}

/// The table in `ns` in a canonical form that does not depend on the history that
/// built it: handles dropped, chains and sets keyed by name, each chain with its rules
/// in order, set and map elements sorted. Two namespaces hold the same ruleset exactly
/// when these strings are equal.
pub fn normalized_listing(ns: &Netns, timeout: Duration) -> Result<String, ApplyError> {
    let listing = list_json(ns, timeout)?;
    let mut out: BTreeMap<String, Value> = BTreeMap::new();
    let mut rules: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for (kind, body) in objects(&listing) {
        let mut body = body.clone();
        body.remove("handle");
        let name = body
            .get("name")
            .or_else(|| body.get("chain"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        match kind {
            "metainfo" => {}
            "rule" => rules.entry(name).or_default().push(Value::Object(body)),
            _ => {
                if let Some(Value::Array(elems)) = body.get_mut("elem") {
                    elems.sort_by_cached_key(|e| e.to_string());
                }
                out.insert(format!("{kind} {name}"), Value::Object(body));
            }
        }
    }
    for (chain, list) in rules {
        out.insert(format!("rules of {chain}"), Value::Array(list));
    }
    let mut text = String::new();
    for (k, v) in out {
        text.push_str(&k);
        text.push_str(": ");
        text.push_str(&v.to_string());
        text.push('\n');
    }
    Ok(text)
}

impl Backend for NftablesBackend {
    fn mode(&self) -> Mode {
        Mode::Nftables
    }

    fn tools(&self) -> Vec<&'static str> {
        vec!["nft"]
    }

    fn render(&self, old: Option<&ServiceSet>, new: &ServiceSet) -> String {
        self.payload(old, new).text
    }

    fn sync(
        &self,
        ns: &Netns,
        old: Option<&ServiceSet>,
        new: &ServiceSet,
        timeout: Duration,
    ) -> Result<SyncReport, ApplyError> {
        // Rendering is part of what kube-proxy does per sync, so it is inside the wall
        // time; it costs far less than nft itself.
        let start = Instant::now();
        let payload = self.payload(old, new);
        let out = Tool::new("nft", &["-f", "-"])
            .stdin(payload.text.as_bytes())
            .netns(ns)
            .timeout(
                timeout
                    .saturating_sub(start.elapsed())
                    .max(Duration::from_millis(1)),
            )
            .run_ok()?;
        let mut cost = out.cost;
        cost.wall = start.elapsed();
        Ok(SyncReport {
            cost,
            payload_bytes: payload.text.len(),
        })
    }

    fn read_back(&self, ns: &Netns, timeout: Duration) -> Result<usize, ApplyError> {
        let (rules, elements) = count_objects(&list_json(ns, timeout)?);
        Ok(rules + elements)
    }

    fn expected_objects(&self, set: &ServiceSet) -> usize {
        expected_rules(set) + expected_elements(set)
    }

    fn object_kind(&self) -> &'static str {
        "nftables rules and map elements"
    }
}
