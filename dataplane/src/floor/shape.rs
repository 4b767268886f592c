//! Shapes: a cluster's services as structure only (types, ports, affinity, policies,
//! endpoint counts and conditions), with no name, address or label, and the
//! [`ServiceSet`] kpbench programs for one, re-addressed into its own CIDRs. The JSON
//! form is the shape file (`kpbench.shape/1`, results/README.md "Shape files").

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::floor::model::{
    self, Endpoint, Service, ServiceSet, SizeError, ENDPOINT_PORT, MAX_ENDPOINTS_TOTAL,
    MAX_SERVICES, POD_CIDR, SERVICE_PORT,
};
use crate::floor::spec::{Conditions, Protocol, ServicePort, ServiceType, Spec, TrafficPolicy};

/// The `format` of every shape file this release reads and writes.
pub const FORMAT: &str = "kpbench.shape/1";

/// The first node port handed out; further ones count up from it (past kube-apiserver's
/// default 30000-32767 range when a shape needs more: kube-proxy takes any port).
pub const FIRST_NODE_PORT: u16 = 30000;
/// External IPs count up from 198.18.0.1 (RFC 2544's benchmark range).
const EXTERNAL_IP_BASE: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 0);
/// Load-balancer ingress IPs count up from 198.19.0.1.
const INGRESS_IP_BASE: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 0);
/// Source ranges are /24s counting up from 100.64.0.0/24 (RFC 6598's shared space).
const SOURCE_RANGE_BASE: Ipv4Addr = Ipv4Addr::new(100, 64, 0, 0);
/// Most addresses the external, ingress and source-range plans each hold.
const MAX_EXTRA_ADDRESSES: u64 = 65_000;

/// A shape file: every service of a cluster that kube-proxy programs, as groups of
/// identical structure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Shape {
    /// Always [`FORMAT`].
    pub format: String,
    /// Where it came from: `kubectl` (imported) or `synthetic`.
    pub source: String,
    /// Services kube-proxy skips, counted only.
    #[serde(default)]
    pub skipped: Skipped,
    pub groups: Vec<Group>,
}

/// Services kube-proxy does not program.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Skipped {
    /// `clusterIP: None`.
    pub headless: u64,
    /// `type: ExternalName`.
    pub external_name: u64,
}

/// `count` services of the same structure.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Group {
    pub count: u64,
    #[serde(rename = "type")]
    pub kind: ServiceType,
    /// Each port's protocol, in the service's order (at least one).
    pub ports: Vec<Protocol>,
    /// `sessionAffinity: ClientIP`'s timeout in seconds; absent for `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity_timeout_s: Option<u32>,
    #[serde(default)]
    pub external_traffic_policy: TrafficPolicy,
    #[serde(default)]
    pub internal_traffic_policy: TrafficPolicy,
    /// How many `loadBalancerSourceRanges`.
    #[serde(default)]
    pub source_ranges: u32,
    /// How many `externalIPs`.
    #[serde(default)]
    pub external_ips: u32,
    /// How many load-balancer ingress IPs.
    #[serde(default)]
    pub ingress_ips: u32,
    pub endpoints: EndpointCounts,
}

/// A service's endpoints by their conditions.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
#[serde(deny_unknown_fields)]
pub struct EndpointCounts {
    /// Ready (and serving, not terminating).
    pub ready: u32,
    /// Not ready, not terminating.
    #[serde(default)]
    pub not_ready: u32,
    /// Terminating and still serving.
    #[serde(default)]
    pub serving_terminating: u32,
    /// Terminating and no longer serving.
    #[serde(default)]
    pub terminating: u32,
    /// How many of them (the first ones, in the order above) run on the node itself.
    #[serde(default)]
    pub local: u32,
}

impl EndpointCounts {
    pub fn total(&self) -> u32 {
        self.ready + self.not_ready + self.serving_terminating + self.terminating
    }

