//! Modes `ebpf` and `ebpf-tc`: Cilium's two load balancers on Cilium's own maps, with
//! Cilium's own key and value layouts ([`layout::CILIUM_RELEASE`]).
//!
//! - `ebpf`, the socket LB (Cilium's default for pod-to-ClusterIP traffic): a cgroup
//!   `connect4` program rewrites the destination of a TCP connect to a ClusterIP
//!   before any packet exists; `getpeername4` shows the VIP. Its cost is per connect.
//! - `ebpf-tc`, the per-packet LB (Cilium's path when socket LB is off, as with
//!   sidecar meshes): tc programs on the node's veths with an LRU connection-tracking
//!   map, DNAT on the way in and reverse NAT on the way back. Its cost is per packet.
//!
//! Both read the same maps, programmed as Cilium's agent does it ([`controller`]); the
//! programs are loaded and attached once per node namespace ([`datapath`]). Map writes
//! are this mode's own kernel requests ([`request::BpfRequest`]), run by the core
//! executor ([`exchange`]).

pub mod affinity;
pub mod agent;
pub mod cgroup;
pub mod controller;
pub mod datapath;
pub mod exchange;
pub mod frontends;
pub mod layout;
pub mod pins;
mod readback;
pub mod request;
pub mod source_range;
pub mod standin;
pub mod sys;
pub mod tc;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_features;

use std::collections::{BTreeMap, BTreeSet};

use crate::floor::backend::{Backend, Objects};
use crate::floor::deadline::Deadline;
use crate::floor::error::ApplyError;
use crate::floor::model::ServiceSet;
use crate::floor::netns::Netns;
use crate::floor::prereq::{KernelFeature, Prerequisites};
use crate::floor::spec::Feature;
use crate::floor::sync::standin::StandIn;
use crate::floor::sync::{Controller, Executor, Profile};
use crate::mode::ModeSpec;
use datapath::Datapath;
pub use exchange::BpfMaps;
use frontends::{BackendAddr, Frontend};
use layout::{Lb4Backend, Lb4Key, Lb4Service, LbMap};
pub use request::{BpfReply, BpfRequest};

/// Maps an I/O error of a BPF or cgroup operation to an [`ApplyError::Bpf`] saying
/// what was being done.
fn err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ApplyError {
    let what = what.into();
    move |source| ApplyError::Bpf { what, source }
}

/// One of Cilium's load balancers.
#[derive(Debug, Clone, Copy)]
pub struct EbpfBackend {
    datapath: Datapath,
}

impl EbpfBackend {
    /// Mode `ebpf`.
    pub fn socket() -> Self {
        EbpfBackend {
            datapath: Datapath::SocketLb,
        }
    }

    /// Mode `ebpf-tc`.
    pub fn tc() -> Self {
        EbpfBackend {
            datapath: Datapath::Tc,
        }
    }
}

/// The service features both eBPF modes render as Cilium's agent does, on Cilium's
/// maps: every one of the shape model. What their programs do not exercise of them is
/// in [`unexercised`].
pub const RENDERS: &[Feature] = &Feature::ALL;

/// What kpbench's programs for `datapath` do not do of Cilium's data path for the
/// features in `used`: the maps hold what the agent writes, the lookups are narrower.
pub fn unexercised(datapath: Datapath, used: &[Feature]) -> Vec<String> {
    let socket = datapath == Datapath::SocketLb;
    let note = |f: Feature| -> Option<&'static str> {
        let text = match f {
            Feature::Udp if socket => {
                "UDP frontends are written (proto 17), but the socket LB attaches cgroup \
                 connect4 for TCP only: Cilium's UDP path (cgroup sendmsg4/recvmsg4) is not \
                 attached, so no datagram is translated"
            }
            Feature::Udp => {
                "UDP frontends are written (proto 17), but the tc LB parses TCP only: UDP \
                 packets pass untranslated"
            }
            Feature::Affinity => {
                "the affinity matches are written and cilium_lb4_affinity is created, but \
                 kpbench's programs neither look up nor record a client's backend (Cilium's \
                 lb4_affinity_backend_id_*): every connection picks a random slot"
            }
            Feature::NodePort | Feature::LoadBalancer | Feature::ExternalIps => {
                "NodePort, ingress and external-IP frontends are written, but traffic from \
                 outside the node (Cilium's nodeport_lb4 on the node's devices) is not \
                 modelled: the client's connections to them take the ClusterIP lookup"
            }
            Feature::ExternalPolicyLocal | Feature::InternalPolicyLocal => {
                "the Local policies' frontends are written with their node-local backends \
                 (internal-scope entries for two-scope services), but kpbench's programs \
                 look up the external scope only, where Cilium's east-west lookups of a \
                 TWO_SCOPES service use the internal one"
            }
            Feature::SourceRanges => {
                "the source ranges are written to cilium_lb4_source_range, but only \
                 north-south LoadBalancer traffic checks them, which kpbench's programs do \
                 not serve"
            }
            Feature::SeveralPorts | Feature::EndpointConditions => return None,
        };
        Some(text)
    };
    // One note per text, naming every feature that shares it.
    let mut notes: Vec<(Vec<&str>, &str)> = Vec::new();
    for f in used {
        let Some(text) = note(*f) else { continue };
        match notes.iter_mut().find(|(_, t)| *t == text) {
            Some((names, _)) => names.push(f.name()),
            None => notes.push((vec![f.name()], text)),
        }
    }
    notes
        .into_iter()
        .map(|(names, text)| format!("{}: {text}", names.join(", ")))
        .collect()
}

