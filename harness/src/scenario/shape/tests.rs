use super::import::import;
use super::summary::summary;
use super::*;
use crate::scenario::Scenario;
use dataplane::floor::spec::{Feature, ServiceType};

const DUMP: &str = include_str!("../../../tests/fixtures/shapes/example-dump.json");

fn err(text: &str) -> String {
    import(text, None).unwrap_err().to_string()
}

fn list(items: &str) -> String {
    format!("{{\"apiVersion\":\"v1\",\"kind\":\"List\",\"items\":[{items}]}}")
}

const SVC: &str = r#"{"kind":"Service","metadata":{"namespace":"a","name":"web"},
    "spec":{"clusterIP":"10.0.0.1","ports":[{"port":80}]}}"#;

#[test]
fn the_example_dump_imports_to_its_structure_only() {
    let shape = import(DUMP, None).unwrap();
    shape.check().unwrap();
    assert_eq!(shape.services(), 5);
    assert_eq!(shape.endpoints(), 9);
    assert_eq!(
        (shape.skipped.headless, shape.skipped.external_name),
        (1, 1)
    );
    let json = serde_json::to_string(&shape).unwrap();
    for secret in [
        "kube-dns",
        "node-a",
        "10.1.2.3",
        "192.0.2.127",
        "30007",
        "MyApp",
        "130.211",
    ] {
        assert!(!json.contains(secret), "{secret} leaked into the shape");
    }
    let lb = shape
        .groups
        .iter()
        .find(|g| g.kind == ServiceType::LoadBalancer)
        .unwrap();
    assert_eq!((lb.source_ranges, lb.ingress_ips), (2, 1));
    assert_eq!(
        (
            lb.endpoints.ready,
            lb.endpoints.terminating,
            lb.endpoints.local
        ),
        (1, 1, 1)
    );
    let set = shape.service_set();
    let features: std::collections::BTreeSet<Feature> = set
        .services
        .iter()
        .flat_map(|s| s.spec.features())
        .collect();
    assert!(features.contains(&Feature::Affinity) && features.contains(&Feature::Udp));
}

#[test]
fn one_list_and_two_concatenated_import_alike() {
    let one = include_str!("../../../tests/fixtures/shapes/example-dump-one-list.json");
    assert_eq!(import(one, None).unwrap(), import(DUMP, None).unwrap());
}

#[test]
fn the_summary_counts_types_ports_endpoints_and_policies() {
    let text = summary(&import(DUMP, Some("node-b")).unwrap());
    assert!(
        text.contains("5 services kube-proxy programs, 9 endpoints"),
        "{text}"
    );
    assert!(
        text.contains("types: ClusterIP 3, NodePort 1, LoadBalancer 1"),
        "{text}"
    );
    assert!(
        text.contains("ports: TCP 6, UDP 1; ports per service (ports: services) 1: 4, 3: 1"),
        "{text}"
    );
    assert!(text.contains("0: 0, 1: 2, 2-3: 3, 4-10: 0"), "{text}");
    assert!(text.contains("on the node 3"), "{text}");
    assert!(
        text.contains(
            "affinity: ClientIP 1; externalTrafficPolicy Local 1; internalTrafficPolicy Local 1"
        ),
        "{text}"
    );
}

#[test]
fn bad_dumps_name_the_object_and_the_fix() {
    assert!(err("{\"kind\":").contains("not JSON"));
    assert!(err("{\"kind\":\"Service\"}").contains("kind \"Service\" is not a v1 List"));
    assert!(err("{\"kind\":\"List\"}").contains("no `items` array"));
    let pod = r#"{"kind":"Pod","metadata":{"namespace":"a","name":"p"}}"#;
    assert!(err(&list(pod))
        .contains("items[0] (Pod a/p): kind \"Pod\" is neither Service nor EndpointSlice"));
    let orphan = r#"{"kind":"EndpointSlice","addressType":"IPv4","metadata":{"namespace":"a","name":"s",
        "labels":{"kubernetes.io/service-name":"gone"}},"endpoints":[]}"#;
    assert!(err(&list(&format!("{SVC},{orphan}")))
        .contains("items[1] (EndpointSlice a/s): its service a/gone is not in the dump"));
    let unlabelled =
        r#"{"kind":"EndpointSlice","addressType":"IPv4","metadata":{"namespace":"a","name":"s"}}"#;
    assert!(
        err(&list(&format!("{SVC},{unlabelled}"))).contains("no label kubernetes.io/service-name")
    );
    let sctp = SVC.replace("{\"port\":80}", "{\"port\":80,\"protocol\":\"SCTP\"}");
    assert!(err(&list(&sctp)).contains("items[0] (Service a/web): spec.ports[].protocol \"SCTP\""));
    let odd = SVC.replace("\"clusterIP\"", "\"type\":\"Bogus\",\"clusterIP\"");
    assert!(err(&list(&odd)).contains("spec.type \"Bogus\""));
    let nameless = r#"{"kind":"Service","metadata":{"name":"x"},"spec":{"clusterIP":"10.0.0.1"}}"#;
    assert!(err(&list(nameless)).contains("no metadata.namespace"));
    assert!(err(&list("")).contains("has no Service kube-proxy programs"));
}

