//! Cilium's agent's state and map writes ([`super::layout::CILIUM_RELEASE`]): each
//! Kubernetes service becomes its frontends ([`super::frontends`]), each a service of
//! the agent's own with a service ID (its reverse-NAT index) and backends with
//! backend IDs shared by every frontend that uses them. Pure.
//!
//! The order of the writes follows the agent:
//!
//! - a changed Kubernetes service (`addK8sSVCs`): its old frontends that are gone are
//!   deleted, then every frontend is upserted;
//! - upsert (`pkg/service/service.go` `upsertService`, `upsertServiceIntoLBMaps`): a
//!   known backend that turned terminating is rewritten (`updateBackendsCacheLocked`,
//!   `UpdateBackendWithState`); affinity matches of backends gone from the frontend
//!   are deleted; source ranges removed, then added (`UpdateSourceRanges`); new
//!   backends (`AddBackend`); then `pkg/maps/lbmap` `UpsertService`: the slots (active
//!   backends by ID, then the others), the reverse NAT entry, the master entry, the
//!   slots past the new count; then every backend's affinity match
//!   (`addBackendsToAffinityMatchMap`), then backends no frontend uses any more
//!   (`DeleteBackendByID`);
//! - delete (`deleteServiceLocked`): the master and every slot, the reverse NAT
//!   entry, the affinity matches, a LoadBalancer frontend's source ranges, then the
//!   orphaned backends.

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;

use super::frontends::{self, BackendAddr, FeKey, Frontend, BE_STATE_TERMINATING};
use super::layout::{self, Entry, LbMap};
use super::{affinity, source_range};
use crate::floor::model::{Service, ServiceSet};

/// One map write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MapOp {
    Update(Entry),
    Delete { map: LbMap, key: Vec<u8> },
}

/// What the agent holds for one frontend.
#[derive(Debug, Clone)]
struct Programmed {
    fe: Frontend,
    /// Its backends' IDs in slot order.
    ids: Vec<u32>,
}

/// The IDs the agent allocates and what it has programmed, kept between syncs.
#[derive(Debug, Clone)]
pub struct AgentState {
    /// The node's addresses, for NodePort frontends.
    node_ips: Vec<Ipv4Addr>,
    /// Service (frontend) IDs, which are also the reverse NAT indexes, from 1.
    service_ids: HashMap<FeKey, u16>,
    next_service: u16,
    /// Backend IDs from 1, with how many frontends use each.
    backend_ids: HashMap<BackendAddr, (u32, usize)>,
    next_backend: u32,
    /// What each frontend holds.
    programmed: HashMap<FeKey, Programmed>,
    /// Each Kubernetes service as last programmed, with its frontends in order.
    services: HashMap<usize, (Service, Vec<FeKey>)>,
}

impl Default for AgentState {
    fn default() -> Self {
        AgentState::new(frontends::node_addresses())
    }
}

/// What the agent's watcher hands it for one sync: the deleted services, then the
/// new and changed ones with their frontends, each in service order.
#[derive(Debug, Default)]
pub struct Changes {
    gone: Vec<usize>,
    upserts: Vec<(usize, Service, Vec<Frontend>)>,
}

