use std::net::{IpAddr, Ipv4Addr};

use netlink_packet_core::{NLM_F_ACK, NLM_F_REQUEST};
use netlink_packet_utils::nla::{NlaBuffer, NlasIterator};
use netlink_packet_utils::{Emitable, Parseable};

use super::attrs::*;
use super::client::genl;
use super::message::*;
use super::nl::{encode, split};
use super::render::*;
use crate::floor::model::{service, ServiceSet};

const FAMILY: u16 = 0x23;

fn svc() -> VirtualService {
    VirtualService::tcp(IpAddr::V4(Ipv4Addr::new(10, 96, 0, 1)), 80, "rr")
}

fn rs() -> RealServer {
    RealServer::masq(IpAddr::V4(Ipv4Addr::new(10, 128, 0, 1)), 8080)
}

fn bytes_of(op: Op<'_>, seq: u32) -> Vec<u8> {
    let mut out = Vec::new();
    encode(
        &mut out,
        genl(op.message(), FAMILY),
        NLM_F_REQUEST | NLM_F_ACK,
        seq,
    );
    out
}

/// NEW_SERVICE for 10.96.0.1:80 rr, written out from ip_vs.h and moby's fillService:
/// AF, PROTOCOL, ADDR (4 bytes), PORT (big-endian), SCHED_NAME, FLAGS {0, ~0},
/// TIMEOUT 0, NETMASK ~0, nested in IPVS_CMD_ATTR_SERVICE without NLA_F_NESTED.
#[cfg(target_endian = "little")]
#[test]
fn new_service_bytes_match_the_header() {
    #[rustfmt::skip]
    let expected: Vec<u8> = vec![
        92, 0, 0, 0,          // nlmsg_len
        0x23, 0,              // nlmsg_type: the family id
        0x05, 0,              // NLM_F_REQUEST | NLM_F_ACK
        7, 0, 0, 0,           // seq
        0, 0, 0, 0,           // pid
        1, 1, 0, 0,           // genl: IPVS_CMD_NEW_SERVICE, version 1
        72, 0, 1, 0,          // IPVS_CMD_ATTR_SERVICE, 4 + 68
        6, 0, 1, 0, 2, 0, 0, 0,                     // AF = AF_INET
        6, 0, 2, 0, 6, 0, 0, 0,                     // PROTOCOL = TCP
        8, 0, 3, 0, 10, 96, 0, 1,                   // ADDR
        6, 0, 4, 0, 0, 80, 0, 0,                    // PORT 80, big-endian
        7, 0, 6, 0, b'r', b'r', 0, 0,               // SCHED_NAME "rr\0"
        12, 0, 7, 0, 0, 0, 0, 0, 255, 255, 255, 255, // FLAGS {0, 0xffffffff}
        8, 0, 8, 0, 0, 0, 0, 0,                     // TIMEOUT 0
        8, 0, 9, 0, 255, 255, 255, 255,             // NETMASK 0xffffffff
    ];
    assert_eq!(bytes_of(Op::NewService(&svc()), 7), expected);
}

/// NEW_DEST 10.128.0.1:8080 masq weight 1 of 10.96.0.1:80: the service's key
/// attributes, then ADDR, PORT, FWD_METHOD, WEIGHT, U_THRESH, L_THRESH, ADDR_FAMILY.
#[cfg(target_endian = "little")]
#[test]
fn new_dest_bytes_match_the_header() {
    #[rustfmt::skip]
    let expected: Vec<u8> = vec![
        116, 0, 0, 0, 0x23, 0, 0x05, 0, 8, 0, 0, 0, 0, 0, 0, 0,
        5, 1, 0, 0,           // IPVS_CMD_NEW_DEST, version 1
        36, 0, 1, 0,          // IPVS_CMD_ATTR_SERVICE
        6, 0, 1, 0, 2, 0, 0, 0,
        6, 0, 2, 0, 6, 0, 0, 0,
        8, 0, 3, 0, 10, 96, 0, 1,
        6, 0, 4, 0, 0, 80, 0, 0,
        60, 0, 2, 0,          // IPVS_CMD_ATTR_DEST
        8, 0, 1, 0, 10, 128, 0, 1,                  // ADDR
        6, 0, 2, 0, 0x1f, 0x90, 0, 0,               // PORT 8080, big-endian
        8, 0, 3, 0, 0, 0, 0, 0,                     // FWD_METHOD = MASQ
        8, 0, 4, 0, 1, 0, 0, 0,                     // WEIGHT 1
        8, 0, 5, 0, 0, 0, 0, 0,                     // U_THRESH
        8, 0, 6, 0, 0, 0, 0, 0,                     // L_THRESH
        6, 0, 11, 0, 2, 0, 0, 0,                    // ADDR_FAMILY = AF_INET
    ];
    assert_eq!(bytes_of(Op::NewDest(&svc(), rs()), 8), expected);
}

