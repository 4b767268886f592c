use super::*;
use crate::floor::spec::Feature;

fn group(count: u64, kind: ServiceType, ports: &[Protocol], ready: u32) -> Group {
    Group::plain(count, kind, ports, ready)
}

fn shape(groups: Vec<Group>) -> Shape {
    Shape {
        format: FORMAT.into(),
        source: "synthetic".into(),
        skipped: Skipped::default(),
        groups,
    }
}

#[test]
fn a_uniform_clusterip_shape_is_the_n_x_e_set_up_to_order() {
    let s = shape(vec![group(4, ServiceType::ClusterIP, &[Protocol::Tcp], 3)]);
    s.check().unwrap();
    assert_eq!(s.service_set(), ServiceSet::generate(4, 3));
}

#[test]
fn services_are_addressed_in_order_with_conditions_and_node_ports() {
    let mut lb = group(
        1,
        ServiceType::LoadBalancer,
        &[Protocol::Tcp, Protocol::Udp],
        1,
    );
    lb.endpoints = EndpointCounts {
        ready: 1,
        not_ready: 1,
        serving_terminating: 1,
        terminating: 1,
        local: 2,
    };
    lb.source_ranges = 2;
    lb.ingress_ips = 1;
    lb.affinity_timeout_s = Some(10800);
    let s = shape(vec![lb]);
    s.check().unwrap();
    let set = s.service_set();
    let svc = &set.services[0];
    assert_eq!(svc.endpoints.len(), 4);
    assert_eq!(svc.endpoints[3].ip, Ipv4Addr::new(10, 128, 0, 4));
    let c: Vec<_> = svc.endpoints.iter().map(|e| svc.conditions(e)).collect();
    assert!(c[0].ready && c[0].local);
    assert!(!c[1].ready && !c[1].serving && !c[1].terminating && c[1].local);
    assert!(!c[2].ready && c[2].serving && c[2].terminating && !c[2].local);
    assert!(!c[3].serving && c[3].terminating);
    let ports = svc.ports();
    assert_eq!(ports[0].node_port, Some(30000));
    assert_eq!(ports[1].node_port, Some(30001));
    assert_eq!((ports[1].port, ports[1].target_port), (81, 8081));
    assert_eq!(ports[1].protocol, Protocol::Udp);
    assert_eq!(
        svc.spec.source_ranges,
        vec![
            (Ipv4Addr::new(100, 64, 0, 0), 24),
            (Ipv4Addr::new(100, 64, 1, 0), 24)
        ]
    );
    assert_eq!(svc.spec.ingress_ips, vec![Ipv4Addr::new(198, 19, 0, 1)]);
    assert_eq!(
        svc.spec.features(),
        vec![
            Feature::LoadBalancer,
            Feature::Udp,
            Feature::SeveralPorts,
            Feature::Affinity,
            Feature::SourceRanges,
            Feature::EndpointConditions,
        ]
    );
}

#[test]
fn groups_interleave_the_same_way_every_time() {
    let s = shape(vec![
        group(50, ServiceType::ClusterIP, &[Protocol::Tcp], 1),
        group(50, ServiceType::NodePort, &[Protocol::Tcp], 2),
    ]);
    let a = s.service_set();
    assert_eq!(a, s.service_set());
    let first_half_nodeports = a.services[..50]
        .iter()
        .filter(|s| s.spec.kind == ServiceType::NodePort)
        .count();
    assert!((10..40).contains(&first_half_nodeports));
    assert_eq!(a.total_endpoints(), 150);
    // Endpoints never repeat an address.
    let mut ips: Vec<_> = a
        .services
        .iter()
        .flat_map(|s| &s.endpoints)
        .map(|e| e.ip)
        .collect();
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), 150);
}

#[test]
fn scaling_keeps_the_shares_and_hits_the_total() {
    let s = shape(vec![
        group(7, ServiceType::ClusterIP, &[Protocol::Tcp], 1),
        group(2, ServiceType::NodePort, &[Protocol::Tcp], 2),
        group(1, ServiceType::LoadBalancer, &[Protocol::Tcp], 3),
    ]);
    let counts = |s: &Shape| s.groups.iter().map(|g| g.count).collect::<Vec<_>>();
    assert_eq!(counts(&s.scaled(2.0)), vec![14, 4, 2]);
    assert_eq!(counts(&s.scaled(0.5)), vec![4, 1]);
    assert_eq!(s.scaled(0.5).services(), 5);
    assert_eq!(s.scaled(1.5).services(), 15);
}

