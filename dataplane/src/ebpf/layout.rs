//! Cilium's IPv4 service maps, key and value byte for byte (Cilium [`CILIUM_RELEASE`]:
//! `bpf/lib/common.h` for the structs, `pkg/maps/lbmap/types.go` for the byte order the
//! agent writes), and the entries a set of services becomes. Pure: no kernel.
//!
//! Byte order, as the agent writes it: addresses and ports in network order; the
//! backend slot, backend IDs, counts and the cluster ID in host order; the reverse-NAT
//! index in network order, both as the reverse-NAT map's key and inside `lb4_service`
//! (`Service4Value.ToNetwork`, `RevNat4Key.ToNetwork`).

use std::fmt::Write;
use std::net::Ipv4Addr;

/// The Cilium release whose map layout and agent order kpbench mirrors.
pub const CILIUM_RELEASE: &str = "v1.17";

/// `IPPROTO_TCP`, written into keys and backends (the agent's protocol
/// differentiation, on by default in [`CILIUM_RELEASE`]).
pub const PROTO_TCP: u8 = 6;
/// `IPPROTO_UDP`.
pub const PROTO_UDP: u8 = 17;
/// `lb4_service.flags` (`bpf/lib/common.h`).
pub const SVC_FLAG_EXTERNAL_IP: u8 = 1 << 0;
pub const SVC_FLAG_NODEPORT: u8 = 1 << 1;
/// `externalTrafficPolicy: Local`.
pub const SVC_FLAG_EXT_LOCAL_SCOPE: u8 = 1 << 2;
/// `sessionAffinity: ClientIP`.
pub const SVC_FLAG_AFFINITY: u8 = 1 << 4;
pub const SVC_FLAG_LOADBALANCER: u8 = 1 << 5;
/// Not a ClusterIP nor the NodePort surrogate: reachable from outside the node.
pub const SVC_FLAG_ROUTABLE: u8 = 1 << 6;
/// Check `cilium_lb4_source_range`.
pub const SVC_FLAG_SOURCE_RANGE: u8 = 1 << 7;
/// `lb4_service.flags2`: `internalTrafficPolicy: Local`.
pub const SVC_FLAG_INT_LOCAL_SCOPE: u8 = 1 << 4;
/// Separate backends for the external and internal scopes.
pub const SVC_FLAG_TWO_SCOPES: u8 = 1 << 5;
/// `LB_LOOKUP_SCOPE_EXT`.
pub const SCOPE_EXT: u8 = 0;

/// One of Cilium's load-balancing maps that kpbench's programs hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LbMap {
    Services,
    Backends,
    RevNat,
    ReverseSk,
    /// `cilium_lb_affinity_match`: which backends a service with affinity has.
    AffinityMatch,
    /// `cilium_lb4_affinity`: each client's backend, written by the datapath only.
    Affinity,
    /// `cilium_lb4_source_range`: an LPM trie of each service's source ranges.
    SourceRange,
}

impl LbMap {
    pub const ALL: [LbMap; 7] = [
        LbMap::Services,
        LbMap::Backends,
        LbMap::RevNat,
        LbMap::ReverseSk,
        LbMap::AffinityMatch,
        LbMap::Affinity,
        LbMap::SourceRange,
    ];

    /// The maps the agent writes (every one but the datapath's own).
    pub const AGENT: [LbMap; 5] = [
        LbMap::Services,
        LbMap::Backends,
        LbMap::RevNat,
        LbMap::AffinityMatch,
        LbMap::SourceRange,
    ];

    /// The map's name in Cilium (and in the BPF object).
    pub fn name(self) -> &'static str {
        match self {
            LbMap::Services => "cilium_lb4_services_v2",
            LbMap::Backends => "cilium_lb4_backends_v3",
            LbMap::RevNat => "cilium_lb4_reverse_nat",
            LbMap::ReverseSk => "cilium_lb4_reverse_sk",
            LbMap::AffinityMatch => "cilium_lb_affinity_match",
            LbMap::Affinity => "cilium_lb4_affinity",
            LbMap::SourceRange => "cilium_lb4_source_range",
        }
    }

    /// Key and value sizes in bytes.
    pub fn sizes(self) -> (usize, usize) {
        match self {
            LbMap::Services => (12, 12),
            LbMap::Backends => (4, 12),
            LbMap::RevNat => (2, 6),
            LbMap::ReverseSk => (16, 8),
            LbMap::AffinityMatch => (8, 1),
            LbMap::Affinity => (16, 16),
            LbMap::SourceRange => (12, 1),
        }
    }
}