#[cfg(target_endian = "little")]
#[test]
fn delete_and_flush_carry_only_keys() {
    let del = bytes_of(Op::DelService(&svc()), 1);
    assert_eq!(del.len(), 16 + 4 + 4 + 32);
    assert_eq!(del[16], IPVS_CMD_DEL_SERVICE);
    let deld = bytes_of(Op::DelDest(&svc(), rs()), 2);
    // Service keys (36) + dest ADDR, PORT, ADDR_FAMILY (4 + 24).
    assert_eq!(deld.len(), 16 + 4 + 36 + 28);
    let flush = bytes_of(Op::Flush, 3);
    assert_eq!(
        flush,
        vec![20, 0, 0, 0, 0x23, 0, 5, 0, 3, 0, 0, 0, 0, 0, 0, 0, 17, 1, 0, 0]
    );
}

#[test]
fn a_kernel_reply_decodes_with_its_16_byte_addresses() {
    // The kernel answers with the whole union nf_inet_addr (16 bytes).
    let mut svc_attrs = svc().full_attrs();
    svc_attrs[2] = SvcAttr::Addr(vec![10, 96, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    let back = VirtualService::from_attrs(&svc_attrs).unwrap();
    assert_eq!(back, svc());
    let mut d = rs().full_attrs();
    d[0] = DestAttr::Addr(vec![10, 128, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(RealServer::from_attrs(&d, AF_INET).unwrap(), rs());
}

#[test]
fn attributes_round_trip_through_the_parser() {
    let msg = Op::NewDest(&svc(), rs()).message();
    let mut buf = vec![0u8; msg.buffer_len()];
    msg.emit(&mut buf);
    let attrs: Vec<CmdAttr> = NlasIterator::new(&buf[..])
        .map(|n| CmdAttr::parse(&n.unwrap()).unwrap())
        .collect();
    assert_eq!(attrs, msg.attrs);
    let one = NlaBuffer::new(&buf[..]);
    assert_eq!(one.kind(), IPVS_CMD_ATTR_SERVICE);
    assert!(
        !one.nested_flag(),
        "moby sends nested attributes without NLA_F_NESTED"
    );
}

#[test]
fn replies_split_into_messages_and_errors() {
    // Two ACKs back to back: one success (seq 5), one ESRCH (seq 6).
    let mut data = Vec::new();
    for (seq, code) in [(5u32, 0i32), (6, -libc::ESRCH)] {
        data.extend_from_slice(&36u32.to_ne_bytes());
        data.extend_from_slice(&2u16.to_ne_bytes());
        data.extend_from_slice(&0u16.to_ne_bytes());
        data.extend_from_slice(&seq.to_ne_bytes());
        data.extend_from_slice(&0u32.to_ne_bytes());
        data.extend_from_slice(&code.to_ne_bytes());
        data.extend_from_slice(&[0u8; 16]);
    }
    let msgs = split(&data).unwrap();
    assert_eq!(msgs.len(), 2);
    assert_eq!((msgs[0].kind, msgs[0].seq), (2, 5));
    assert_eq!(msgs[1].seq, 6);
    assert_eq!(
        i32::from_ne_bytes(msgs[1].payload[..4].try_into().unwrap()),
        -libc::ESRCH
    );
    assert!(split(&data[..20]).is_err());
}

#[test]
fn a_full_sync_adds_every_service_and_endpoint() {
    let set = ServiceSet::generate(3, 2);
    let c = Changes::compute(None, &set, "rr", &[]);
    assert_eq!(c.new_services.len(), 3);
    assert_eq!(c.ops().len(), 3 + 6);
    assert_eq!(c.bind.len(), 3);
    assert_eq!(
        c.ipset_add[2],
        ("KUBE-CLUSTER-IP", "10.96.0.3,tcp:80".into())
    );
    assert!(c.del_services.is_empty() && c.unbind.is_empty());
}

#[test]
fn a_partial_sync_touches_only_the_difference() {
    let old = ServiceSet::generate(4, 2);
    let mut new = old.clone();
    new.remove(1);
    new.upsert(service(9, 2));
    let mut changed = new.get(2).unwrap().clone();
    changed.endpoints[0].ip = Ipv4Addr::new(10, 160, 0, 1);
    new.upsert(changed);
    let c = Changes::compute(Some(&old), &new, "rr", &[]);
    let lines: Vec<String> = c.ops().iter().map(ipvsadm_line).collect();
    assert_eq!(
        lines,
        vec![
            "-d -t 10.96.0.3:80 -r 10.128.0.5:8080",
            "-D -t 10.96.0.2:80",
            "-A -t 10.96.0.10:80 -s rr",
            "-a -t 10.96.0.10:80 -r 10.128.0.19:8080 -m -w 1",
            "-a -t 10.96.0.10:80 -r 10.128.0.20:8080 -m -w 1",
            "-a -t 10.96.0.3:80 -r 10.160.0.1:8080 -m -w 1",
        ]
    );
    assert_eq!(c.bind, vec![Ipv4Addr::new(10, 96, 0, 10)]);
    assert_eq!(c.unbind, vec![Ipv4Addr::new(10, 96, 0, 2)]);
    assert_eq!(
        c.ipset_add,
        vec![("KUBE-CLUSTER-IP", "10.96.0.10,tcp:80".into())]
    );
    assert_eq!(
        c.ipset_del,
        vec![("KUBE-CLUSTER-IP", "10.96.0.2,tcp:80".into())]
    );
    assert!(Changes::compute(Some(&new), &new, "rr", &[])
        .ops()
        .is_empty());
}

/// A namespace for privileged tests, removed on drop (even on panic). The tests that
/// use it are ignored without feature `root-tests`; with it, not being root fails them.
struct TestNs(crate::floor::netns::Netns);

impl TestNs {
    fn new(tag: &str) -> TestNs {
        assert!(
            crate::floor::netns::is_root(),
            "needs root to create network namespaces: this privileged test is on (feature \
             dataplane/root-tests) but the process is not root; run `sudo scripts/test.sh`, \
             or build without the feature to see it reported as ignored"
        );
        let name = format!("kpb-test-ipvs-{tag}-{}", std::process::id());
        TestNs(crate::floor::netns::Netns::create(&name).expect("create namespace"))
    }
}

impl Drop for TestNs {
    fn drop(&mut self) {
        let _ = self.0.delete();
    }
}

/// Privileged (any kernel): one batch of rtnetlink requests, several of them refused,
/// spanning more than one send(); every ACK's errno must land on its own request.
#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root: scripts/test.sh runs it as root"
)]
fn batched_acks_map_back_to_their_requests() {
    use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
    use netlink_packet_route::RouteNetlinkMessage;

    use super::link;

    let ns = TestNs::new("acks");
    let codes =
        ns.0.run(|| {
            let mut nl = link::open().unwrap();
            let lo = link::index_of("lo").unwrap();
            // 5000 requests: more than one chunk. Every 1000th is a duplicate of the
            // previous one (EEXIST); request 4321 names a missing interface (ENODEV).
            let reqs: Vec<(u32, Ipv4Addr)> = (0..5000u32)
                .map(|i| {
                    let k = if i % 1000 == 999 { i - 1 } else { i };
                    let index = if i == 4321 { 9999 } else { lo };
                    (index, Ipv4Addr::from(0x0a01_0000 + k))
                })
                .collect();
            let batch = nl.batch(
                reqs.iter()
                    .map(|(i, ip)| RouteNetlinkMessage::NewAddress(link::address_message(*i, *ip))),
                NLM_F_CREATE | NLM_F_EXCL,
            );
            nl.execute(&batch).unwrap()
        })
        .unwrap();
    assert_eq!(codes.len(), 5000);
    for (i, c) in codes.iter().enumerate() {
        let want = if i == 4321 {
            libc::ENODEV
        } else if i % 1000 == 999 {
            libc::EEXIST
        } else {
            0
        };
        assert_eq!(*c, want, "request {i}");
    }
}

/// Privileged: on a kernel without IPVS (the host here) the family lookup says so and
/// the backend's error counts as a missing feature (the case is skipped, not failed);
/// with IPVS, the family resolves.
#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root: scripts/test.sh runs it as root"
)]
fn a_kernel_without_ipvs_is_a_missing_feature() {
    use crate::floor::backend::Backend;

    let ns = TestNs::new("noipvs");
    match super::IpvsClient::open_in(&ns.0) {
        Ok(c) => {
            eprintln!("this kernel has IPVS (family id {})", c.family());
        }
        Err(super::IpvsError::NoIpvs) => {
            let err = super::IpvsBackend::new(crate::mode::IpvsScheduler::Rr)
                .sync(
                    &ns.0,
                    None,
                    &ServiceSet::generate(1, 1),
                    crate::floor::deadline::Deadline::after(std::time::Duration::from_secs(30)),
                )
                .unwrap_err();
            assert!(err.is_unavailable(), "{err}");
            assert!(
                matches!(
                    err,
                    crate::floor::error::ApplyError::Unavailable(
                        crate::floor::prereq::Unavailable::KernelFeature {
                            feature: crate::floor::prereq::KernelFeature::IpVs,
                            ..
                        }
                    )
                ),
                "a kernel feature, not a package: {err}"
            );
        }
        Err(e) => panic!("unexpected: {e}"),
    }
}

