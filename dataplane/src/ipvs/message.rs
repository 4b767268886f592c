//! Typed IPVS objects and changes: a virtual service, a real server, and one change
//! ([`Op`]) as the IPVS message kube-proxy's moby/ipvs would send for it.

use std::net::{IpAddr, Ipv4Addr};

use netlink_packet_utils::DecodeError;

use super::attrs::{
    addr_bytes, addr_from, af_of, CmdAttr, DestAttr, IpvsMessage, SvcAttr, AF_INET, IPPROTO_TCP,
    IPPROTO_UDP, IPVS_CMD_DEL_DEST, IPVS_CMD_DEL_SERVICE, IPVS_CMD_FLUSH, IPVS_CMD_NEW_DEST,
    IPVS_CMD_NEW_SERVICE, IPVS_CMD_SET_DEST, IPVS_CMD_SET_SERVICE, IP_VS_CONN_F_MASQ,
    IP_VS_SVC_F_HASHED, IP_VS_SVC_F_PERSISTENT,
};

/// A virtual service (`ipvsadm -A`), as kube-proxy fills moby's `Service`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtualService {
    pub addr: IpAddr,
    pub protocol: u16,
    pub port: u16,
    pub scheduler: String,
    pub flags: u32,
    pub timeout: u32,
    pub netmask: u32,
}

impl VirtualService {
    /// A TCP service with kube-proxy's defaults (no flags, no persistence, netmask
    /// 0xffffffff for IPv4 and 128 for IPv6).
    pub fn tcp(addr: IpAddr, port: u16, scheduler: &str) -> Self {
        VirtualService::new(addr, IPPROTO_TCP, port, scheduler)
    }

    /// A service of `protocol` (`IPPROTO_TCP`, `IPPROTO_UDP`) with kube-proxy's defaults.
    pub fn new(addr: IpAddr, protocol: u16, port: u16, scheduler: &str) -> Self {
        VirtualService {
            addr,
            protocol,
            port,
            scheduler: scheduler.to_string(),
            flags: 0,
            timeout: 0,
            netmask: if addr.is_ipv4() { 0xffff_ffff } else { 128 },
        }
    }

    /// ipvsadm's protocol option: `-u` for UDP, `-t` for TCP (and anything else).
    pub fn flag(&self) -> &'static str {
        if self.protocol == IPPROTO_UDP {
            "-u"
        } else {
            "-t"
        }
    }

    /// `-t a.b.c.d:port` (or `-u`), as ipvsadm names the service.
    pub fn name(&self) -> String {
        format!("{} {}", self.flag(), host_port(self.addr, self.port))
    }

    /// ` -p <timeout>` for a persistent service (ClientIP affinity), as `ipvsadm -S -n`
    /// prints it; empty otherwise.
    pub fn persistence(&self) -> String {
        if self.flags & IP_VS_SVC_F_PERSISTENT != 0 {
            format!(" -p {}", self.timeout)
        } else {
            String::new()
        }
    }

    /// Whether `other` is the same virtual service (address, protocol, port), as
    /// kube-proxy keys them (`VirtualServer.String()`).
    pub fn same_key(&self, other: &VirtualService) -> bool {
        self.addr == other.addr && self.protocol == other.protocol && self.port == other.port
    }

    /// kube-proxy's `VirtualServer.Equal` between what it wants (`self`) and what the
    /// kernel answered: key, scheduler, flags (without the kernel's HASHED bit) and
    /// timeout; a difference means an UpdateVirtualServer (SET_SERVICE).
    pub fn kube_proxy_equal(&self, applied: &VirtualService) -> bool {
        self.same_key(applied)
            && self.scheduler == applied.scheduler
            && self.flags & !IP_VS_SVC_F_HASHED == applied.flags & !IP_VS_SVC_F_HASHED
            && self.timeout == applied.timeout
    }

    /// The attributes that identify the service (AF, PROTOCOL, ADDR, PORT): enough
    /// for DEL_SERVICE, NEW/DEL_DEST and GET_DEST.
    pub fn key_attrs(&self) -> Vec<SvcAttr> {
        vec![
            SvcAttr::Af(af_of(&self.addr)),
            SvcAttr::Protocol(self.protocol),
            SvcAttr::Addr(addr_bytes(&self.addr)),
            SvcAttr::Port(self.port),
        ]
    }

    /// Everything NEW_SERVICE and SET_SERVICE need, in moby's order.
    pub fn full_attrs(&self) -> Vec<SvcAttr> {
        let mut v = self.key_attrs();
        v.extend([
            SvcAttr::SchedName(self.scheduler.clone()),
            SvcAttr::Flags {
                flags: self.flags,
                mask: 0xffff_ffff,
            },
            SvcAttr::Timeout(self.timeout),
            SvcAttr::Netmask(self.netmask),
        ]);
        v
    }

    /// Rebuilds a service from the attributes of a GET_SERVICE reply.
    pub fn from_attrs(attrs: &[SvcAttr]) -> Result<Self, DecodeError> {
        let mut af = AF_INET;
        let mut raw: Option<&[u8]> = None;
        let mut s = VirtualService::tcp(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0, "");
        for a in attrs {
            match a {
                SvcAttr::Af(v) => af = *v,
                SvcAttr::Protocol(v) => s.protocol = *v,
                SvcAttr::Addr(v) => raw = Some(v),
                SvcAttr::Port(v) => s.port = *v,
                SvcAttr::SchedName(v) => s.scheduler = v.clone(),
                SvcAttr::Flags { flags, .. } => s.flags = *flags,
                SvcAttr::Timeout(v) => s.timeout = *v,
                SvcAttr::Netmask(v) => s.netmask = *v,
                SvcAttr::Fwmark(_) | SvcAttr::Other(_) => {}
            }
        }
        if let Some(raw) = raw {
            s.addr = addr_from(raw, af)?;
        }
        Ok(s)
    }
}

