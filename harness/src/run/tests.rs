//! The engine on fakes: planning, recording, time limits, giving up, skipping, the
//! lab hand-off, all with exact numbers and without root.

use std::collections::BTreeSet;

use dataplane::{IpvsScheduler, KubeProxyVersion, Mode, ProfileKind, ToolNeed};

use super::plan::plan;
use super::testing::*;
use crate::results::{Results, Status, StepSummary};

fn labels(s: &crate::scenario::Scenario) -> Vec<String> {
    plan(s).iter().map(|c| c.label()).collect()
}

#[test]
fn the_plan_runs_mode_by_mode_from_small_to_large() {
    let mut s = scenario(&[Mode::Nftables, Mode::Ipvs, Mode::Ebpf], &[200, 100]);
    s.services = vec![100, 200];
    s.ipvs_schedulers = vec![IpvsScheduler::Sh, IpvsScheduler::Rr];
    s.scales.insert("nftables".into(), vec![50]);
    assert_eq!(
        labels(&s),
        [
            "nftables, kube-proxy 1.36 x 50 services",
            "ipvs (sh), kube-proxy 1.36 x 100 services",
            "ipvs (sh), kube-proxy 1.36 x 200 services",
            "ipvs (rr), kube-proxy 1.36 x 100 services",
            "ipvs (rr), kube-proxy 1.36 x 200 services",
            "ebpf, kube-proxy 1.36 x 100 services",
            "ebpf, kube-proxy 1.36 x 200 services",
        ]
    );
}

#[test]
fn each_profile_is_its_own_case_within_its_mode() {
    let mut s = scenario(&[Mode::Iptables, Mode::Nftables], &[100, 200]);
    s.profiles = vec![ProfileKind::KubeProxy, ProfileKind::Floor];
    s.kube_proxy_version = KubeProxyVersion::V1_35;
    assert_eq!(
        labels(&s),
        [
            "iptables, kube-proxy 1.35 x 100 services",
            "iptables, kube-proxy 1.35 x 200 services",
            "iptables, floor x 100 services",
            "iptables, floor x 200 services",
            "nftables, kube-proxy 1.35 x 100 services",
            "nftables, kube-proxy 1.35 x 200 services",
            "nftables, floor x 100 services",
            "nftables, floor x 200 services",
        ]
    );
}

#[test]
fn a_run_records_exact_costs_and_writes_them_after_every_case() {
    let out = tempfile::tempdir().unwrap();
    let log = Log::default();
    let backends = FakeBackends::all_ok();
    let sandbox = FakeSandbox {
        log: log.clone(),
        ..FakeSandbox::default()
    };
    let s = scenario(&[Mode::Iptables], &[10, 20]);
    let (r, events) = run_fake(s, &backends, &sandbox, &FakeHost::default(), out.path());
    assert_eq!(r.cases.len(), 2);
    assert_eq!(r.run.incomplete, None);
    assert_eq!(r.run.started_at, FAKE_TIME);
    let c = &r.cases[1];
    assert_eq!(
        (c.status, c.services, c.elapsed_s),
        (Status::Ok, 20, Some(0.0))
    );
    let rules = c.rules.as_ref().unwrap();
    assert_eq!((rules.kernel_objects, rules.payload_bytes), (60, Some(20)));
    let sync = c.sync.as_ref().unwrap();
    // The full sync three times: the case's namespace and two fresh ones.
    assert_eq!(sync.full.samples_ms, [20.0, 20.0, 20.0]);
    assert_eq!((sync.full.cpu_user_ms, sync.full.cpu_sys_ms), (2.0, 4.0));
    let add = sync.add_service.as_ref().unwrap();
    assert_eq!(add.samples_ms, [2.0, 2.0, 2.0]);
    assert_eq!((add.cpu_user_ms, add.cpu_sys_ms), (1.0, 1.0));
    assert_eq!(sync.remove_service.as_ref().unwrap().p99_ms, 3.0);
    assert_eq!(sync.update_endpoints.as_ref().unwrap().max_ms, 4.0);
    // Each sync's steps, averaged per sync, with exact costs.
    assert_eq!(
        sync.full.steps,
        [StepSummary {
            name: "fake-restore".into(),
            category: "restore".into(),
            calls: 1.0,
            wall_ms: 20.0,
            user_ms: 2.0,
            sys_ms: 4.0,
        }]
    );
    assert_eq!(add.steps[0].wall_ms, 2.0);
    assert_eq!(
        (c.profile.as_deref(), c.kube_proxy_version.as_deref()),
        (Some("kube-proxy"), Some("1.36"))
    );
    // The files hold what the run returned.
    assert_eq!(Results::read(out.path()).unwrap(), r);
    let csv = std::fs::read_to_string(out.path().join("results.csv")).unwrap();
    assert_eq!(csv.lines().count(), 3);
    // One sandbox per case, removed when the case ends; three rounds of syncs.
    let log = log.lock().unwrap().clone();
    assert_eq!(log[0], "create t1-c0");
    assert_eq!(log[1], "iptables full sync of 10 in kpb-t1-c0-node");
    assert_eq!(log[2], "iptables partial sync of 11 in kpb-t1-c0-node");
    assert_eq!(log.len(), 2 * (1 + 1 + 3 * 3 + 2 + 1));
    assert_eq!(log[11], "iptables full sync of 10 in kpb-t1-c0-node-f1");
    assert_eq!(log[12], "iptables full sync of 10 in kpb-t1-c0-node-f2");
    assert_eq!(log[13], "remove kpb-t1-c0-node");
    assert_eq!(
        events[..4],
        [
            "start 1/2 iptables, kube-proxy 1.36 x 10 services",
            "  creating namespaces",
            "  full sync of 10 services",
            "  reading rules back",
        ]
    );
    assert_eq!(events.last().unwrap(), "end 2 Ok");
}

