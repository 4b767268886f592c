use super::*;

fn parse(text: &str) -> Result<Scenario, ScenarioError> {
    Scenario::parse(text, "test.toml", "test")
}

#[test]
fn an_empty_file_gets_every_default() {
    let s = parse("").unwrap();
    assert_eq!(s.name, "test");
    assert_eq!(
        s.modes,
        vec![
            Mode::Iptables,
            Mode::IptablesLegacy,
            Mode::Nftables,
            Mode::Ipvs
        ]
    );
    assert_eq!(s.services, vec![100, 1000, 5000]);
    assert_eq!(s.endpoints_per_service, 10);
    assert_eq!(s.repeats, 10);
    assert_eq!(s.ipvs_schedulers, vec!["rr"]);
    assert_eq!(s.datapath, Datapath::default());
}

#[test]
fn the_shipped_scenarios_parse() {
    let quick = Scenario::quick();
    assert_eq!(quick.name, "quick");
    assert_eq!(quick.scales_for(Mode::Iptables), &[100, 1000]);
    assert_eq!(quick.scales_for(Mode::IptablesLegacy), &[100, 1000, 5000]);
    assert_eq!(quick.scales_for(Mode::Nftables), &[100, 1000]);
    let scale = Scenario::parse(
        include_str!("../../../scenarios/scale.toml"),
        "scale.toml",
        "scale",
    )
    .unwrap();
    assert!(scale.services.iter().max().unwrap() >= &20_000);
}

#[test]
fn unknown_fields_are_named() {
    let err = parse("servics = [1]").unwrap_err().to_string();
    assert!(
        err.contains("test.toml") && err.contains("servics"),
        "{err}"
    );
    let err = parse("[datapath]\nrat = 5").unwrap_err().to_string();
    assert!(err.contains("rat"), "{err}");
}

#[test]
fn bad_sizes_are_named_with_the_fix() {
    let err = parse("services = [100, -5]").unwrap_err().to_string();
    assert!(
        err.contains("`services[1]`") && err.contains(">= 1"),
        "{err}"
    );
    let err = parse("services = []").unwrap_err().to_string();
    assert!(err.contains("`services`"), "{err}");
    let err = parse("endpoints_per_service = -1").unwrap_err().to_string();
    assert!(err.contains("endpoints_per_service"), "{err}");
    let err = parse("services = [5000000]").unwrap_err().to_string();
    assert!(err.contains("service CIDR"), "{err}");
    let err = parse("services = [300000]\nendpoints_per_service = 100")
        .unwrap_err()
        .to_string();
    assert!(err.contains("pod CIDR"), "{err}");
}

#[test]
fn unknown_modes_and_schedulers_are_named() {
    let err = parse("modes = [\"iptabels\"]").unwrap_err().to_string();
    assert!(
        err.contains("`modes`") && err.contains("iptables-legacy"),
        "{err}"
    );
    let err = parse("[scales]\nfoo = [1]").unwrap_err().to_string();
    assert!(err.contains("scales.foo"), "{err}");
    let err = parse("ipvs_schedulers = [\"mh2\"]")
        .unwrap_err()
        .to_string();
    assert!(err.contains("ipvs_schedulers"), "{err}");
}

#[test]
fn wrong_types_name_the_field() {
    let err = parse("services = \"lots\"").unwrap_err().to_string();
    assert!(err.contains("services"), "{err}");
}

#[test]
fn command_line_overrides() {
    let mut s = parse("[scales]\nnftables = [10]").unwrap();
    s.override_with(
        Some(&[Mode::Iptables, Mode::Nftables]),
        Some(&[200, 100]),
        Some(3),
    )
    .unwrap();
    assert_eq!(s.modes, vec![Mode::Iptables, Mode::Nftables]);
    assert_eq!(s.services, vec![100, 200]);
    assert_eq!(s.scales_for(Mode::Nftables), &[100, 200]);
    assert_eq!(s.endpoints_per_service, 3);
    let err = s
        .override_with(None, Some(&[1, 0]), None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("--services[1]"), "{err}");
    let err = s.override_with(Some(&[]), None, None).unwrap_err().to_string();
    assert!(err.contains("--modes"), "{err}");
    let err = s
        .override_with(None, Some(&[100]), Some(100_000_000))
        .unwrap_err()
        .to_string();
    assert!(err.contains("--services/--endpoints"), "{err}");
}
