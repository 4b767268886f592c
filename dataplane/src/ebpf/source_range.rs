//! `loadBalancerSourceRanges` on Cilium's map ([`super::layout::CILIUM_RELEASE`]):
//! `cilium_lb4_source_range`, an LPM trie (`BPF_F_NO_PREALLOC`) of `struct
//! lb4_src_range_key` to a dummy `__u8` (`pkg/maps/lbmap/source_range.go`). The
//! prefix covers the service's reverse-NAT ID and the padding (32 bits,
//! `lpmPrefixLen4`) and then the range, so one lookup of (service, client address)
//! finds whether some range of the service holds the client.

use std::net::Ipv4Addr;

/// The 32 bits of reverse-NAT ID and padding before the address.
const LPM_PREFIX_LEN4: u32 = 16 + 16;

/// `struct lb4_src_range_key` (12 bytes): `bpf_lpm_trie_key.prefixlen` in host order,
/// the reverse-NAT ID in network order (`SourceRangeKey4.ToNetwork`), padding, the
/// network address.
pub fn key(rev_nat_id: u16, (net, len): (Ipv4Addr, u8)) -> Vec<u8> {
    let mut b = (u32::from(len) + LPM_PREFIX_LEN4).to_ne_bytes().to_vec();
    b.extend_from_slice(&rev_nat_id.to_be_bytes());
    b.extend_from_slice(&[0, 0]);
    b.extend_from_slice(&net.octets());
    b
}

/// The value: `SourceRangeValue{}`, one zero byte.
pub fn value() -> Vec<u8> {
    vec![0]
}

/// `(rev_nat_id, (network, prefix length))` of a key.
pub fn parse_key(b: &[u8]) -> Option<(u16, (Ipv4Addr, u8))> {
    if b.len() != 12 {
        return None;
    }
    let prefix = u32::from_ne_bytes([b[0], b[1], b[2], b[3]]).checked_sub(LPM_PREFIX_LEN4)?;
    Some((
        u16::from_be_bytes([b[4], b[5]]),
        (Ipv4Addr::new(b[8], b[9], b[10], b[11]), prefix as u8),
    ))
}

/// A key's fields.
pub fn describe_key(b: &[u8]) -> Option<String> {
    parse_key(b).map(|(rev, (net, len))| format!("{{rev_nat_id={rev} range={net}/{len}}}"))
}