/// `struct lb4_key` (12 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Lb4Key {
    pub address: Ipv4Addr,
    pub dport: u16,
    pub backend_slot: u16,
    pub proto: u8,
    pub scope: u8,
}

impl Lb4Key {
    pub fn bytes(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(12);
        b.extend_from_slice(&self.address.octets());
        b.extend_from_slice(&self.dport.to_be_bytes());
        b.extend_from_slice(&self.backend_slot.to_ne_bytes());
        b.extend_from_slice(&[self.proto, self.scope, 0, 0]);
        b
    }

    pub fn parse(b: &[u8]) -> Option<Lb4Key> {
        (b.len() == 12).then(|| Lb4Key {
            address: Ipv4Addr::new(b[0], b[1], b[2], b[3]),
            dport: u16::from_be_bytes([b[4], b[5]]),
            backend_slot: u16::from_ne_bytes([b[6], b[7]]),
            proto: b[8],
            scope: b[9],
        })
    }
}

/// `struct lb4_service` (12 bytes): a master entry (slot 0) or a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Lb4Service {
    /// Slots: the backend ID; master: algorithm << 24 | affinity timeout in seconds.
    pub backend_id: u32,
    pub count: u16,
    pub rev_nat_index: u16,
    pub flags: u8,
    pub flags2: u8,
    pub qcount: u16,
}

impl Lb4Service {
    pub fn bytes(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(12);
        b.extend_from_slice(&self.backend_id.to_ne_bytes());
        b.extend_from_slice(&self.count.to_ne_bytes());
        b.extend_from_slice(&self.rev_nat_index.to_be_bytes());
        b.extend_from_slice(&[self.flags, self.flags2]);
        b.extend_from_slice(&self.qcount.to_ne_bytes());
        b
    }

    pub fn parse(b: &[u8]) -> Option<Lb4Service> {
        (b.len() == 12).then(|| Lb4Service {
            backend_id: u32::from_ne_bytes([b[0], b[1], b[2], b[3]]),
            count: u16::from_ne_bytes([b[4], b[5]]),
            rev_nat_index: u16::from_be_bytes([b[6], b[7]]),
            flags: b[8],
            flags2: b[9],
            qcount: u16::from_ne_bytes([b[10], b[11]]),
        })
    }
}

/// `struct lb4_backend` (12 bytes); its key is the `__u32` backend ID (host order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Lb4Backend {
    pub address: Ipv4Addr,
    pub port: u16,
    pub proto: u8,
    /// `BE_STATE_ACTIVE` = 0.
    pub flags: u8,
    pub cluster_id: u16,
    pub zone: u8,
}

impl Lb4Backend {
    pub fn bytes(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(12);
        b.extend_from_slice(&self.address.octets());
        b.extend_from_slice(&self.port.to_be_bytes());
        b.extend_from_slice(&[self.proto, self.flags]);
        b.extend_from_slice(&self.cluster_id.to_ne_bytes());
        b.extend_from_slice(&[self.zone, 0]);
        b
    }

    pub fn parse(b: &[u8]) -> Option<Lb4Backend> {
        (b.len() == 12).then(|| Lb4Backend {
            address: Ipv4Addr::new(b[0], b[1], b[2], b[3]),
            port: u16::from_be_bytes([b[4], b[5]]),
            proto: b[6],
            flags: b[7],
            cluster_id: u16::from_ne_bytes([b[8], b[9]]),
            zone: b[10],
        })
    }
}

/// The backend map's key.
pub fn backend_key(id: u32) -> Vec<u8> {
    id.to_ne_bytes().to_vec()
}

fn parse_u32(b: &[u8]) -> Option<u32> {
    Some(u32::from_ne_bytes(b.try_into().ok()?))
}

/// The reverse-NAT map's key: the index in network order.
pub fn rev_nat_key(index: u16) -> Vec<u8> {
    index.to_be_bytes().to_vec()
}

/// `struct lb4_reverse_nat` (6 bytes, packed): the service's address and port.
pub fn rev_nat_value(address: Ipv4Addr, port: u16) -> Vec<u8> {
    let mut b = address.octets().to_vec();
    b.extend_from_slice(&port.to_be_bytes());
    b
}

fn parse_addr_port(b: &[u8]) -> Option<(Ipv4Addr, u16)> {
    (b.len() >= 6).then(|| {
        (
            Ipv4Addr::new(b[0], b[1], b[2], b[3]),
            u16::from_be_bytes([b[4], b[5]]),
        )
    })
}

/// Hex bytes, space-separated per field group of 4.
pub fn hex(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() * 2 + b.len() / 4);
    for (i, x) in b.iter().enumerate() {
        if i > 0 && i % 4 == 0 {
            s.push(' ');
        }
        let _ = write!(s, "{x:02x}");
    }
    s
}

