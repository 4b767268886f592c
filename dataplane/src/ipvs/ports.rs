//! A service as kube-proxy's IPVS proxier walks it in `syncProxyRules`
//! (pkg/proxy/ipvs/proxier.go): one service port at a time, each with its protocol, and
//! for each port the virtual services it syncs (`syncService` + `syncEndpoint`: the
//! ClusterIP, then every external IP, load-balancer ingress IP and, for a node port,
//! every node IP), the address each binds to `kube-ipvs0`, the real servers each wants
//! (`CategorizeEndpoints`, [`crate::floor::topology`]) and the ipset entries the port
//! adds, in the order kube-proxy inserts them.

use std::net::{IpAddr, Ipv4Addr};

use super::attrs::{IPPROTO_TCP, IPPROTO_UDP, IP_VS_SVC_F_PERSISTENT};
use super::message::{RealServer, VirtualService};
use crate::floor::model::{Endpoint, Service};
use crate::floor::spec::{Feature, Protocol, ServicePort};
use crate::floor::topology;

/// The features this mode renders as kube-proxy's IPVS proxier does, every one of the
/// shape model: ClientIP affinity
/// (persistence), UDP ports, several ports per service (a virtual service per port),
/// NodePort (a virtual service per node IP, the `KUBE-NODE-PORT-{TCP,UDP}` bitmap
/// sets and their KUBE-NODE-PORT rules), LoadBalancer (a virtual service per ingress
/// IP, bound to `kube-ipvs0`, KUBE-LOAD-BALANCER and its rules), both Local traffic
/// policies (only the local endpoints as real servers where kube-proxy's
/// `syncEndpoint` takes them, the `-LOCAL` sets and their RETURN rules), endpoint
/// conditions (`CategorizeEndpoints`: ready ones, else serving terminating ones),
/// `loadBalancerSourceRanges` (KUBE-LOAD-BALANCER-FW and -SOURCE-CIDR with their
/// KUBE-PROXY-FIREWALL and KUBE-SOURCE-RANGES-FIREWALL rules, and the
/// KUBE-IPVS-OUT-FILTER drop of the node's own access) and external IPs (a virtual
/// service each, bound unless the node has the address; KUBE-EXTERNAL-IP(-LOCAL) and
/// their masquerade and ACCEPT rules). What the kube-proxy profile does not replay: the
/// UDP conntrack clean-up after a sync and health-check node ports (the shapes allocate
/// none).
pub const RENDERS: &[Feature] = &Feature::ALL;

/// The node's address kpbench's topology gives the node namespace on its client link
/// (harness `sandbox::topology::NODE_CLIENT_ADDR`). kube-proxy is taken as run with
/// `--nodeport-addresses` naming it (the `primary` node IP, nftables' default), so node
/// ports get one virtual service each, on it; the dataplane library does not see the
/// topology, so the settings carry it with this default.
pub const NODE_IP: Ipv4Addr = Ipv4Addr::new(10, 255, 0, 1);

/// kube-proxy's ipset of every ClusterIP + port (`hash:ip,port`).
pub const CLUSTER_IP_SET: &str = "KUBE-CLUSTER-IP";
/// kube-proxy's hairpin ipset (`hash:ip,port,ip`): `ep,proto:port,ep` of every
/// endpoint on the node.
pub const LOOP_BACK_SET: &str = "KUBE-LOOP-BACK";
/// Node ports of TCP ports (`bitmap:port`).
pub const NODE_PORT_TCP_SET: &str = "KUBE-NODE-PORT-TCP";
/// Node ports of UDP ports (`bitmap:port`).
pub const NODE_PORT_UDP_SET: &str = "KUBE-NODE-PORT-UDP";
/// Node ports of TCP ports with `externalTrafficPolicy: Local`.
pub const NODE_PORT_LOCAL_TCP_SET: &str = "KUBE-NODE-PORT-LOCAL-TCP";
/// Node ports of UDP ports with `externalTrafficPolicy: Local`.
pub const NODE_PORT_LOCAL_UDP_SET: &str = "KUBE-NODE-PORT-LOCAL-UDP";
/// Every load-balancer ingress IP + port (`hash:ip,port`).
pub const LOAD_BALANCER_SET: &str = "KUBE-LOAD-BALANCER";
/// Those of services with `externalTrafficPolicy: Local`.
pub const LOAD_BALANCER_LOCAL_SET: &str = "KUBE-LOAD-BALANCER-LOCAL";
/// Every external IP + port of a service with Cluster external policy.
pub const EXTERNAL_IP_SET: &str = "KUBE-EXTERNAL-IP";
/// Those of services with `externalTrafficPolicy: Local`.
pub const EXTERNAL_IP_LOCAL_SET: &str = "KUBE-EXTERNAL-IP-LOCAL";
/// Those of services with `loadBalancerSourceRanges`.
pub const LOAD_BALANCER_FW_SET: &str = "KUBE-LOAD-BALANCER-FW";
/// `ingress,proto:port,cidr` of every source range (`hash:ip,port,net`).
pub const SOURCE_CIDR_SET: &str = "KUBE-LOAD-BALANCER-SOURCE-CIDR";
/// `ingress,proto:port,ingress` where a source range holds the node IP.
pub const SOURCE_IP_SET: &str = "KUBE-LOAD-BALANCER-SOURCE-IP";

