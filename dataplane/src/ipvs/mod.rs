//! kube-proxy's IPVS mode. IPVS is spoken directly over generic netlink (family
//! `IPVS`, per the kernel's `include/uapi/linux/ip_vs.h`), as kube-proxy does through
//! moby/ipvs, but with many requests per `send()`; no `ipvsadm` in the hot path.
//!
//! - [`attrs`]: commands and attributes, encoded and parsed;
//! - [`message`]: the typed virtual service, real server and change ([`Op`]);
//! - [`nl`]: a synchronous netlink socket with batching and dumps;
//! - [`client`]: [`IpvsClient`], family resolution and the IPVS operations;
//! - [`link`]: the `kube-ipvs0` dummy and its ClusterIPs over rtnetlink;
//! - [`request`]: the mode's kernel requests ([`NlRequest`]) and their replies, as data;
//! - [`exchange`]: how they are run by the core executor and sent with
//!   [`Netlink::netlink`];
//! - [`ports`]: a service as kube-proxy's loop walks it, port by port: its virtual
//!   services (ClusterIP, node IPs), their real servers, the addresses bound and the
//!   ipset entries;
//! - [`render`]: the pure part (changes between service sets, kube-proxy's payloads,
//!   text for `kpbench rules`);
//! - [`controller`]: the two sync profiles (kube-proxy's `syncProxyRules`, the floor);
//! - [`standin`]: an in-memory node answering an IPVS sync's tools and requests;
//! - `apply`: [`IpvsBackend`], the [`crate::floor::backend::Backend`] for [`crate::mode::Mode::Ipvs`].

pub mod attrs;
pub mod client;
pub mod controller;
pub mod exchange;
pub mod link;
pub mod message;
pub mod nl;
pub mod ports;
mod readback;
pub mod render;
pub mod request;
pub mod standin;

mod apply;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_features;
#[cfg(test)]
mod tests_policies;

pub use apply::IpvsBackend;
pub use client::{IpvsClient, IpvsError};
pub use exchange::Netlink;
pub use message::{host_port, Op, RealServer, VirtualService};
pub use request::{NlReply, NlRequest};
