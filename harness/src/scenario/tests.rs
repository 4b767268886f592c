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
    assert_eq!(s.ipvs_schedulers, vec![IpvsScheduler::Rr]);
    assert_eq!(s.datapath, Datapath::default());
}

#[test]
fn the_shipped_scenarios_parse() {
    let quick = Scenario::quick();
    assert_eq!(quick.name, "quick");
    assert_eq!(quick.scales_for(Mode::Iptables), &[100, 1000]);
    assert_eq!(quick.scales_for(Mode::IptablesLegacy), &[100, 1000]);
    assert!(quick.lab_compare);
    assert_eq!(quick.scales_for(Mode::Nftables), &[100, 1000]);
    assert_eq!(quick.scales_for(Mode::Ebpf), &[1000]);
    assert_eq!(quick.scales_for(Mode::EbpfTc), &[1000]);
    let ebpf = Scenario::parse(
        include_str!("../../../scenarios/ebpf.toml"),
        "ebpf.toml",
        "ebpf",
    )
    .unwrap();
    assert_eq!(ebpf.scales_for(Mode::EbpfTc), &[100, 1000, 5000]);
    let scale = Scenario::parse(
        include_str!("../../../scenarios/scale.toml"),
        "scale.toml",
        "scale",
    )
    .unwrap();
    assert!(scale.services.iter().max().unwrap() >= &20_000);
    for (text, file, modes) in [
        (
            include_str!("../../../scenarios/churn-10.toml"),
            "churn-10.toml",
            5,
        ),
        (
            include_str!("../../../scenarios/churn-ipvs.toml"),
            "churn-ipvs.toml",
            1,
        ),
    ] {
        let s = Scenario::parse(text, file, file.trim_end_matches(".toml")).unwrap();
        assert_eq!(s.modes.len(), modes, "{file}");
        assert!(s.churn.is_some(), "{file} has no churn phase");
    }
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
    for bad in ["0", "-2", "21"] {
        let err = parse(&format!("[datapath]\nreplicates = {bad}"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("`datapath.replicates`"), "{err}");
    }
    let ok = parse("[datapath]\nreplicates = 5").unwrap();
    assert_eq!(ok.datapath.replicates, 5);
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
    assert!(err.contains("use one of rr, lc, sh, dh, wrr"), "{err}");
}

#[test]
fn each_ipvs_scheduler_is_a_mode_of_its_own() {
    let s = parse("modes = [\"nftables\", \"ipvs\"]\nipvs_schedulers = [\"sh\", \"rr\"]").unwrap();
    let specs: Vec<String> = s.mode_specs().iter().map(|m| m.to_string()).collect();
    assert_eq!(specs, ["nftables", "ipvs (sh)", "ipvs (rr)"]);
    // The resolved scenario records scheduler names, as before.
    let json = serde_json::to_value(&s).unwrap();
    assert_eq!(json["ipvs_schedulers"], serde_json::json!(["sh", "rr"]));
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
        Some(&[
            ProfileKind::Floor,
            ProfileKind::KubeProxy,
            ProfileKind::Floor,
        ]),
    )
    .unwrap();
    assert_eq!(s.modes, vec![Mode::Iptables, Mode::Nftables]);
    assert_eq!(s.services, vec![100, 200]);
    assert_eq!(s.scales_for(Mode::Nftables), &[100, 200]);
    assert_eq!(s.endpoints_per_service, 3);
    assert_eq!(s.profiles, vec![ProfileKind::Floor, ProfileKind::KubeProxy]);
    let err = s
        .override_with(None, Some(&[1, 0]), None, None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("--services[1]"), "{err}");
    let err = s
        .override_with(Some(&[]), None, None, None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("--modes"), "{err}");
    let err = s
        .override_with(None, Some(&[100]), Some(100_000_000), None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("--services/--endpoints"), "{err}");
}

#[test]
fn profiles_version_and_sync_interval_have_defaults_and_name_bad_values() {
    let s = parse("").unwrap();
    assert_eq!(s.profiles, vec![ProfileKind::KubeProxy]);
    assert_eq!(s.kube_proxy_version, KubeProxyVersion::V1_36);
    assert_eq!(s.sync_interval_s, 1.0);
    let s = parse("profiles = [\"kube-proxy\", \"floor\"]\nkube_proxy_version = \"1.35\"\nsync_interval_s = 30").unwrap();
    assert_eq!(s.profiles, vec![ProfileKind::KubeProxy, ProfileKind::Floor]);
    assert_eq!(s.kube_proxy_version, KubeProxyVersion::V1_35);
    assert_eq!(s.sync_interval(), std::time::Duration::from_secs(30));
    for (text, field) in [
        ("profiles = []", "profiles"),
        ("profiles = [\"fast\"]", "profiles"),
        ("kube_proxy_version = \"1.20\"", "kube_proxy_version"),
        ("sync_interval_s = -1", "sync_interval_s"),
    ] {
        let err = parse(text).unwrap_err().to_string();
        assert!(err.contains(field), "{text}: {err}");
    }
}

#[test]
fn the_sync_limit_defaults_to_the_case_limit_and_stays_within_it() {
    let s = parse("case_timeout_s = 600").unwrap();
    assert_eq!((s.case_timeout_s, s.sync_limit_s), (600.0, 600.0));
    let s = parse("case_timeout_s = 600\nsync_limit_s = 120").unwrap();
    assert_eq!(s.sync_limit(), Duration::from_secs(120));
    let err = parse("case_timeout_s = 60\nsync_limit_s = 120")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("sync_limit_s") && err.contains("at most 60"),
        "{err}"
    );
    let err = parse("sync_limit_s = 0").unwrap_err().to_string();
    assert!(err.contains("sync_limit_s"), "{err}");
    // The published scenario sets it below its case limit.
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../scenarios/published.toml"
    ))
    .unwrap();
    let p = Scenario::parse(&text, "published.toml", "published").unwrap();
    assert!(p.sync_limit_s < p.case_timeout_s);
}