    /// The conditions of endpoint `j` (0-based, in the order of the fields).
    fn conditions(&self, j: u32) -> Conditions {
        let local = j < self.local;
        let base = |ready, serving, terminating| Conditions {
            ready,
            serving,
            terminating,
            local,
        };
        if j < self.ready {
            base(true, true, false)
        } else if j < self.ready + self.not_ready {
            base(false, false, false)
        } else if j < self.ready + self.not_ready + self.serving_terminating {
            base(false, true, true)
        } else {
            base(false, false, true)
        }
    }
}

/// A shape that cannot be programmed: which group, what is wrong, the fix.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ShapeError {
    #[error("format {found:?} is not {FORMAT:?}; write the file with `kpbench shape import` of this release")]
    Format { found: String },
    #[error("groups[{group}]: {message}")]
    Group { group: usize, message: String },
    #[error("{0}")]
    Size(#[from] SizeError),
    #[error(
        "{what}: {needed} exceed the {max} kpbench's address plan holds; scale the shape down"
    )]
    Plan {
        what: &'static str,
        needed: u64,
        max: u64,
    },
}

impl Shape {
    /// Number of services kpbench programs for it.
    pub fn services(&self) -> u64 {
        self.groups.iter().map(|g| g.count).sum()
    }

    /// Endpoints over all services.
    pub fn endpoints(&self) -> u64 {
        self.groups
            .iter()
            .map(|g| g.count * g.endpoints.total() as u64)
            .sum()
    }

    /// Checks the format, every group and that the whole fits the address plan.
    pub fn check(&self) -> Result<(), ShapeError> {
        if self.format != FORMAT {
            return Err(ShapeError::Format {
                found: self.format.clone(),
            });
        }
        for (i, g) in self.groups.iter().enumerate() {
            let bad = |message: String| ShapeError::Group { group: i, message };
            if g.ports.is_empty() {
                return Err(bad(
                    "`ports` is empty; list each port's protocol, e.g. [\"TCP\"]".into(),
                ));
            }
            if g.endpoints.local > g.endpoints.total() {
                return Err(bad(format!(
                    "`endpoints.local` is {} but the service has {} endpoints; use at most that",
                    g.endpoints.local,
                    g.endpoints.total()
                )));
            }
            if g.kind != ServiceType::LoadBalancer && (g.source_ranges > 0 || g.ingress_ips > 0) {
                return Err(bad(format!(
                    "a {} service has source ranges or ingress IPs; only LoadBalancer services do",
                    g.kind.name()
                )));
            }
        }
        let services = self.services();
        if services + 1 > MAX_SERVICES {
            return Err(model::check_size(services, 0).unwrap_err().into());
        }
        let sum = |f: fn(&Group) -> u64| self.groups.iter().map(|g| g.count * f(g)).sum::<u64>();
        let plans = [
            ("endpoints", self.endpoints(), MAX_ENDPOINTS_TOTAL - 1),
            (
                "node ports",
                sum(|g| g.node_ports()),
                (u16::MAX - FIRST_NODE_PORT) as u64,
            ),
            (
                "external IPs",
                sum(|g| g.external_ips as u64),
                MAX_EXTRA_ADDRESSES,
            ),
            (
                "ingress IPs",
                sum(|g| g.ingress_ips as u64),
                MAX_EXTRA_ADDRESSES,
            ),
            (
                "source ranges",
                sum(|g| g.source_ranges as u64),
                MAX_EXTRA_ADDRESSES,
            ),
        ];
        for (what, needed, max) in plans {
            if needed > max {
                return Err(ShapeError::Plan { what, needed, max });
            }
        }
        Ok(())
    }

    /// The shape with every group's count multiplied by `scale` (rounded so the total
    /// is the scaled total and each group keeps its share: largest remainder first).
    pub fn scaled(&self, scale: f64) -> Shape {
        let exact: Vec<f64> = self.groups.iter().map(|g| g.count as f64 * scale).collect();
        let target = (self.services() as f64 * scale).round() as u64;
        let mut counts: Vec<u64> = exact.iter().map(|x| x.floor() as u64).collect();
        let mut order: Vec<usize> = (0..exact.len()).collect();
        order.sort_by(|&a, &b| {
            let (ra, rb) = (exact[a] - exact[a].floor(), exact[b] - exact[b].floor());
            rb.total_cmp(&ra).then(a.cmp(&b))
        });
        let short = target.saturating_sub(counts.iter().sum());
        for &i in order.iter().cycle().take(short as usize) {
            counts[i] += 1;
        }
        let mut out = self.clone();
        for (g, c) in out.groups.iter_mut().zip(counts) {
            g.count = c;
        }
        out.groups.retain(|g| g.count > 0);
        out.skipped.headless = (self.skipped.headless as f64 * scale).round() as u64;
        out.skipped.external_name = (self.skipped.external_name as f64 * scale).round() as u64;
        out
    }