/// How many map entries a full sync of `set` leaves in the maps the agent writes
/// ([`LbMap::AGENT`]): each written once.
pub fn expected_entries(set: &ServiceSet) -> usize {
    controller::render(set).len()
}

/// Every entry of the maps the agent writes, by map, as the kernel dumps them.
pub type Dumps = BTreeMap<LbMap, Vec<(Vec<u8>, Vec<u8>)>>;

/// The maps' entries decoded for [`check_maps`].
struct Decoded {
    svc: BTreeMap<Lb4Key, Lb4Service>,
    be: BTreeMap<u32, Lb4Backend>,
    rev: BTreeMap<Vec<u8>, Vec<u8>>,
    matches: BTreeSet<Vec<u8>>,
    ranges: BTreeSet<Vec<u8>>,
}

impl Decoded {
    fn new(dumps: &Dumps) -> Self {
        let get = |m: LbMap| dumps.get(&m).map(Vec::as_slice).unwrap_or(&[]);
        Decoded {
            svc: get(LbMap::Services)
                .iter()
                .filter_map(|(k, v)| Some((Lb4Key::parse(k)?, Lb4Service::parse(v)?)))
                .collect(),
            be: get(LbMap::Backends)
                .iter()
                .filter_map(|(k, v)| {
                    Some((
                        u32::from_ne_bytes(k.as_slice().try_into().ok()?),
                        Lb4Backend::parse(v)?,
                    ))
                })
                .collect(),
            rev: get(LbMap::RevNat).iter().cloned().collect(),
            matches: get(LbMap::AffinityMatch)
                .iter()
                .map(|(k, _)| k.clone())
                .collect(),
            ranges: get(LbMap::SourceRange)
                .iter()
                .map(|(k, _)| k.clone())
                .collect(),
        }
    }

    /// Whether frontend `fe`'s entries are all there: its master with its count,
    /// flags and affinity timeout, slots resolving through the backend map to exactly
    /// its backends, its reverse NAT entry, affinity matches and source ranges.
    fn holds(&self, fe: &Frontend) -> bool {
        let Some(m) = self.svc.get(&fe.key.slot(0)) else {
            return false;
        };
        let ids: Vec<u32> = (1..=fe.backends.len() as u16)
            .filter_map(|slot| self.svc.get(&fe.key.slot(slot)))
            .map(|v| v.backend_id)
            .collect();
        let mut got: Vec<BackendAddr> = ids
            .iter()
            .filter_map(|id| self.be.get(id))
            .map(|b| BackendAddr {
                ip: b.address,
                port: b.port,
                proto: b.proto,
            })
            .collect();
        got.sort();
        let mut want: Vec<BackendAddr> = fe.backends.iter().map(|b| b.addr).collect();
        want.sort();
        let rev = m.rev_nat_index;
        // The agent keeps SOURCE_RANGE on a frontend whose last range it removed.
        let ranged = fe.source_ranges.is_empty() || m.flags & layout::SVC_FLAG_SOURCE_RANGE != 0;
        let matched = fe.affinity_timeout.is_none()
            || ids
                .iter()
                .all(|id| self.matches.contains(&affinity::match_key(rev, *id)));
        m.count as usize == fe.active()
            && m.flags & !layout::SVC_FLAG_SOURCE_RANGE == fe.flags
            && m.flags2 == fe.flags2
            && m.backend_id == fe.affinity_timeout.unwrap_or(0)
            && ranged
            && got == want
            && matched
            && fe
                .source_ranges
                .iter()
                .all(|r| self.ranges.contains(&source_range::key(rev, *r)))
            && self.rev.get(&layout::rev_nat_key(rev))
                == Some(&layout::rev_nat_value(fe.key.address, fe.key.port))
    }
}