#[test]
fn a_timeout_fails_the_case_and_skips_the_larger_scales_of_its_mode_only() {
    let out = tempfile::tempdir().unwrap();
    let mut backends = FakeBackends::all_ok();
    backends
        .scripts
        .get_mut(&Mode::Nftables)
        .unwrap()
        .timeout_from = Some(20);
    let s = scenario(&[Mode::Nftables, Mode::Iptables], &[10, 20, 40]);
    let (r, _) = run_fake(
        s,
        &backends,
        &FakeSandbox::default(),
        &FakeHost::default(),
        out.path(),
    );
    let got: Vec<(&str, u64, Status, Option<&str>)> = r
        .cases
        .iter()
        .map(|c| (c.mode.as_str(), c.services, c.status, c.reason.as_deref()))
        .collect();
    assert_eq!(
        got,
        [
            ("nftables", 10, Status::Ok, None),
            (
                "nftables",
                20,
                Status::Failed,
                Some("full sync: case time limit of 300 s reached (fake-restore timed out after 1s and was killed)")
            ),
            (
                "nftables",
                40,
                Status::Skipped,
                Some("not attempted: nftables (kube-proxy profile) timed out at 20 services; raise case_timeout_s in the scenario to try larger scales")
            ),
            ("iptables", 10, Status::Ok, None),
            ("iptables", 20, Status::Ok, None),
            ("iptables", 40, Status::Ok, None),
        ]
    );
}

#[test]
fn a_case_past_its_time_limit_starts_no_sync() {
    let out = tempfile::tempdir().unwrap();
    let log = Log::default();
    let backends = FakeBackends::all_ok();
    let mut s = scenario(&[Mode::Iptables], &[10, 20]);
    s.case_timeout_s = 0.0;
    let sandbox = FakeSandbox {
        log: log.clone(),
        ..FakeSandbox::default()
    };
    let (r, _) = run_fake(s, &backends, &sandbox, &FakeHost::default(), out.path());
    assert_eq!(r.cases[0].status, Status::Failed);
    assert_eq!(
        r.cases[0].reason.as_deref(),
        Some("full sync: case time limit of 0 s reached (no time was left to start it)")
    );
    assert!(r.cases[1]
        .reason
        .as_deref()
        .unwrap()
        .starts_with("not attempted: iptables (kube-proxy profile) timed out at 10 services"));
    let log = log.lock().unwrap().clone();
    assert!(
        !log.iter().any(|l| l.contains(" sync ")),
        "no sync ran: {log:?}"
    );
}