    /// The services kpbench programs for the shape: every group's services interleaved
    /// in a fixed pseudo-random order (the same for every mode and run), service `i`
    /// at ClusterIP [`model::service_vip`]`(i)`, endpoints counting up the pod CIDR,
    /// node ports from [`FIRST_NODE_PORT`]. Call [`Shape::check`] first.
    pub fn service_set(&self) -> ServiceSet {
        let mut order: Vec<usize> = self
            .groups
            .iter()
            .enumerate()
            .flat_map(|(i, g)| std::iter::repeat_n(i, g.count as usize))
            .collect();
        shuffle(&mut order, 0x6b70_6265_6e63_6800);
        let mut plan = Plan::default();
        ServiceSet {
            services: order
                .iter()
                .enumerate()
                .map(|(i, &g)| plan.service(i, &self.groups[g]))
                .collect(),
        }
    }
}

impl ServiceSet {
    /// A copy of `of` as a new service `index`: the same type, ports, affinity,
    /// policies, source ranges, endpoint count and conditions, at ClusterIP
    /// [`model::service_vip`]`(index)`, with endpoints at the addresses after every
    /// endpoint of the set ([`ServiceSet::fresh_service`]) and node ports, external IPs
    /// and ingress IPs after every one of the set, so it shares no key with a service
    /// already there (an incremental sync's added service, for a shape).
    pub fn fresh_copy(&self, of: &Service, index: usize) -> Service {
        let mut copy = self.fresh_service(index, of.endpoints.len());
        for (new, old) in copy.endpoints.iter_mut().zip(&of.endpoints) {
            new.port = old.port;
        }
        let mut spec = of.spec.clone();
        spec.conditions = of
            .endpoints
            .iter()
            .zip(&copy.endpoints)
            .filter_map(|(old, new)| Some((new.ip, *of.spec.conditions.get(&old.ip)?)))
            .collect();
        let specs = || self.services.iter().map(|s| &s.spec);
        let mut node_port = specs()
            .flat_map(|s| {
                std::iter::once(s.node_port).chain(s.extra_ports.iter().map(|p| p.node_port))
            })
            .flatten()
            .max()
            .unwrap_or(FIRST_NODE_PORT - 1);
        let mut next_port = |p: &mut Option<u16>| {
            if p.is_some() {
                node_port = node_port.saturating_add(1);
                *p = Some(node_port);
            }
        };
        next_port(&mut spec.node_port);
        for p in &mut spec.extra_ports {
            next_port(&mut p.node_port);
        }
        let after = |base: Ipv4Addr, ips: &dyn Fn(&Spec) -> &[Ipv4Addr]| {
            let last = specs().flat_map(ips).max().copied().unwrap_or(base);
            move |k: usize| Ipv4Addr::from(u32::from(last) + k as u32 + 1)
        };
        let external = after(EXTERNAL_IP_BASE, &|s| &s.external_ips);
        spec.external_ips = (0..of.spec.external_ips.len()).map(external).collect();
        let ingress = after(INGRESS_IP_BASE, &|s| &s.ingress_ips);
        spec.ingress_ips = (0..of.spec.ingress_ips.len()).map(ingress).collect();
        copy.port = of.port;
        copy.spec = spec;
        copy
    }
}

