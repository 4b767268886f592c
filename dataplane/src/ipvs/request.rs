//! The IPVS mode's kernel requests, as data: IPVS over generic netlink, the
//! `kube-ipvs0` dummy and its addresses over rtnetlink, and the sysctls kube-proxy
//! sets ([`NlRequest`]), and their replies ([`NlReply`]). The stand-in answers them
//! ([`super::standin`]); [`super::exchange`] runs them through the core executor.

use std::net::Ipv4Addr;

use super::message::{Op, RealServer, VirtualService};

/// A netlink request of a sync (IPVS over generic netlink, addresses over rtnetlink).
#[derive(Debug)]
pub enum NlRequest<'a> {
    /// One IPVS change, waiting for its ACK (kube-proxy's one request at a time).
    Ipvs(Op<'a>),
    /// IPVS changes sent many per `send()`, one ACK each; errnos `tolerate` accepts
    /// are success (the floor's batch).
    IpvsBatch {
        ops: &'a [Op<'a>],
        tolerate: fn(&Op<'_>, i32) -> bool,
    },
    /// GET_SERVICE of one virtual service (kube-proxy's `GetVirtualServer`).
    GetService(&'a VirtualService),
    /// GET_SERVICE dump (`GetVirtualServers`).
    DumpServices,
    /// GET_DEST dump of one service (`GetRealServers`).
    DumpDests(&'a VirtualService),
    /// Makes sure the dummy device exists (`EnsureDummyDevice`); replies its index.
    EnsureDummy(&'a str),
    /// The IPv4 addresses on a device (`GetLocalAddresses`).
    Addresses(u32),
    /// Binds addresses to a device (`EnsureAddressBind`, one request each).
    AddAddresses(u32, &'a [Ipv4Addr]),
    /// Unbinds addresses (`UnbindAddress`).
    DelAddresses(u32, &'a [Ipv4Addr]),
    /// Writes sysctls inside the namespace (`EnsureSysctl`).
    Sysctls(&'a [(&'static str, &'static str)]),
}

impl NlRequest<'_> {
    /// The step name it counts under.
    pub fn step(&self) -> &'static str {
        match self {
            NlRequest::Ipvs(op) => op.step(),
            NlRequest::IpvsBatch { .. } => "IPVS batch",
            NlRequest::GetService(_) => "IPVS GET_SERVICE",
            NlRequest::DumpServices => "IPVS GET_SERVICE dump",
            NlRequest::DumpDests(_) => "IPVS GET_DEST dump",
            NlRequest::EnsureDummy(_) => "rtnetlink link",
            NlRequest::Addresses(_) => "rtnetlink address dump",
            NlRequest::AddAddresses(..) => "rtnetlink NEWADDR",
            NlRequest::DelAddresses(..) => "rtnetlink DELADDR",
            NlRequest::Sysctls(_) => "sysctl",
        }
    }

    /// A one-line description for traces.
    pub fn describe(&self) -> String {
        let ips = |v: &[Ipv4Addr]| {
            v.iter()
                .map(|ip| ip.to_string())
                .collect::<Vec<_>>()
                .join(",")
        };
        match self {
            NlRequest::Ipvs(op) => op.describe(),
            NlRequest::IpvsBatch { ops, .. } => format!("{} IPVS requests in one send", ops.len()),
            NlRequest::GetService(s) | NlRequest::DumpDests(s) => {
                format!("{} {}:{}", self.step(), s.addr, s.port)
            }
            NlRequest::DumpServices => self.step().to_string(),
            NlRequest::EnsureDummy(name) => format!("ensure dummy device {name}"),
            NlRequest::Addresses(i) => format!("addresses of link {i}"),
            NlRequest::AddAddresses(i, v) => format!("bind {} to link {i}", ips(v)),
            NlRequest::DelAddresses(i, v) => format!("unbind {} from link {i}", ips(v)),
            NlRequest::Sysctls(list) => list
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" "),
        }
    }
}

/// What a netlink request answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NlReply {
    Done,
    Service(Option<VirtualService>),
    Services(Vec<VirtualService>),
    Dests(Vec<RealServer>),
    Index(u32),
    Addresses(Vec<Ipv4Addr>),
}
