//! Programming the maps as Cilium's agent does ([`super::layout::CILIUM_RELEASE`]):
//! `pkg/service` allocates service and backend IDs and calls `pkg/maps/lbmap`, whose
//! `UpsertService` and `DeleteService` make one `BPF_MAP_UPDATE_ELEM` or
//! `BPF_MAP_DELETE_ELEM` per entry, in this order:
//!
//! - upsert: each new backend (`AddBackend`), the slots 1..count (`updateServiceEndpoint`),
//!   the reverse NAT entry (`updateRevNatLocked`), the master entry
//!   (`updateMasterService`), then slots past the new count and backends no service
//!   uses any more (`DeleteBackendByID`);
//! - delete: the master and every slot, 0..count, then the reverse NAT entry, then
//!   the orphaned backends.
//!
//! At start the agent dumps the service and backend maps to restore its state
//! (`RestoreServices`); the first sync of the kube-proxy profile does the same. The
//! floor sends the identical entries with one batch call per map and kind.
//!
//! **What a sync's cost holds.** The agent does not diff whole service sets: its
//! watcher hands it one event per deleted, new or changed service, and its work is
//! that service's. kpbench's controllers are given the two sets, so finding what
//! changed ([`AgentState::changes`]) is the watcher's part: it is timed apart and left
//! out of the sync's cost ([`Executor::exclude`]); allocating IDs, encoding the
//! entries and the map calls are in it.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::time::Duration;

use super::datapath::Datapath;
use super::exchange::BpfMaps;
use super::layout::{self, Entry, LbMap};
use super::request::BpfRequest;
use crate::floor::error::ApplyError;
use crate::floor::exec::{Cost, Meter};
use crate::floor::model::{Endpoint, Service, ServiceSet};
use crate::floor::sync::{Controller, Executor, Profile};

/// One map write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MapOp {
    Update(Entry),
    Delete { map: LbMap, key: Vec<u8> },
}

/// The IDs the agent allocates and what it has programmed, kept between syncs.
#[derive(Debug, Default, Clone)]
pub struct AgentState {
    /// Service (frontend) IDs, which are also the reverse NAT indexes, from 1.
    service_ids: HashMap<(Ipv4Addr, u16), u16>,
    next_service: u16,
    /// Backend IDs from 1, with how many services use each.
    backend_ids: HashMap<Endpoint, (u32, usize)>,
    next_backend: u32,
    /// The backends of each programmed service, in slot order.
    programmed: HashMap<(Ipv4Addr, u16), Vec<Endpoint>>,
}

/// What the agent's watcher hands it for one sync: the deleted services, then the
/// new and changed ones, each in service order.
#[derive(Debug, Default)]
pub struct Changes<'a> {
    gone: Vec<(Ipv4Addr, u16)>,
    upserts: Vec<&'a Service>,
}

