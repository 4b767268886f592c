//! A real `kpbench run` (small, both iptables backends) whose results.json must
//! validate against the schema kept in the repo (results/results.schema.json), and whose
//! CSV has one row per case.
//! The real run needs root: without feature `root-tests` it is reported as ignored.

mod tier;

use std::path::PathBuf;
use std::process::Command;

fn schema_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../results/results.schema.json")
}

fn validate(instance: &serde_json::Value) -> Vec<String> {
    let schema_text =
        std::fs::read_to_string(schema_path()).expect("results/results.schema.json is readable");
    let mut schema: serde_json::Value = serde_json::from_str(&schema_text).unwrap();
    // The schema's $id ("kpbench.results/1") is a relative URI, which the validator
    // cannot use as a base for its internal $refs; give it an absolute one.
    schema["$id"] = serde_json::json!("urn:kpbench:results:1");
    let compiled = jsonschema::JSONSchema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .compile(&schema)
        .expect("schema compiles");
    let errors = match compiled.validate(instance) {
        Ok(()) => Vec::new(),
        Err(errs) => errs
            .map(|e| format!("{} at {}", e, e.instance_path))
            .collect(),
    };
    errors
}

#[test]
fn schema_rejects_a_broken_file() {
    // The validator is live: a case without a status must fail.
    let bad = serde_json::json!({
        "schema_version": "kpbench.results/1",
        "run": {"id": "x", "started_at": "", "finished_at": "", "tool_version": "0",
                "scenario": {"name": "q", "resolved": {}}},
        "environments": [{"id": "host", "kind": "host", "kernel_release": "6", "cpus": 1, "tools": {}}],
        "cases": [{"environment": "host", "mode": "iptables", "services": 1, "endpoints_per_service": 1}]
    });
    assert!(!validate(&bad).is_empty());
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root: scripts/test.sh runs it as root"
)]
fn a_real_run_validates_against_the_schema() {
    tier::require_root();
    let out = tempfile::tempdir().unwrap();
    let scenario = out.path().join("small.toml");
    std::fs::write(
        &scenario,
        "name = \"small\"\nmodes = [\"iptables\", \"iptables-legacy\", \"ebpf\", \"ebpf-tc\"]\n\
         services = [20, 40]\nendpoints_per_service = 3\n\
         [datapath]\nrate_per_s = 200\nduration_s = 0.5\nmax_rate_duration_s = 0.5\n",
    )
    .unwrap();
    let status = Command::new(env!("CARGO_BIN_EXE_kpbench"))
        .arg("run")
        .arg(&scenario)
        .arg("--out")
        .arg(out.path())
        .status()
        .expect("kpbench runs");
    assert!(status.success(), "kpbench run exited {status}");
    let text = std::fs::read_to_string(out.path().join("results.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let errors = validate(&json);
    assert!(
        errors.is_empty(),
        "results.json does not validate:\n{}",
        errors.join("\n")
    );
    let cases = json["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 8);
    let ok: Vec<&serde_json::Value> = cases.iter().filter(|c| c["status"] == "ok").collect();
    assert_eq!(ok.len(), 8, "{text}");
    for c in &ok {
        assert!(c["rules"]["kernel_objects"].as_u64().unwrap() > 0);
        assert_eq!(c["sync"]["add_service"]["samples"], 10);
        let dp = &c["datapath"];
        assert_eq!(dp["targets"].as_array().unwrap().len(), 4, "{dp}");
        for t in dp["targets"].as_array().unwrap() {
            assert_eq!(t["errors"], 0, "{t}");
            assert!(t["requests"].as_u64().unwrap() > 50, "{t}");
        }
        // Every endpoint of the measured services answered through the rules.
        assert_eq!(
            dp["distribution"]["endpoints_hit"], dp["distribution"]["endpoints_total"],
            "{dp}"
        );
    }
    // Both eBPF modes carry their own BPF cost for the service targets.
    for c in ok
        .iter()
        .filter(|c| c["mode"].as_str().unwrap().starts_with("ebpf"))
    {
        let targets = c["datapath"]["transit"]["targets"].as_array().unwrap();
        let with_bpf = targets
            .iter()
            .filter(|t| t["bpf_run_ns"].is_number())
            .count();
        assert!(with_bpf >= 3, "{}: {targets:?}", c["mode"]);
    }
    let csv = std::fs::read_to_string(out.path().join("results.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + cases.len());
    // Nothing of the run is left behind.
    let left: Vec<String> = std::fs::read_dir("/run/netns")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    let run_id = json["run"]["id"].as_str().unwrap();
    assert!(!left.iter().any(|n| n.contains(run_id)), "{left:?}");
}