#[test]
fn missing_tools_kernel_features_and_modes_skip_with_the_fix() {
    let out = tempfile::tempdir().unwrap();
    let mut backends = FakeBackends::all_ok();
    backends.scripts.get_mut(&Mode::Iptables).unwrap().tools =
        vec![ToolNeed::new("kpbench-no-such-restore", "kpbench-fake-pkg")];
    backends
        .scripts
        .get_mut(&Mode::Ipvs)
        .unwrap()
        .no_kernel_feature = true;
    let s = scenario(&[Mode::Iptables, Mode::Ipvs, Mode::Ebpf], &[10, 20]);
    let (r, _) = run_fake(
        s,
        &backends,
        &FakeSandbox::default(),
        &FakeHost::default(),
        out.path(),
    );
    assert!(r.cases.iter().all(|c| c.status == Status::Skipped));
    let reason = |i: usize| r.cases[i].reason.clone().unwrap();
    assert_eq!(
        reason(0),
        "kpbench-no-such-restore not found: install the kpbench-fake-pkg package (apt-get install kpbench-fake-pkg)"
    );
    // A kernel feature found missing while syncing skips every scale: it is no timeout.
    for i in [2, 3] {
        assert_eq!(r.cases[i].ipvs_scheduler.as_deref(), Some("rr"));
        assert!(
            reason(i)
                .starts_with("full sync: this kernel (6.18.0-test) has no IPVS (CONFIG_IP_VS): "),
            "{}",
            reason(i)
        );
    }
    assert_eq!(
        reason(4),
        format!(
            "mode ebpf is not implemented in kpbench {}; run the other modes",
            env!("CARGO_PKG_VERSION")
        )
    );
    // The environment records the versions of the tools of implemented modes only.
    let tools: Vec<&String> = r.environments[0].tools.keys().collect();
    assert_eq!(tools, ["kpbench-no-such-restore"]);
}

#[test]
fn a_read_back_mismatch_or_a_sandbox_failure_fails_the_case() {
    let out = tempfile::tempdir().unwrap();
    let mut backends = FakeBackends::all_ok();
    backends.scripts.get_mut(&Mode::Nftables).unwrap().short_by = 1;
    let sandbox = FakeSandbox {
        failing: BTreeSet::from(["t1-c1".to_string()]),
        ..FakeSandbox::default()
    };
    let s = scenario(&[Mode::Nftables, Mode::Iptables], &[10]);
    let (r, _) = run_fake(s, &backends, &sandbox, &FakeHost::default(), out.path());
    assert_eq!(r.cases[0].status, Status::Failed);
    assert_eq!(
        r.cases[0].reason.as_deref(),
        Some("read-back after full sync: read-back mismatch: the kernel holds 29 fake objects, 30 were programmed")
    );
    assert_eq!(r.cases[1].status, Status::Failed);
    assert_eq!(
        r.cases[1].reason.as_deref(),
        Some("topology: namespace kpb-t1-c1-node: add veth veth-client: fake failure")
    );
}

#[test]
fn a_data_path_failure_keeps_the_sync_numbers() {
    let out = tempfile::tempdir().unwrap();
    let backends = FakeBackends::all_ok();
    let mut s = scenario(&[Mode::Iptables], &[10]);
    s.datapath.enabled = true;
    let (r, events) = run_fake(
        s,
        &backends,
        &FakeSandbox::default(),
        &FakeHost::default(),
        out.path(),
    );
    let c = &r.cases[0];
    assert_eq!(c.status, Status::Failed);
    assert_eq!(c.reason.as_deref(), Some("data path: interrupted"));
    assert_eq!(c.sync.as_ref().unwrap().full.p50_ms, 10.0);
    assert!(events.contains(&"  data path: fake".to_string()));
}

#[test]
fn ipvs_cases_go_to_the_lab_at_once_and_come_back_with_its_environment() {
    let out = tempfile::tempdir().unwrap();
    let backends = FakeBackends::all_ok();
    let host = FakeHost {
        lab_modes: BTreeSet::from([Mode::Ipvs]),
        lab: Ok((
            vec![fake_environment("lab-6.1.0", &["ipset"])],
            vec![lab_case(10), lab_case(20)],
        )),
        ..FakeHost::default()
    };
    let s = scenario(&[Mode::Ipvs, Mode::Iptables], &[10, 20]);
    let (r, events) = run_fake(s, &backends, &FakeSandbox::default(), &host, out.path());
    let ids: Vec<&str> = r.environments.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["host", "lab-6.1.0"]);
    let got: Vec<(&str, &str, u64)> = r
        .cases
        .iter()
        .map(|c| (c.environment.as_str(), c.mode.as_str(), c.services))
        .collect();
    assert_eq!(
        got,
        [
            ("lab-6.1.0", "ipvs", 10),
            ("lab-6.1.0", "ipvs", 20),
            ("host", "iptables", 10),
            ("host", "iptables", 20),
        ]
    );
    assert_eq!(
        events[..3],
        [
            "start 1/4 ipvs (2 cases) in the kernel lab, with the other modes at its scales for a same-kernel comparison",
            "  lab: booting for t1",
            "end 1 Ok",
        ]
    );
}

