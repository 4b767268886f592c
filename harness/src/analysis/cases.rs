//! Cases of one or several runs, flattened and keyed by where they ran (environment kind
//! and kernel) rather than by the run-local environment id, so runs made on different
//! kernels (one per kernel, then merged) line up.

use crate::results::{Case, DurationSummary, Results, Status};

/// Where a case ran: numbers are only comparable within one key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EnvKey {
    /// host, lab-kvm or lab-tcg.
    pub kind: String,
    pub kernel: String,
}

impl EnvKey {
    pub fn label(&self) -> String {
        format!("{} {}", self.kind, self.kernel)
    }
}

/// One case with its environment resolved.
#[derive(Debug, Clone, Copy)]
pub struct Row<'a> {
    pub run: &'a Results,
    pub case: &'a Case,
}

impl<'a> Row<'a> {
    pub fn env(&self) -> EnvKey {
        env_key(self.run, self.case)
    }

    /// The mode with its IPVS scheduler, e.g. `ipvs/rr`.
    pub fn mode(&self) -> String {
        mode_label(self.case)
    }

    pub fn ok(&self) -> bool {
        self.case.status == Status::Ok
    }
}

/// The environment a case ran in; an id missing from the run's list is kept as the kind.
pub fn env_key(run: &Results, case: &Case) -> EnvKey {
    match run.environments.iter().find(|e| e.id == case.environment) {
        Some(e) => EnvKey {
            kind: e.kind.clone(),
            kernel: e.kernel_release.clone(),
        },
        None => EnvKey {
            kind: case.environment.clone(),
            kernel: "unknown kernel".into(),
        },
    }
}

pub fn mode_label(c: &Case) -> String {
    match &c.ipvs_scheduler {
        Some(s) => format!("{}/{s}", c.mode),
        None => c.mode.clone(),
    }
}

/// Every case of every run, in input order.
pub fn rows(results: &[Results]) -> Vec<Row<'_>> {
    results
        .iter()
        .flat_map(|run| run.cases.iter().map(move |case| Row { run, case }))
        .collect()
}

/// The distinct environments, sorted.
pub fn envs(rows: &[Row<'_>]) -> Vec<EnvKey> {
    let mut v: Vec<EnvKey> = rows.iter().map(Row::env).collect();
    v.sort();
    v.dedup();
    v
}

/// The slowest incremental operation's summary (add, remove or update endpoints) by p50:
/// the one that bounds how fast a proxy can follow changes.
pub fn slowest_incremental(c: &Case) -> Option<(&'static str, &DurationSummary)> {
    let s = c.sync.as_ref()?;
    [
        ("add service", s.add_service.as_ref()),
        ("remove service", s.remove_service.as_ref()),
        ("update endpoints", s.update_endpoints.as_ref()),
    ]
    .into_iter()
    .filter_map(|(n, d)| d.map(|d| (n, d)))
    .max_by(|a, b| a.1.p50_ms.total_cmp(&b.1.p50_ms))
}

/// p50 latency of one data-path target, microseconds.
pub fn target_latency<'a>(c: &'a Case, target: &str) -> Option<&'a crate::results::Latency> {
    c.datapath
        .as_ref()?
        .targets
        .iter()
        .find(|t| t.target == target)
        .map(|t| &t.latency_us)
}

/// Latency the dataplane adds at p99 to the last service (the worst rule position):
/// last p99 minus direct p99, microseconds.
pub fn added_p99_us(c: &Case) -> Option<f64> {
    Some(target_latency(c, "last")?.p99 - target_latency(c, "direct")?.p99)
}

pub fn lookup_overhead(c: &Case, target: &str) -> Option<f64> {
    c.datapath.as_ref()?.lookup_overhead_us.get(target).copied()
}

#[cfg(test)]
pub(crate) mod fixtures {
    //! Hand-made results for tests: exact numbers, data path included.

    use std::collections::BTreeMap;

    use crate::results::*;

    pub fn summary(samples_ms: &[f64]) -> DurationSummary {
        let mut s: Vec<f64> = samples_ms.to_vec();
        s.sort_by(f64::total_cmp);
        DurationSummary {
            samples: s.len() as u64,
            p50_ms: crate::run::metrics::percentile(&s, 50.0),
            p90_ms: crate::run::metrics::percentile(&s, 90.0),
            p99_ms: crate::run::metrics::percentile(&s, 99.0),
            max_ms: *s.last().unwrap(),
            cpu_user_ms: 1.0,
            cpu_sys_ms: 1.0,
            samples_ms: samples_ms.to_vec(),
        }
    }

