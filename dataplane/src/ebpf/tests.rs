use std::time::Duration;

use super::controller::{render, AgentController, FloorController};
use super::exchange::BpfMaps;
use super::layout::{self, hex, LbMap};
use super::request::{BpfReply, BpfRequest};
use super::standin::MapsStandIn;
use super::*;
use crate::floor::model::{self, ServiceSet};
use crate::floor::sync::record::{Call, Recorder};

const FIXTURE: &str = include_str!("fixture_2x2.txt");

fn unhex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// (map, key, value) of each fixture line; key and value split by their known sizes.
fn fixture() -> Vec<(String, Vec<u8>, Vec<u8>)> {
    parse(FIXTURE)
}

/// (map, key, value) of each line of a fixture's text.
pub(super) fn parse(text: &str) -> Vec<(String, Vec<u8>, Vec<u8>)> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with('[') && !l.trim().is_empty())
        .map(|l| {
            let (map, rest) = l.split_once(' ').unwrap();
            let bytes = unhex(rest);
            let m = LbMap::ALL.into_iter().find(|m| m.name() == map).expect(map);
            let k = m.sizes().0;
            (map.to_string(), bytes[..k].to_vec(), bytes[k..].to_vec())
        })
        .collect()
}

/// Checks that a full sync of `set` writes exactly `want`, in order, each entry of
/// its map's sizes.
pub(super) fn renders_exactly(set: &ServiceSet, want: &[(String, Vec<u8>, Vec<u8>)]) {
    let got: Vec<(String, Vec<u8>, Vec<u8>)> = render(set)
        .into_iter()
        .map(|e| (e.map.name().to_string(), e.key, e.value))
        .collect();
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(
            (g.0.as_str(), hex(&g.1), hex(&g.2)),
            (w.0.as_str(), hex(&w.1), hex(&w.2)),
            "entry {i}"
        );
    }
    assert_eq!(got.len(), want.len());
    for m in LbMap::ALL {
        let (k, v) = m.sizes();
        for (name, key, value) in &got {
            if name == m.name() {
                assert_eq!((key.len(), value.len()), (k, v), "{name}");
            }
        }
    }
}

#[test]
fn a_two_service_set_renders_cilium_s_exact_bytes_in_the_agent_s_order() {
    let want = fixture();
    assert_eq!(want.len(), 12);
    renders_exactly(&ServiceSet::generate(2, 2), &want);
}

#[test]
fn entries_decode_to_their_fields_with_their_bytes() {
    let key = layout::slot_key(model::service_vip(0), 80, 1).bytes();
    assert_eq!(
        layout::describe_key(LbMap::Services, &key),
        "{address=10.96.0.1 dport=80 backend_slot=1 proto=6 scope=0} [0a600001 00500100 06000000]"
    );
    let v = layout::master(10, 7, (layout::SVC_FLAG_ROUTABLE, 0), 0).bytes();
    assert_eq!(
        layout::describe_value(LbMap::Services, &v),
        "{backend_id=0 count=10 rev_nat_index=7 flags=0x40 flags2=0x00 qcount=0} [00000000 0a000007 40000000]"
    );
    assert_eq!(
        layout::describe_value(
            LbMap::RevNat,
            &layout::rev_nat_value(model::service_vip(1), 80)
        ),
        "{address=10.96.0.2 port=80} [0a600002 0050]"
    );
}

pub(super) fn run(
    ctl: &mut dyn Controller,
    syncs: &[(Option<&ServiceSet>, &ServiceSet)],
) -> (Recorder, MapsStandIn) {
    let mut r = Recorder::new(vec![Box::new(MapsStandIn::new())]);
    for (old, new) in syncs {
        ctl.sync(&mut r, *old, new, Duration::ZERO).unwrap();
    }
    let mut dumps = MapsStandIn::new();
    for m in LbMap::AGENT {
        if let BpfReply::Entries(e) = r.bpf(BpfRequest::Dump(m)).unwrap() {
            dumps.maps.insert(m, e.into_iter().collect());
        }
    }
    (r, dumps)
}

pub(super) fn check(dumps: &MapsStandIn, set: &ServiceSet) -> Result<Objects, ApplyError> {
    let all: Dumps = dumps
        .maps
        .iter()
        .map(|(m, x)| (*m, x.clone().into_iter().collect()))
        .collect();
    check_maps(&all, set)
}

#[test]
fn the_agent_makes_one_update_per_entry_after_its_restore_dump() {
    let set = ServiceSet::generate(3, 4);
    let (r, dumps) = run(
        &mut AgentController::new(Datapath::SocketLb),
        &[(None, &set)],
    );
    let lines = r.lines();
    // Loading and attaching is the agent's start-up, untimed; then its restore dump.
    assert_eq!(
        lines[0],
        "bpf: load and attach the socket LB (cgroup connect4, getpeername4) (untimed)"
    );
    assert!(lines[1].starts_with("bpf: dump cilium_lb4_services_v2"));
    assert!(lines[2].starts_with("bpf: dump cilium_lb4_backends_v3"));
    let updates = lines
        .iter()
        .filter(|l| l.starts_with("bpf: MAP_UPDATE_ELEM"))
        .count();
    assert_eq!(updates, expected_entries(&set));
    assert!(!lines.iter().any(|l| l.contains("BATCH")));
    assert_eq!(check(&dumps, &set).unwrap().count, 3 * (2 + 4) + 12);
}