#[test]
fn bad_groups_and_sizes_are_named() {
    let mut s = shape(vec![group(1, ServiceType::ClusterIP, &[], 1)]);
    assert!(s
        .check()
        .unwrap_err()
        .to_string()
        .starts_with("groups[0]: `ports` is empty"));
    s.groups[0].ports = vec![Protocol::Tcp];
    s.groups[0].source_ranges = 1;
    assert!(s
        .check()
        .unwrap_err()
        .to_string()
        .contains("only LoadBalancer"));
    s.groups[0].source_ranges = 0;
    s.groups[0].endpoints.local = 2;
    assert!(s
        .check()
        .unwrap_err()
        .to_string()
        .contains("`endpoints.local` is 2"));
    let mut big = shape(vec![group(
        40_000,
        ServiceType::NodePort,
        &[Protocol::Tcp],
        1,
    )]);
    assert!(matches!(
        big.check(),
        Err(ShapeError::Plan {
            what: "node ports",
            ..
        })
    ));
    big.format = "kpbench.shape/0".into();
    assert!(matches!(big.check(), Err(ShapeError::Format { .. })));
}

#[test]
fn the_file_round_trips_and_rejects_unknown_fields() {
    let s = shape(vec![group(3, ServiceType::NodePort, &[Protocol::Udp], 2)]);
    let text = serde_json::to_string(&s).unwrap();
    assert_eq!(serde_json::from_str::<Shape>(&text).unwrap(), s);
    let bad = text.replace("\"count\"", "\"name\":\"x\",\"count\"");
    assert!(serde_json::from_str::<Shape>(&bad).is_err());
}

#[test]
fn a_fresh_copy_keeps_the_structure_and_shares_no_key() {
    let mut lb = group(
        2,
        ServiceType::LoadBalancer,
        &[Protocol::Tcp, Protocol::Udp],
        2,
    );
    lb.endpoints.not_ready = 1;
    lb.endpoints.local = 1;
    lb.external_ips = 1;
    lb.ingress_ips = 1;
    lb.source_ranges = 1;
    lb.affinity_timeout_s = Some(60);
    let s = shape(vec![
        lb,
        group(1, ServiceType::ClusterIP, &[Protocol::Tcp], 1),
    ]);
    s.check().unwrap();
    let set = s.service_set();
    let of = set
        .services
        .iter()
        .find(|x| x.spec.kind == ServiceType::LoadBalancer)
        .unwrap();
    let copy = set.fresh_copy(of, 3);
    assert_eq!((copy.index, copy.vip), (3, model::service_vip(3)));
    assert_eq!(copy.spec.features(), of.spec.features());
    assert_eq!(copy.endpoints.len(), 3);
    let (kind, aff, ranges) = (
        copy.spec.kind,
        copy.spec.affinity_timeout_s,
        &copy.spec.source_ranges,
    );
    assert_eq!(
        (kind, aff, ranges),
        (
            of.spec.kind,
            of.spec.affinity_timeout_s,
            &of.spec.source_ranges
        )
    );
    // The same conditions, on the copy's own endpoints.
    let conditions = |svc: &Service| -> Vec<Conditions> {
        svc.endpoints.iter().map(|e| svc.conditions(e)).collect()
    };
    assert_eq!(conditions(&copy), conditions(of));
    // No endpoint, node port, external or ingress IP of the set is reused.
    let all = |f: fn(&Service) -> Vec<String>| -> Vec<String> {
        set.services.iter().flat_map(f).collect()
    };
    let keys: [fn(&Service) -> Vec<String>; 4] = [
        |s| s.endpoints.iter().map(|e| e.ip.to_string()).collect(),
        |s| {
            s.ports()
                .iter()
                .filter_map(|p| p.node_port)
                .map(|p| p.to_string())
                .collect()
        },
        |s| {
            s.spec
                .external_ips
                .iter()
                .map(|ip| ip.to_string())
                .collect()
        },
        |s| s.spec.ingress_ips.iter().map(|ip| ip.to_string()).collect(),
    ];
    for key in keys {
        let (taken, mine) = (all(key), key(&copy));
        assert_eq!(mine.len(), key(of).len());
        assert!(
            mine.iter().all(|k| !taken.contains(k)),
            "{mine:?} in {taken:?}"
        );
    }
    assert_eq!(copy.ports()[0].node_port, Some(30004));
}

#[test]
fn a_fresh_copy_of_a_plain_service_is_the_next_generated_one() {
    let set = ServiceSet::generate(4, 3);
    assert_eq!(set.fresh_copy(&set.services[1], 4), model::service(4, 3));
}