/// kube-proxy's restore for ClusterIP services with no local endpoint, written out from
/// `syncProxyRules` (natChains, natRules, filterChains, filterRules) and
/// `writeIptablesRules` (its order; only non-empty sets get their match rules).
const KUBE_PROXY_RESTORE: &str = r#"*nat
:KUBE-SERVICES - [0:0]
:KUBE-POSTROUTING - [0:0]
:KUBE-NODE-PORT - [0:0]
:KUBE-LOAD-BALANCER - [0:0]
:KUBE-MARK-MASQ - [0:0]
-A KUBE-SERVICES -s 127.0.0.0/8 -j RETURN
-A KUBE-SERVICES -m comment --comment "Kubernetes service cluster ip + port for masquerade purpose" -m set --match-set KUBE-CLUSTER-IP dst,dst ! -s 10.128.0.0/10 -j KUBE-MARK-MASQ
-A KUBE-SERVICES -m addrtype --dst-type LOCAL -j KUBE-NODE-PORT
-A KUBE-LOAD-BALANCER -j KUBE-MARK-MASQ
-A KUBE-SERVICES -m set --match-set KUBE-CLUSTER-IP dst,dst -j ACCEPT
-A KUBE-POSTROUTING -m mark ! --mark 0x00004000/0x00004000 -j RETURN
-A KUBE-POSTROUTING -j MARK --xor-mark 0x00004000
-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully
-A KUBE-MARK-MASQ -j MARK --or-mark 0x00004000
COMMIT
*filter
:KUBE-FORWARD - [0:0]
:KUBE-NODE-PORT - [0:0]
:KUBE-PROXY-FIREWALL - [0:0]
:KUBE-SOURCE-RANGES-FIREWALL - [0:0]
:KUBE-IPVS-FILTER - [0:0]
:KUBE-IPVS-OUT-FILTER - [0:0]
-A KUBE-SOURCE-RANGES-FIREWALL -j DROP
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x00004000/0x00004000 -j ACCEPT
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A KUBE-NODE-PORT -m comment --comment "Kubernetes health check node port" -m set --match-set KUBE-HEALTH-CHECK-NODE-PORT dst -j ACCEPT
-A KUBE-IPVS-FILTER -m set --match-set KUBE-LOAD-BALANCER dst,dst -j RETURN
-A KUBE-IPVS-FILTER -m set --match-set KUBE-CLUSTER-IP dst,dst -j RETURN
-A KUBE-IPVS-FILTER -m set --match-set KUBE-EXTERNAL-IP dst,dst -j RETURN
-A KUBE-IPVS-FILTER -m set --match-set KUBE-EXTERNAL-IP-LOCAL dst,dst -j RETURN
-A KUBE-IPVS-FILTER -m set --match-set KUBE-HEALTH-CHECK-NODE-PORT dst -j RETURN
-A KUBE-IPVS-FILTER -m conntrack --ctstate NEW -m set --match-set KUBE-IPVS-IPS dst -j REJECT
COMMIT
"#;