#[test]
fn when_the_lab_fails_its_cases_are_skipped_with_the_reason() {
    let out = tempfile::tempdir().unwrap();
    let log = Log::default();
    let backends = FakeBackends::all_ok();
    let host = FakeHost {
        lab_modes: BTreeSet::from([Mode::Ipvs]),
        lab: Err("/tmp/console.log".into()),
        ..FakeHost::default()
    };
    let mut s = scenario(&[Mode::Ipvs], &[10]);
    s.ipvs_schedulers = vec![IpvsScheduler::Rr, IpvsScheduler::Wrr];
    let sandbox = FakeSandbox {
        log: log.clone(),
        ..FakeSandbox::default()
    };
    let (r, _) = run_fake(s, &backends, &sandbox, &host, out.path());
    assert_eq!(r.cases.len(), 2);
    for (c, sched) in r.cases.iter().zip(["rr", "wrr"]) {
        assert_eq!(c.status, Status::Skipped);
        assert_eq!(c.ipvs_scheduler.as_deref(), Some(sched));
        let why = c.reason.as_deref().unwrap();
        assert!(
            why.contains("the kernel lab could not run it: the guest wrote no results.json (exit 1; console log /tmp/console.log)"),
            "{why}"
        );
    }
    assert!(log.lock().unwrap().is_empty());
}

#[test]
fn a_timeout_in_one_profile_leaves_the_other_profiles_scales_alone() {
    let out = tempfile::tempdir().unwrap();
    let mut backends = FakeBackends::all_ok();
    backends
        .scripts
        .get_mut(&Mode::Nftables)
        .unwrap()
        .timeout_from = Some(20);
    let mut s = scenario(&[Mode::Nftables], &[10, 20, 40]);
    s.profiles = vec![ProfileKind::KubeProxy, ProfileKind::Floor];
    let (r, _) = run_fake(
        s,
        &backends,
        &FakeSandbox::default(),
        &FakeHost::default(),
        out.path(),
    );
    let got: Vec<(&str, u64, Status)> = r
        .cases
        .iter()
        .map(|c| (c.profile.as_deref().unwrap(), c.services, c.status))
        .collect();
    // The fake times out at 20 services in both profiles: each gives up on its own.
    assert_eq!(
        got,
        [
            ("kube-proxy", 10, Status::Ok),
            ("kube-proxy", 20, Status::Failed),
            ("kube-proxy", 40, Status::Skipped),
            ("floor", 10, Status::Ok),
            ("floor", 20, Status::Failed),
            ("floor", 40, Status::Skipped),
        ]
    );
    assert_eq!(r.cases[3].kube_proxy_version, None);
}

#[test]
fn transit_replicates_run_in_fresh_sandboxes_and_are_pooled() {
    use crate::analysis::cases::fixtures::{case, est, with_transit};
    let out = tempfile::tempdir().unwrap();
    let log = Log::default();
    let backends = FakeBackends::all_ok();
    let dp = with_transit(
        case("iptables", 10, 1.0, 1.0, 1.0),
        900.0,
        3000.0,
        2.0,
        30.0,
        est(2.0, 1.5, 2.5),
    )
    .datapath;
    let sandbox = FakeSandbox {
        log: log.clone(),
        datapath: dp,
        ..FakeSandbox::default()
    };
    let mut s = scenario(&[Mode::Iptables], &[10]);
    s.datapath.enabled = true;
    let (r, _) = run_fake(s, &backends, &sandbox, &FakeHost::default(), out.path());
    let log = log.lock().unwrap().clone();
    for k in 1..3 {
        let node = format!("kpb-t1-c0r{k}-node");
        let at = |line: String| {
            log.iter()
                .position(|l| *l == line)
                .unwrap_or_else(|| panic!("{line}: {log:?}"))
        };
        let created = at(format!("create t1-c0r{k}"));
        let synced = at(format!("iptables full sync of 10 in {node}"));
        let timed = at(format!("transit replicate {k} in {node}"));
        let removed = at(format!("remove {node}"));
        assert!(
            created < synced && synced < timed && timed < removed,
            "{log:?}"
        );
    }
    let t = r.cases[0]
        .datapath
        .as_ref()
        .unwrap()
        .transit
        .as_ref()
        .unwrap();
    let seeds: Vec<u64> = t.replicates.iter().map(|x| x.vip_assignment_seed).collect();
    use crate::datapath::replicates::vip_seed;
    assert_eq!(seeds, [0, vip_seed(1), vip_seed(2)]);
    assert_eq!(
        t.ns_per_service.spans,
        Some(crate::results::Spans::Replicates)
    );
    assert!((t.ns_per_service.estimate - 2.0).abs() < 1e-9);
    // The replicates' full syncs are the case's full-sync repeats: three samples, and
    // no extra full sync in a scratch namespace.
    let full = &r.cases[0].sync.as_ref().unwrap().full;
    assert_eq!(full.samples, 3, "{full:?}");
    assert!(
        !log.iter()
            .any(|l| l.contains("full sync") && l.contains("-f")),
        "{log:?}"
    );
}

