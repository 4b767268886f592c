//! Chain names exactly as kube-proxy computes them (pkg/proxy/iptables and
//! pkg/proxy/nftables), so rules read back from a kpbench run look like a real node's.

use sha2::{Digest, Sha256};

use crate::floor::model::{Endpoint, Service, NAMESPACE};

fn base32_sha256(input: &str) -> String {
    data_encoding::BASE32.encode(&Sha256::digest(input.as_bytes()))
}

/// The first 16 base32 characters of sha256 over the concatenated parts. 16 base32
/// characters are exactly the first 10 bytes of the digest, so only those are encoded
/// (this runs once per endpoint on every render).
fn hash16(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
    }
    data_encoding::BASE32.encode(&h.finalize()[..10])
}

/// kube-proxy's `portProtoHash`: first 16 chars of base32(sha256(name + proto)).
fn port_proto_hash(svc_port_name: &str, proto: &str) -> String {
    hash16(&[svc_port_name, proto])
}

/// `KUBE-SVC-<hash>` for a service-port name such as `ns/svc:port`.
pub fn kube_svc_chain(svc_port_name: &str, proto: &str) -> String {
    format!("KUBE-SVC-{}", port_proto_hash(svc_port_name, proto))
}

/// `KUBE-SEP-<hash>` for an endpoint `ip:port` of a service-port.
pub fn kube_sep_chain(svc_port_name: &str, proto: &str, endpoint: &str) -> String {
    format!("KUBE-SEP-{}", hash16(&[svc_port_name, proto, endpoint]))
}

/// nftables proxier's `hashAndTruncate`: 8 chars of base32(sha256(name)), a dash, the name.
pub fn nft_hash_and_truncate(name: &str) -> String {
    const CHAIN_NAME_LENGTH_MAX: usize = 256;
    let mut out = format!("{}-{}", &base32_sha256(name)[..8], name);
    if out.len() > CHAIN_NAME_LENGTH_MAX {
        out.truncate(CHAIN_NAME_LENGTH_MAX - 3);
        out.push_str("...");
    }
    out
}

/// The nftables base name of a service port: `kpbench/svc-<i>/tcp/http`.
pub fn nft_service_port_base(svc: &Service) -> String {
    format!("{NAMESPACE}/{}/tcp/http", svc.name())
}

/// `service-<HASH8>-kpbench/svc-<i>/tcp/http`.
pub fn nft_service_chain(svc: &Service) -> String {
    format!(
        "service-{}",
        nft_hash_and_truncate(&nft_service_port_base(svc))
    )
}

/// `endpoint-<HASH8>-kpbench/svc-<i>/tcp/http__<ip>/8080`.
pub fn nft_endpoint_chain(svc: &Service, ep: &Endpoint) -> String {
    let name = format!("{}__{}/{}", nft_service_port_base(svc), ep.ip, ep.port);
    format!("endpoint-{}", nft_hash_and_truncate(&name))
}

/// The service chain of a synthetic service.
pub fn svc_chain(svc: &Service) -> String {
    kube_svc_chain(&svc.port_name(), "tcp")
}

/// The endpoint chain of one endpoint of a synthetic service.
pub fn sep_chain(svc: &Service, ep: &Endpoint) -> String {
    kube_sep_chain(&svc.port_name(), "tcp", &ep.host_port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn design_check_values() {
        assert_eq!(
            kube_svc_chain("ns1/svc1:p80", "tcp"),
            "KUBE-SVC-XPGD46QRK7WJZT7O"
        );
        assert!(nft_hash_and_truncate("ns1/svc1/tcp/p80").starts_with("ULMVA6XW-"));
        assert!(nft_hash_and_truncate("ns1/svc1/tcp/p80__10.180.0.1/80").starts_with("5OJB2KTY-"));
    }

    #[test]
    fn kube_proxy_unit_test_values() {
        // From kube-proxy's iptables proxier tests (servicePortEndpointChainName).
        assert_eq!(
            kube_sep_chain("ns1/svc1:p80", "tcp", "10.180.0.1:80"),
            "KUBE-SEP-SXIVWICOYRO3J4NJ"
        );
    }

    #[test]
    fn synthetic_service_names() {
        let svc = crate::floor::model::service(0, 1);
        assert_eq!(
            nft_service_chain(&svc),
            format!(
                "service-{}",
                nft_hash_and_truncate("kpbench/svc-0/tcp/http")
            )
        );
        assert!(nft_endpoint_chain(&svc, &svc.endpoints[0])
            .ends_with("-kpbench/svc-0/tcp/http__10.128.0.1/8080"));
        assert_eq!(svc_chain(&svc), kube_svc_chain("kpbench/svc-0:http", "tcp"));
    }
}
