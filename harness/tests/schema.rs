//! The results contract kept in the repo (results/results.schema.json) needs no root to
//! check: it compiles, it accepts the `kpbench.results/1` documents kpbench has written
//! (the report fixtures, one host run and one lab run), it rejects broken ones, and it
//! is the same contract as the shared one when that is beside the project.

use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn compiled() -> jsonschema::JSONSchema {
    let path = repo().join("results/results.schema.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut schema: serde_json::Value = serde_json::from_str(&text).unwrap();
    // "kpbench.results/1" is a relative URI, which the validator cannot use as the
    // base of its internal $refs; give it an absolute one.
    schema["$id"] = serde_json::json!("urn:kpbench:results:1");
    jsonschema::JSONSchema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .compile(&schema)
        .expect("the schema compiles")
}

fn errors(schema: &jsonschema::JSONSchema, doc: &serde_json::Value) -> Vec<String> {
    match schema.validate(doc) {
        Ok(()) => Vec::new(),
        Err(errs) => errs
            .map(|e| format!("{e} at {}", e.instance_path))
            .collect(),
    }
}

fn fixture(name: &str) -> serde_json::Value {
    let p = repo().join(format!("harness/tests/fixtures/report/{name}/results.json"));
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap()
}

#[test]
fn written_results_validate_against_the_repo_schema() {
    let schema = compiled();
    for name in ["host", "lab"] {
        let doc = fixture(name);
        assert_eq!(doc["schema_version"], "kpbench.results/1");
        let errs = errors(&schema, &doc);
        assert!(errs.is_empty(), "{name}: {errs:#?}");
    }
}

#[test]
fn this_machines_environment_and_commit_validate() {
    // What `kpbench run` records here now: the machine, the CPU state and the commit.
    let schema = compiled();
    let mut doc = fixture("host");
    let env = harness::run::environment::probe(&[]);
    assert!(env.cpu.is_some());
    doc["environments"][0] = serde_json::to_value(&env).unwrap();
    doc["run"]["git_rev"] = serde_json::json!(option_env!("KPBENCH_GIT_REV"));
    doc["run"]["git_dirty"] = serde_json::json!(true);
    let errs = errors(&schema, &doc);
    assert!(errs.is_empty(), "{errs:#?}");
    doc["environments"][0]["cpu"]["vulnerabilities"]["meltdown"] = serde_json::json!(1);
    assert!(!errors(&schema, &doc).is_empty());
}

#[test]
fn written_results_parse_into_the_results_types() {
    for name in ["host", "lab"] {
        let p = repo().join(format!("harness/tests/fixtures/report/{name}"));
        let r = harness::results::Results::read(&p).unwrap();
        assert!(!r.cases.is_empty(), "{name}");
    }
}

#[test]
fn the_schema_rejects_broken_documents() {
    let schema = compiled();
    let mut no_status = fixture("host");
    no_status["cases"][0]
        .as_object_mut()
        .unwrap()
        .remove("status");
    assert!(!errors(&schema, &no_status).is_empty());
    let mut bad_version = fixture("host");
    bad_version["schema_version"] = serde_json::json!("kpbench.results/999");
    assert!(!errors(&schema, &bad_version).is_empty());
    let mut no_cases = fixture("host");
    no_cases["cases"] = serde_json::json!([]);
    assert!(!errors(&schema, &no_cases).is_empty());
}

#[test]
fn the_repo_schema_is_the_shared_contract() {
    let shared = repo().join("../shared/results.schema.json");
    if !Path::new(&shared).exists() {
        // Outside the team's checkout there is no shared copy to drift from.
        println!("the shared contract is not beside this checkout; checked the repo copy only");
        return;
    }
    let read = |p: &Path| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
    };
    let ours = read(&repo().join("results/results.schema.json"));
    let theirs = read(&shared);
    assert_eq!(
        ours["$id"], theirs["$id"],
        "the repo schema's version differs from shared/results.schema.json"
    );
}