#[test]
fn a_synthetic_draw_is_seeded_and_keeps_its_fractions() {
    let toml = r#"
        [synthetic]
        seed = 7
        nodeport = 0.2
        loadbalancer = 0.1
        affinity = 0.05
        udp = 0.1
        ports = { "1" = 0.8, "2" = 0.2 }
        endpoints = { "1" = 0.5, "3" = 0.4, "100" = 0.1 }
    "#;
    let s = Scenario::parse(toml, "t.toml", "t").unwrap();
    let mix = s.synthetic.as_ref().unwrap();
    let shape = mix.draw(2000);
    assert_eq!(shape, mix.draw(2000));
    assert_eq!(shape.services(), 2000);
    let share = |t: ServiceType| {
        shape
            .groups
            .iter()
            .filter(|g| g.kind == t)
            .map(|g| g.count)
            .sum::<u64>() as f64
            / 2000.0
    };
    assert!((share(ServiceType::NodePort) - 0.2).abs() < 0.03);
    assert!((share(ServiceType::LoadBalancer) - 0.1).abs() < 0.03);
    assert_eq!(s.service_set(100).len(), 100);
    // The mean of 1, 3 and 100 endpoints by those weights is about 11.
    assert!(
        (9..=13).contains(&s.endpoints_per_service),
        "{}",
        s.endpoints_per_service
    );
    assert!(s.is_shaped());
}

fn field_err(toml: &str) -> String {
    Scenario::parse(toml, "t.toml", "t")
        .unwrap_err()
        .to_string()
}

#[test]
fn bad_shape_fields_name_the_field_and_the_fix() {
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/shapes/example-shape.json"
    );
    assert!(field_err("scale = 2.0").contains("field `scale`: scales a shape file"));
    assert!(field_err(&format!("shape = {fixture:?}\nservices = [10]")).contains("field `shape`"));
    assert!(field_err(&format!("shape = {fixture:?}\nscale = -1.0")).contains("is not a scale"));
    assert!(field_err(&format!("shape = {fixture:?}\nscale = 0.01")).contains("leaves no service"));
    assert!(field_err("shape = \"missing.json\"").contains("missing.json: cannot read"));
    assert!(
        field_err(&format!("shape = {fixture:?}\n[synthetic]\nudp = 0.1"))
            .contains("field `synthetic`")
    );
    assert!(field_err("endpoints_per_service = 3\n[synthetic]\n")
        .contains("field `endpoints_per_service`"));
    assert!(field_err("[synthetic]\nudp = 1.5")
        .contains("field `synthetic.udp`: 1.5 is not a fraction"));
    assert!(field_err("[synthetic]\nnodeport = 0.7\nloadbalancer = 0.7").contains("exceed 1"));
    assert!(field_err("[synthetic]\nports = { \"0\" = 1.0 }")
        .contains("field `synthetic.ports`: key \"0\""));
    assert!(field_err("[synthetic]\nendpoints = { \"2\" = 0.0 }").contains("no weight above 0"));
    assert!(field_err("[synthetic]\nbogus = 1").contains("unknown field"));
}

#[test]
fn a_shape_file_gives_the_count_and_scale_multiplies_it() {
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/shapes/example-shape.json"
    );
    let s = Scenario::parse(&format!("shape = {fixture:?}\nscale = 2.0"), "t.toml", "t").unwrap();
    assert_eq!(s.services, vec![10]);
    assert_eq!(s.endpoints_per_service, 2);
    let set = s.service_set(10);
    assert_eq!(set.len(), 10);
    assert_eq!(set.total_endpoints(), 18);
    // The resolved scenario round-trips through TOML (the lab's guest parses it).
    let again = Scenario::parse(&toml::to_string(&s).unwrap(), "/x/t.toml", "t").unwrap();
    assert_eq!(again.service_set(10), set);
}

#[test]
fn a_shape_file_that_is_not_one_is_refused_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("s.json");
    std::fs::write(
        &p,
        "{\"format\":\"kpbench.shape/1\",\"source\":\"x\",\"groups\":[{\"count\":1}]}",
    )
    .unwrap();
    let e = load(&p).unwrap_err().to_string();
    assert!(
        e.contains("s.json: not a shape file") && e.contains("missing field"),
        "{e}"
    );
}

#[test]
fn the_typical_scenario_draws_its_documented_mix() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../scenarios/typical.toml");
    let s = Scenario::load(std::path::Path::new(path)).unwrap();
    assert_eq!(s.services, vec![1000, 5000]);
    let set = s.service_set(5000);
    assert_eq!(set.len(), 5000);
    let nodeports = set
        .services
        .iter()
        .filter(|s| s.spec.kind == ServiceType::NodePort)
        .count();
    assert!((300..500).contains(&nodeports), "{nodeports}");
    let small = set
        .services
        .iter()
        .filter(|s| s.endpoints.len() <= 3)
        .count();
    assert!(small > 3500, "{small}");
}

#[test]
fn a_synthetic_scenario_round_trips_through_toml_for_the_lab() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../scenarios/typical.toml");
    let s = Scenario::load(std::path::Path::new(path)).unwrap();
    let text = toml::to_string(&s).unwrap();
    let again =
        Scenario::parse(&text, "/tmp/t.toml", "t").unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(again.synthetic, s.synthetic);
    assert_eq!(again.endpoints_per_service, s.endpoints_per_service);
    assert_eq!(again.service_set(1000), s.service_set(1000));
}