/// One virtual service kube-proxy syncs for a service port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Virtual {
    pub vs: VirtualService,
    /// The address `syncService` binds to `kube-ipvs0` (`bindAddr`): the ClusterIP, an
    /// external or ingress IP that is not the node's; None for a node IP.
    pub bind: Option<Ipv4Addr>,
    /// The real servers `syncEndpoint` wants.
    pub dests: Vec<RealServer>,
}

/// Everything one service wants: its virtual services in sync order and its ipset
/// entries (set, entry) in insertion order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Wanted {
    pub virtuals: Vec<Virtual>,
    pub entries: Vec<(&'static str, String)>,
    /// `lbNoNodeAccessIPPortProtocolEntries`, as the KUBE-IPVS-OUT-FILTER rules
    /// `writeIptablesRules` makes of them: an ingress IP with source ranges none of
    /// which holds the node IP is not reachable from the node.
    pub no_node_access: Vec<String>,
}

impl Wanted {
    /// The addresses the service binds, each once, in sync order.
    pub fn binds(&self) -> Vec<Ipv4Addr> {
        let mut out: Vec<Ipv4Addr> = Vec::new();
        for ip in self.virtuals.iter().filter_map(|v| v.bind) {
            if !out.contains(&ip) {
                out.push(ip);
            }
        }
        out
    }
}

/// The IP protocol number of a port's protocol.
pub fn ip_protocol(p: Protocol) -> u16 {
    match p {
        Protocol::Tcp => IPPROTO_TCP,
        Protocol::Udp => IPPROTO_UDP,
    }
}

/// The virtual service at `addr:port` of a port of `svc`; ClientIP affinity makes it
/// persistent with the affinity's timeout, as `syncProxyRules` sets `FlagPersistent`
/// and `StickyMaxAgeSeconds` on every virtual server of the port.
pub fn virtual_service(
    svc: &Service,
    protocol: Protocol,
    addr: Ipv4Addr,
    port: u16,
    scheduler: &str,
) -> VirtualService {
    let mut vs = VirtualService::new(IpAddr::V4(addr), ip_protocol(protocol), port, scheduler);
    if let Some(seconds) = svc.spec.affinity_timeout_s {
        vs.flags |= IP_VS_SVC_F_PERSISTENT;
        vs.timeout = seconds;
    }
    vs
}

/// The real server of an endpoint (masquerading, weight 1).
pub fn real_server(ep: &Endpoint) -> RealServer {
    RealServer::masq(IpAddr::V4(ep.ip), ep.port)
}

/// The `KUBE-CLUSTER-IP` entry of a port: `VIP,proto:PORT`.
pub fn cluster_ip_entry(vip: Ipv4Addr, protocol: Protocol, port: u16) -> String {
    format!("{vip},{}:{port}", protocol.lower())
}

/// What kube-proxy syncs for `svc` on a node whose node-port addresses are `node_ips`.
pub fn wanted(svc: &Service, scheduler: &str, node_ips: &[Ipv4Addr]) -> Wanted {
    let mut w = Wanted::default();
    for (k, port) in svc.ports().iter().enumerate() {
        port_objects(&mut w, svc, port, k == 0, scheduler, node_ips);
    }
    w
}

