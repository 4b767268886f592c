//! The ebpf modes' maps as the kernel dumps them, decoded, for comparing the kernel with
//! the map stand-in (the conformance tests).

use crate::ebpf::layout::{describe_key, describe_value, LbMap};
use crate::ebpf::{BpfMaps, BpfReply, BpfRequest};
use crate::floor::error::ApplyError;
use crate::floor::sync::Executor;

/// Every entry of `maps`, decoded, sorted by key within each map: the kernel dumps a
/// hash map in bucket order, which no lookup depends on.
pub(crate) fn read(io: &mut dyn Executor, maps: &[LbMap]) -> Result<String, ApplyError> {
    let mut out = String::new();
    for map in maps {
        let BpfReply::Entries(mut entries) = io.bpf(BpfRequest::Dump(*map))? else {
            return Err(ApplyError::Bpf {
                what: format!("dump of {}", map.name()),
                source: std::io::Error::other("answered without entries"),
            });
        };
        entries.sort();
        out.push_str(&format!("map {} ({} entries)\n", map.name(), entries.len()));
        for (k, v) in entries {
            out.push_str(&format!(
                "  {} -> {}\n",
                describe_key(*map, &k),
                describe_value(*map, &v)
            ));
        }
    }
    Ok(out)
}
