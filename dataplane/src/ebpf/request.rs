//! The eBPF modes' kernel requests, as data: BPF map calls as Cilium's agent makes
//! them through `bpf(2)`, and loading the datapath ([`BpfRequest`]), and their replies
//! ([`BpfReply`]). The stand-in answers them ([`super::standin`]); [`super::exchange`]
//! runs them through the core executor.

use super::datapath::Datapath;
use super::layout::{Entry, LbMap};

/// A BPF map request of a sync (the ebpf mode's, as Cilium's agent makes them through
/// the `bpf(2)` syscall). Keys and values are the exact bytes of Cilium's structs
/// ([`super::layout`]).
#[derive(Debug)]
pub enum BpfRequest<'a> {
    /// `BPF_MAP_UPDATE_ELEM` of one entry (the agent's one call per entry).
    Update {
        map: LbMap,
        key: &'a [u8],
        value: &'a [u8],
    },
    /// `BPF_MAP_DELETE_ELEM` of one entry.
    Delete { map: LbMap, key: &'a [u8] },
    /// `BPF_MAP_UPDATE_BATCH` of many entries (the floor).
    UpdateBatch { map: LbMap, entries: &'a [Entry] },
    /// `BPF_MAP_DELETE_BATCH` of many keys (the floor).
    DeleteBatch { map: LbMap, keys: &'a [Vec<u8>] },
    /// Every entry, by `BPF_MAP_GET_NEXT_KEY` and `BPF_MAP_LOOKUP_ELEM` (the agent's
    /// dump at start, and the read-back).
    Dump(LbMap),
    /// Loads the datapath's programs and maps and attaches them, unless they are
    /// there: what Cilium's agent does at start, not per sync, so it is left out of
    /// the sync's cost. Every other request goes to the maps of the datapath named here.
    Attach(Datapath),
}

impl BpfRequest<'_> {
    /// The step name it counts under.
    pub fn step(&self) -> &'static str {
        match self {
            BpfRequest::Update { .. } => "bpf MAP_UPDATE_ELEM",
            BpfRequest::Delete { .. } => "bpf MAP_DELETE_ELEM",
            BpfRequest::UpdateBatch { .. } => "bpf MAP_UPDATE_BATCH",
            BpfRequest::DeleteBatch { .. } => "bpf MAP_DELETE_BATCH",
            BpfRequest::Dump(_) => "bpf map dump",
            BpfRequest::Attach(_) => "bpf load and attach",
        }
    }

    /// A one-line description for traces: the map, and each key and value with its
    /// fields and hex bytes.
    pub fn describe(&self) -> String {
        use super::layout::{describe_key, describe_value};
        match self {
            BpfRequest::Update { map, key, value } => format!(
                "MAP_UPDATE_ELEM {} key {} value {}",
                map.name(),
                describe_key(*map, key),
                describe_value(*map, value)
            ),
            BpfRequest::Delete { map, key } => {
                format!(
                    "MAP_DELETE_ELEM {} key {}",
                    map.name(),
                    describe_key(*map, key)
                )
            }
            BpfRequest::UpdateBatch { map, entries } => {
                let mut s = format!(
                    "MAP_UPDATE_BATCH {} of {} entries",
                    map.name(),
                    entries.len()
                );
                for e in entries.iter() {
                    s.push_str(&format!(
                        "\n  key {} value {}",
                        describe_key(*map, &e.key),
                        describe_value(*map, &e.value)
                    ));
                }
                s
            }
            BpfRequest::DeleteBatch { map, keys } => {
                let mut s = format!("MAP_DELETE_BATCH {} of {} keys", map.name(), keys.len());
                for k in keys.iter() {
                    s.push_str(&format!("\n  key {}", describe_key(*map, k)));
                }
                s
            }
            BpfRequest::Dump(map) => format!("dump {}", map.name()),
            BpfRequest::Attach(d) => format!("load and attach the {} (untimed)", d.describe()),
        }
    }

    /// The bytes it writes to the kernel (keys and values).
    pub fn bytes(&self) -> usize {
        match self {
            BpfRequest::Update { key, value, .. } => key.len() + value.len(),
            BpfRequest::Delete { key, .. } => key.len(),
            BpfRequest::UpdateBatch { entries, .. } => {
                entries.iter().map(|e| e.key.len() + e.value.len()).sum()
            }
            BpfRequest::DeleteBatch { keys, .. } => keys.iter().map(Vec::len).sum(),
            BpfRequest::Dump(_) | BpfRequest::Attach(_) => 0,
        }
    }
}

/// The answer to a [`BpfRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BpfReply {
    Done,
    /// A dump's entries (key, value), in the kernel's iteration order.
    Entries(Vec<(Vec<u8>, Vec<u8>)>),
}
