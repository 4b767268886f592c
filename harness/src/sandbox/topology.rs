//! The namespace "cluster" a case runs in, built over rtnetlink (no `ip` commands):
//!
//! ```text
//!  [client ns] --veth-- [node ns: dataplane under test] --veth-- [backend ns]
//!  10.255.0.2/30        10.255.0.1/30 | 10.255.1.1/30          10.255.1.2/30
//!                       ip_forward=1                           local 10.128.0.0/10
//! ```
//!
//! Namespaces are named `kpb-<run-id>-{client,node,backend}` and removed when the
//! [`Topology`] is dropped; while it lives, `<run-id>` is registered with this pid, so
//! `kpbench clean` leaves them alone. None has a link to the host's root namespace.

use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;

use dataplane::floor::model::POD_CIDR;
use dataplane::floor::netns::{write_sysctl, Netns, NetnsError};
use futures::TryStreamExt;
use netlink_packet_route::route::{RouteScope, RouteType};

pub use super::names::{netns_name, NETNS_PREFIX};
use super::registry::RunRegistration;

/// Client-side address of the client-node link.
pub const CLIENT_ADDR: Ipv4Addr = Ipv4Addr::new(10, 255, 0, 2);
/// Node-side address of the client-node link (the client's gateway).
pub const NODE_CLIENT_ADDR: Ipv4Addr = Ipv4Addr::new(10, 255, 0, 1);
/// Node-side address of the node-backend link (the backend's gateway).
pub const NODE_BACKEND_ADDR: Ipv4Addr = Ipv4Addr::new(10, 255, 1, 1);
/// Backend-side address of the node-backend link.
pub const BACKEND_ADDR: Ipv4Addr = Ipv4Addr::new(10, 255, 1, 2);

/// Errors building the topology.
#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    #[error(transparent)]
    Netns(#[from] NetnsError),
    #[error("namespace {ns}: {what}: {detail}")]
    Netlink {
        ns: String,
        what: String,
        detail: String,
    },
}

/// The three namespaces of one case. Dropping it deletes them.
#[derive(Debug)]
pub struct Topology {
    pub client: Netns,
    pub node: Netns,
    pub backend: Netns,
    keep: bool,
    /// Marks the namespaces as in use, so a concurrent `kpbench clean` keeps them.
    registration: Option<RunRegistration>,
}

fn nl_err(ns: &Netns, what: &str) -> impl FnOnce(rtnetlink::Error) -> TopologyError {
    let ns = ns.name.clone();
    let what = what.to_string();
    move |e| TopologyError::Netlink {
        ns,
        what,
        detail: e.to_string(),
    }
}

/// Runs an async netlink job on a thread inside `ns`, with its own connection there.
fn in_ns<T, F, Fut>(ns: &Netns, job: F) -> Result<T, TopologyError>
where
    T: Send + 'static,
    F: FnOnce(rtnetlink::Handle, Netns) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<T, TopologyError>>,
{
    let ns2 = ns.clone();
    ns.run(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| TopologyError::Netlink {
                ns: ns2.name.clone(),
                what: "tokio runtime".into(),
                detail: e.to_string(),
            })?;
        rt.block_on(async move {
            let (conn, handle, _) =
                rtnetlink::new_connection().map_err(|e| TopologyError::Netlink {
                    ns: ns2.name.clone(),
                    what: "netlink socket".into(),
                    detail: e.to_string(),
                })?;
            tokio::spawn(conn);
            job(handle, ns2).await
        })
    })?
}

async fn link_index(h: &rtnetlink::Handle, ns: &Netns, name: &str) -> Result<u32, TopologyError> {
    let msg = h
        .link()
        .get()
        .match_name(name.to_string())
        .execute()
        .try_next()
        .await
        .map_err(nl_err(ns, &format!("find link {name}")))?;
    msg.map(|m| m.header.index)
        .ok_or_else(|| TopologyError::Netlink {
            ns: ns.name.clone(),
            what: format!("find link {name}"),
            detail: "not found".into(),
        })
}

/// `ip link set NAME up`, `ip addr add ADDR/PREFIX dev NAME` (when given).
async fn up_with_addr(
    h: &rtnetlink::Handle,
    ns: &Netns,
    name: &str,
    addr: Option<(Ipv4Addr, u8)>,
) -> Result<u32, TopologyError> {
    let idx = link_index(h, ns, name).await?;
    if let Some((ip, len)) = addr {
        h.address()
            .add(idx, ip.into(), len)
            .execute()
            .await
            .map_err(nl_err(ns, &format!("add {ip}/{len} to {name}")))?;
    }
    h.link()
        .set(idx)
        .up()
        .execute()
        .await
        .map_err(nl_err(ns, &format!("set {name} up")))?;
    Ok(idx)
}

/// `ip route add default via GW`.
async fn default_route(
    h: &rtnetlink::Handle,
    ns: &Netns,
    gw: Ipv4Addr,
) -> Result<(), TopologyError> {
    h.route()
        .add()
        .v4()
        .destination_prefix(Ipv4Addr::UNSPECIFIED, 0)
        .gateway(gw)
        .execute()
        .await
        .map_err(nl_err(ns, &format!("default route via {gw}")))
}