impl Group {
    /// `count` services of `kind` with `ports` and `ready` endpoints, nothing else:
    /// no affinity, Cluster policies, no source range or extra address.
    pub fn plain(count: u64, kind: ServiceType, ports: &[Protocol], ready: u32) -> Group {
        Group {
            count,
            kind,
            ports: ports.to_vec(),
            affinity_timeout_s: None,
            external_traffic_policy: TrafficPolicy::Cluster,
            internal_traffic_policy: TrafficPolicy::Cluster,
            source_ranges: 0,
            external_ips: 0,
            ingress_ips: 0,
            endpoints: EndpointCounts {
                ready,
                ..EndpointCounts::default()
            },
        }
    }

    /// Node ports this group's services each take.
    pub fn node_ports(&self) -> u64 {
        if self.kind.has_node_ports() {
            self.ports.len() as u64
        } else {
            0
        }
    }

    /// The group's structure as a key, without its count.
    pub fn key(&self) -> Group {
        Group {
            count: 0,
            ..self.clone()
        }
    }
}

/// The next free address of each plan while a shape's services are built.
#[derive(Default)]
struct Plan {
    endpoint: u32,
    node_port: u16,
    external: u32,
    ingress: u32,
    range: u32,
}

fn take(counter: &mut u32, n: u32, base: Ipv4Addr, step: u32) -> Vec<Ipv4Addr> {
    let out = (0..n)
        .map(|k| Ipv4Addr::from(u32::from(base) + (*counter + k + 1) * step))
        .collect();
    *counter += n;
    out
}

impl Plan {
    fn node_port(&mut self, kind: ServiceType) -> Option<u16> {
        kind.has_node_ports().then(|| {
            self.node_port += 1;
            FIRST_NODE_PORT + self.node_port - 1
        })
    }

    fn service(&mut self, index: usize, g: &Group) -> Service {
        let ips = take(&mut self.endpoint, g.endpoints.total(), POD_CIDR.0, 1);
        let endpoints: Vec<Endpoint> = ips
            .iter()
            .map(|&ip| Endpoint {
                ip,
                port: ENDPOINT_PORT,
            })
            .collect();
        let conditions = ips
            .iter()
            .enumerate()
            .map(|(j, &ip)| (ip, g.endpoints.conditions(j as u32)))
            .filter(|(_, c)| *c != Conditions::default())
            .collect();
        let node_port = self.node_port(g.kind);
        let extra_ports = g.ports[1..]
            .iter()
            .enumerate()
            .map(|(k, &protocol)| ServicePort {
                name: format!("p{}", k + 1),
                protocol,
                port: SERVICE_PORT + k as u16 + 1,
                target_port: ENDPOINT_PORT + k as u16 + 1,
                node_port: self.node_port(g.kind),
            })
            .collect();
        let spec = Spec {
            kind: g.kind,
            protocol: g.ports[0],
            node_port,
            extra_ports,
            affinity_timeout_s: g.affinity_timeout_s,
            external_policy: g.external_traffic_policy,
            internal_policy: g.internal_traffic_policy,
            source_ranges: take(&mut self.range, g.source_ranges, SOURCE_RANGE_BASE, 256)
                .into_iter()
                .map(|net| (Ipv4Addr::from(u32::from(net) - 256), 24))
                .collect(),
            external_ips: take(&mut self.external, g.external_ips, EXTERNAL_IP_BASE, 1),
            ingress_ips: take(&mut self.ingress, g.ingress_ips, INGRESS_IP_BASE, 1),
            conditions,
        };
        Service {
            index,
            vip: model::service_vip(index),
            port: SERVICE_PORT,
            endpoints,
            spec,
        }
    }
}

/// splitmix64: a small, fixed pseudo-random sequence (shapes and synthetic draws must
/// be the same on every machine and release).
#[derive(Debug, Clone)]
pub struct SplitMix(pub u64);

impl SplitMix {
    pub fn new(seed: u64) -> Self {
        SplitMix(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `0..n` (multiply-shift on the high 32 bits; the bias is below 2^-32
    /// for the sample counts here).
    pub fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() >> 32).wrapping_mul(n as u64) >> 32) as usize
    }
}

/// Fisher-Yates with [`SplitMix`] seeded by `seed`.
fn shuffle<T>(v: &mut [T], seed: u64) {
    let mut rng = SplitMix(seed);
    for i in (1..v.len()).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        v.swap(i, j);
    }
}

#[cfg(test)]
mod tests;
