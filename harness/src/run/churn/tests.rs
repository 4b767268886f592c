//! The churn phase on the fake backend, on real time: every change is applied and
//! synced, kube-proxy's modes batch at the sync interval, the eBPF modes sync per
//! change, and the case's read-back holds the churned set.

use dataplane::Mode;

use crate::results::{Churn, Status};
use crate::run::testing::*;

fn churned(mode: Mode, interval_s: f64) -> Churn {
    let c = swept(mode, interval_s, &[20.0]);
    assert!(c.churn_sweep.is_empty(), "{c:?}");
    c.churn.clone().expect("a churn phase")
}

/// The case of `mode` on the fake backend with a churn phase per rate of `rates`.
fn swept(mode: Mode, interval_s: f64, rates: &[f64]) -> crate::results::Case {
    let out = tempfile::tempdir().unwrap();
    let mut s = scenario(&[mode], &[40]);
    s.sync_interval_s = interval_s;
    s.churn = Some(crate::scenario::Churn {
        rates_per_s: rates.to_vec(),
        duration_s: 0.5,
        services: 4,
        ..Default::default()
    });
    let (r, _) = run_fake(
        s,
        &FakeBackends::all_ok(),
        &FakeSandbox::default(),
        &FakeHost::default(),
        out.path(),
    );
    let c = r.cases[0].clone();
    assert_eq!(c.status, Status::Ok, "{:?}", c.reason);
    c
}

#[test]
fn kube_proxy_modes_batch_changes_at_the_sync_interval() {
    let c = churned(Mode::Iptables, 0.2);
    assert_eq!((c.changes, c.services_churned), (10, 4));
    assert_eq!(c.batching, "min-sync-period");
    // Arrivals at 0, 50, ..., 450 ms with syncs at least 200 ms apart: 3 or 4 syncs.
    assert!((3..=4).contains(&c.syncs), "{c:?}");
    for w in c.sync_events.windows(2) {
        assert!(w[1].start_ms >= w[0].start_ms + 200.0, "{w:?}");
    }
    assert_eq!(c.sync_events.iter().map(|e| e.changes).sum::<u64>(), 10);
    // Each fake sync costs 1 ms user and 1 ms sys.
    let pct = c.controller_cpu_pct.kube_proxy.unwrap();
    assert!(pct > 0.0 && c.controller_cpu_pct.floor.is_none(), "{c:?}");
    // Every fake sync costs the same, so every redraw of them totals the same.
    let ci = c.controller_cpu_pct.kube_proxy_ci95.unwrap();
    assert!(
        (ci[0] - pct).abs() < 1e-9 && (ci[1] - pct).abs() < 1e-9,
        "{ci:?} {pct}"
    );
}

#[test]
fn ebpf_modes_sync_every_change_alone() {
    let c = churned(Mode::EbpfTc, 1.0);
    assert_eq!((c.changes, c.syncs), (10, 10));
    assert_eq!(c.batching, "per-change");
    assert!(c.sync_events.iter().all(|e| e.changes == 1));
}

#[test]
fn a_rate_sweep_runs_every_rate_in_the_same_case_in_order() {
    let case = swept(Mode::Nftables, 0.2, &[20.0, 4.0, 40.0]);
    let phases: Vec<&Churn> = case.churn_phases().collect();
    let rates: Vec<f64> = phases.iter().map(|c| c.rate_per_s).collect();
    assert_eq!(rates, vec![20.0, 4.0, 40.0]);
    assert_eq!(case.churn.as_ref().unwrap().rate_per_s, 20.0);
    assert_eq!(case.churn_sweep.len(), 2);
    // 0.5 s at each rate: 10, 2 and 20 changes, every one synced.
    let changes: Vec<u64> = phases.iter().map(|c| c.changes).collect();
    assert_eq!(changes, vec![10, 2, 20]);
    for c in phases {
        assert_eq!(
            c.sync_events.iter().map(|e| e.changes).sum::<u64>(),
            c.changes
        );
        assert!(c.controller_cpu_pct.kube_proxy.unwrap() > 0.0, "{c:?}");
    }
    // The results read back with the sweep as written.
    let json = serde_json::to_string(&case).unwrap();
    let back: crate::results::Case = serde_json::from_str(&json).unwrap();
    let back: Vec<(f64, u64)> = (back.churn_phases())
        .map(|c| (c.rate_per_s, c.changes))
        .collect();
    assert_eq!(back, vec![(20.0, 10), (4.0, 2), (40.0, 20)]);
}