impl Changes<'_> {
    /// How many services changed.
    pub fn len(&self) -> usize {
        self.gone.len() + self.upserts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn svc_key(s: &Service) -> (Ipv4Addr, u16) {
    (s.vip, s.port)
}

impl AgentState {
    fn service_id(&mut self, key: (Ipv4Addr, u16)) -> u16 {
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
    pub fn changes<'a>(&self, old: Option<&ServiceSet>, new: &'a ServiceSet) -> Changes<'a> {
        let gone = match old {
            Some(o) => {
                let wanted: std::collections::HashSet<_> =
                    new.services.iter().map(svc_key).collect();
                o.services
                    .iter()
                    .map(svc_key)
                    .filter(|k| !wanted.contains(k) && self.programmed.contains_key(k))
                    .collect()
            }
            None => Vec::new(),
        };
        let upserts = new
            .services
            .iter()
            .filter(|s| self.programmed.get(&svc_key(s)) != Some(&s.endpoints))
            .collect();
        Changes { gone, upserts }
    }

    /// The map writes for `changes`, in the agent's order: deleted services first,
    /// then new and changed ones.
    pub fn apply(&mut self, changes: &Changes<'_>) -> Vec<MapOp> {
        let mut ops = Vec::new();
        for key in &changes.gone {
            self.delete(*key, &mut ops);
        }
        for s in &changes.upserts {
            self.upsert(s, &mut ops);
        }
        ops
    }

    /// The map writes that take the programmed state from `old` to `new`.
    pub fn plan(&mut self, old: Option<&ServiceSet>, new: &ServiceSet) -> Vec<MapOp> {
        let changes = self.changes(old, new);
        self.apply(&changes)
    }

    /// [`AgentState::plan`], with finding the changes left out of the sync's cost:
    /// the watcher's work, not the agent's.
    fn plan_excluding_watch(
        &mut self,
        io: &mut dyn Executor,
        old: Option<&ServiceSet>,
        new: &ServiceSet,
    ) -> Vec<MapOp> {
        let meter = Meter::start();
        let changes = self.changes(old, new);
        io.exclude(meter.finish(Cost::default()));
        self.apply(&changes)
    }

    fn upsert(&mut self, s: &Service, ops: &mut Vec<MapOp>) {
        let key = svc_key(s);
        let rev = self.service_id(key);
        let prev = self.programmed.remove(&key).unwrap_or_default();
        // New backends first (AddBackend).
        let mut ids = Vec::with_capacity(s.endpoints.len());
        for ep in &s.endpoints {
            let id = match self.backend_ids.get_mut(ep) {
                Some((id, users)) => {
                    if !prev.contains(ep) {
                        *users += 1;
                    }
                    *id
                }
                None => {
                    self.next_backend = self.next_backend.max(1);
                    let id = self.next_backend;
                    self.next_backend += 1;
                    self.backend_ids.insert(*ep, (id, 1));
                    ops.push(MapOp::Update(Entry {
                        map: LbMap::Backends,
                        key: layout::backend_key(id),
                        value: layout::backend(ep.ip, ep.port).bytes(),
                    }));
                    id
                }
            };
            ids.push(id);
        }
        // Slots, reverse NAT, master.
        for (i, id) in ids.iter().enumerate() {
            ops.push(MapOp::Update(Entry {
                map: LbMap::Services,
                key: layout::slot_key(s.vip, s.port, i as u16 + 1).bytes(),
                value: layout::slot(*id, rev).bytes(),
            }));
        }
        ops.push(MapOp::Update(Entry {
            map: LbMap::RevNat,
            key: layout::rev_nat_key(rev),
            value: layout::rev_nat_value(s.vip, s.port),
        }));
        ops.push(MapOp::Update(Entry {
            map: LbMap::Services,
            key: layout::master_key(s.vip, s.port).bytes(),
            value: layout::master(ids.len() as u16, rev).bytes(),
        }));
        // Slots past the new count, then backends nobody uses any more.
        for slot in ids.len() + 1..=prev.len() {
            ops.push(MapOp::Delete {
                map: LbMap::Services,
                key: layout::slot_key(s.vip, s.port, slot as u16).bytes(),
            });
        }
        for ep in prev.iter().filter(|ep| !s.endpoints.contains(ep)) {
            self.release(ep, ops);
        }
        self.programmed.insert(key, s.endpoints.clone());
    }

    fn delete(&mut self, key: (Ipv4Addr, u16), ops: &mut Vec<MapOp>) {
        let Some(prev) = self.programmed.remove(&key) else {
            return;
        };
        for slot in 0..=prev.len() {
            ops.push(MapOp::Delete {
                map: LbMap::Services,
                key: layout::slot_key(key.0, key.1, slot as u16).bytes(),
            });
        }
        if let Some(rev) = self.service_ids.remove(&key) {
            ops.push(MapOp::Delete {
                map: LbMap::RevNat,
                key: layout::rev_nat_key(rev),
            });
        }
        for ep in &prev {
            self.release(ep, ops);
        }
    }

    fn release(&mut self, ep: &Endpoint, ops: &mut Vec<MapOp>) {
        let Some((id, users)) = self.backend_ids.get_mut(ep) else {
            return;
        };
        *users -= 1;
        if *users == 0 {
            let id = *id;
            self.backend_ids.remove(ep);
            ops.push(MapOp::Delete {
                map: LbMap::Backends,
                key: layout::backend_key(id),
            });
        }
    }
}