#[test]
fn kube_proxys_restore_is_written_in_its_order() {
    let cluster = Filled::from(["KUBE-CLUSTER-IP", "KUBE-IPVS-IPS"]);
    assert_eq!(
        kube_proxy_payload(&cluster, &Default::default()),
        KUBE_PROXY_RESTORE
    );
    // Without services KUBE-CLUSTER-IP is empty and its two rules are not written.
    let empty = kube_proxy_payload(&Filled::new(), &Default::default());
    assert!(!empty.contains("--match-set KUBE-CLUSTER-IP dst,dst ! -s"));
    assert!(
        !empty.contains("-A KUBE-SERVICES -m set --match-set KUBE-CLUSTER-IP dst,dst -j ACCEPT")
    );
    assert_eq!(
        empty.lines().count(),
        KUBE_PROXY_RESTORE.lines().count() - 2
    );
}

#[test]
fn the_floors_first_restore_carries_the_jumps_in_ensure_order() {
    let text = floor_first_payload(&Filled::from(["KUBE-CLUSTER-IP"]), &Default::default());
    let jumps = "\
-I OUTPUT -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES
-I PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES
-I POSTROUTING -m comment --comment \"kubernetes postrouting rules\" -j KUBE-POSTROUTING
-A KUBE-SERVICES -s 127.0.0.0/8 -j RETURN
";
    assert!(
        text.contains(&format!(":KUBE-MARK-MASQ - [0:0]\n{jumps}")),
        "{text}"
    );
    let jumps = "\
:KUBE-IPVS-OUT-FILTER - [0:0]
-I FORWARD -m comment --comment \"kubernetes forwarding rules\" -j KUBE-FORWARD
-I INPUT -m comment --comment \"kubernetes health check rules\" -j KUBE-NODE-PORT
-I INPUT -m comment --comment \"kube-proxy firewall rules\" -j KUBE-PROXY-FIREWALL
-I FORWARD -m comment --comment \"kube-proxy firewall rules\" -j KUBE-PROXY-FIREWALL
-I INPUT -m comment --comment \"kubernetes ipvs access filter\" -j KUBE-IPVS-FILTER
-I OUTPUT -m comment --comment \"kubernetes ipvs access filter\" -j KUBE-IPVS-OUT-FILTER
-A KUBE-SOURCE-RANGES-FIREWALL -j DROP
";
    assert!(text.contains(jumps), "{text}");
    let without: String = text
        .lines()
        .filter(|l| !l.starts_with("-I "))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(without, KUBE_PROXY_RESTORE);
}

