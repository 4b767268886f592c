//! The shape features on Cilium's maps: exact bytes of full syncs
//! (`fixture_features.txt`, written by hand from Cilium v1.17's structs), the agent's
//! order on changes, both profiles agreeing through the featured conformance
//! sequence, and what the programs do not exercise.

use std::net::Ipv4Addr;

use super::controller::{AgentController, AgentState, FloorController, MapOp};
use super::tests::{check, parse, renders_exactly, run};
use super::*;
use crate::conformance::featured::{featured_index, featured_sequence, featured_set};
use crate::floor::model::{self, Service, ServiceSet};
use crate::floor::spec::{Conditions, Protocol, ServicePort, ServiceType, TrafficPolicy};

const FIXTURE: &str = include_str!("fixture_features.txt");

/// The lines of section `[name]` of the fixture.
fn section(name: &str) -> Vec<(String, Vec<u8>, Vec<u8>)> {
    let head = format!("[{name}]");
    let body: String = FIXTURE
        .lines()
        .skip_while(|l| *l != head)
        .skip(1)
        .take_while(|l| !l.starts_with('['))
        .map(|l| format!("{l}\n"))
        .collect();
    let lines = parse(&body);
    assert!(!lines.is_empty(), "no section {head}");
    lines
}

fn one(svc: Service) -> ServiceSet {
    ServiceSet {
        services: vec![svc],
    }
}

fn nodeport_udp() -> Service {
    let mut s = model::service(0, 1);
    s.spec.kind = ServiceType::NodePort;
    s.spec.node_port = Some(30000);
    s.spec.extra_ports.push(ServicePort {
        name: "dns".into(),
        protocol: Protocol::Udp,
        port: 53,
        target_port: 5353,
        node_port: Some(30001),
    });
    s
}

fn local() -> Conditions {
    Conditions {
        local: true,
        ..Conditions::default()
    }
}

fn loadbalancer_affinity() -> Service {
    let mut s = model::service(0, 2);
    s.spec.kind = ServiceType::LoadBalancer;
    s.spec.ingress_ips = vec![Ipv4Addr::new(198, 19, 0, 1)];
    s.spec.external_policy = TrafficPolicy::Local;
    s.spec.source_ranges = vec![(Ipv4Addr::new(100, 64, 0, 0), 24)];
    s.spec.affinity_timeout_s = Some(10800);
    s.spec.conditions.insert(s.endpoints[0].ip, local());
    s
}

fn terminating_local() -> Service {
    let mut s = model::service(0, 3);
    s.spec.internal_policy = TrafficPolicy::Local;
    s.spec.conditions.insert(s.endpoints[0].ip, local());
    let terminating = Conditions {
        ready: false,
        serving: true,
        terminating: true,
        local: true,
    };
    s.spec.conditions.insert(s.endpoints[1].ip, terminating);
    let gone = Conditions {
        ready: false,
        serving: false,
        terminating: false,
        local: true,
    };
    s.spec.conditions.insert(s.endpoints[2].ip, gone);
    s
}

#[test]
fn a_nodeport_service_with_a_udp_port_renders_every_frontend_in_cilium_s_bytes() {
    renders_exactly(&one(nodeport_udp()), &section("nodeport-udp"));
}

#[test]
fn a_local_loadbalancer_with_affinity_and_a_source_range_renders_both_scopes() {
    renders_exactly(
        &one(loadbalancer_affinity()),
        &section("loadbalancer-affinity"),
    );
}

#[test]
fn a_terminating_endpoint_takes_a_slot_past_the_count_and_a_not_serving_one_none() {
    renders_exactly(&one(terminating_local()), &section("terminating-local"));
}

/// The map and kind of each write, with its key's fields.
fn writes(ops: &[MapOp]) -> Vec<String> {
    ops.iter()
        .map(|op| match op {
            MapOp::Update(e) => format!(
                "update {} {}",
                e.map.name(),
                layout::describe_key(e.map, &e.key)
                    .split(" [")
                    .next()
                    .unwrap()
            ),
            MapOp::Delete { map, key } => format!(
                "delete {} {}",
                map.name(),
                layout::describe_key(*map, key).split(" [").next().unwrap()
            ),
        })
        .collect()
}

#[test]
fn an_affinity_service_s_replaced_endpoint_loses_its_match_before_and_gains_one_after() {
    let mut svc = model::service(0, 2);
    svc.spec.affinity_timeout_s = Some(60);
    let set = one(svc.clone());
    let mut state = AgentState::default();
    state.plan(None, &set);
    svc.endpoints[0].ip = model::spare_endpoint_ip(0);
    let next = one(svc);
    let got = writes(&state.plan(Some(&set), &next));
    assert_eq!(
        got,
        [
            "delete cilium_lb_affinity_match {backend_id=1 rev_nat_id=1}",
            "update cilium_lb4_backends_v3 {id=3}",
            "update cilium_lb4_services_v2 {address=10.96.0.1 dport=80 backend_slot=1 proto=6 scope=0}",
            "update cilium_lb4_services_v2 {address=10.96.0.1 dport=80 backend_slot=2 proto=6 scope=0}",
            "update cilium_lb4_reverse_nat {index=1}",
            "update cilium_lb4_services_v2 {address=10.96.0.1 dport=80 backend_slot=0 proto=6 scope=0}",
            "update cilium_lb_affinity_match {backend_id=2 rev_nat_id=1}",
            "update cilium_lb_affinity_match {backend_id=3 rev_nat_id=1}",
            "delete cilium_lb4_backends_v3 {id=1}",
        ]
    );
}

