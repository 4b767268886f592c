//! Synthetic shapes: the scenario's `[synthetic]` table, fractions and histograms that
//! a shape of N services is drawn from, by a fixed pseudo-random sequence from `seed`
//! (the first N services of a larger draw are the smaller draw).

use std::collections::BTreeMap;

use dataplane::floor::shape::{EndpointCounts, Group, Shape, SplitMix, FORMAT};
use dataplane::floor::spec::{Protocol, ServiceType, TrafficPolicy};
use serde::{Deserialize, Serialize};

/// kube-proxy's default ClientIP affinity timeout, which synthetic affinity uses.
const AFFINITY_S: u32 = 10800;

/// `[synthetic]` as written (every field optional).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(in crate::scenario) struct RawSynthetic {
    seed: Option<i64>,
    nodeport: Option<f64>,
    loadbalancer: Option<f64>,
    affinity: Option<f64>,
    udp: Option<f64>,
    external_local: Option<f64>,
    nodes: Option<i64>,
    ports: Option<BTreeMap<String, f64>>,
    endpoints: Option<BTreeMap<String, f64>>,
}

/// The distributions a synthetic shape is drawn from, every default filled in.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Synthetic {
    /// Seed of the draw (default 1).
    pub seed: u64,
    /// Fraction of NodePort services (default 0).
    pub nodeport: f64,
    /// Fraction of LoadBalancer services (default 0).
    pub loadbalancer: f64,
    /// Fraction of services with ClientIP affinity (default 0).
    pub affinity: f64,
    /// Fraction of ports that are UDP (default 0).
    pub udp: f64,
    /// Fraction of NodePort and LoadBalancer services with
    /// `externalTrafficPolicy: Local` (default 0).
    pub external_local: f64,
    /// Nodes of the cluster: each endpoint is on the measured node with probability
    /// 1/nodes (default 10).
    pub nodes: u64,
    /// Ports per service: count -> weight (default {"1" = 1}).
    pub ports: BTreeMap<String, f64>,
    /// Endpoints per service: count -> weight (default {"10" = 1}).
    pub endpoints: BTreeMap<String, f64>,
}

/// Checks `[synthetic]`; `field(name, message)` names the bad field.
pub(in crate::scenario) fn synthetic<E>(
    raw: RawSynthetic,
    field: &impl Fn(&str, String) -> E,
) -> Result<Synthetic, E> {
    let fraction = |v: Option<f64>, name: &str| -> Result<f64, E> {
        let v = v.unwrap_or(0.0);
        if !(0.0..=1.0).contains(&v) {
            return Err(field(
                &format!("synthetic.{name}"),
                format!("{v} is not a fraction; use a number from 0 to 1"),
            ));
        }
        Ok(v)
    };
    let s = Synthetic {
        seed: raw.seed.unwrap_or(1).max(0) as u64,
        nodeport: fraction(raw.nodeport, "nodeport")?,
        loadbalancer: fraction(raw.loadbalancer, "loadbalancer")?,
        affinity: fraction(raw.affinity, "affinity")?,
        udp: fraction(raw.udp, "udp")?,
        external_local: fraction(raw.external_local, "external_local")?,
        nodes: match raw.nodes.unwrap_or(10) {
            n if n >= 1 => n as u64,
            n => {
                return Err(field(
                    "synthetic.nodes",
                    format!("{n} is too small; use a whole number >= 1"),
                ))
            }
        },
        ports: histogram(raw.ports, "1", 1, "synthetic.ports", field)?,
        endpoints: histogram(raw.endpoints, "10", 0, "synthetic.endpoints", field)?,
    };
    if s.nodeport + s.loadbalancer > 1.0 {
        return Err(field(
            "synthetic.nodeport",
            format!(
                "nodeport {} + loadbalancer {} exceed 1; the rest are ClusterIP services, so keep the sum at most 1",
                s.nodeport, s.loadbalancer
            ),
        ));
    }
    Ok(s)
}