/// A real server of a virtual service (`ipvsadm -a ... -m -w 1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RealServer {
    pub addr: IpAddr,
    pub port: u16,
    pub fwd_method: u32,
    pub weight: u32,
    pub u_thresh: u32,
    pub l_thresh: u32,
    /// Connections the kernel counts for it (GET_DEST replies only; never sent):
    /// kube-proxy's graceful termination waits for active + inactive to reach 0.
    pub active_conns: u32,
    pub inact_conns: u32,
}

impl RealServer {
    /// A masqueraded (NAT) real server with weight 1, as kube-proxy adds them.
    pub fn masq(addr: IpAddr, port: u16) -> Self {
        RealServer {
            addr,
            port,
            fwd_method: IP_VS_CONN_F_MASQ,
            weight: 1,
            u_thresh: 0,
            l_thresh: 0,
            active_conns: 0,
            inact_conns: 0,
        }
    }

    /// Whether `other` is the same destination (address and port), as kube-proxy's
    /// `RealServer.Equal` compares them.
    pub fn same_key(&self, other: &RealServer) -> bool {
        self.addr == other.addr && self.port == other.port
    }

    /// The attributes that identify the destination (ADDR, PORT, ADDR_FAMILY).
    pub fn key_attrs(&self) -> Vec<DestAttr> {
        vec![
            DestAttr::Addr(addr_bytes(&self.addr)),
            DestAttr::Port(self.port),
            DestAttr::AddrFamily(af_of(&self.addr)),
        ]
    }

    /// Everything NEW_DEST and SET_DEST need.
    pub fn full_attrs(&self) -> Vec<DestAttr> {
        vec![
            DestAttr::Addr(addr_bytes(&self.addr)),
            DestAttr::Port(self.port),
            DestAttr::FwdMethod(self.fwd_method),
            DestAttr::Weight(self.weight),
            DestAttr::UThresh(self.u_thresh),
            DestAttr::LThresh(self.l_thresh),
            DestAttr::AddrFamily(af_of(&self.addr)),
        ]
    }

