use dataplane::floor::model::{service, ServiceSet};
use dataplane::floor::spec::{Conditions, Protocol, ServicePort, ServiceType};

use super::*;

/// Service `i` with `e` endpoints, of `kind`, with `ports` ports.
fn svc(i: usize, e: usize, kind: ServiceType, ports: usize) -> Service {
    let mut s = service(i, e);
    s.spec.kind = kind;
    s.spec.extra_ports = (1..ports)
        .map(|k| ServicePort {
            name: format!("p{k}"),
            protocol: Protocol::Tcp,
            port: 80 + k as u16,
            target_port: 8080 + k as u16,
            node_port: None,
        })
        .collect();
    s
}

/// Twelve services; the middle of the rule order is index 6.
fn small_shape() -> ServiceSet {
    use ServiceType::*;
    let mut services = vec![
        svc(0, 1, ClusterIP, 1),
        svc(1, 2, ClusterIP, 1),
        svc(2, 6, NodePort, 2),
        svc(3, 2, ClusterIP, 1),
        svc(4, 50, ClusterIP, 1),
        svc(5, 3, LoadBalancer, 1),
        svc(6, 2, ClusterIP, 1),
        svc(7, 1, ClusterIP, 1),
        svc(8, 2, ClusterIP, 1),
        svc(9, 4, NodePort, 2),
        svc(10, 2, ClusterIP, 1),
        svc(11, 4, NodePort, 1),
    ];
    // The middle one has a feature the other two-endpoint ClusterIPs lack.
    services[6].spec.affinity_timeout_s = Some(10800);
    ServiceSet { services }
}

fn found(set: &ServiceSet) -> Vec<(&'static str, Result<Chosen, String>)> {
    choose(set)
        .into_iter()
        .map(|(p, c)| (p.name(), c))
        .collect()
}

#[test]
fn each_pick_finds_its_service_on_a_small_shape() {
    let picks = found(&small_shape());
    let chosen = |index, kind, ports, endpoints| {
        Ok(Chosen {
            index,
            kind,
            ports,
            endpoints,
        })
    };
    assert_eq!(
        picks,
        [
            // ClusterIP (8 of 12), one port (all 8), median of 1,1,2,2,2,2,2,50
            // endpoints (2), no feature (4 of 5): svc-8, the first from the middle.
            ("typical", chosen(8, ServiceType::ClusterIP, 1, 2)),
            ("largest", chosen(4, ServiceType::ClusterIP, 1, 50)),
            // NodePort services: two ports (2 of 3), the lower median of 4 and 6.
            ("nodeport", chosen(9, ServiceType::NodePort, 2, 4)),
        ]
    );
}

#[test]
fn without_a_nodeport_service_that_pick_says_why_and_the_others_stand() {
    let set = ServiceSet::generate(5, 3);
    let picks = found(&set);
    let middle = Chosen {
        index: 2,
        kind: ServiceType::ClusterIP,
        ports: 1,
        endpoints: 3,
    };
    assert_eq!(picks[0], ("typical", Ok(middle)));
    assert_eq!(picks[1], ("largest", Ok(middle)));
    assert_eq!(
        picks[2],
        (
            "nodeport",
            Err("the shape has no service of type NodePort".to_string())
        )
    );
    let none = found(&ServiceSet::default());
    assert!(none.iter().all(|(_, c)| c.is_err()), "{none:?}");
}

#[test]
fn a_tie_on_the_largest_goes_to_the_first_from_the_middle() {
    let mut set = ServiceSet::generate(6, 1);
    set.services[1].endpoints = service(1, 9).endpoints;
    set.services[4].endpoints = service(4, 9).endpoints;
    assert_eq!(found(&set)[1].1.as_ref().unwrap().index, 4);
}

#[test]
fn an_update_replaces_one_endpoint_by_a_new_ready_one() {
    let mut s = service(3, 2);
    let old = s.endpoints[1].ip;
    s.spec.conditions.insert(
        old,
        Conditions {
            ready: false,
            ..Conditions::default()
        },
    );
    let changed = updated(&s, 1, 7).unwrap();
    assert_eq!(changed.endpoints[0], s.endpoints[0]);
    assert_eq!(changed.endpoints[1].ip, model::spare_endpoint_ip(7));
    assert!(changed.spec.conditions.is_empty());
    assert_eq!(
        updated(&s, 2, 7).unwrap().endpoints[0].ip,
        model::spare_endpoint_ip(7)
    );
    let empty = service(5, 0);
    assert_eq!(
        updated(&empty, 0, 0).unwrap_err(),
        "svc-5 has no endpoint to replace, so no update_endpoints"
    );
}

fn sample(
    ms: u64,
) -> (
    crate::run::metrics::Sample,
    usize,
    dataplane::floor::sync::StepLog,
) {
    let d = std::time::Duration::from_millis(ms);
    (
        crate::run::metrics::Sample {
            wall: d,
            user: d,
            sys: d,
        },
        10,
        Default::default(),
    )
}

#[test]
fn a_pick_records_its_service_samples_and_why_some_are_missing() {
    let set = small_shape();
    let mut runs: Vec<PickRun> = choose(&set).into_iter().map(PickRun::new).collect();
    runs[0].kinds.adds.push(sample(2));
    runs[0].kinds.adds.push(sample(4));
    runs[0].no_update = Some("svc-8 has no endpoint to replace, so no update_endpoints".into());
    runs[1].stopped_after = Some(1);
    assert_eq!(runs[1].runs(), None);
    assert_eq!(runs[2].runs(), Some(9));
    let typical = runs[0].record(2);
    assert_eq!(
        (
            typical.pick.as_str(),
            typical.service_index,
            typical.kind.as_deref()
        ),
        ("typical", Some(8), Some("ClusterIP"))
    );
    assert_eq!((typical.ports, typical.endpoints), (Some(1), Some(2)));
    assert_eq!(typical.add_service.unwrap().samples_ms, [2.0, 4.0]);
    assert!(typical.remove_service.is_none());
    assert_eq!(
        typical.reason.as_deref(),
        Some("svc-8 has no endpoint to replace, so no update_endpoints")
    );
    assert_eq!(
        runs[1].record(10).reason.as_deref(),
        Some("stopped after 1 of 10 rounds: the case's time limit left room for the typical pick's rounds only")
    );
    let mut plain = PickRun::new(choose(&ServiceSet::generate(3, 1)).remove(2));
    plain.kinds.adds.push(sample(1));
    let skipped = plain.record(3);
    assert_eq!(skipped.service_index, None);
    assert_eq!(skipped.kind, None);
    assert_eq!(
        skipped.reason.as_deref(),
        Some("the shape has no service of type NodePort")
    );
}