#[test]
fn an_endpoint_turning_terminating_rewrites_its_backend_and_leaves_the_count() {
    let svc = model::service(0, 2);
    let set = one(svc.clone());
    let mut state = AgentState::default();
    state.plan(None, &set);
    let mut next = svc;
    next.spec.conditions.insert(
        next.endpoints[0].ip,
        Conditions {
            ready: false,
            serving: true,
            terminating: true,
            local: false,
        },
    );
    let ops = state.plan(Some(&set), &one(next));
    let MapOp::Update(first) = &ops[0] else {
        panic!("{ops:?}")
    };
    assert_eq!(first.map, LbMap::Backends);
    assert_eq!(
        layout::Lb4Backend::parse(&first.value).unwrap().flags,
        frontends::BE_STATE_TERMINATING
    );
    // Backend 2 is the one active: slot 1; the terminating backend 1 after it.
    let slots: Vec<u32> = ops
        .iter()
        .filter_map(|op| match op {
            MapOp::Update(e) if e.map == LbMap::Services => layout::Lb4Service::parse(&e.value),
            _ => None,
        })
        .map(|v| {
            if v.count > 0 {
                1000 + v.count as u32
            } else {
                v.backend_id
            }
        })
        .collect();
    assert_eq!(
        slots,
        [2, 1, 1001],
        "slots by ID, then the master counting one"
    );
}

#[test]
fn a_removed_loadbalancer_takes_its_source_ranges_and_matches_with_it() {
    let set = one(loadbalancer_affinity());
    let mut state = AgentState::default();
    state.plan(None, &set);
    let got = writes(&state.plan(Some(&set), &ServiceSet::default()));
    for want in [
        "delete cilium_lb4_source_range {rev_nat_id=2 range=100.64.0.0/24}",
        "delete cilium_lb4_source_range {rev_nat_id=3 range=100.64.0.0/24}",
        "delete cilium_lb_affinity_match {backend_id=2 rev_nat_id=3}",
        "delete cilium_lb4_reverse_nat {index=3}",
        "delete cilium_lb4_backends_v3 {id=2}",
    ] {
        assert!(got.iter().any(|g| g == want), "{want} missing: {got:#?}");
    }
    assert!(got.iter().all(|g| g.starts_with("delete")));
    // Backends go last, once no frontend uses them.
    assert!(got.last().unwrap().contains("backends_v3"));
}

#[test]
fn both_profiles_leave_identical_maps_through_the_featured_sequence() {
    let steps = featured_sequence(3, 2, RENDERS);
    let syncs: Vec<(Option<&ServiceSet>, &ServiceSet)> = steps
        .iter()
        .enumerate()
        .map(|(i, s)| (i.checked_sub(1).map(|j| &steps[j].set), &s.set))
        .collect();
    let (_, a) = run(&mut AgentController::new(Datapath::SocketLb), &syncs);
    let (_, f) = run(&mut FloorController::new(Datapath::Tc), &syncs);
    assert_eq!(a.maps, f.maps);
    let last = &steps.last().unwrap().set;
    let objects = check(&a, last).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(objects.count, expected_entries(last));
    // Every map the agent writes holds something.
    for m in LbMap::AGENT {
        assert!(
            a.maps.get(&m).is_some_and(|x| !x.is_empty()),
            "{}",
            m.name()
        );
    }
    assert!(check(&a, &steps[0].set).is_err(), "a stale set is caught");
}

#[test]
fn a_featured_full_sync_checks_out_and_a_wrong_flag_is_caught() {
    let set = featured_set(2, 2, RENDERS);
    let (_, mut maps) = run(
        &mut AgentController::new(Datapath::SocketLb),
        &[(None, &set)],
    );
    check(&maps, &set).unwrap_or_else(|e| panic!("{e}"));
    // The LoadBalancer's first frontend loses its affinity flag.
    let lb = set.get(featured_index(2, 2)).unwrap();
    let key = frontends::frontends(lb, &frontends::node_addresses())[0]
        .key
        .slot(0)
        .bytes();
    let svc = maps.maps.get_mut(&LbMap::Services).unwrap();
    let mut v = layout::Lb4Service::parse(&svc[&key]).unwrap();
    v.flags ^= layout::SVC_FLAG_EXT_LOCAL_SCOPE | layout::SVC_FLAG_ROUTABLE;
    svc.insert(key, v.bytes());
    assert!(check(&maps, &set).is_err());
}

#[test]
fn the_notes_say_what_each_datapath_does_not_exercise() {
    let used = [
        Feature::Udp,
        Feature::NodePort,
        Feature::ExternalIps,
        Feature::Affinity,
        Feature::EndpointConditions,
    ];
    let socket = unexercised(Datapath::SocketLb, &used);
    assert_eq!(socket.len(), 3, "{socket:#?}");
    assert!(
        socket[0].starts_with("UDP ports: UDP frontends are written (proto 17), but the socket LB")
    );
    assert!(socket[1].starts_with("NodePort, external IPs: NodePort, ingress"));
    assert!(socket[2].starts_with("session affinity: "));
    let tc = unexercised(Datapath::Tc, &used);
    assert!(tc[0].contains("the tc LB parses TCP only"));
    assert!(unexercised(Datapath::Tc, &[Feature::SeveralPorts]).is_empty());
}