#[test]
fn removals_go_master_and_slots_then_reverse_nat_then_backends() {
    let small = ServiceSet::generate(2, 2);
    let mut big = small.clone();
    big.upsert(model::service(2, 2));
    let mut ctl = AgentController::new(Datapath::SocketLb);
    let (mut r, _) = run(&mut ctl, &[(None, &big)]);
    r.clear();
    ctl.sync(&mut r, Some(&big), &small, Duration::ZERO)
        .unwrap();
    let got: Vec<String> = r
        .calls
        .iter()
        .skip(1)
        .map(|c| match c {
            Call::Request { kind: "bpf", text } => text.split(" [").next().unwrap().to_string(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        got,
        [
            "MAP_DELETE_ELEM cilium_lb4_services_v2 key {address=10.96.0.3 dport=80 backend_slot=0 proto=6 scope=0}",
            "MAP_DELETE_ELEM cilium_lb4_services_v2 key {address=10.96.0.3 dport=80 backend_slot=1 proto=6 scope=0}",
            "MAP_DELETE_ELEM cilium_lb4_services_v2 key {address=10.96.0.3 dport=80 backend_slot=2 proto=6 scope=0}",
            "MAP_DELETE_ELEM cilium_lb4_reverse_nat key {index=3}",
            "MAP_DELETE_ELEM cilium_lb4_backends_v3 key {id=5}",
            "MAP_DELETE_ELEM cilium_lb4_backends_v3 key {id=6}",
        ]
    );
}

#[test]
fn an_endpoint_change_adds_the_backend_rewrites_the_service_then_drops_the_old_backend() {
    let set = ServiceSet::generate(2, 2);
    let mut changed = set.services[1].clone();
    changed.endpoints[0].ip = model::spare_endpoint_ip(0);
    let mut next = set.clone();
    next.upsert(changed);
    let mut ctl = AgentController::new(Datapath::SocketLb);
    let (mut r, _) = run(&mut ctl, &[(None, &set)]);
    r.clear();
    ctl.sync(&mut r, Some(&set), &next, Duration::ZERO).unwrap();
    let kinds: Vec<String> = r
        .lines()
        .iter()
        .skip(1)
        .map(|l| l.split(" key").next().unwrap().to_string())
        .collect();
    assert_eq!(
        kinds,
        [
            "bpf: MAP_UPDATE_ELEM cilium_lb4_backends_v3",
            "bpf: MAP_UPDATE_ELEM cilium_lb4_services_v2",
            "bpf: MAP_UPDATE_ELEM cilium_lb4_services_v2",
            "bpf: MAP_UPDATE_ELEM cilium_lb4_reverse_nat",
            "bpf: MAP_UPDATE_ELEM cilium_lb4_services_v2",
            "bpf: MAP_DELETE_ELEM cilium_lb4_backends_v3",
        ]
    );
}

#[test]
fn both_profiles_leave_identical_maps_through_a_sequence_of_syncs() {
    let set = ServiceSet::generate(5, 3);
    let mut grown = set.clone();
    grown.upsert(model::service(5, 3));
    let mut changed = set.services[2].clone();
    changed.endpoints[1].ip = model::spare_endpoint_ip(1);
    let mut next = set.clone();
    next.upsert(changed);
    let syncs = [
        (None, &set),
        (Some(&set), &grown),
        (Some(&grown), &set),
        (Some(&set), &next),
    ];
    let (ra, a) = run(&mut AgentController::new(Datapath::SocketLb), &syncs);
    let (rf, f) = run(&mut FloorController::new(Datapath::SocketLb), &syncs);
    assert_eq!(a.maps, f.maps);
    check(&a, &next).unwrap();
    assert!(rf
        .lines()
        .iter()
        .all(|l| l.contains("BATCH") || l.contains("dump") || l.contains("load and attach")));
    assert!(ra.lines().len() > rf.lines().len());
    // A stale set is caught.
    assert!(check(&a, &set).is_err());
}

#[test]
fn both_datapaths_get_the_same_entries_and_attach_their_own_programs() {
    let set = ServiceSet::generate(3, 2);
    let (rs, s) = run(
        &mut AgentController::new(Datapath::SocketLb),
        &[(None, &set)],
    );
    let (rt, t) = run(&mut AgentController::new(Datapath::Tc), &[(None, &set)]);
    assert_eq!(s.maps, t.maps);
    assert_eq!(rs.lines()[1..], rt.lines()[1..]);
    assert!(
        rt.lines()[0].contains("per-packet LB (tc ingress of veth-client and veth-backend)"),
        "{}",
        rt.lines()[0]
    );
}