#[test]
fn a_kube_proxy_sync_past_its_limit_is_measured_through_the_floors_objects() {
    let out = tempfile::tempdir().unwrap();
    let log = Log::default();
    let mut backends = FakeBackends::all_ok();
    let script = backends.scripts.get_mut(&Mode::Nftables).unwrap();
    script.timeout_from = Some(20);
    script.floor_in_time = true;
    let mut s = scenario(&[Mode::Nftables], &[10, 20, 40]);
    s.datapath.enabled = true;
    s.datapath.replicates = 1;
    // The sync's own limit, below the case's 300 s, is the one recorded.
    s.sync_limit_s = 120.0;
    let sandbox = FakeSandbox {
        datapath: Some(
            crate::analysis::cases::fixtures::case("nftables", 20, 1.0, 1.0, 1.0)
                .datapath
                .expect("the fixture has a data path"),
        ),
        log: log.clone(),
        ..FakeSandbox::default()
    };
    let (r, _) = run_fake(s, &backends, &sandbox, &FakeHost::default(), out.path());
    let got: Vec<(u64, Status, Option<f64>, Option<&str>)> = r
        .cases
        .iter()
        .map(|c| {
            (
                c.services,
                c.status,
                c.sync_over_limit_s,
                c.programmed_by.as_deref(),
            )
        })
        .collect();
    // Larger scales are not given up: the floor reaches them.
    assert_eq!(
        got,
        [
            (10, Status::Ok, None, Some("kube-proxy")),
            (20, Status::Ok, Some(120.0), Some("floor")),
            (40, Status::Ok, Some(120.0), Some("floor")),
        ]
    );
    let over = &r.cases[1];
    // The partial timings of the sync that ran past the limit, and nothing after it.
    let sync = over.sync.as_ref().unwrap();
    assert_eq!(sync.full.samples, 1);
    assert_eq!(sync.full.p50_ms, 20.0);
    assert!(sync.add_service.is_none() && sync.update_endpoints.is_none());
    // Read back and measured in a fresh sandbox the floor programmed.
    assert_eq!(over.rules.as_ref().unwrap().kernel_objects, 20 + 20 * 2);
    assert!(over.datapath.is_some());
    assert!(over.reason.as_deref().unwrap().contains("floor profile"));
    let lines = log.lock().unwrap().clone();
    let prefix = format!("create {}-c1f", r.run.id);
    assert!(lines.contains(&prefix), "{lines:?}");
}

#[test]
fn every_case_not_over_its_limit_is_programmed_by_its_own_profile() {
    let out = tempfile::tempdir().unwrap();
    let mut s = scenario(&[Mode::Nftables], &[10]);
    s.profiles = vec![ProfileKind::KubeProxy, ProfileKind::Floor];
    let (r, _) = run_fake(
        s,
        &FakeBackends::all_ok(),
        &FakeSandbox::default(),
        &FakeHost::default(),
        out.path(),
    );
    for c in &r.cases {
        assert_eq!(c.programmed_by, c.profile, "{c:?}");
        assert_eq!(c.sync_over_limit_s, None);
    }
}