/// The key's fields, decoded, for traces and `kpbench rules`.
pub fn describe_key(map: LbMap, b: &[u8]) -> String {
    let fields = match map {
        LbMap::Services => Lb4Key::parse(b).map(|k| {
            format!(
                "{{address={} dport={} backend_slot={} proto={} scope={}}}",
                k.address, k.dport, k.backend_slot, k.proto, k.scope
            )
        }),
        LbMap::Backends => parse_u32(b).map(|id| format!("{{id={id}}}")),
        LbMap::RevNat => {
            (b.len() == 2).then(|| format!("{{index={}}}", u16::from_be_bytes([b[0], b[1]])))
        }
        LbMap::ReverseSk => (b.len() == 16).then(|| {
            let (a, p) = parse_addr_port(&b[8..]).expect("16 bytes");
            let cookie = u64::from_ne_bytes(b[..8].try_into().expect("8 bytes"));
            format!("{{cookie={cookie} address={a} port={p}}}")
        }),
        LbMap::AffinityMatch => super::affinity::describe_match_key(b),
        LbMap::Affinity => super::affinity::describe_affinity_key(b),
        LbMap::SourceRange => super::source_range::describe_key(b),
    };
    format!("{} [{}]", fields.unwrap_or_else(|| "?".into()), hex(b))
}

/// The value's fields, decoded.
pub fn describe_value(map: LbMap, b: &[u8]) -> String {
    let fields = match map {
        LbMap::Services => Lb4Service::parse(b).map(|v| {
            format!(
                "{{backend_id={} count={} rev_nat_index={} flags={:#04x} flags2={:#04x} qcount={}}}",
                v.backend_id, v.count, v.rev_nat_index, v.flags, v.flags2, v.qcount
            )
        }),
        LbMap::Backends => Lb4Backend::parse(b).map(|v| {
            format!(
                "{{address={} port={} proto={} flags={} cluster_id={} zone={}}}",
                v.address, v.port, v.proto, v.flags, v.cluster_id, v.zone
            )
        }),
        LbMap::RevNat => (b.len() == 6)
            .then(|| parse_addr_port(b))
            .flatten()
            .map(|(a, p)| format!("{{address={a} port={p}}}")),
        LbMap::ReverseSk => (b.len() == 8).then(|| {
            let (a, p) = parse_addr_port(b).expect("8 bytes");
            format!("{{address={a} port={p} rev_nat_index={}}}", u16::from_be_bytes([b[6], b[7]]))
        }),
        LbMap::AffinityMatch | LbMap::SourceRange => super::affinity::describe_dummy(b),
        LbMap::Affinity => super::affinity::describe_affinity_value(b),
    };
    format!("{} [{}]", fields.unwrap_or_else(|| "?".into()), hex(b))
}

/// One map entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub map: LbMap,
    pub key: Vec<u8>,
    pub value: Vec<u8>,
}

/// A TCP ClusterIP's master key (slot 0).
pub fn master_key(vip: Ipv4Addr, port: u16) -> Lb4Key {
    slot_key(vip, port, 0)
}

/// A TCP ClusterIP's key for `slot` (0: master).
pub fn slot_key(vip: Ipv4Addr, port: u16, slot: u16) -> Lb4Key {
    Lb4Key {
        address: vip,
        dport: port,
        backend_slot: slot,
        proto: PROTO_TCP,
        scope: SCOPE_EXT,
    }
}

/// A backend of protocol `proto` in state `flags` (`BE_STATE_*`).
pub fn backend(address: Ipv4Addr, port: u16, proto: u8, flags: u8) -> Lb4Backend {
    Lb4Backend {
        address,
        port,
        proto,
        flags,
        cluster_id: 0,
        zone: 0,
    }
}

/// A master entry: `count` backends, the frontend's flags, and in the backend-ID
/// slot the affinity timeout (the algorithm byte above it is 0: the node's default,
/// no per-service annotation).
pub fn master(
    count: u16,
    rev_nat_index: u16,
    flags: (u8, u8),
    affinity_timeout: u32,
) -> Lb4Service {
    Lb4Service {
        backend_id: affinity_timeout,
        count,
        rev_nat_index,
        flags: flags.0,
        flags2: flags.1,
        qcount: 0,
    }
}

/// A slot entry pointing at `backend_id`.
pub fn slot(backend_id: u32, rev_nat_index: u16) -> Lb4Service {
    Lb4Service {
        backend_id,
        count: 0,
        rev_nat_index,
        flags: 0,
        flags2: 0,
        qcount: 0,
    }
}
