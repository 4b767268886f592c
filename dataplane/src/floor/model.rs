//! The synthetic-service model: N services x E endpoints, deterministic, following the
//! contract in design.md so that checks can recompute every name and address.

use std::net::Ipv4Addr;

use crate::floor::spec::{Conditions, ServicePort, Spec};

/// Kubernetes namespace every synthetic service lives in.
pub const NAMESPACE: &str = "kpbench";
/// Service port (TCP) every synthetic service exposes.
pub const SERVICE_PORT: u16 = 80;
/// Port every endpoint listens on.
pub const ENDPOINT_PORT: u16 = 8080;
/// Service CIDR (kube-apiserver's default `--service-cluster-ip-range`).
pub const SERVICE_CIDR: (Ipv4Addr, u8) = (Ipv4Addr::new(10, 96, 0, 0), 12);
/// Pod CIDR (the cluster CIDR): 4,194,304 addresses, disjoint from the service CIDR.
pub const POD_CIDR: (Ipv4Addr, u8) = (Ipv4Addr::new(10, 128, 0, 0), 10);
/// Endpoints of the initial services take the lower half of the pod CIDR; replacement
/// endpoints made by incremental updates take the upper half, so they never collide.
const SPARE_POOL_OFFSET: u32 = 1 << 21;

/// The largest number of services the service CIDR can address (first and last
/// address excluded).
pub const MAX_SERVICES: u64 = (1 << (32 - SERVICE_CIDR.1)) - 2;
/// The largest services x endpoints product the pod CIDR's lower half can address.
pub const MAX_ENDPOINTS_TOTAL: u64 = SPARE_POOL_OFFSET as u64 - 2;

/// The pod CIDR as `a.b.c.d/len`, used as kube-proxy's cluster CIDR.
pub fn pod_cidr() -> String {
    format!("{}/{}", POD_CIDR.0, POD_CIDR.1)
}

/// The service CIDR as `a.b.c.d/len`.
pub fn service_cidr() -> String {
    format!("{}/{}", SERVICE_CIDR.0, SERVICE_CIDR.1)
}

/// One endpoint (pod) of a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Endpoint {
    pub ip: Ipv4Addr,
    pub port: u16,
}

impl Endpoint {
    /// `ip:port`, as kube-proxy's `endpointInfo.String()`.
    pub fn host_port(&self) -> String {
        format!("{}:{}", self.ip, self.port)
    }
}

/// One service: its first port `port` is named `http`; `spec` holds its type, further
/// ports, affinity, policies and endpoint conditions (by default a ClusterIP with that
/// one TCP port and every endpoint ready).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub index: usize,
    pub vip: Ipv4Addr,
    pub port: u16,
    pub endpoints: Vec<Endpoint>,
    pub spec: Spec,
}

impl Service {
    /// The service's name, `svc-<i>`.
    pub fn name(&self) -> String {
        format!("svc-{}", self.index)
    }

    /// kube-proxy's service-port name, `kpbench/svc-<i>:http`.
    pub fn port_name(&self) -> String {
        format!("{NAMESPACE}/svc-{}:http", self.index)
    }

    /// Every port of the service in order: the first (`http`, `port`, served on the
    /// first endpoint's port, else [`ENDPOINT_PORT`]), then `spec.extra_ports`.
    pub fn ports(&self) -> Vec<ServicePort> {
        let first = ServicePort {
            name: "http".into(),
            protocol: self.spec.protocol,
            port: self.port,
            target_port: self.endpoints.first().map_or(ENDPOINT_PORT, |e| e.port),
            node_port: self.spec.node_port,
        };
        std::iter::once(first)
            .chain(self.spec.extra_ports.iter().cloned())
            .collect()
    }

    /// The conditions of endpoint `e` (ready and remote unless `spec.conditions` says).
    pub fn conditions(&self, e: &Endpoint) -> Conditions {
        self.spec.conditions.get(&e.ip).copied().unwrap_or_default()
    }
}