#[test]
fn a_shape_with_features_a_mode_does_not_render_skips_naming_them_and_a_plain_one_runs() {
    let out = tempfile::tempdir().unwrap();
    let shaped = |mix: &str| {
        let text = format!("modes = [\"iptables\"]\nservices = [20]\nrepeats = 2\n[datapath]\nenabled = false\n[synthetic]\n{mix}");
        crate::scenario::Scenario::parse(&text, "t.toml", "t").unwrap()
    };
    let run = |s| {
        run_fake(
            s,
            &FakeBackends::all_ok(),
            &FakeSandbox::default(),
            &FakeHost::default(),
            out.path(),
        )
        .0
    };
    let r = run(shaped("nodeport = 1.0\naffinity = 1.0\n"));
    assert_eq!(r.cases[0].status, Status::Skipped);
    assert_eq!(
        r.cases[0].reason.as_deref(),
        Some("iptables does not render NodePort (20 services), session affinity (20 services) yet; run a shape without them for this mode")
    );
    // Skewed endpoint counts alone are N x E's features: the case runs.
    let r = run(shaped(
        "endpoints = { \"0\" = 0.2, \"1\" = 0.5, \"7\" = 0.3 }\n",
    ));
    assert_eq!(r.cases[0].status, Status::Ok, "{:?}", r.cases[0].reason);
}

#[test]
fn a_shapes_incremental_syncs_run_every_pick_and_record_it() {
    use dataplane::floor::spec::Feature;
    let out = tempfile::tempdir().unwrap();
    let shaped = |mix: &str| {
        let text = format!("modes = [\"iptables\"]\nservices = [20]\nrepeats = 2\n[datapath]\nenabled = false\n[synthetic]\n{mix}");
        crate::scenario::Scenario::parse(&text, "t.toml", "t").unwrap()
    };
    let mut backends = FakeBackends::all_ok();
    backends.scripts.get_mut(&Mode::Iptables).unwrap().renders = &[Feature::NodePort];
    let log = Log::default();
    let sandbox = FakeSandbox {
        log: log.clone(),
        ..FakeSandbox::default()
    };
    let run = |s| run_fake(s, &backends, &sandbox, &FakeHost::default(), out.path()).0;
    let r = run(shaped(
        "nodeport = 0.3\nendpoints = { \"1\" = 0.5, \"2\" = 0.3, \"40\" = 0.2 }\n",
    ));
    let c = &r.cases[0];
    assert_eq!(c.status, Status::Ok, "{:?}", c.reason);
    let sync = c.sync.as_ref().unwrap();
    let names: Vec<&str> = sync.picks.iter().map(|p| p.pick.as_str()).collect();
    assert_eq!(names, ["typical", "largest", "nodeport"]);
    for p in &sync.picks {
        assert_eq!(p.reason, None, "{p:?}");
        for kind in [&p.add_service, &p.remove_service, &p.update_endpoints] {
            assert_eq!(kind.as_ref().unwrap().samples, 2, "{p:?}");
        }
    }
    let (typical, largest, nodeport) = (&sync.picks[0], &sync.picks[1], &sync.picks[2]);
    assert_eq!(typical.kind.as_deref(), Some("ClusterIP"));
    assert_eq!(largest.endpoints, Some(40));
    assert_eq!(nodeport.kind.as_deref(), Some("NodePort"));
    // The case's own figures are the typical pick's.
    assert_eq!(sync.add_service, typical.add_service);
    assert_eq!(sync.update_endpoints, typical.update_endpoints);
    // Two rounds of three picks, each an add, a remove and an update.
    let partial = log
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains("partial"))
        .count();
    assert_eq!(partial, 2 * 3 * 3);
    // A shape without NodePort services records that pick as skipped, with why.
    let r = run(shaped("endpoints = { \"1\" = 0.5, \"3\" = 0.5 }\n"));
    let sync = r.cases[0].sync.as_ref().unwrap();
    let skipped = &sync.picks[2];
    assert_eq!(skipped.pick, "nodeport");
    assert_eq!(
        (skipped.service_index, skipped.add_service.as_ref()),
        (None, None)
    );
    assert_eq!(
        skipped.reason.as_deref(),
        Some("the shape has no service of type NodePort")
    );
    assert_eq!(Results::read(out.path()).unwrap(), r);
}

#[test]
fn n_x_e_records_no_picks() {
    let out = tempfile::tempdir().unwrap();
    let s = scenario(&[Mode::Iptables], &[10]);
    let (r, _) = run_fake(
        s,
        &FakeBackends::all_ok(),
        &FakeSandbox::default(),
        &FakeHost::default(),
        out.path(),
    );
    let sync = r.cases[0].sync.as_ref().unwrap();
    assert!(sync.picks.is_empty());
    assert_eq!(sync.add_service.as_ref().unwrap().samples, 3);
    let json = std::fs::read_to_string(out.path().join("results.json")).unwrap();
    assert!(!json.contains("\"picks\""));
}
