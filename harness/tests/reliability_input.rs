//! Bad input never panics and never touches the kernel: property tests of the scenario
//! parser, and the `kpbench` binary with bad flags and files (exit 2, a message that
//! names the flag, field or file, nothing created).

use std::path::Path;
use std::process::{Command, Output};

use harness::scenario::Scenario;
use proptest::prelude::*;

const FILE: &str = "fuzz/scenario.toml";

/// Parses like `kpbench run` does, then uses every derived value a run uses, so a
/// value that parses but cannot be used panics here rather than mid-run.
fn parse_and_use(text: &str) -> Result<Scenario, String> {
    let s = Scenario::parse(text, FILE, "fuzz").map_err(|e| e.to_string())?;
    let _ = (s.case_timeout(), s.command_timeout());
    let _ = std::time::Duration::from_secs_f64(s.datapath.duration_s);
    let _ = std::time::Duration::from_secs_f64(s.datapath.max_rate_duration_s);
    let _ = std::time::Instant::now() + s.case_timeout() + s.command_timeout();
    for &m in &s.modes {
        for &n in s.scales_for(m) {
            dataplane::floor::model::check_size(n as u64, s.endpoints_per_service as u64)
                .map_err(|e| format!("parsed an impossible size {n}: {e}"))?;
        }
    }
    Ok(s)
}

/// A TOML float literal for any f64, specials included.
fn toml_float(v: f64) -> String {
    if v.is_nan() {
        "nan".into()
    } else if v.is_infinite() {
        if v > 0.0 { "inf" } else { "-inf" }.into()
    } else {
        format!("{v:e}")
    }
}

fn any_f64() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>(),
        -10.0..1e7f64,
        Just(0.0),
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(1e300),
    ]
}

fn any_i64() -> impl Strategy<Value = i64> {
    prop_oneof![any::<i64>(), -5i64..20_000_000, Just(0), Just(i64::MAX)]
}

/// (field as the error names it, TOML line, section) for one random numeric field.
fn numeric_field() -> impl Strategy<Value = (String, String, Option<&'static str>)> {
    let ints = prop_oneof![
        Just(("endpoints_per_service", None)),
        Just(("repeats", None)),
        Just(("connections", Some("datapath"))),
        Just(("request_timeout_ms", Some("datapath"))),
    ];
    let floats = prop_oneof![
        Just(("case_timeout_s", None)),
        Just(("command_timeout_s", None)),
        Just(("rate_per_s", Some("datapath"))),
        Just(("duration_s", Some("datapath"))),
        Just(("max_rate_duration_s", Some("datapath"))),
    ];
    prop_oneof![
        (ints, any_i64()).prop_map(|((k, sec), v)| (k.to_string(), format!("{k} = {v}"), sec)),
        (floats, any_f64()).prop_map(|((k, sec), v)| (
            k.to_string(),
            format!("{k} = {}", toml_float(v)),
            sec
        )),
        proptest::collection::vec(any_i64(), 0..4).prop_map(|v| {
            let list: Vec<String> = v.iter().map(i64::to_string).collect();
            (
                "services".to_string(),
                format!("services = [{}]", list.join(", ")),
                None,
            )
        }),
        proptest::collection::vec(any_i64(), 0..3).prop_map(|v| {
            let list: Vec<String> = v.iter().map(i64::to_string).collect();
            (
                "scales.nftables".to_string(),
                format!("nftables = [{}]", list.join(", ")),
                Some("scales"),
            )
        }),
    ]
}

proptest! {
    // No regression files: a failure prints its minimal input, which goes into a
    // plain #[test] below.
    #![proptest_config(ProptestConfig {
        cases: 400,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn any_text_is_parsed_or_rejected_naming_the_file(text in any::<String>()) {
        if let Err(e) = parse_and_use(&text) {
            prop_assert!(e.starts_with(FILE), "{e}");
        }
    }

    #[test]
    fn toml_shaped_text_is_parsed_or_rejected_naming_the_file(
        text in r#"(name|modes|services|repeats|\[datapath\]|enabled|scales|case_timeout_s|[ =\[\]",.0-9a-z-]|\n){0,40}"#
    ) {
        if let Err(e) = parse_and_use(&text) {
            prop_assert!(e.starts_with(FILE), "{e}");
        }
    }

    #[test]
    fn random_numbers_are_accepted_or_rejected_naming_the_field(
        fields in proptest::collection::vec(numeric_field(), 1..4)
    ) {
        let (mut top, mut datapath, mut scales) = (Vec::new(), Vec::new(), Vec::new());
        let mut seen = std::collections::BTreeSet::new();
        for (name, line, section) in &fields {
            if !seen.insert(name.clone()) {
                continue; // TOML forbids a key twice.
            }
            match section {
                None => top.push(line.clone()),
                Some("datapath") => datapath.push(line.clone()),
                Some(_) => scales.push(line.clone()),
            }
        }
        let text = format!(
            "{}\n[datapath]\n{}\n[scales]\n{}\n",
            top.join("\n"),
            datapath.join("\n"),
            scales.join("\n")
        );
        if let Err(e) = parse_and_use(&text) {
            prop_assert!(e.starts_with(FILE), "{e}");
            // Sizes are checked together, so a too-large endpoint count may be named
            // through the service list it multiplies; either names a field written.
            let names = |f: &str| e.contains(&format!("{f}`")) || e.contains(&format!("{f}["));
            let named = seen.iter().any(|f| names(f))
                || (seen.contains("endpoints_per_service") && names("services"));
            prop_assert!(named, "error names none of {seen:?}: {e}\n--- text:\n{text}");
        }
    }
}

