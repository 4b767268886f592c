//! An in-memory model of the four maps for the recording executor: updates, deletes
//! and dumps behave as the kernel's hash maps do (a delete of a missing key fails
//! with ENOENT in the kernel; here it is a no-op, as the agent ignores that error).

use std::collections::BTreeMap;

use super::layout::LbMap;
use super::request::{BpfReply, BpfRequest};
use crate::floor::sync::standin::StandIn;

/// The maps, key bytes to value bytes.
#[derive(Debug, Default, Clone)]
pub struct MapsStandIn {
    pub maps: BTreeMap<LbMap, BTreeMap<Vec<u8>, Vec<u8>>>,
}

impl MapsStandIn {
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies a request; its reply.
    pub fn apply(&mut self, req: &BpfRequest<'_>) -> BpfReply {
        match req {
            BpfRequest::Update { map, key, value } => {
                self.maps
                    .entry(*map)
                    .or_default()
                    .insert(key.to_vec(), value.to_vec());
            }
            BpfRequest::Delete { map, key } => {
                self.maps.entry(*map).or_default().remove(*key);
            }
            BpfRequest::UpdateBatch { map, entries } => {
                let m = self.maps.entry(*map).or_default();
                for e in entries.iter() {
                    m.insert(e.key.clone(), e.value.clone());
                }
            }
            BpfRequest::DeleteBatch { map, keys } => {
                let m = self.maps.entry(*map).or_default();
                for k in keys.iter() {
                    m.remove(k);
                }
            }
            BpfRequest::Dump(map) => {
                return BpfReply::Entries(
                    self.maps
                        .get(map)
                        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                        .unwrap_or_default(),
                )
            }
            BpfRequest::Attach(_) => {}
        }
        BpfReply::Done
    }
}

impl StandIn for MapsStandIn {
    fn tool(
        &mut self,
        _: &str,
        _: &[String],
        _: Option<&[u8]>,
    ) -> Option<crate::floor::exec::Output> {
        None
    }
}