#[test]
fn ipsets_are_created_as_kube_proxys_create_set_does() {
    let args = |n, k| kube_proxy_ipset_create(n, k).join(" ");
    assert_eq!(
        args("KUBE-CLUSTER-IP", "hash:ip,port"),
        "create KUBE-CLUSTER-IP hash:ip,port family inet hashsize 1024 maxelem 65536 -exist"
    );
    assert_eq!(
        args("KUBE-NODE-PORT-TCP", "bitmap:port"),
        "create KUBE-NODE-PORT-TCP bitmap:port range 0-65535 -exist"
    );
    assert_eq!(
        args("KUBE-IPVS-IPS", "hash:ip"),
        "create KUBE-IPVS-IPS hash:ip -exist"
    );
    let set = ServiceSet::generate(2, 1);
    let entries = kube_proxy_entries(&set, &[]);
    let sets: Vec<&str> = entries.keys().copied().collect();
    assert_eq!(sets, ["KUBE-CLUSTER-IP", "KUBE-IPVS-IPS"]);
    let add: Vec<(&str, String)> = entries
        .into_iter()
        .flat_map(|(s, es)| es.into_iter().map(move |e| (s, e)))
        .collect();
    let text = floor_ipset_restore(
        true,
        &[("KUBE-CLUSTER-IP", "10.96.0.9,tcp:80".into())],
        &add,
    );
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 17 + 1 + 4);
    assert_eq!(
        lines[0],
        "create KUBE-LOOP-BACK hash:ip,port,ip family inet hashsize 1024 maxelem 65536"
    );
    assert_eq!(lines[16], "create KUBE-IPVS-IPS hash:ip");
    assert_eq!(
        &lines[17..],
        [
            "del KUBE-CLUSTER-IP 10.96.0.9,tcp:80",
            "add KUBE-CLUSTER-IP 10.96.0.1,tcp:80",
            "add KUBE-CLUSTER-IP 10.96.0.2,tcp:80",
            "add KUBE-IPVS-IPS 10.96.0.1",
            "add KUBE-IPVS-IPS 10.96.0.2",
        ]
    );
}