/// A histogram `count -> weight`, each count a whole number >= `min`, each weight >= 0,
/// their sum > 0.
fn histogram<E>(
    v: Option<BTreeMap<String, f64>>,
    default: &str,
    min: u32,
    name: &str,
    field: &impl Fn(&str, String) -> E,
) -> Result<BTreeMap<String, f64>, E> {
    let v = v.unwrap_or_else(|| BTreeMap::from([(default.to_string(), 1.0)]));
    for (k, w) in &v {
        match k.parse::<u32>() {
            Ok(n) if n >= min => {}
            _ => {
                return Err(field(
                    name,
                    format!("key {k:?} is not a count; use whole numbers >= {min} as keys, e.g. {{ \"1\" = 0.8, \"3\" = 0.2 }}"),
                ))
            }
        }
        if !(w.is_finite() && *w >= 0.0) {
            return Err(field(
                name,
                format!("weight {w} of {k:?} is not a weight; use a number >= 0"),
            ));
        }
    }
    if v.values().sum::<f64>() <= 0.0 {
        return Err(field(
            name,
            "has no weight above 0; give at least one count a weight".into(),
        ));
    }
    Ok(v)
}

impl Synthetic {
    /// The shape of `n` services drawn from the distributions.
    pub fn draw(&self, n: usize) -> Shape {
        let mut rng = SplitMix(self.seed);
        let ports = parsed(&self.ports);
        let endpoints = parsed(&self.endpoints);
        let mut groups: BTreeMap<Group, u64> = BTreeMap::new();
        for _ in 0..n {
            let g = self.one(&mut rng, &ports, &endpoints);
            *groups.entry(g).or_insert(0) += 1;
        }
        let mut groups: Vec<Group> = groups
            .into_iter()
            .map(|(g, count)| Group { count, ..g })
            .collect();
        groups.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.cmp(b)));
        Shape {
            format: FORMAT.into(),
            source: "synthetic".into(),
            skipped: Default::default(),
            groups,
        }
    }

    /// One service's structure (count 0: the key).
    fn one(&self, rng: &mut SplitMix, ports: &[(u32, f64)], endpoints: &[(u32, f64)]) -> Group {
        let t = rng.unit();
        let kind = if t < self.nodeport {
            ServiceType::NodePort
        } else if t < self.nodeport + self.loadbalancer {
            ServiceType::LoadBalancer
        } else {
            ServiceType::ClusterIP
        };
        let affinity_timeout_s = (rng.unit() < self.affinity).then_some(AFFINITY_S);
        let local = kind.has_node_ports() && rng.unit() < self.external_local;
        let port_count = pick(ports, rng.unit()).max(1);
        let protocols: Vec<Protocol> = (0..port_count)
            .map(|_| {
                if rng.unit() < self.udp {
                    Protocol::Udp
                } else {
                    Protocol::Tcp
                }
            })
            .collect();
        let ready = pick(endpoints, rng.unit());
        let on_node = (0..ready)
            .filter(|_| rng.unit() < 1.0 / self.nodes as f64)
            .count();
        Group {
            affinity_timeout_s,
            external_traffic_policy: if local {
                TrafficPolicy::Local
            } else {
                TrafficPolicy::Cluster
            },
            endpoints: EndpointCounts {
                ready,
                local: on_node as u32,
                ..EndpointCounts::default()
            },
            ..Group::plain(0, kind, &protocols, ready)
        }
    }
}

fn parsed(h: &BTreeMap<String, f64>) -> Vec<(u32, f64)> {
    let total: f64 = h.values().sum();
    let mut v: Vec<(u32, f64)> = h
        .iter()
        .map(|(k, w)| (k.parse().expect("checked by `histogram`"), w / total))
        .collect();
    v.sort_by_key(|&(k, _)| k);
    v
}

/// The count whose cumulative weight first exceeds `u` in [0, 1).
fn pick(h: &[(u32, f64)], u: f64) -> u32 {
    let mut acc = 0.0;
    for &(k, w) in h {
        acc += w;
        if u < acc {
            return k;
        }
    }
    h.last().map_or(0, |&(k, _)| k)
}