#[test]
fn a_case_with_a_churn_phase_validates_and_reads_back() {
    use harness::results::*;
    let schema = compiled();
    // As another reader would write it: from JSON.
    let latency: LatencySummaryMs = serde_json::from_value(serde_json::json!({
        "p50": 900.0, "p99": 1950.0, "max": 2150.0, "ci95_p99": [1780.0, 2150.0],
        "samples": 100, "unobserved": 0
    }))
    .unwrap();
    let failed = FailedConnections {
        refused: 1,
        reset: 0,
        timeout: 2,
        attempted: 5200,
    };
    let churn = Churn {
        rate_per_s: 10.0,
        duration_s: 10.0,
        kind: "rolling".into(),
        batching: "min-sync-period".into(),
        services_churned: 10,
        changes: 100,
        syncs: 11,
        sync_events: vec![SyncEvent {
            start_ms: 0.0,
            end_ms: 420.0,
            changes: 1,
            writes: vec![SyncWrite {
                name: "iptables-restore".into(),
                calls: 1,
            }],
        }],
        programming_latency_ms: Some(latency.clone()),
        removal_latency_ms: Some(latency),
        controller_cpu_pct: ControllerCpu {
            kube_proxy: Some(15.7),
            floor: None,
            kube_proxy_ci95: Some([14.0, 17.5]),
            floor_ci95: None,
        },
        failed_connections: Some(failed.clone()),
        failed_connections_quiet: Some(failed),
        request_p99_us: Some(ChurnVsQuiet {
            churn: 72000.0,
            quiet: 23000.0,
            difference: JudgedDifference {
                estimate: 49000.0,
                ci95: [36000.0, 64500.0],
                verdict: Trend::Grows,
                margin: 2300.0,
            },
        }),
        datapath_error: None,
        latency_points: vec![LatencyPoint {
            arrival_ms: 100.0,
            latency_ms: 900.0,
            added: true,
        }],
        failure_marks: vec![FailureMark {
            at_ms: 2440.5,
            kind: "reset".into(),
        }],
    };
    let mut doc = fixture("host");
    doc["cases"][0]["churn"] = serde_json::to_value(&churn).unwrap();
    let errs = errors(&schema, &doc);
    assert!(errs.is_empty(), "{errs:#?}");
    let back: Results = serde_json::from_value(doc.clone()).unwrap();
    assert_eq!(back.cases[0].churn.as_ref(), Some(&churn));
    doc["cases"][0]["churn"]["kind"] = serde_json::json!("wave");
    assert!(!errors(&schema, &doc).is_empty());
    doc["cases"][0]["churn"]["kind"] = serde_json::json!("rolling");
    doc["cases"][0]["churn"]["failure_marks"][0]["kind"] = serde_json::json!("slow");
    assert!(!errors(&schema, &doc).is_empty());
    // A rate sweep: `churn` at the first rate, `churn_sweep` at the further ones, each
    // a whole churn object.
    let mut doc = fixture("host");
    let fifty = Churn {
        rate_per_s: 50.0,
        ..churn.clone()
    };
    doc["cases"][0]["churn"] = serde_json::to_value(&churn).unwrap();
    doc["cases"][0]["churn_sweep"] = serde_json::to_value([&fifty]).unwrap();
    let errs = errors(&schema, &doc);
    assert!(errs.is_empty(), "{errs:#?}");
    let back: Results = serde_json::from_value(doc.clone()).unwrap();
    let rates: Vec<f64> = back.cases[0].churn_phases().map(|c| c.rate_per_s).collect();
    assert_eq!(rates, vec![10.0, 50.0]);
    doc["cases"][0]["churn_sweep"][0]["rate_per_s"] = serde_json::json!(0);
    assert!(!errors(&schema, &doc).is_empty());
}