    /// Rebuilds a real server from the attributes of a GET_DEST reply.
    pub fn from_attrs(attrs: &[DestAttr], svc_af: u16) -> Result<Self, DecodeError> {
        let mut af = svc_af;
        let mut raw: Option<&[u8]> = None;
        let mut d = RealServer::masq(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0);
        for a in attrs {
            match a {
                DestAttr::Addr(v) => raw = Some(v),
                DestAttr::Port(v) => d.port = *v,
                DestAttr::FwdMethod(v) => d.fwd_method = *v & 0x7,
                DestAttr::Weight(v) => d.weight = *v,
                DestAttr::UThresh(v) => d.u_thresh = *v,
                DestAttr::LThresh(v) => d.l_thresh = *v,
                DestAttr::ActiveConns(v) => d.active_conns = *v,
                DestAttr::InactConns(v) => d.inact_conns = *v,
                DestAttr::AddrFamily(v) => af = *v,
                DestAttr::PersistConns(_) | DestAttr::Other(_) => {}
            }
        }
        if let Some(raw) = raw {
            d.addr = addr_from(raw, af)?;
        }
        Ok(d)
    }
}

/// One IPVS change, as one netlink request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op<'a> {
    NewService(&'a VirtualService),
    SetService(&'a VirtualService),
    DelService(&'a VirtualService),
    NewDest(&'a VirtualService, RealServer),
    SetDest(&'a VirtualService, RealServer),
    DelDest(&'a VirtualService, RealServer),
    Flush,
}

impl Op<'_> {
    /// The IPVS message for this change.
    pub fn message(&self) -> IpvsMessage {
        let (cmd, attrs) = match self {
            Op::NewService(s) => (IPVS_CMD_NEW_SERVICE, vec![CmdAttr::Service(s.full_attrs())]),
            Op::SetService(s) => (IPVS_CMD_SET_SERVICE, vec![CmdAttr::Service(s.full_attrs())]),
            Op::DelService(s) => (IPVS_CMD_DEL_SERVICE, vec![CmdAttr::Service(s.key_attrs())]),
            Op::NewDest(s, d) => (
                IPVS_CMD_NEW_DEST,
                vec![
                    CmdAttr::Service(s.key_attrs()),
                    CmdAttr::Dest(d.full_attrs()),
                ],
            ),
            Op::SetDest(s, d) => (
                IPVS_CMD_SET_DEST,
                vec![
                    CmdAttr::Service(s.key_attrs()),
                    CmdAttr::Dest(d.full_attrs()),
                ],
            ),
            Op::DelDest(s, d) => (
                IPVS_CMD_DEL_DEST,
                vec![
                    CmdAttr::Service(s.key_attrs()),
                    CmdAttr::Dest(d.key_attrs()),
                ],
            ),
            Op::Flush => (IPVS_CMD_FLUSH, Vec::new()),
        };
        IpvsMessage { cmd, attrs }
    }

    /// The step it counts under, named after its IPVS command (`IPVS NEW_SERVICE`).
    pub fn step(&self) -> &'static str {
        match self {
            Op::NewService(_) => "IPVS NEW_SERVICE",
            Op::SetService(_) => "IPVS SET_SERVICE",
            Op::DelService(_) => "IPVS DEL_SERVICE",
            Op::NewDest(..) => "IPVS NEW_DEST",
            Op::SetDest(..) => "IPVS SET_DEST",
            Op::DelDest(..) => "IPVS DEL_DEST",
            Op::Flush => "IPVS FLUSH",
        }
    }

    /// A short description for error messages (`ipvsadm`-like).
    pub fn describe(&self) -> String {
        let svc = |s: &VirtualService| s.name();
        match self {
            Op::NewService(s) => format!("new service {}", svc(s)),
            Op::SetService(s) => format!("set service {}", svc(s)),
            Op::DelService(s) => format!("delete service {}", svc(s)),
            Op::NewDest(s, d) => format!(
                "new real server {} of {}",
                host_port(d.addr, d.port),
                svc(s)
            ),
            Op::SetDest(s, d) => format!(
                "set real server {} of {} weight {}",
                host_port(d.addr, d.port),
                svc(s),
                d.weight
            ),
            Op::DelDest(s, d) => format!(
                "delete real server {} of {}",
                host_port(d.addr, d.port),
                svc(s)
            ),
            Op::Flush => "flush".to_string(),
        }
    }
}

/// `a.b.c.d:port` or `[v6]:port`, as ipvsadm prints them.
pub fn host_port(ip: IpAddr, port: u16) -> String {
    match ip {
        IpAddr::V4(a) => format!("{a}:{port}"),
        IpAddr::V6(a) => format!("[{a}]:{port}"),
    }
}