/// Every entry a full sync of `set` from empty writes, in the agent's order.
pub fn render(set: &ServiceSet) -> Vec<Entry> {
    AgentState::default()
        .plan(None, set)
        .into_iter()
        .filter_map(|op| match op {
            MapOp::Update(e) => Some(e),
            MapOp::Delete { .. } => None,
        })
        .collect()
}

/// The kube-proxy-equivalent profile for this mode: Cilium's agent, one call per entry.
#[derive(Debug)]
pub struct AgentController {
    datapath: Datapath,
    state: AgentState,
    started: bool,
}

impl AgentController {
    pub fn new(datapath: Datapath) -> Self {
        AgentController {
            datapath,
            state: AgentState::default(),
            started: false,
        }
    }
}

impl Controller for AgentController {
    fn profile(&self) -> Profile {
        Profile::default()
    }

    fn sync(
        &mut self,
        io: &mut dyn Executor,
        old: Option<&ServiceSet>,
        new: &ServiceSet,
        _at: Duration,
    ) -> Result<(), ApplyError> {
        io.bpf(BpfRequest::Attach(self.datapath))?;
        if !self.started {
            // RestoreServices: what a previous agent left in the maps.
            io.bpf(BpfRequest::Dump(LbMap::Services))?;
            io.bpf(BpfRequest::Dump(LbMap::Backends))?;
            self.started = true;
        }
        for op in self.state.plan_excluding_watch(io, old, new) {
            match &op {
                MapOp::Update(e) => io.bpf(BpfRequest::Update {
                    map: e.map,
                    key: &e.key,
                    value: &e.value,
                })?,
                MapOp::Delete { map, key } => io.bpf(BpfRequest::Delete { map: *map, key })?,
            };
        }
        Ok(())
    }

    fn settle(
        &mut self,
        _: &mut dyn Executor,
        _: &ServiceSet,
        _: Duration,
    ) -> Result<(), ApplyError> {
        // The agent has no delayed work for these maps.
        Ok(())
    }
}

/// The floor: the same entries, one batch call per map and kind (updates of backends,
/// services and reverse NAT; then deletes of services, reverse NAT and backends).
#[derive(Debug)]
pub struct FloorController {
    datapath: Datapath,
    state: AgentState,
}

impl FloorController {
    pub fn new(datapath: Datapath) -> Self {
        FloorController {
            datapath,
            state: AgentState::default(),
        }
    }
}

impl Controller for FloorController {
    fn profile(&self) -> Profile {
        Profile::Floor
    }

    fn sync(
        &mut self,
        io: &mut dyn Executor,
        old: Option<&ServiceSet>,
        new: &ServiceSet,
        _at: Duration,
    ) -> Result<(), ApplyError> {
        io.bpf(BpfRequest::Attach(self.datapath))?;
        let mut updates: BTreeMap<LbMap, Vec<Entry>> = BTreeMap::new();
        let mut deletes: BTreeMap<LbMap, Vec<Vec<u8>>> = BTreeMap::new();
        for op in self.state.plan_excluding_watch(io, old, new) {
            match op {
                MapOp::Update(e) => updates.entry(e.map).or_default().push(e),
                MapOp::Delete { map, key } => deletes.entry(map).or_default().push(key),
            }
        }
        for map in [LbMap::Backends, LbMap::Services, LbMap::RevNat] {
            if let Some(entries) = updates.get(&map) {
                io.bpf(BpfRequest::UpdateBatch { map, entries })?;
            }
        }
        for map in [LbMap::Services, LbMap::RevNat, LbMap::Backends] {
            if let Some(keys) = deletes.get(&map) {
                io.bpf(BpfRequest::DeleteBatch { map, keys })?;
            }
        }
        Ok(())
    }

    fn settle(
        &mut self,
        _: &mut dyn Executor,
        _: &ServiceSet,
        _: Duration,
    ) -> Result<(), ApplyError> {
        Ok(())
    }
}