/// Issue 20 item 5: transit targets carry their lookup path. A document as an older
/// kpbench wrote it (no `path`) reads as `clusterip`; one with every path and the
/// absent paths validates and reads back exactly; a path outside the five is refused.
#[test]
fn transit_paths_validate_read_back_and_default_to_clusterip() {
    use harness::results::*;
    let schema = compiled();
    let pct = |p50: f64| {
        serde_json::json!({"p10": p50 - 100.0, "p50": p50, "p90": p50 + 100.0, "p99": p50 + 300.0,
            "ci95_p50": [p50 - 20.0, p50 + 20.0]})
    };
    let target = |name: &str, index: Option<u64>, path: Option<&str>, p50: f64| {
        let mut t = serde_json::json!({"target": name, "service_index": index, "samples": 150,
            "syn_ns": pct(p50), "synack_ns": pct(2000.0)});
        if let Some(p) = path {
            t["path"] = serde_json::json!(p);
        }
        t
    };
    let transit = |targets: Vec<serde_json::Value>, absent: serde_json::Value| {
        serde_json::json!({"targets": targets,
            "ns_per_service": {"estimate": 1.0, "ci95": [0.5, 1.5]},
            "probe_overhead_pct": 3.0, "absent_paths": absent})
    };
    let mut doc = fixture("host");
    // Older results: no path anywhere, no absent paths.
    doc["cases"][0]["datapath"]["transit"] = transit(
        vec![
            target("svc-0", Some(0), None, 4000.0),
            target("svc-9", Some(9), None, 4100.0),
            target("direct", None, None, 3000.0),
        ],
        serde_json::json!({}),
    );
    // A shaped case: a target per path, and one path absent with why.
    doc["cases"][1]["datapath"]["transit"] = transit(
        vec![
            target("svc-0", Some(0), Some("clusterip"), 4000.0),
            target("direct", None, Some("clusterip"), 3000.0),
            target("nodeport", Some(20), Some("nodeport"), 6000.0),
            target("affinity", Some(21), Some("affinity"), 5000.0),
            target("udp", Some(20), Some("udp"), 4500.0),
        ],
        serde_json::json!({"local": "the service set has no externalTrafficPolicy: Local service"}),
    );
    let errs = errors(&schema, &doc);
    assert!(errs.is_empty(), "{errs:#?}");
    let r: Results = serde_json::from_value(doc.clone()).unwrap();
    let old = r.cases[0]
        .datapath
        .as_ref()
        .unwrap()
        .transit
        .as_ref()
        .unwrap();
    assert!(old.targets.iter().all(|t| t.path == TransitPath::ClusterIp));
    assert_eq!(old.positions().count(), 2);
    assert!(old.absent_paths.is_empty());
    let shaped = r.cases[1]
        .datapath
        .as_ref()
        .unwrap()
        .transit
        .as_ref()
        .unwrap();
    let paths: Vec<(&str, TransitPath)> = shaped
        .path_targets()
        .map(|t| (t.target.as_str(), t.path))
        .collect();
    assert_eq!(
        paths,
        [
            ("nodeport", TransitPath::NodePort),
            ("affinity", TransitPath::Affinity),
            ("udp", TransitPath::Udp)
        ]
    );
    assert_eq!(
        shaped.positions().count(),
        1,
        "direct and the paths are no position"
    );
    assert!(shaped.absent_paths[&TransitPath::Local].contains("Local"));
    // Written again, the same document reads back the same.
    let again: Results = serde_json::from_value(serde_json::to_value(&r).unwrap()).unwrap();
    assert_eq!(again, r);
    let written = serde_json::to_value(&r).unwrap();
    assert_eq!(
        written["cases"][0]["datapath"]["transit"]["targets"][2]["path"],
        "clusterip"
    );
    assert!(errors(&schema, &written).is_empty());
    let mut bad = doc;
    bad["cases"][1]["datapath"]["transit"]["targets"][2]["path"] = serde_json::json!("hostport");
    assert!(!errors(&schema, &bad).is_empty());
    let mut bad_key = fixture("host");
    bad_key["cases"][0]["datapath"]["transit"] = transit(
        vec![target("svc-0", Some(0), None, 4000.0)],
        serde_json::json!({"hostport": "no"}),
    );
    assert!(!errors(&schema, &bad_key).is_empty());
}

#[test]
fn a_shaped_case_with_its_picks_validates_and_reads_back() {
    use harness::results::*;
    let schema = compiled();
    let mut doc = fixture("host");
    let summary = doc["cases"][0]["sync"]["add_service"].clone();
    assert!(
        summary.is_object(),
        "the fixture's first case has an add_service"
    );
    let d: DurationSummary = serde_json::from_value(summary).unwrap();
    let typical = PickedSyncs {
        pick: "typical".into(),
        service_index: Some(412),
        kind: Some("ClusterIP".into()),
        ports: Some(1),
        endpoints: Some(2),
        add_service: Some(d.clone()),
        remove_service: Some(d.clone()),
        update_endpoints: Some(d.clone()),
        reason: None,
    };
    let nodeport = PickedSyncs {
        pick: "nodeport".into(),
        service_index: None,
        kind: None,
        ports: None,
        endpoints: None,
        add_service: None,
        remove_service: None,
        update_endpoints: None,
        reason: Some("the shape has no service of type NodePort".into()),
    };
    doc["cases"][0]["sync"]["picks"] = serde_json::to_value([&typical, &nodeport]).unwrap();
    let errs = errors(&schema, &doc);
    assert!(errs.is_empty(), "{errs:#?}");
    let back: Results = serde_json::from_value(doc.clone()).unwrap();
    let picks = &back.cases[0].sync.as_ref().unwrap().picks;
    assert_eq!(picks, &[typical, nodeport]);
    // A pick is one of the three names, and one without a service says why.
    let mut bad = doc.clone();
    bad["cases"][0]["sync"]["picks"][0]["pick"] = serde_json::json!("random");
    assert!(!errors(&schema, &bad).is_empty());
    let mut silent = doc.clone();
    silent["cases"][0]["sync"]["picks"][1]
        .as_object_mut()
        .unwrap()
        .remove("reason");
    assert!(!errors(&schema, &silent).is_empty());
    // Results from before picks have none.
    let old: Results = serde_json::from_value(fixture("host")).unwrap();
    assert!(old
        .cases
        .iter()
        .filter_map(|c| c.sync.as_ref())
        .all(|s| s.picks.is_empty()));
}
