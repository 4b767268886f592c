//! The eBPF modes' kernel requests: BPF map calls as Cilium's agent makes them through
//! `bpf(2)`, and loading the datapath. The mode defines them; the core executor runs
//! them ([`Request`]) and its controllers send them with [`BpfMaps::bpf`].

use std::sync::Arc;

use super::datapath::{Datapath, Maps};
use super::layout::{Entry, LbMap};
use super::standin::MapsStandIn;
use super::sys;
use crate::backend::ApplyError;
use crate::netns::Netns;
use crate::sync::record::StandIn;
use crate::sync::{Category, Executor, Kernel, Request, Timing};

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

impl BpfRequest<'_> {
    /// The error of the kernel refusing it in `ns` with `source`: its step, the map,
    /// the namespace and the errno by name.
    pub fn refused(&self, ns: &Netns, source: std::io::Error) -> ApplyError {
        let map = match self {
            BpfRequest::Update { map, .. }
            | BpfRequest::Delete { map, .. }
            | BpfRequest::UpdateBatch { map, .. }
            | BpfRequest::DeleteBatch { map, .. }
            | BpfRequest::Dump(map) => format!(" on {}", map.name()),
            BpfRequest::Attach(_) => String::new(),
        };
        ApplyError::Bpf {
            what: format!("{}{map} in {}", self.step(), ns.name),
            source,
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

/// Sends BPF map requests through any executor: the one way this mode's controllers
/// reach the maps.
pub trait BpfMaps {
    fn bpf(&mut self, req: BpfRequest<'_>) -> Result<BpfReply, ApplyError>;
}

impl<E: Executor + ?Sized> BpfMaps for E {
    fn bpf(&mut self, req: BpfRequest<'_>) -> Result<BpfReply, ApplyError> {
        let mut x = Exchange {
            req: &req,
            reply: None,
        };
        self.request(&mut x)?;
        Ok(x.reply.unwrap_or(BpfReply::Done))
    }
}

/// A request with room for its reply, as the executor runs it.
struct Exchange<'r, 'a> {
    req: &'r BpfRequest<'a>,
    reply: Option<BpfReply>,
}

impl Request for Exchange<'_, '_> {
    fn step(&self) -> &'static str {
        self.req.step()
    }

    fn category(&self) -> Category {
        Category::Bpf
    }

    fn timing(&self) -> Timing {
        match self.req {
            BpfRequest::Attach(_) => Timing::Untimed,
            _ => Timing::Run,
        }
    }

    fn kind(&self) -> &'static str {
        "bpf"
    }

    fn describe(&self) -> String {
        self.req.describe()
    }

    fn bytes(&self) -> usize {
        self.req.bytes()
    }

    fn run(&mut self, kernel: &mut Kernel<'_>) -> Result<(), ApplyError> {
        self.reply = Some(call(kernel, self.req)?);
        Ok(())
    }

    fn answer(&mut self, standin: &mut dyn StandIn) -> bool {
        let Some(maps) = standin.downcast_mut::<MapsStandIn>() else {
            return false;
        };
        self.reply = Some(maps.apply(self.req));
        true
    }

    fn unanswered(&mut self) {
        self.reply = Some(BpfReply::Done);
    }

    fn refused(&self, ns: &Netns, errno: i32) -> ApplyError {
        self.req
            .refused(ns, std::io::Error::from_raw_os_error(errno))
    }
}

/// The maps [`BpfRequest::Attach`] loaded.
fn attached(k: &mut Kernel<'_>, req: &BpfRequest<'_>) -> Result<Arc<Maps>, ApplyError> {
    let name = &k.ns.name;
    k.handles
        .get::<Arc<Maps>>()
        .cloned()
        .ok_or_else(|| ApplyError::Bpf {
            what: format!("{} in {name}", req.step()),
            source: std::io::Error::other("no datapath is attached: send BpfRequest::Attach first"),
        })
}

/// Sends `req` to the maps in the executor's namespace.
fn call(k: &mut Kernel<'_>, req: &BpfRequest<'_>) -> Result<BpfReply, ApplyError> {
    if let BpfRequest::Attach(datapath) = req {
        // Loading the object and creating its maps is what Cilium's agent does at
        // start: the request is untimed (see `Timing::Untimed`).
        let maps = super::datapath::maps_for(k.ns, *datapath)?;
        k.handles.put(maps);
        return Ok(BpfReply::Done);
    }
    let maps = attached(k, req)?;
    let ns = k.ns.clone();
    let fail = |source| req.refused(&ns, source);
    match req {
        BpfRequest::Update { map, key, value } => {
            sys::update(maps.fd(*map), key, value).map_err(fail)?
        }
        BpfRequest::Delete { map, key } => match sys::delete(maps.fd(*map), key) {
            // The agent ignores a delete of what is already gone.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            r => r.map_err(fail)?,
        },
        BpfRequest::UpdateBatch { map, entries } => {
            let keys: Vec<u8> = entries.iter().flat_map(|e| e.key.iter().copied()).collect();
            let values: Vec<u8> = entries
                .iter()
                .flat_map(|e| e.value.iter().copied())
                .collect();
            sys::update_batch(maps.fd(*map), &keys, &values, entries.len()).map_err(fail)?;
        }
        BpfRequest::DeleteBatch { map, keys } => {
            let flat: Vec<u8> = keys.iter().flat_map(|k| k.iter().copied()).collect();
            match sys::delete_batch(maps.fd(*map), &flat, keys.len()) {
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
                r => {
                    r.map_err(fail)?;
                }
            }
        }
        BpfRequest::Dump(map) => {
            let (k, v) = map.sizes();
            return Ok(BpfReply::Entries(
                sys::dump(maps.fd(*map), k, v).map_err(fail)?,
            ));
        }
        BpfRequest::Attach(_) => unreachable!("answered above"),
    }
    Ok(BpfReply::Done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_map_call_names_its_step_the_map_and_the_errno() {
        let ns = Netns::named("kpb-t-node");
        let (key, value) = ([0u8; 4], [0u8; 8]);
        let req = BpfRequest::Update {
            map: LbMap::Backends,
            key: &key,
            value: &value,
        };
        let e = req.refused(&ns, std::io::Error::from_raw_os_error(libc::E2BIG));
        assert_eq!(
            e.to_string(),
            "bpf MAP_UPDATE_ELEM on cilium_lb4_backends_v3 in kpb-t-node: E2BIG: Argument list too long (os error 7)"
        );
    }
}