/// `ip link add veth-X type veth peer name eth0; ip link set eth0 netns PEER`.
async fn veth_to(
    h: &rtnetlink::Handle,
    ns: &Netns,
    local: &str,
    peer: &Netns,
) -> Result<(), TopologyError> {
    h.link()
        .add()
        .veth(local.to_string(), "eth0".to_string())
        .execute()
        .await
        .map_err(nl_err(ns, &format!("add veth {local}")))?;
    let idx = link_index(h, ns, "eth0").await?;
    let fd = peer.open()?;
    h.link()
        .set(idx)
        .setns_by_fd(fd.as_raw_fd())
        .execute()
        .await
        .map_err(nl_err(ns, &format!("move eth0 to {}", peer.name)))?;
    Ok(())
}

impl Topology {
    /// Creates the three namespaces for `run_id` and wires them. On any error the
    /// namespaces made so far are removed.
    pub fn create(run_id: &str) -> Result<Topology, TopologyError> {
        // Registered before anything exists, so clean never sees them unowned. Best
        // effort: without /run/kpbench only a concurrent clean could remove them.
        let registration = RunRegistration::new(run_id)
            .map_err(|e| tracing::warn!("registering {run_id} under /run/kpbench: {e}"))
            .ok();
        let mut topo = Topology {
            client: Netns::named(&netns_name(run_id, "client")),
            node: Netns::named(&netns_name(run_id, "node")),
            backend: Netns::named(&netns_name(run_id, "backend")),
            keep: false,
            registration,
        };
        // Created one by one so Drop removes exactly what exists.
        topo.client = Netns::create(&topo.client.name)?;
        topo.node = Netns::create(&topo.node.name)?;
        topo.backend = Netns::create(&topo.backend.name)?;
        topo.wire()?;
        Ok(topo)
    }

    /// Keeps the namespaces after drop (for `kpbench apply`); `kpbench clean` may
    /// remove them once this process is gone.
    pub fn keep(mut self) -> Self {
        self.keep = true;
        self.registration = None;
        self
    }

    fn wire(&self) -> Result<(), TopologyError> {
        let (client, backend) = (self.client.clone(), self.backend.clone());
        in_ns(&self.node, move |h, ns| async move {
            veth_to(&h, &ns, "veth-client", &client).await?;
            veth_to(&h, &ns, "veth-backend", &backend).await?;
            up_with_addr(&h, &ns, "lo", None).await?;
            up_with_addr(&h, &ns, "veth-client", Some((NODE_CLIENT_ADDR, 30))).await?;
            up_with_addr(&h, &ns, "veth-backend", Some((NODE_BACKEND_ADDR, 30))).await?;
            h.route()
                .add()
                .v4()
                .destination_prefix(POD_CIDR.0, POD_CIDR.1)
                .gateway(BACKEND_ADDR)
                .execute()
                .await
                .map_err(nl_err(&ns, "route to the pod CIDR"))?;
            Ok(())
        })?;
        in_ns(&self.client, |h, ns| async move {
            up_with_addr(&h, &ns, "lo", None).await?;
            up_with_addr(&h, &ns, "eth0", Some((CLIENT_ADDR, 30))).await?;
            default_route(&h, &ns, NODE_CLIENT_ADDR).await
        })?;
        in_ns(&self.backend, |h, ns| async move {
            let lo = up_with_addr(&h, &ns, "lo", None).await?;
            up_with_addr(&h, &ns, "eth0", Some((BACKEND_ADDR, 30))).await?;
            default_route(&h, &ns, NODE_BACKEND_ADDR).await?;
            // `ip route add local 10.128.0.0/10 dev lo`: every pod IP is local here,
            // so one listener answers for every endpoint.
            h.route()
                .add()
                .v4()
                .table_id(255)
                .kind(RouteType::Local)
                .scope(RouteScope::Host)
                .output_interface(lo)
                .destination_prefix(POD_CIDR.0, POD_CIDR.1)
                .execute()
                .await
                .map_err(nl_err(&ns, "local route for the pod CIDR"))
        })?;
        let sysctl = |ns: &Netns,
                      kvs: &'static [(&'static str, &'static str)]|
         -> Result<(), TopologyError> {
            let name = ns.name.clone();
            ns.run(move || {
                for (k, v) in kvs {
                    write_sysctl(k, v).map_err(|e| TopologyError::Netlink {
                        ns: name.clone(),
                        what: format!("sysctl {k}={v}"),
                        detail: e.to_string(),
                    })?;
                }
                Ok(())
            })?
        };
        // Only inside the namespaces this run created; the host's sysctls are untouched.
        sysctl(&self.node, &[("net/ipv4/ip_forward", "1")])?;
        sysctl(
            &self.client,
            &[
                ("net/ipv4/ip_local_port_range", "1024 65000"),
                ("net/ipv4/tcp_tw_reuse", "1"),
            ],
        )?;
        Ok(())
    }

    /// Removes the namespaces now.
    pub fn remove(&self) -> Vec<String> {
        let mut errors = Vec::new();
        for ns in [&self.client, &self.node, &self.backend] {
            if let Err(e) = ns.delete() {
                errors.push(e.to_string());
            }
        }
        errors
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        if !self.keep {
            for e in self.remove() {
                tracing::warn!("cleanup: {e}");
            }
        }
    }
}