/// One port's objects, in `syncProxyRules`' order.
fn port_objects(
    w: &mut Wanted,
    svc: &Service,
    port: &ServicePort,
    first: bool,
    scheduler: &str,
    node_ips: &[Ipv4Addr],
) {
    let lower = port.protocol.lower();
    // The endpoints at the port's target port (the first port: each endpoint's own).
    let endpoints: Vec<Endpoint> = svc
        .endpoints
        .iter()
        .map(|e| Endpoint {
            ip: e.ip,
            port: if first { e.port } else { port.target_port },
        })
        .collect();
    let cats = if topology::all_plain(svc) {
        topology::plain(endpoints.len())
    } else {
        topology::categorize(svc, port.node_port)
    };
    // "Handle traffic that loops back to the originator with SNAT": every endpoint on
    // the node, whatever its conditions.
    for (e, orig) in endpoints.iter().zip(&svc.endpoints) {
        if svc.conditions(orig).local {
            w.entries.push((
                LOOP_BACK_SET,
                format!("{},{lower}:{},{}", e.ip, e.port, e.ip),
            ));
        }
    }
    w.entries.push((
        CLUSTER_IP_SET,
        cluster_ip_entry(svc.vip, port.protocol, port.port),
    ));
    // syncEndpoint: the local endpoints when the policy is Local and there are any,
    // else the cluster ones.
    let dests = |local_only: bool| -> Vec<RealServer> {
        let which = if local_only && !cats.local.is_empty() {
            &cats.local
        } else {
            &cats.cluster
        };
        which.iter().map(|&j| real_server(&endpoints[j])).collect()
    };
    let vs = |addr: Ipv4Addr, p: u16| virtual_service(svc, port.protocol, addr, p, scheduler);
    w.virtuals.push(Virtual {
        vs: vs(svc.vip, port.port),
        bind: Some(svc.vip),
        dests: dests(topology::internal_policy_local(svc)),
    });
    let ext_local = topology::external_policy_local(svc);
    // "Capture externalIPs."
    for &ip in &svc.spec.external_ips {
        let set = if ext_local {
            EXTERNAL_IP_LOCAL_SET
        } else {
            EXTERNAL_IP_SET
        };
        w.entries
            .push((set, cluster_ip_entry(ip, port.protocol, port.port)));
        w.virtuals.push(Virtual {
            vs: vs(ip, port.port),
            bind: (!node_ips.contains(&ip)).then_some(ip),
            dests: dests(ext_local),
        });
    }
    // "Capture load-balancer ingress."
    for &ip in &svc.spec.ingress_ips {
        let entry = cluster_ip_entry(ip, port.protocol, port.port);
        w.entries.push((LOAD_BALANCER_SET, entry.clone()));
        if ext_local {
            w.entries.push((LOAD_BALANCER_LOCAL_SET, entry.clone()));
        }
        if !svc.spec.source_ranges.is_empty() {
            source_ranges(w, svc, ip, &entry, lower, port.port, node_ips.first());
        }
        w.virtuals.push(Virtual {
            vs: vs(ip, port.port),
            // "We must not add the address to the dummy device if it exist on another
            // interface."
            bind: (!node_ips.contains(&ip)).then_some(ip),
            dests: dests(ext_local),
        });
    }
    if let Some(node_port) = port.node_port {
        let local = ext_local.then(|| dests(true));
        node_port_objects(w, port, node_port, node_ips, &vs, local, dests(false));
    }
}

/// A node port's objects: its KUBE-NODE-PORT-* entries and a virtual service on every
/// node IP, with the local endpoints (`local`, under `externalTrafficPolicy: Local`)
/// or the cluster ones.
fn node_port_objects(
    w: &mut Wanted,
    port: &ServicePort,
    node_port: u16,
    node_ips: &[Ipv4Addr],
    vs: &dyn Fn(Ipv4Addr, u16) -> VirtualService,
    local: Option<Vec<RealServer>>,
    cluster: Vec<RealServer>,
) {
    // No node IP: kube-proxy skips the node port altogether (its entries too).
    if node_ips.is_empty() {
        return;
    }
    let (set, local_set) = match port.protocol {
        Protocol::Tcp => (NODE_PORT_TCP_SET, NODE_PORT_LOCAL_TCP_SET),
        Protocol::Udp => (NODE_PORT_UDP_SET, NODE_PORT_LOCAL_UDP_SET),
    };
    w.entries.push((set, node_port.to_string()));
    if local.is_some() {
        w.entries.push((local_set, node_port.to_string()));
    }
    let dests = local.unwrap_or(cluster);
    for &ip in node_ips {
        w.virtuals.push(Virtual {
            vs: vs(ip, node_port),
            bind: None,
            dests: dests.clone(),
        });
    }
}

/// An ingress IP's source ranges (`entry` is its `ip,proto:port`): KUBE-LOAD-BALANCER-FW,
/// one KUBE-LOAD-BALANCER-SOURCE-CIDR entry per range, and either the node's own
/// access (KUBE-LOAD-BALANCER-SOURCE-IP, when a range holds the node IP
/// `proxier.nodeIP`) or the rule that blocks it.
fn source_ranges(
    w: &mut Wanted,
    svc: &Service,
    ip: Ipv4Addr,
    entry: &str,
    lower: &str,
    port: u16,
    node_ip: Option<&Ipv4Addr>,
) {
    w.entries.push((LOAD_BALANCER_FW_SET, entry.to_string()));
    let mut allow_from_node = false;
    for &(net, len) in &svc.spec.source_ranges {
        w.entries
            .push((SOURCE_CIDR_SET, format!("{entry},{net}/{len}")));
        let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
        allow_from_node |= node_ip.is_some_and(|n| u32::from(*n) & mask == u32::from(net) & mask);
    }
    if allow_from_node {
        w.entries.push((SOURCE_IP_SET, format!("{entry},{ip}")));
    } else {
        w.no_node_access.push(format!(
            "-A KUBE-IPVS-OUT-FILTER -s {ip} -m ipvs --vaddr {ip} --vproto {lower} --vport {port} -j DROP"
        ));
    }
}

/// Virtual services plus real servers a full sync of `svc` leaves.
pub fn objects(svc: &Service, node_ips: &[Ipv4Addr]) -> usize {
    if svc.spec == Default::default() {
        return 1 + svc.endpoints.len();
    }
    wanted(svc, "", node_ips)
        .virtuals
        .iter()
        .map(|v| 1 + v.dests.len())
        .sum()
}
