//! kube-proxy's dummy interface `kube-ipvs0` and the ClusterIPs bound to it, over
//! rtnetlink (kube-proxy's EnsureDummyDevice / EnsureAddressBind / UnbindAddress).

use std::io;
use std::net::{IpAddr, Ipv4Addr};

use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::address::{
    AddressAttribute, AddressMessage, AddressMessageBuffer, AddressScope,
};
use netlink_packet_route::link::{
    InfoKind, LinkAttribute, LinkInfo, LinkMessage, LinkMessageBuffer,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_packet_utils::Parseable;

use super::nl::NlSocket;

/// The dummy device kube-proxy binds every ClusterIP to.
pub const DUMMY_DEVICE: &str = "kube-ipvs0";

/// An rtnetlink socket in the calling thread's namespace.
pub fn open() -> io::Result<NlSocket> {
    NlSocket::open(netlink_sys::protocols::NETLINK_ROUTE)
}

/// Creates the dummy device `name` unless it exists (`ip link add NAME type dummy`)
/// and returns its index, in the namespace of `nl`'s socket (whichever thread calls).
pub fn ensure_dummy(nl: &mut NlSocket, name: &str) -> io::Result<u32> {
    if let Some(index) = link_index(nl, name)? {
        return Ok(index);
    }
    let mut msg = LinkMessage::default();
    msg.attributes.push(LinkAttribute::IfName(name.to_string()));
    msg.attributes
        .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(
            InfoKind::Dummy,
        )]));
    let batch = nl.batch(
        [RouteNetlinkMessage::NewLink(msg)],
        NLM_F_CREATE | NLM_F_EXCL,
    );
    match nl.execute(&batch)?[0] {
        0 | libc::EEXIST => {}
        libc::EOPNOTSUPP => {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!(
                "ip link add {name} type dummy: the kernel has no dummy interfaces (CONFIG_DUMMY)"
            ),
            ))
        }
        errno => {
            return Err(io::Error::new(
                io::Error::from_raw_os_error(errno).kind(),
                format!(
                    "ip link add {name} type dummy: {}",
                    io::Error::from_raw_os_error(errno)
                ),
            ))
        }
    }
    link_index(nl, name)?.ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("{name} was created but has no index"),
        )
    })
}

/// The index of link `name` in the namespace of `nl`'s socket (RTM_GETLINK by name, as
/// `ip link show NAME`); None when there is no such link.
pub fn link_index(nl: &mut NlSocket, name: &str) -> io::Result<Option<u32>> {
    let mut msg = LinkMessage::default();
    msg.attributes.push(LinkAttribute::IfName(name.to_string()));
    let parts = match nl.request(RouteNetlinkMessage::GetLink(msg), false) {
        Ok(parts) => parts,
        Err(e) if e.raw_os_error() == Some(libc::ENODEV) => return Ok(None),
        Err(e) => return Err(e),
    };
    let Some(p) = parts.first() else {
        return Ok(None);
    };
    let msg = LinkMessage::parse(&LinkMessageBuffer::new(p))
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
    Ok(Some(msg.header.index))
}

/// The interface index of `name` in the calling thread's namespace (if_nametoindex).
pub fn index_of(name: &str) -> Option<u32> {
    let c = std::ffi::CString::new(name).ok()?;
    // SAFETY: a valid NUL-terminated string.
    let index = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (index != 0).then_some(index)
}

pub(crate) fn address_message(index: u32, ip: Ipv4Addr) -> AddressMessage {
    let mut msg = AddressMessage::default();
    msg.header.family = AddressFamily::Inet;
    msg.header.prefix_len = 32;
    msg.header.scope = AddressScope::Universe;
    msg.header.index = index;
    msg.attributes.push(AddressAttribute::Local(IpAddr::V4(ip)));
    msg.attributes
        .push(AddressAttribute::Address(IpAddr::V4(ip)));
    msg
}

/// Binds each address as a /32 to interface `index` (`ip addr add IP/32 dev ...`),
/// many per `send()`; already bound addresses are fine. Returns the bytes sent.
pub fn add_addresses(nl: &mut NlSocket, index: u32, ips: &[Ipv4Addr]) -> io::Result<usize> {
    change_addresses(nl, index, ips, true)
}

/// Removes each /32 address from interface `index` (`ip addr del`); missing ones are
/// fine. Returns the bytes sent.
pub fn del_addresses(nl: &mut NlSocket, index: u32, ips: &[Ipv4Addr]) -> io::Result<usize> {
    change_addresses(nl, index, ips, false)
}

fn change_addresses(
    nl: &mut NlSocket,
    index: u32,
    ips: &[Ipv4Addr],
    add: bool,
) -> io::Result<usize> {
    let (verb, flags, fine): (&str, u16, &[i32]) = if add {
        ("add", NLM_F_CREATE | NLM_F_EXCL, &[libc::EEXIST])
    } else {
        ("del", 0, &[libc::EADDRNOTAVAIL, libc::ENOENT])
    };
    let batch = nl.batch(
        ips.iter().map(|ip| {
            let msg = address_message(index, *ip);
            if add {
                RouteNetlinkMessage::NewAddress(msg)
            } else {
                RouteNetlinkMessage::DelAddress(msg)
            }
        }),
        flags,
    );
    for (ip, errno) in ips.iter().zip(nl.execute(&batch)?) {
        if errno != 0 && !fine.contains(&errno) {
            let e = io::Error::from_raw_os_error(errno);
            return Err(io::Error::new(
                e.kind(),
                format!("ip addr {verb} {ip}/32 dev {DUMMY_DEVICE}: {e}"),
            ));
        }
    }
    Ok(batch.bytes())
}

/// The IPv4 addresses on interface `index` (`ip -4 addr show dev ...`).
pub fn addresses(nl: &mut NlSocket, index: u32) -> io::Result<Vec<Ipv4Addr>> {
    let mut req = AddressMessage::default();
    req.header.family = AddressFamily::Inet;
    let parts = nl.request(RouteNetlinkMessage::GetAddress(req), true)?;
    let mut out = Vec::new();
    for p in parts {
        let msg = AddressMessage::parse(&AddressMessageBuffer::new(&p))
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
        if msg.header.index != index {
            continue;
        }
        for a in msg.attributes {
            if let AddressAttribute::Local(IpAddr::V4(ip)) = a {
                out.push(ip);
            }
        }
    }
    Ok(out)
}