#[test]
fn ipset_list_members_are_read_as_list_entries_does() {
    use super::controller::ipset_members;
    let out = "Name: KUBE-CLUSTER-IP\nType: hash:ip,port\nRevision: 6\nHeader: family inet hashsize 1024 maxelem 65536 bucketsize 12 initval 0x5d3b2a10\nSize in memory: 456\nReferences: 3\nNumber of entries: 2\nMembers:\n10.96.0.2,tcp:80\n10.96.0.1,tcp:80\n";
    let got: Vec<String> = ipset_members(out).into_iter().collect();
    assert_eq!(got, ["10.96.0.1,tcp:80", "10.96.0.2,tcp:80"]);
    assert!(ipset_members("Name: X\nMembers:\n").is_empty());
}

#[test]
fn kernel_releases_compare_by_major_and_minor() {
    use super::controller::release_before;
    assert!(release_before("5.4.0-150-generic", 5, 9));
    assert!(!release_before("5.9.1", 5, 9));
    assert!(!release_before("6.1.0-56-cloud-amd64", 5, 9));
    assert!(!release_before("unknown", 0, 0));
}

/// A GET_DEST reply carries the connection counters (ip_vs.h attributes 7-9), which
/// graceful termination reads; kube-proxy's Equal ignores them, and the kernel's
/// HASHED service flag.
#[test]
fn dest_replies_decode_connection_counts() {
    let attrs = vec![
        DestAttr::Addr(vec![10, 128, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
        DestAttr::Port(8080),
        DestAttr::FwdMethod(0),
        DestAttr::Weight(0),
        DestAttr::ActiveConns(3),
        DestAttr::InactConns(4),
        DestAttr::PersistConns(5),
    ];
    let mut buf = vec![0u8; attrs.as_slice().buffer_len()];
    attrs.as_slice().emit(&mut buf);
    let parsed: Vec<DestAttr> = NlasIterator::new(&buf[..])
        .map(|n| DestAttr::parse(&n.unwrap()).unwrap())
        .collect();
    assert_eq!(parsed, attrs);
    let d = RealServer::from_attrs(&parsed, AF_INET).unwrap();
    assert_eq!((d.active_conns, d.inact_conns, d.weight), (3, 4, 0));
    assert!(d.same_key(&rs()));
    assert_ne!(d, rs());
    let mut applied = svc();
    applied.flags |= IP_VS_SVC_F_HASHED;
    assert!(svc().kube_proxy_equal(&applied));
    applied.scheduler = "wrr".into();
    assert!(!svc().kube_proxy_equal(&applied));
}

#[test]
fn a_missing_kernel_feature_is_unavailable_not_a_missing_package() {
    let e = crate::floor::error::ApplyError::from(super::IpvsError::NoIpvs);
    assert!(e.is_unavailable());
    assert!(!e.is_timeout());
    assert!(e.to_string().contains("CONFIG_IP_VS"), "{e}");
    assert!(!e.to_string().contains("package"), "{e}");
}
