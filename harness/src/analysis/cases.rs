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

/// The mode with its IPVS scheduler and, for the floor profile, `(floor)`:
/// `ipvs/rr`, `nftables (floor)`. kube-proxy's profile is the mode itself, since it is
/// what users run.
pub fn mode_label(c: &Case) -> String {
    let mode = base_mode(c);
    if is_floor(c) {
        format!("{mode} (floor)")
    } else {
        mode
    }
}

/// The mode with its IPVS scheduler, whatever the profile: `ipvs/rr`, `nftables`.
pub fn base_mode(c: &Case) -> String {
    match &c.ipvs_scheduler {
        Some(s) => format!("{}/{s}", c.mode),
        None => c.mode.clone(),
    }
}

/// The mode with its profile spelled out, kube-proxy's release included, where the
/// profiles stand side by side: `nftables (kube-proxy 1.36)`, `nftables (floor)`, and
/// the bare mode for results written before profiles.
pub fn profile_label(c: &Case) -> String {
    let mode = base_mode(c);
    match (c.profile.as_deref(), c.kube_proxy_version.as_deref()) {
        (None, _) => mode,
        (Some(p), Some(v)) if !is_floor(c) => format!("{mode} ({p} {v})"),
        (Some(p), _) => format!("{mode} ({p})"),
    }
}

/// Whether a case measured the floor profile (the kernel's cost without kube-proxy's
/// controller work), not what kube-proxy does.
pub fn is_floor(c: &Case) -> bool {
    c.profile.as_deref() == Some("floor")
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

/// One kind of sync, as `Case::sync` records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SyncKind {
    Full,
    AddService,
    RemoveService,
    UpdateEndpoints,
}

impl SyncKind {
    pub const ALL: [SyncKind; 4] = [
        SyncKind::Full,
        SyncKind::AddService,
        SyncKind::RemoveService,
        SyncKind::UpdateEndpoints,
    ];

    /// How the report names it.
    pub fn label(self) -> &'static str {
        match self {
            SyncKind::Full => "full sync",
            SyncKind::AddService => "add service",
            SyncKind::RemoveService => "remove service",
            SyncKind::UpdateEndpoints => "update endpoints",
        }
    }

    /// The case's summary of this kind of sync, when measured. A full sync that ran
    /// past the case's limit (`sync_over_limit_s`) was not measured: its partial
    /// timings say only that it took longer.
    pub fn pick(self, c: &Case) -> Option<&DurationSummary> {
        let s = c.sync.as_ref()?;
        match self {
            SyncKind::Full => full_sync(c),
            SyncKind::AddService => s.add_service.as_ref(),
            SyncKind::RemoveService => s.remove_service.as_ref(),
            SyncKind::UpdateEndpoints => s.update_endpoints.as_ref(),
        }
    }
}

