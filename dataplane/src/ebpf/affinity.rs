//! Session affinity on Cilium's maps ([`super::layout::CILIUM_RELEASE`],
//! `bpf/lib/lb.h`, `pkg/maps/lbmap/affinity.go`):
//!
//! - `cilium_lb_affinity_match` (hash, `struct lb_affinity_match` to a dummy `__u8`):
//!   the set of (service, backend) pairs of services with ClientIP affinity, which
//!   the agent writes (`AddAffinityMatch`) after the service's entries and deletes
//!   when a backend leaves the service or the affinity goes;
//! - `cilium_lb4_affinity` (LRU hash, `struct lb4_affinity_key` to `struct
//!   lb_affinity_val`): each client's backend with when it was last used, which only
//!   the datapath writes; the agent creates it and never writes it.
//!
//! The service's timeout is in its master entry's backend-ID slot
//! (`Service4Value.SetSessionAffinityTimeoutSec`).

/// `struct lb_affinity_match` (8 bytes, packed): the backend ID in host order, the
/// service's reverse-NAT ID in network order (`AffinityMatchKey.ToNetwork`).
pub fn match_key(rev_nat_id: u16, backend_id: u32) -> Vec<u8> {
    let mut b = backend_id.to_ne_bytes().to_vec();
    b.extend_from_slice(&rev_nat_id.to_be_bytes());
    b.extend_from_slice(&[0, 0]);
    b
}

/// The match map's value: `AffinityMatchValue{}`, one zero byte.
pub fn match_value() -> Vec<u8> {
    vec![0]
}

/// `(rev_nat_id, backend_id)` of a match key.
pub fn parse_match_key(b: &[u8]) -> Option<(u16, u32)> {
    (b.len() == 8).then(|| {
        (
            u16::from_be_bytes([b[4], b[5]]),
            u32::from_ne_bytes([b[0], b[1], b[2], b[3]]),
        )
    })
}

/// A match key's fields.
pub fn describe_match_key(b: &[u8]) -> Option<String> {
    parse_match_key(b).map(|(rev, id)| format!("{{backend_id={id} rev_nat_id={rev}}}"))
}

/// A `struct lb4_affinity_key` (16 bytes): the client's address or netns cookie, the
/// service, whether it is a cookie.
pub fn describe_affinity_key(b: &[u8]) -> Option<String> {
    (b.len() == 16).then(|| {
        let client = u64::from_ne_bytes(b[..8].try_into().expect("8 bytes"));
        let rev = u16::from_be_bytes([b[8], b[9]]);
        format!(
            "{{client_id={client:#x} rev_nat_id={rev} netns_cookie={}}}",
            b[10] & 1
        )
    })
}

/// A `struct lb_affinity_val` (16 bytes): last use in ns, backend ID.
pub fn describe_affinity_value(b: &[u8]) -> Option<String> {
    (b.len() == 16).then(|| {
        let last = u64::from_ne_bytes(b[..8].try_into().expect("8 bytes"));
        let id = u32::from_ne_bytes(b[8..12].try_into().expect("4 bytes"));
        format!("{{last_used={last} backend_id={id}}}")
    })
}

/// A one-byte dummy value.
pub fn describe_dummy(b: &[u8]) -> Option<String> {
    (b.len() == 1).then(|| format!("{{pad={:02x}}}", b[0]))
}
