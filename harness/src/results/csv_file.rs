//! `results.csv`: one row per case, flattened; the column names are stable.

use super::{Case, DurationSummary, Results};

impl Results {
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
pub const CSV_COLUMNS: [&str; 33] = [
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
    "profile",
    "kube_proxy_version",
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
        c.profile.clone().unwrap_or_default(),
        c.kube_proxy_version.clone().unwrap_or_default(),
    ]
}
