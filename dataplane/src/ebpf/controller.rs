//! Programming the maps as Cilium's agent does ([`super::layout::CILIUM_RELEASE`]):
//! `pkg/service` allocates service and backend IDs and calls `pkg/maps/lbmap`, whose
//! `UpsertService` and `DeleteService` make one `BPF_MAP_UPDATE_ELEM` or
//! `BPF_MAP_DELETE_ELEM` per entry, in the order [`super::agent`] describes.
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

use std::collections::BTreeMap;
use std::time::Duration;

pub use super::agent::{AgentState, Changes, MapOp};
use super::datapath::Datapath;
use super::exchange::BpfMaps;
use super::layout::{Entry, LbMap};
use super::request::BpfRequest;
use crate::floor::error::ApplyError;
use crate::floor::exec::{Cost, Meter};
use crate::floor::model::ServiceSet;
use crate::floor::sync::{Controller, Executor, Profile};

/// [`AgentState::plan`], with finding the changes left out of the sync's cost: the
/// watcher's work, not the agent's.
fn plan_excluding_watch(
    state: &mut AgentState,
    io: &mut dyn Executor,
    old: Option<&ServiceSet>,
    new: &ServiceSet,
) -> Vec<MapOp> {
    let meter = Meter::start();
    let changes = state.changes(old, new);
    io.exclude(meter.finish(Cost::default()));
    state.apply(&changes)
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
        for op in plan_excluding_watch(&mut self.state, io, old, new) {
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
/// services, reverse NAT, affinity matches and source ranges; then deletes of
/// services, reverse NAT, affinity matches, source ranges and backends).
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
        for op in plan_excluding_watch(&mut self.state, io, old, new) {
            match op {
                MapOp::Update(e) => updates.entry(e.map).or_default().push(e),
                MapOp::Delete { map, key } => deletes.entry(map).or_default().push(key),
            }
        }
        let update_order = [
            LbMap::Backends,
            LbMap::Services,
            LbMap::RevNat,
            LbMap::AffinityMatch,
            LbMap::SourceRange,
        ];
        for map in update_order {
            if let Some(entries) = updates.get(&map) {
                io.bpf(BpfRequest::UpdateBatch { map, entries })?;
            }
        }
        let delete_order = [
            LbMap::Services,
            LbMap::RevNat,
            LbMap::AffinityMatch,
            LbMap::SourceRange,
            LbMap::Backends,
        ];
        for map in delete_order {
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