/// Checks the dumped maps against `expected`: every frontend of every service with
/// all its entries ([`Decoded::holds`]), and nothing else. The number of entries when
/// they agree.
pub fn check_maps(dumps: &Dumps, expected: &ServiceSet) -> Result<Objects, ApplyError> {
    const WHAT: &str = "load-balancer map entries";
    let found = LbMap::AGENT
        .iter()
        .map(|m| dumps.get(m).map_or(0, Vec::len))
        .sum();
    Objects::check(WHAT, found, expected_entries(expected))?;
    let maps = Decoded::new(dumps);
    let node = frontends::node_addresses();
    let all: Vec<Frontend> = expected
        .services
        .iter()
        .flat_map(|s| frontends::frontends(s, &node))
        .collect();
    let good = all.iter().filter(|fe| maps.holds(fe)).count();
    if good != all.len() {
        return Err(ApplyError::Mismatch {
            what: "frontends whose maps resolve to exactly their backends",
            found: good,
            expected: all.len(),
        });
    }
    Ok(Objects {
        count: found,
        kind: WHAT,
    })
}

impl Backend for EbpfBackend {
    fn spec(&self) -> ModeSpec {
        ModeSpec::new(self.datapath.mode())
    }

    /// No tools: the agent speaks `bpf(2)` itself.
    fn prerequisites(&self) -> Prerequisites {
        Prerequisites {
            tools: Vec::new(),
            kernel: vec![match self.datapath {
                Datapath::SocketLb => KernelFeature::CgroupBpf,
                Datapath::Tc => KernelFeature::TcBpf,
            }],
        }
    }

    fn renders(&self) -> &'static [Feature] {
        RENDERS
    }

    fn unexercised(&self, used: &[Feature]) -> Vec<String> {
        unexercised(self.datapath, used)
    }

    fn inspect_command(&self) -> &'static str {
        match self.datapath {
            Datapath::SocketLb => "bpftool map dump name cilium_lb4_services_v2",
            Datapath::Tc => "bpftool map dump name cilium_ct4_global",
        }
    }

    fn controller(&self, profile: Profile) -> Box<dyn Controller> {
        match profile {
            Profile::KubeProxy(_) => Box::new(controller::AgentController::new(self.datapath)),
            Profile::Floor => Box::new(controller::FloorController::new(self.datapath)),
        }
    }

    fn standins(&self) -> Vec<Box<dyn StandIn>> {
        vec![Box::new(standin::MapsStandIn::new())]
    }

    /// Every entry of the datapath's maps, decoded and sorted: the socket LB's maps,
    /// or the tc LB's, which has no reverse socket map.
    fn readback(&self, io: &mut dyn Executor) -> Result<String, ApplyError> {
        readback::read(io, self.datapath.maps())
    }

    fn verify(
        &self,
        ns: &Netns,
        expected: &ServiceSet,
        _deadline: Deadline,
    ) -> Result<Objects, ApplyError> {
        let maps = datapath::loaded(ns).ok_or_else(|| ApplyError::Bpf {
            what: format!("reading the load-balancer maps of {}", ns.name),
            source: std::io::Error::other("nothing was programmed for it by this process"),
        })?;
        let mut dumps = Dumps::new();
        for map in LbMap::AGENT {
            let (k, v) = map.sizes();
            let entries = sys::dump(maps.fd(map), k, v).map_err(|source| ApplyError::Bpf {
                what: format!("dumping {}", map.name()),
                source,
            })?;
            dumps.insert(map, entries);
        }
        check_maps(&dumps, expected)
    }

    fn keep(&self, ns: &Netns) -> Result<Option<String>, ApplyError> {
        let attached = datapath::attachment(ns).unwrap_or_default();
        let dir = datapath::keep(ns)?;
        let at = match self.datapath {
            Datapath::SocketLb => format!(
                "translating connects from {} by processes in {} (echo $$ > CGROUP/cgroup.procs to put a shell there)",
                attached.get(1).map(String::as_str).unwrap_or("?"),
                attached.first().map(String::as_str).unwrap_or("?"),
            ),
            Datapath::Tc if attached.is_empty() => format!(
                "attached to nothing: {} has no veth-client or veth-backend (the programs are pinned for tc filter add ... bpf da pinned PATH)",
                ns.name
            ),
            Datapath::Tc => attached.join(", "),
        };
        Ok(Some(format!(
            "{}; {at}; kpbench clean removes it",
            dir.display()
        )))
    }
}