    fn latency(p50: f64, p99: f64) -> Latency {
        Latency {
            p50,
            p90: (p50 + p99) / 2.0,
            p99,
            p999: p99 * 1.5,
            max: p99 * 2.0,
            mean: p50,
        }
    }

    fn target(name: &str, p50: f64, p99: f64) -> Target {
        Target {
            target: name.into(),
            service_index: None,
            requests: 1000,
            errors: 0,
            errors_by_kind: BTreeMap::new(),
            offered_rate_per_s: Some(500.0),
            achieved_rate_per_s: 500.0,
            latency_us: latency(p50, p99),
            connect_latency_us: None,
            hdr_histogram_base64: None,
            cpu: None,
            client_cpu_per_request_us: None,
        }
    }

    /// An ok case: full sync `full_ms`, every incremental op `incr_ms` (the median of 10
    /// samples spread around it), data path with `last` adding `added_us` at p50 and p99 over a 50/200 us direct.
    pub fn case(mode: &str, services: u64, full_ms: f64, incr_ms: f64, added_us: f64) -> Case {
        let incr: Vec<f64> = (0..10).map(|i| incr_ms + (i as f64 - 4.0) * 0.01).collect();
        let mut overhead = BTreeMap::new();
        overhead.insert("first".into(), added_us / 10.0);
        overhead.insert("last".into(), added_us);
        Case {
            environment: "host".into(),
            mode: mode.into(),
            ipvs_scheduler: (mode == "ipvs").then(|| "rr".into()),
            services,
            endpoints_per_service: 10,
            status: Status::Ok,
            reason: None,
            rules: Some(Rules {
                kernel_objects: services * 32,
                payload_bytes: Some(services * 900),
                kernel_memory_bytes: None,
            }),
            sync: Some(Sync {
                full: summary(&[full_ms]),
                add_service: Some(summary(&incr)),
                remove_service: Some(summary(&incr)),
                update_endpoints: Some(summary(&incr)),
            }),
            datapath: Some(Datapath {
                connection_per_request: true,
                targets: vec![
                    target("direct", 50.0, 200.0),
                    target("first", 50.0 + added_us / 10.0, 200.0 + added_us / 10.0),
                    target("last", 50.0 + added_us, 200.0 + added_us),
                ],
                lookup_overhead_us: overhead,
                syn_overhead_us: BTreeMap::new(),
                max_rate: Some(MaxRate {
                    requests_per_s: 10_000.0,
                    errors: 0,
                }),
                cpu: Some(Cpu {
                    user_ms: 10.0,
                    sys_ms: 20.0,
                    softirq_ms: 5.0,
                    per_request_us: 30.0 + services as f64 / 1000.0,
                    overhead_per_request_us: None,
                }),
                distribution: Some(Distribution {
                    endpoints_hit: 10,
                    endpoints_total: 10,
                    max_deviation_pct: 5.0,
                }),
            }),
            elapsed_s: Some(1.0),
        }
    }

    pub fn skipped(mode: &str, services: u64, reason: &str) -> Case {
        Case {
            environment: "host".into(),
            mode: mode.into(),
            ipvs_scheduler: None,
            services,
            endpoints_per_service: 10,
            status: Status::Skipped,
            reason: Some(reason.into()),
            rules: None,
            sync: None,
            datapath: None,
            elapsed_s: None,
        }
    }

    pub fn results(kernel: &str, cases: Vec<Case>) -> Results {
        Results {
            schema_version: SCHEMA_VERSION.into(),
            run: RunInfo {
                id: "fixture".into(),
                started_at: "2026-01-01T00:00:00Z".into(),
                finished_at: "2026-01-01T00:10:00Z".into(),
                tool_version: "0.1.0".into(),
                git_rev: Some("abc123".into()),
                scenario: ScenarioInfo {
                    name: "fixture".into(),
                    file: None,
                    resolved: serde_json::json!({}),
                },
                incomplete: None,
            },
            environments: vec![Environment {
                id: "host".into(),
                kind: "host".into(),
                kernel_release: kernel.into(),
                kernel_source: None,
                cpus: 2,
                cpu_model: Some("Test CPU".into()),
                memory_bytes: Some(1 << 30),
                tools: BTreeMap::new(),
            }],
            cases,
        }
    }
}
