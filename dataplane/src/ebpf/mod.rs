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

pub mod cgroup;
pub mod controller;
pub mod datapath;
pub mod exchange;
pub mod layout;
pub mod pins;
mod readback;
pub mod request;
pub mod standin;
pub mod sys;
pub mod tc;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};

use crate::floor::backend::{Backend, Objects};
use crate::floor::deadline::Deadline;
use crate::floor::error::ApplyError;
use crate::floor::model::{Endpoint, ServiceSet};
use crate::floor::netns::Netns;
use crate::floor::prereq::{KernelFeature, Prerequisites};
use crate::floor::sync::standin::StandIn;
use crate::floor::sync::{Controller, Executor, Profile};
use crate::mode::ModeSpec;
use datapath::Datapath;
pub use exchange::BpfMaps;
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

/// How many map entries a full sync of `set` leaves: a master and a slot per endpoint
/// for each service, a backend per endpoint, a reverse NAT entry per service.
pub fn expected_entries(set: &ServiceSet) -> usize {
    let backends: BTreeSet<&Endpoint> = set.services.iter().flat_map(|s| &s.endpoints).collect();
    set.services
        .iter()
        .map(|s| 2 + s.endpoints.len())
        .sum::<usize>()
        + backends.len()
}

/// Checks the dumped maps against `expected`: every service's master entry, its slots
/// resolving through the backend map to exactly its endpoints, its reverse NAT entry,
/// and nothing else. The number of entries when they agree.
pub fn check_maps(
    services: &[(Vec<u8>, Vec<u8>)],
    backends: &[(Vec<u8>, Vec<u8>)],
    rev_nat: &[(Vec<u8>, Vec<u8>)],
    expected: &ServiceSet,
) -> Result<Objects, ApplyError> {
    const WHAT: &str = "load-balancer map entries";
    let found = services.len() + backends.len() + rev_nat.len();
    Objects::check(WHAT, found, expected_entries(expected))?;
    let svc: BTreeMap<Lb4Key, Lb4Service> = services
        .iter()
        .filter_map(|(k, v)| Some((Lb4Key::parse(k)?, Lb4Service::parse(v)?)))
        .collect();
    let be: BTreeMap<u32, Lb4Backend> = backends
        .iter()
        .filter_map(|(k, v)| {
            Some((
                u32::from_ne_bytes(k.as_slice().try_into().ok()?),
                Lb4Backend::parse(v)?,
            ))
        })
        .collect();
    let rev: BTreeMap<Vec<u8>, Vec<u8>> = rev_nat.iter().cloned().collect();
    let good = expected
        .services
        .iter()
        .filter(|s| {
            let Some(m) = svc.get(&layout::master_key(s.vip, s.port)) else {
                return false;
            };
            let mut eps: Vec<Endpoint> = (1..=m.count)
                .filter_map(|slot| svc.get(&layout::slot_key(s.vip, s.port, slot)))
                .filter_map(|v| be.get(&v.backend_id))
                .map(|b| Endpoint {
                    ip: b.address,
                    port: b.port,
                })
                .collect();
            eps.sort();
            let mut want = s.endpoints.clone();
            want.sort();
            m.flags == layout::SVC_FLAG_ROUTABLE
                && eps == want
                && rev.get(&layout::rev_nat_key(m.rev_nat_index))
                    == Some(&layout::rev_nat_value(s.vip, s.port))
        })
        .count();
    if good != expected.len() {
        return Err(ApplyError::Mismatch {
            what: "services whose maps resolve to exactly their endpoints",
            found: good,
            expected: expected.len(),
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
        use layout::LbMap;
        match self.datapath {
            Datapath::SocketLb => readback::read(io, &LbMap::ALL),
            Datapath::Tc => readback::read(io, &[LbMap::Services, LbMap::Backends, LbMap::RevNat]),
        }
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
        let dump = |map: LbMap| {
            let (k, v) = map.sizes();
            sys::dump(maps.fd(map), k, v).map_err(|source| ApplyError::Bpf {
                what: format!("dumping {}", map.name()),
                source,
            })
        };
        check_maps(
            &dump(LbMap::Services)?,
            &dump(LbMap::Backends)?,
            &dump(LbMap::RevNat)?,
            expected,
        )
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