/// Error for sizes the address plan cannot hold.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SizeError {
    #[error("{services} services exceed the service CIDR {cidr}, which holds at most {max}")]
    TooManyServices {
        services: u64,
        cidr: String,
        max: u64,
    },
    #[error(
        "{services} services x {endpoints} endpoints = {total} endpoints exceed the {max} the pod CIDR {cidr} holds for them"
    )]
    TooManyEndpoints {
        services: u64,
        endpoints: u64,
        total: u64,
        max: u64,
        cidr: String,
    },
}

/// Checks that `services` x `endpoints` fits the address plan; call before creating anything.
pub fn check_size(services: u64, endpoints: u64) -> Result<(), SizeError> {
    // One spare service index is needed for the add-service measurement.
    if services + 1 > MAX_SERVICES {
        return Err(SizeError::TooManyServices {
            services,
            cidr: service_cidr(),
            max: MAX_SERVICES - 1,
        });
    }
    let total = (services + 1).saturating_mul(endpoints);
    if total > MAX_ENDPOINTS_TOTAL {
        return Err(SizeError::TooManyEndpoints {
            services,
            endpoints,
            total,
            max: MAX_ENDPOINTS_TOTAL,
            cidr: pod_cidr(),
        });
    }
    Ok(())
}

fn offset(base: Ipv4Addr, by: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(base) + by)
}

/// The ClusterIP of service `i`.
pub fn service_vip(i: usize) -> Ipv4Addr {
    offset(SERVICE_CIDR.0, i as u32 + 1)
}

/// Endpoint `j` of service `i` when every service has `per_service` endpoints.
pub fn endpoint_ip(i: usize, j: usize, per_service: usize) -> Ipv4Addr {
    offset(POD_CIDR.0, (i * per_service + j) as u32 + 1)
}

/// The `k`-th replacement endpoint address (from the spare half of the pod CIDR).
pub fn spare_endpoint_ip(k: u32) -> Ipv4Addr {
    offset(
        POD_CIDR.0,
        SPARE_POOL_OFFSET + (k % (SPARE_POOL_OFFSET - 2)) + 1,
    )
}

/// Builds service `i` with `per_service` endpoints.
pub fn service(i: usize, per_service: usize) -> Service {
    Service {
        index: i,
        vip: service_vip(i),
        port: SERVICE_PORT,
        endpoints: (0..per_service)
            .map(|j| Endpoint {
                ip: endpoint_ip(i, j, per_service),
                port: ENDPOINT_PORT,
            })
            .collect(),
        spec: Spec::default(),
    }
}

/// Service 0 with `endpoints` endpoints as NodePort 30000 with a second port `p1`
/// (`protocol`, 81 -> 8081, node port 30001): what the modes' feature tests start
/// from.
#[cfg(test)]
pub(crate) fn nodeport_two_ports(
    endpoints: usize,
    protocol: crate::floor::spec::Protocol,
) -> Service {
    let mut svc = service(0, endpoints);
    svc.spec.kind = crate::floor::spec::ServiceType::NodePort;
    svc.spec.node_port = Some(30000);
    svc.spec.extra_ports.push(ServicePort {
        name: "p1".into(),
        protocol,
        port: 81,
        target_port: 8081,
        node_port: Some(30001),
    });
    svc
}

/// A set of services in rule order (service index order).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServiceSet {
    pub services: Vec<Service>,
}

impl ServiceSet {
    /// Services `0..n`, each with `per_service` endpoints. Sizes must have passed
    /// [`check_size`].
    pub fn generate(n: usize, per_service: usize) -> Self {
        ServiceSet {
            services: (0..n).map(|i| service(i, per_service)).collect(),
        }
    }

    pub fn len(&self) -> usize {
        self.services.len()
    }

    pub fn is_empty(&self) -> bool {
        self.services.is_empty()
    }

    /// Total endpoints over all services.
    pub fn total_endpoints(&self) -> usize {
        self.services.iter().map(|s| s.endpoints.len()).sum()
    }

    /// Looks a service up by its index.
    pub fn get(&self, index: usize) -> Option<&Service> {
        self.services
            .binary_search_by_key(&index, |s| s.index)
            .ok()
            .map(|pos| &self.services[pos])
    }