impl Changes {
    /// How many services changed.
    pub fn len(&self) -> usize {
        self.gone.len() + self.upserts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn update(map: LbMap, key: Vec<u8>, value: Vec<u8>) -> MapOp {
    MapOp::Update(Entry { map, key, value })
}

fn delete(map: LbMap, key: Vec<u8>) -> MapOp {
    MapOp::Delete { map, key }
}

impl AgentState {
    /// An agent on a node with `node_ips`.
    pub fn new(node_ips: Vec<Ipv4Addr>) -> Self {
        AgentState {
            node_ips,
            service_ids: HashMap::new(),
            next_service: 0,
            backend_ids: HashMap::new(),
            next_backend: 0,
            programmed: HashMap::new(),
            services: HashMap::new(),
        }
    }

    fn service_id(&mut self, key: FeKey) -> u16 {
        if let Some(id) = self.service_ids.get(&key) {
            return *id;
        }
        self.next_service = self.next_service.max(1);
        let id = self.next_service;
        self.next_service = self.next_service.wrapping_add(1).max(1);
        self.service_ids.insert(key, id);
        id
    }

    /// The services that changed from what is programmed to `new` (`old`: what the
    /// previous sync was given, whose services may be gone).
    pub fn changes(&self, old: Option<&ServiceSet>, new: &ServiceSet) -> Changes {
        let gone = match old {
            Some(o) => {
                let wanted: HashSet<usize> = new.services.iter().map(|s| s.index).collect();
                o.services
                    .iter()
                    .map(|s| s.index)
                    .filter(|i| !wanted.contains(i) && self.services.contains_key(i))
                    .collect()
            }
            None => Vec::new(),
        };
        let upserts = new
            .services
            .iter()
            .filter(|s| self.services.get(&s.index).map(|(p, _)| p) != Some(*s))
            .map(|s| (s.index, s.clone(), frontends::frontends(s, &self.node_ips)))
            .collect();
        Changes { gone, upserts }
    }

    /// The map writes for `changes`, in the agent's order: deleted services first,
    /// then new and changed ones.
    pub fn apply(&mut self, changes: &Changes) -> Vec<MapOp> {
        let mut ops = Vec::new();
        for index in &changes.gone {
            if let Some((_, keys)) = self.services.remove(index) {
                for key in keys {
                    self.delete(key, &mut ops);
                }
            }
        }
        for (index, svc, fes) in &changes.upserts {
            let keys: Vec<FeKey> = fes.iter().map(|f| f.key).collect();
            if let Some((_, old)) = self.services.remove(index) {
                for key in old.into_iter().filter(|k| !keys.contains(k)) {
                    self.delete(key, &mut ops);
                }
            }
            for fe in fes {
                self.upsert(fe, &mut ops);
            }
            self.services.insert(*index, (svc.clone(), keys));
        }
        ops
    }

    /// The map writes that take the programmed state from `old` to `new`.
    pub fn plan(&mut self, old: Option<&ServiceSet>, new: &ServiceSet) -> Vec<MapOp> {
        let changes = self.changes(old, new);
        self.apply(&changes)
    }

    /// The backend ID of `addr` for a frontend that did not have it: a new one, with
    /// its `AddBackend` write, or the one other frontends share.
    fn acquire(&mut self, b: &frontends::FeBackend, added: &mut Vec<MapOp>) -> u32 {
        if let Some((id, users)) = self.backend_ids.get_mut(&b.addr) {
            *users += 1;
            return *id;
        }
        self.next_backend = self.next_backend.max(1);
        let id = self.next_backend;
        self.next_backend += 1;
        self.backend_ids.insert(b.addr, (id, 1));
        added.push(backend_write(id, b));
        id
    }

    /// One frontend less for `addr`; its ID when no frontend uses it any more.
    fn release(&mut self, addr: &BackendAddr) -> Option<u32> {
        let (id, users) = self.backend_ids.get_mut(addr)?;
        *users -= 1;
        let id = *id;
        if *users == 0 {
            self.backend_ids.remove(addr);
            return Some(id);
        }
        None
    }

    fn upsert(&mut self, fe: &Frontend, ops: &mut Vec<MapOp>) {
        let rev = self.service_id(fe.key);
        let prev = self.programmed.remove(&fe.key);
        let (prev_fe, prev_ids) = match &prev {
            Some(p) => (Some(&p.fe), p.ids.clone()),
            None => (None, Vec::new()),
        };
        let prev_id = |addr: &BackendAddr| {
            let fe = prev_fe?;
            let at = fe.backends.iter().position(|b| b.addr == *addr)?;
            Some((fe.backends[at].state, prev_ids[at]))
        };
        // updateBackendsCacheLocked: IDs, state changes, what is new and obsolete.
        let mut added = Vec::new();
        let mut ids = Vec::with_capacity(fe.backends.len());
        for b in &fe.backends {
            let id = match prev_id(&b.addr) {
                Some((state, id)) => {
                    if b.state == BE_STATE_TERMINATING && state != BE_STATE_TERMINATING {
                        ops.push(backend_write(id, b));
                    }
                    id
                }
                None => self.acquire(b, &mut added),
            };
            ids.push(id);
        }
        let mut obsolete_svc = Vec::new();
        let mut obsolete = Vec::new();
        if let Some(p) = prev_fe {
            for (b, id) in p.backends.iter().zip(&prev_ids) {
                if !fe.backends.iter().any(|x| x.addr == b.addr) {
                    obsolete_svc.push(*id);
                    obsolete.extend(self.release(&b.addr));
                }
            }
        }
        // Affinity matches of backends gone, or of every backend when it went.
        let prev_aff = prev_fe.is_some_and(|p| p.affinity_timeout.is_some());
        let now_aff = fe.affinity_timeout.is_some();
        let mut unmatch = Vec::new();
        if prev_aff {
            unmatch.extend(&obsolete_svc);
            if !now_aff {
                unmatch.extend(&ids);
            }
        }
        for id in unmatch {
            ops.push(delete(LbMap::AffinityMatch, affinity::match_key(rev, id)));
        }
        let prev_ranges = prev_fe.map(|p| p.source_ranges.as_slice()).unwrap_or(&[]);
        let checked_ranges = !fe.source_ranges.is_empty() || !prev_ranges.is_empty();
        if checked_ranges {
            update_source_ranges(rev, prev_ranges, &fe.source_ranges, ops);
        }
        ops.extend(added);
        let slots = slot_order(fe, &ids);
        self.write_service(fe, rev, &slots, checked_ranges, ops);
        for slot in slots.len() + 1..=prev_ids.len() {
            ops.push(delete(LbMap::Services, fe.key.slot(slot as u16).bytes()));
        }
        if now_aff {
            for (_, id) in &slots {
                ops.push(update(
                    LbMap::AffinityMatch,
                    affinity::match_key(rev, *id),
                    affinity::match_value(),
                ));
            }
        }
        for id in obsolete {
            ops.push(delete(LbMap::Backends, layout::backend_key(id)));
        }
        let ids = slots.iter().map(|(_, id)| *id).collect();
        let mut fe = fe.clone();
        fe.backends = slots.iter().map(|(b, _)| *b).collect();
        self.programmed.insert(fe.key, Programmed { fe, ids });
    }

    /// `UpsertService`'s writes: the slots, the reverse NAT entry, the master.
    fn write_service(
        &self,
        fe: &Frontend,
        rev: u16,
        slots: &[(frontends::FeBackend, u32)],
        checked_ranges: bool,
        ops: &mut Vec<MapOp>,
    ) {
        for (i, (_, id)) in slots.iter().enumerate() {
            ops.push(update(
                LbMap::Services,
                fe.key.slot(i as u16 + 1).bytes(),
                layout::slot(*id, rev).bytes(),
            ));
        }
        ops.push(update(
            LbMap::RevNat,
            layout::rev_nat_key(rev),
            layout::rev_nat_value(fe.key.address, fe.key.port),
        ));
        ops.push(update(
            LbMap::Services,
            fe.key.slot(0).bytes(),
            master_value(fe, rev, checked_ranges).bytes(),
        ));
    }

    fn delete(&mut self, key: FeKey, ops: &mut Vec<MapOp>) {
        let Some(prev) = self.programmed.remove(&key) else {
            return;
        };
        for slot in 0..=prev.ids.len() {
            ops.push(delete(LbMap::Services, key.slot(slot as u16).bytes()));
        }
        let rev = self.service_ids.remove(&key);
        if let Some(rev) = rev {
            ops.push(delete(LbMap::RevNat, layout::rev_nat_key(rev)));
            if prev.fe.affinity_timeout.is_some() {
                for id in &prev.ids {
                    ops.push(delete(LbMap::AffinityMatch, affinity::match_key(rev, *id)));
                }
            }
            if prev.fe.kind == frontends::FeKind::LoadBalancer {
                update_source_ranges(rev, &prev.fe.source_ranges, &[], ops);
            }
        }
        for b in &prev.fe.backends {
            if let Some(id) = self.release(&b.addr) {
                ops.push(delete(LbMap::Backends, layout::backend_key(id)));
            }
        }
    }
}

/// `AddBackend` or `UpdateBackendWithState` of backend `id`.
fn backend_write(id: u32, b: &frontends::FeBackend) -> MapOp {
    update(
        LbMap::Backends,
        layout::backend_key(id),
        layout::backend(b.addr.ip, b.addr.port, b.addr.proto, b.state).bytes(),
    )
}

/// The backends with their IDs in slot order (`GetOrderedBackends`): the counted ones
/// by ID, then the others in the service's order.
fn slot_order(fe: &Frontend, ids: &[u32]) -> Vec<(frontends::FeBackend, u32)> {
    let mut counted: Vec<_> = fe
        .backends
        .iter()
        .zip(ids)
        .filter(|(b, _)| fe.counts(b))
        .map(|(b, id)| (*b, *id))
        .collect();
    counted.sort_by_key(|(_, id)| *id);
    counted.extend(
        fe.backends
            .iter()
            .zip(ids)
            .filter(|(b, _)| !fe.counts(b))
            .map(|(b, id)| (*b, *id)),
    );
    counted
}

/// The master entry of `fe` as service `rev` (`updateMasterService`).
pub fn master_value(fe: &Frontend, rev: u16, checked_ranges: bool) -> layout::Lb4Service {
    let mut flags = fe.flags;
    if checked_ranges {
        flags |= layout::SVC_FLAG_SOURCE_RANGE;
    }
    layout::master(
        fe.active() as u16,
        rev,
        (flags, fe.flags2),
        fe.affinity_timeout.unwrap_or(0),
    )
}

/// `UpdateSourceRanges`: the ranges of `prev` not in `now` deleted, then those of
/// `now` not in `prev` added.
fn update_source_ranges(
    rev: u16,
    prev: &[(Ipv4Addr, u8)],
    now: &[(Ipv4Addr, u8)],
    ops: &mut Vec<MapOp>,
) {
    for r in prev.iter().filter(|r| !now.contains(r)) {
        ops.push(delete(LbMap::SourceRange, source_range::key(rev, *r)));
    }
    for r in now.iter().filter(|r| !prev.contains(r)) {
        ops.push(update(
            LbMap::SourceRange,
            source_range::key(rev, *r),
            source_range::value(),
        ));
    }
}