/// The case's full sync, unless it ran past the case's limit (then only its partial
/// timings are recorded, which no figure may take for a full sync's time).
pub fn full_sync(c: &Case) -> Option<&DurationSummary> {
    let s = c.sync.as_ref()?;
    c.sync_over_limit_s.is_none().then_some(&s.full)
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
            p50_ms: crate::analysis::stats::percentile(&s, 50.0),
            p90_ms: crate::analysis::stats::percentile(&s, 90.0),
            p99_ms: crate::analysis::stats::percentile(&s, 99.0),
            max_ms: *s.last().unwrap(),
            cpu_user_ms: 1.0,
            cpu_sys_ms: 1.0,
            samples_ms: samples_ms.to_vec(),
            payload_bytes: None,
            steps: Vec::new(),
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
            profile: None,
            kube_proxy_version: None,
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
                picks: vec![],
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
                    dataplane_ns_per_request: None,
                    max_rate_softirq_pct: None,
                }),
                distribution: Some(Distribution {
                    endpoints_hit: 10,
                    endpoints_total: 10,
                    max_deviation_pct: 5.0,
                }),
                transit: None,
                transit_error: None,
                noise_floor_us: None,
            }),
            churn: None,
            churn_sweep: vec![],
            notes: vec![],
            elapsed_s: Some(1.0),
            programmed_by: None,
            sync_over_limit_s: None,
        }
    }

    /// A case of `profile` (`kube-proxy`, replaying 1.36, or `floor`): the full sync
    /// and every incremental sync take the samples given, without steps (add them with
    /// [`with_steps`]) and without a data path.
    pub fn profiled(mode: &str, services: u64, profile: &str, full: &[f64], incr: &[f64]) -> Case {
        let mut c = case(mode, services, 0.0, 0.0, 0.0);
        c.profile = Some(profile.into());
        c.kube_proxy_version = (profile == "kube-proxy").then(|| "1.36".into());
        c.datapath = None;
        c.sync = Some(Sync {
            full: summary(full),
            add_service: Some(summary(incr)),
            remove_service: Some(summary(incr)),
            update_endpoints: Some(summary(incr)),
            picks: vec![],
        });
        c
    }

    /// The case with `steps` recorded for one kind of its syncs.
    pub fn with_steps(
        mut c: Case,
        kind: crate::analysis::cases::SyncKind,
        steps: Vec<StepSummary>,
    ) -> Case {
        use crate::analysis::cases::SyncKind;
        let s = c.sync.as_mut().expect("an ok case has syncs");
        let d = match kind {
            SyncKind::Full => &mut s.full,
            SyncKind::AddService => s.add_service.as_mut().expect("add measured"),
            SyncKind::RemoveService => s.remove_service.as_mut().expect("remove measured"),
            SyncKind::UpdateEndpoints => s.update_endpoints.as_mut().expect("update measured"),
        };
        d.steps = steps;
        c
    }

    /// One step per sync: `calls` runs costing `wall`, `user` and `sys` ms in all.
    pub fn step(
        name: &str,
        category: &str,
        calls: f64,
        wall: f64,
        user: f64,
        sys: f64,
    ) -> StepSummary {
        StepSummary {
            name: name.into(),
            category: category.into(),
            calls,
            wall_ms: wall,
            user_ms: user,
            sys_ms: sys,
        }
    }

    /// One transit target: its SYN p50 with the interval `p50 +- half` (the SYN-ACK's
    /// a flat 2,000 ns), 200 samples.
    pub fn transit_target(service_index: Option<u64>, p50: f64, half: f64) -> TransitTarget {
        let pct = |p50: f64, half: f64| TransitPercentiles {
            p10: p50 - 2.0 * half,
            p50,
            p90: p50 + 2.0 * half,
            p99: p50 + 4.0 * half,
            ci95_p50: [p50 - half, p50 + half],
        };
        TransitTarget {
            target: service_index.map_or("direct".into(), |i| format!("svc-{i}")),
            service_index,
            path: TransitPath::ClusterIp,
            samples: 200,
            syn_ns: pct(p50, half),
            synack_ns: pct(2000.0, 50.0),
            bpf_run_ns: None,
        }
    }

    /// The case with a transit pass: 9 service positions evenly from the first to the
    /// last service, the SYN taking `first_ns + slope * index` ns (+- `half`), direct
    /// `direct_ns`; `ns_per_service` is recorded as given. A case without a data path
    /// gets one.
    pub fn with_transit(
        mut c: Case,
        direct_ns: f64,
        first_ns: f64,
        slope: f64,
        half: f64,
        ns_per_service: Estimate,
    ) -> Case {
        let last = c.services.saturating_sub(1);
        let mut targets: Vec<TransitTarget> = (0..9u64)
            .map(|k| k * last / 8)
            .map(|i| transit_target(Some(i), first_ns + slope * i as f64, half))
            .collect();
        targets.dedup_by_key(|t| t.service_index);
        targets.push(transit_target(None, direct_ns, half));
        if c.datapath.is_none() {
            let with_dp = case(&c.mode, c.services, 1.0, 1.0, 1.0);
            c.datapath = with_dp.datapath;
        }
        let dp = c.datapath.as_mut().expect("a data path");
        dp.transit = Some(Transit {
            targets,
            ns_per_service: crate::results::LookupSlope::undecided(
                ns_per_service,
                crate::results::Spans::Targets,
            ),
            ns_per_service_packets: None,
            replicates: Vec::new(),
            round_order_seed: None,
            probe_overhead_pct: 4.0,
            probe_overhead_ci95: None,
            probe_overhead: None,
            probe_run_ns_per_connection: None,
            unmatched: 0,
            absent_paths: BTreeMap::new(),
        });
        c
    }

    /// `c` (with a transit pass) with a target per `(path, service, p50)` (interval
    /// +- 20 ns) and the `absent` paths with their reasons.
    pub fn with_paths(
        mut c: Case,
        paths: &[(TransitPath, u64, f64)],
        absent: &[(TransitPath, &str)],
    ) -> Case {
        let t = c
            .datapath
            .as_mut()
            .and_then(|d| d.transit.as_mut())
            .expect("a transit pass");
        for &(path, i, p50) in paths {
            let mut x = transit_target(Some(i), p50, 20.0);
            x.target = path.name().into();
            x.path = path;
            t.targets.push(x);
        }
        t.absent_paths = absent.iter().map(|(p, w)| (*p, w.to_string())).collect();
        c
    }

    /// An estimate with its interval.
    pub fn est(estimate: f64, lo: f64, hi: f64) -> Estimate {
        Estimate {
            estimate,
            ci95: [lo, hi],
        }
    }

    pub fn skipped(mode: &str, services: u64, reason: &str) -> Case {
        Case {
            environment: "host".into(),
            mode: mode.into(),
            ipvs_scheduler: None,
            profile: None,
            kube_proxy_version: None,
            services,
            endpoints_per_service: 10,
            status: Status::Skipped,
            reason: Some(reason.into()),
            rules: None,
            sync: None,
            datapath: None,
            churn: None,
            churn_sweep: vec![],
            notes: vec![],
            elapsed_s: None,
            programmed_by: None,
            sync_over_limit_s: None,
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
                git_dirty: Some(false),
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
                machine: None,
                cpu: None,
                tools: BTreeMap::new(),
            }],
            cases,
        }
    }
}