#[test]
fn huge_times_and_connections_are_rejected_not_panicking() {
    for (text, field) in [
        ("case_timeout_s = 1e300", "case_timeout_s"),
        ("command_timeout_s = 1e20", "command_timeout_s"),
        ("[datapath]\nduration_s = 1e300", "datapath.duration_s"),
        (
            "[datapath]\nmax_rate_duration_s = 1e19",
            "datapath.max_rate_duration_s",
        ),
        (
            "[datapath]\nconnections = 1000000000000",
            "datapath.connections",
        ),
    ] {
        let e = parse_and_use(text).unwrap_err();
        assert!(e.contains(&format!("`{field}`")), "{text}: {e}");
    }
}

// ---- the binary with bad input ----

fn kpbench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kpbench"))
        .args(args)
        .output()
        .expect("kpbench starts")
}

/// Asserts exit 2 and a stderr naming every one of `names`.
fn rejected(out: &Output, names: &[&str]) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {err}");
    for n in names {
        assert!(err.contains(n), "stderr does not name {n:?}: {err}");
    }
    assert!(!err.contains("panicked"), "{err}");
}

fn run_id(tag: &str) -> String {
    format!("relin-{}-{tag}", std::process::id())
}

/// Nothing of the run exists: no namespace, no registration, no output directory.
fn nothing_created(id: &str, out: &Path) {
    let left = dataplane::Netns::list(&format!("kpb-{id}-"));
    assert!(left.is_empty(), "namespaces created: {left:?}");
    assert!(!Path::new(harness::sandbox::registry::RUNS_DIR)
        .join(id)
        .exists());
    assert!(!out.exists(), "{} was created", out.display());
}

#[test]
fn bad_flags_exit_2_naming_the_flag_and_create_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let out_s = out.to_str().unwrap();
    let cases: &[(&str, &[&str], &[&str])] = &[
        (
            "mode",
            &["--modes", "iptables,bogus"],
            &["--modes", "bogus"],
        ),
        ("neg", &["--services=-5"], &["--services", "-5"]),
        ("nan", &["--services", "10,lots"], &["--services", "lots"]),
        (
            "huge",
            &["--services", "99999999"],
            &["--services", "99999999"],
        ),
        (
            "eps",
            &["--services", "1000", "--endpoints", "99999"],
            &["--endpoints", "99999"],
        ),
        // clap takes a bare "-1" for a flag of its own and names it; the `=` form reaches
        // the count parser, which names the flag.
        ("negeps", &["--endpoints", "-1"], &["'-1'"]),
        ("negeps2", &["--endpoints=-1"], &["--endpoints", "-1"]),
        ("runid", &["--run-id", "../etc"], &["--run-id"]),
    ];
    for (tag, args, names) in cases {
        let id = run_id(tag);
        let mut all = vec!["run", "--no-datapath", "--out", out_s];
        if *tag != "runid" {
            all.extend(["--run-id", &id]);
        }
        all.extend_from_slice(args);
        rejected(&kpbench(&all), names);
        nothing_created(&id, &out);
    }
    rejected(
        &kpbench(&["rules", "--mode", "bogus", "--services", "1"]),
        &["--mode", "bogus"],
    );
    rejected(
        &kpbench(&["rules", "--mode", "iptables", "--services=-1"]),
        &["--services"],
    );
    rejected(&kpbench(&["run", "--no-such-flag"]), &["--no-such-flag"]);
}

#[test]
fn bad_scenario_files_exit_2_naming_the_file_and_field() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let write = |name: &str, text: &str| {
        let p = tmp.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_string()
    };
    let missing = tmp.path().join("missing.toml");
    let missing = missing.to_str().unwrap().to_string();
    let dir = tmp.path().to_str().unwrap().to_string();
    let unknown = write("unknown.toml", "services = [10]\nservice_count = 3\n");
    let too_big = write("big.toml", "services = [10, 99999999]\n");
    let bad_dp = write("dp.toml", "[datapath]\nduration_s = -1\n");
    let no_rep = write("rep.toml", "[datapath]\nreplicates = 0\n");
    let cases: Vec<(&str, &String, Vec<&str>)> = vec![
        ("missing", &missing, vec![missing.as_str(), "cannot read"]),
        ("dir", &dir, vec![dir.as_str(), "cannot read"]),
        ("unknown", &unknown, vec![unknown.as_str(), "service_count"]),
        (
            "big",
            &too_big,
            vec![too_big.as_str(), "services", "99999999"],
        ),
        ("dp", &bad_dp, vec![bad_dp.as_str(), "datapath.duration_s"]),
        ("rep", &no_rep, vec![no_rep.as_str(), "datapath.replicates"]),
    ];
    for (tag, file, names) in cases {
        let id = run_id(tag);
        let args = ["run", file, "--run-id", &id, "--out", out.to_str().unwrap()];
        rejected(&kpbench(&args), &names);
        nothing_created(&id, &out);
    }
}