    /// Adds (or replaces) a service, keeping index order.
    pub fn upsert(&mut self, svc: Service) {
        match self.services.binary_search_by_key(&svc.index, |s| s.index) {
            Ok(pos) => self.services[pos] = svc,
            Err(pos) => self.services.insert(pos, svc),
        }
    }

    /// A new service `index` with `per_service` ready endpoints at the addresses after
    /// every endpoint of the set (of its lower, primary half); for `generate(n, e)` and
    /// index `n` it is [`service`]`(n, e)`.
    pub fn fresh_service(&self, index: usize, per_service: usize) -> Service {
        let after = self
            .services
            .iter()
            .flat_map(|s| &s.endpoints)
            .map(|e| u32::from(e.ip) - u32::from(POD_CIDR.0))
            .filter(|&o| o < SPARE_POOL_OFFSET)
            .max()
            .unwrap_or(0);
        Service {
            index,
            vip: service_vip(index),
            port: SERVICE_PORT,
            endpoints: (0..per_service)
                .map(|j| Endpoint {
                    ip: offset(POD_CIDR.0, after + j as u32 + 1),
                    port: ENDPOINT_PORT,
                })
                .collect(),
            spec: Spec::default(),
        }
    }

    /// Removes the service with this index, returning it.
    pub fn remove(&mut self, index: usize) -> Option<Service> {
        let pos = self
            .services
            .binary_search_by_key(&index, |s| s.index)
            .ok()?;
        Some(self.services.remove(pos))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_follow_the_plan() {
        let set = ServiceSet::generate(3, 2);
        assert_eq!(set.services[0].vip, Ipv4Addr::new(10, 96, 0, 1));
        assert_eq!(set.services[2].vip, Ipv4Addr::new(10, 96, 0, 3));
        assert_eq!(
            set.services[0].endpoints[0].ip,
            Ipv4Addr::new(10, 128, 0, 1)
        );
        assert_eq!(
            set.services[2].endpoints[1].ip,
            Ipv4Addr::new(10, 128, 0, 6)
        );
        assert_eq!(set.services[1].port_name(), "kpbench/svc-1:http");
        assert_eq!(set.total_endpoints(), 6);
    }

    #[test]
    fn service_and_pod_cidrs_do_not_overlap_and_pods_hold_enough() {
        let (s, sl) = SERVICE_CIDR;
        let (p, pl) = POD_CIDR;
        let s_end = u32::from(s) + (1u32 << (32 - sl)) - 1;
        let p_end = u32::from(p) + (1u32 << (32 - pl)) - 1;
        assert!(s_end < u32::from(p) || p_end < u32::from(s));
        assert!((1u64 << (32 - pl)) >= 2_500_000);
    }

    #[test]
    fn spare_endpoints_are_inside_the_pod_cidr_and_disjoint_from_primaries() {
        let last_primary = endpoint_ip(0, MAX_ENDPOINTS_TOTAL as usize - 1, 1);
        let spare = spare_endpoint_ip(0);
        assert!(spare > last_primary);
        let p_end = u32::from(POD_CIDR.0) + (1u32 << (32 - POD_CIDR.1)) - 1;
        assert!(u32::from(spare_endpoint_ip(u32::MAX)) < p_end);
    }

    #[test]
    fn sizes_beyond_the_plan_are_rejected() {
        assert!(check_size(20_000, 10).is_ok());
        assert!(matches!(
            check_size(2_000_000, 1),
            Err(SizeError::TooManyServices { .. })
        ));
        assert!(matches!(
            check_size(200_000, 100),
            Err(SizeError::TooManyEndpoints { .. })
        ));
    }

    #[test]
    fn a_fresh_service_of_an_n_x_e_set_is_the_next_generated_one() {
        let set = ServiceSet::generate(4, 3);
        assert_eq!(set.fresh_service(4, 3), service(4, 3));
        assert_eq!(ServiceSet::default().fresh_service(0, 2), service(0, 2));
    }

    #[test]
    fn upsert_and_remove_keep_index_order() {
        let mut set = ServiceSet::generate(3, 1);
        set.upsert(service(5, 1));
        set.remove(1);
        let idx: Vec<usize> = set.services.iter().map(|s| s.index).collect();
        assert_eq!(idx, vec![0, 2, 5]);
    }
}
