//! `results/<run-id>/`: results.json (the stable contract in shared/results.schema.json)
//! and results.csv (one row per case, stable column names). Both are rewritten after
//! every case, atomically (temporary file, then rename), so nothing finished is lost.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub const SCHEMA_VERSION: &str = "kpbench.results/1";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Results {
    pub schema_version: String,
    pub run: RunInfo,
    pub environments: Vec<Environment>,
    pub cases: Vec<Case>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunInfo {
    pub id: String,
    pub started_at: String,
    pub finished_at: String,
    pub tool_version: String,
    pub git_rev: Option<String>,
    pub scenario: ScenarioInfo,
    /// Set when the run was stopped early (signal) or is still going.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incomplete: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ScenarioInfo {
    pub name: String,
    pub file: Option<String>,
    pub resolved: serde_json::Value,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Environment {
    pub id: String,
    /// host, lab-kvm or lab-tcg.
    pub kind: String,
    pub kernel_release: String,
    pub kernel_source: Option<String>,
    pub cpus: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
    pub tools: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Skipped,
    Failed,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Case {
    pub environment: String,
    pub mode: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipvs_scheduler: Option<String>,
    pub services: u64,
    pub endpoints_per_service: u64,
    pub status: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<Rules>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync: Option<Sync>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datapath: Option<Datapath>,
    /// Wall time the whole case took, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub elapsed_s: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Rules {
    pub kernel_objects: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_bytes: Option<u64>,
    #[serde(default)]
    pub kernel_memory_bytes: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Sync {
    pub full: DurationSummary,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub add_service: Option<DurationSummary>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remove_service: Option<DurationSummary>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_endpoints: Option<DurationSummary>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DurationSummary {
    pub samples: u64,
    pub p50_ms: f64,
    #[serde(default)]
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// CPU of the process and its children (the tools it ran), median per sample.
    #[serde(default)]
    pub cpu_user_ms: f64,
    #[serde(default)]
    pub cpu_sys_ms: f64,
    /// Every sample's wall time, so comparisons can judge noise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub samples_ms: Vec<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Latency {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub mean: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Target {
    /// first, middle, last, direct or random.
    pub target: String,
    pub service_index: Option<u64>,
    pub requests: u64,
    pub errors: u64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub errors_by_kind: BTreeMap<String, u64>,
    pub offered_rate_per_s: Option<f64>,
    pub achieved_rate_per_s: f64,
    pub latency_us: Latency,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_latency_us: Option<Latency>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hdr_histogram_base64: Option<String>,
    /// Whole-kernel CPU over this target's load window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<Cpu>,
    /// The load generator's own CPU per request, microseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cpu_per_request_us: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Cpu {
    pub user_ms: f64,
    pub sys_ms: f64,
    pub softirq_ms: f64,
    pub per_request_us: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overhead_per_request_us: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MaxRate {
    pub requests_per_s: f64,
    pub errors: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Distribution {
    pub endpoints_hit: u64,
    pub endpoints_total: u64,
    pub max_deviation_pct: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Datapath {
    pub connection_per_request: bool,
    pub targets: Vec<Target>,
    pub lookup_overhead_us: BTreeMap<String, f64>,
    /// The same per target from the SYN alone: TCP connect latency p25 through the VIP
    /// minus p25 to the endpoint directly. The rule lookup happens on the SYN, so this
    /// carries it without the HTTP exchange and with far less scheduling noise.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub syn_overhead_us: BTreeMap<String, f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_rate: Option<MaxRate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<Cpu>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distribution: Option<Distribution>,
}

/// Errors writing or reading result files; every one names its path.
#[derive(Debug, thiserror::Error)]
pub enum ResultsError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a kpbench results file: {message}")]
    Format { path: PathBuf, message: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ResultsError + '_ {
    move |source| ResultsError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `bytes` to `path` atomically: a temporary file in the same directory, fsync,
/// then rename over the target.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ResultsError> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("out"),
        std::process::id()
    ));
    let mut f = std::fs::File::create(&tmp).map_err(io(&tmp))?;
    f.write_all(bytes).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(io(path))
}

impl Results {
    /// Writes results.json and results.csv into `dir`.
    pub fn write(&self, dir: &Path) -> Result<(), ResultsError> {
        let json = serde_json::to_vec_pretty(self).expect("results serialize");
        write_atomic(&dir.join("results.json"), &json)?;
        write_atomic(&dir.join("results.csv"), self.to_csv().as_bytes())
    }

    /// Reads a results.json (or the one inside a directory).
    pub fn read(path: &Path) -> Result<Results, ResultsError> {
        // A run directory, or the file itself (anything not ending in .json is taken
        // as a directory, so a missing run names the file it looked for).
        let file =
            if path.is_dir() || (!path.exists() && path.extension().is_none_or(|e| e != "json")) {
                path.join("results.json")
            } else {
                path.to_path_buf()
            };
        let bytes = std::fs::read(&file).map_err(io(&file))?;
        let r: Results = serde_json::from_slice(&bytes).map_err(|e| ResultsError::Format {
            path: file.clone(),
            message: e.to_string(),
        })?;
        if r.schema_version != SCHEMA_VERSION {
            return Err(ResultsError::Format {
                path: file,
                message: format!(
                    "schema_version {:?}, expected {SCHEMA_VERSION:?}",
                    r.schema_version
                ),
            });
        }
        Ok(r)
    }

    /// results.csv: one row per case, flattened; the column names are stable.
    pub fn to_csv(&self) -> String {
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record(CSV_COLUMNS).expect("csv header");
        for c in &self.cases {
            w.write_record(csv_row(c)).expect("csv row");
        }
        String::from_utf8(w.into_inner().expect("csv flush")).expect("csv is utf-8")
    }
}

/// The stable CSV columns, in order.
pub const CSV_COLUMNS: [&str; 31] = [
    "environment",
    "mode",
    "ipvs_scheduler",
    "services",
    "endpoints_per_service",
    "status",
    "reason",
    "kernel_objects",
    "payload_bytes",
    "full_sync_ms",
    "full_sync_cpu_user_ms",
    "full_sync_cpu_sys_ms",
    "add_service_p50_ms",
    "add_service_p99_ms",
    "remove_service_p50_ms",
    "remove_service_p99_ms",
    "update_endpoints_p50_ms",
    "update_endpoints_p99_ms",
    "first_p50_us",
    "middle_p50_us",
    "last_p50_us",
    "direct_p50_us",
    "last_p99_us",
    "lookup_overhead_first_us",
    "lookup_overhead_last_us",
    "max_rate_per_s",
    "cpu_per_request_us",
    "cpu_overhead_per_request_us",
    "endpoints_hit",
    "syn_overhead_first_us",
    "syn_overhead_last_us",
];

fn f(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.3}")).unwrap_or_default()
}

fn csv_row(c: &Case) -> Vec<String> {
    let sync = c.sync.as_ref();
    let sum = |s: Option<&DurationSummary>| (s.map(|s| s.p50_ms), s.map(|s| s.p99_ms));
    let (add50, add99) = sum(sync.and_then(|s| s.add_service.as_ref()));
    let (rm50, rm99) = sum(sync.and_then(|s| s.remove_service.as_ref()));
    let (up50, up99) = sum(sync.and_then(|s| s.update_endpoints.as_ref()));
    let dp = c.datapath.as_ref();
    let target = |name: &str| dp.and_then(|d| d.targets.iter().find(|t| t.target == name));
    let p50 = |name: &str| target(name).map(|t| t.latency_us.p50);
    vec![
        c.environment.clone(),
        c.mode.clone(),
        c.ipvs_scheduler.clone().unwrap_or_default(),
        c.services.to_string(),
        c.endpoints_per_service.to_string(),
        serde_json::to_value(c.status)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default(),
        c.reason.clone().unwrap_or_default(),
        c.rules
            .as_ref()
            .map(|r| r.kernel_objects.to_string())
            .unwrap_or_default(),
        c.rules
            .as_ref()
            .and_then(|r| r.payload_bytes)
            .map(|b| b.to_string())
            .unwrap_or_default(),
        f(sync.map(|s| s.full.p50_ms)),
        f(sync.map(|s| s.full.cpu_user_ms)),
        f(sync.map(|s| s.full.cpu_sys_ms)),
        f(add50),
        f(add99),
        f(rm50),
        f(rm99),
        f(up50),
        f(up99),
        f(p50("first")),
        f(p50("middle")),
        f(p50("last")),
        f(p50("direct")),
        f(target("last").map(|t| t.latency_us.p99)),
        f(dp.and_then(|d| d.lookup_overhead_us.get("first").copied())),
        f(dp.and_then(|d| d.lookup_overhead_us.get("last").copied())),
        f(dp.and_then(|d| d.max_rate.as_ref())
            .map(|m| m.requests_per_s)),
        f(dp.and_then(|d| d.cpu.as_ref()).map(|c| c.per_request_us)),
        f(dp.and_then(|d| d.cpu.as_ref())
            .and_then(|c| c.overhead_per_request_us)),
        dp.and_then(|d| d.distribution.as_ref())
            .map(|d| d.endpoints_hit.to_string())
            .unwrap_or_default(),
        f(dp.and_then(|d| d.syn_overhead_us.get("first").copied())),
        f(dp.and_then(|d| d.syn_overhead_us.get("last").copied())),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Results {
        Results {
            schema_version: SCHEMA_VERSION.into(),
            run: RunInfo {
                id: "t".into(),
                started_at: "2026-01-01T00:00:00Z".into(),
                finished_at: "2026-01-01T00:00:01Z".into(),
                tool_version: "0".into(),
                git_rev: None,
                scenario: ScenarioInfo {
                    name: "q".into(),
                    file: None,
                    resolved: serde_json::json!({}),
                },
                incomplete: None,
            },
            environments: vec![],
            cases: vec![Case {
                environment: "host".into(),
                mode: "iptables".into(),
                ipvs_scheduler: None,
                services: 10,
                endpoints_per_service: 2,
                status: Status::Skipped,
                reason: Some("needs \"x\", y".into()),
                rules: None,
                sync: None,
                datapath: None,
                elapsed_s: None,
            }],
        }
    }

    #[test]
    fn csv_has_stable_columns_and_quotes_reasons() {
        let csv = sample().to_csv();
        let mut lines = csv.lines();
        assert_eq!(lines.next().unwrap(), CSV_COLUMNS.join(","));
        let row = lines.next().unwrap();
        assert!(
            row.starts_with("host,iptables,,10,2,skipped,\"needs \"\"x\"\", y\""),
            "{row}"
        );
    }

    #[test]
    fn write_then_read_round_trips_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let r = sample();
        r.write(dir.path()).unwrap();
        assert_eq!(Results::read(dir.path()).unwrap(), r);
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
            .collect();
        assert!(leftovers.is_empty());
    }

    #[test]
    fn reading_a_missing_file_names_the_path() {
        let err = Results::read(Path::new("/nonexistent/kpbench"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("/nonexistent/kpbench/results.json"), "{err}");
    }
}
