//! The controller's overhead: kube-proxy's profile minus the floor, for every mode and
//! scale where both ran in one environment, on the full sync and on the p50 of each
//! incremental sync. The floor reaches the identical kernel objects the fastest way
//! kpbench knows, so the difference is what kube-proxy's sync loop adds on top of the
//! kernel's work.
//!
//! **When a difference is told from noise.** Each side's spread is the interquartile
//! range of its samples (nearest rank, as every percentile in kpbench). A side with
//! fewer than [`MIN_SAMPLES`] samples (the full sync is usually measured once) borrows
//! the noise of its cases, as `compare` does for single values: its median times the
//! median relative IQR (IQR over median) of the repeated timings of both cases. The
//! difference of medians is **measurable** only when it is larger than the larger of
//! the two spreads; otherwise the report says "no measurable difference" instead of a
//! number. When neither case has repeated timings the noise is unknown and the number
//! is shown flagged as such.

use std::collections::BTreeMap;

use crate::analysis::cases::{self, EnvKey, Row, SyncKind};
use crate::analysis::compare::MIN_SAMPLES;
use crate::results::{Case, DurationSummary, Results};

/// Where a spread came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoiseSource {
    /// Both sides' own interquartile ranges.
    Iqr,
    /// At least one side had too few samples and borrowed its cases' relative noise.
    CaseNoise,
}

/// The larger of the two sides' spreads, milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Noise {
    pub ms: f64,
    pub source: NoiseSource,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The difference is larger than the noise.
    Measured,
    /// The difference is within the noise: no number is given for it.
    NoMeasurableDifference,
    /// Neither case has repeated timings: the number stands without a noise bound.
    NoiseUnknown,
}

/// kube-proxy minus floor for one kind of sync.
#[derive(Debug, Clone, PartialEq)]
pub struct Overhead {
    pub kind: SyncKind,
    /// kube-proxy's p50, milliseconds.
    pub kube_proxy_ms: f64,
    /// The floor's p50, milliseconds.
    pub floor_ms: f64,
    /// kube-proxy minus floor, milliseconds.
    pub difference_ms: f64,
    /// kube-proxy over floor; `None` when the floor took no time.
    pub ratio: Option<f64>,
    /// `None` when neither case has repeated timings.
    pub noise: Option<Noise>,
}

impl Overhead {
    pub fn verdict(&self) -> Verdict {
        match self.noise {
            None => Verdict::NoiseUnknown,
            Some(n) if self.difference_ms.abs() > n.ms => Verdict::Measured,
            Some(_) => Verdict::NoMeasurableDifference,
        }
    }
}

/// A mode at one scale where both profiles ran.
#[derive(Debug, Clone, PartialEq)]
pub struct Pair {
    pub env: EnvKey,
    /// The mode with its IPVS scheduler.
    pub mode: String,
    pub services: u64,
    pub endpoints_per_service: u64,
    /// The release kube-proxy's profile replayed.
    pub kube_proxy_version: Option<String>,
    /// One per kind of sync both measured, full sync first.
    pub lines: Vec<Overhead>,
}

type Key = (EnvKey, String, u64, u64);

fn key(r: &Row<'_>) -> Key {
    (
        r.env(),
        cases::base_mode(r.case),
        r.case.services,
        r.case.endpoints_per_service,
    )
}

/// Every kube-proxy case with a floor case of the same environment, mode and scale
/// (from the same run when there is one), sorted by environment, mode and scale.
pub fn pairs(results: &[Results]) -> Vec<Pair> {
    let rows: Vec<Row<'_>> = cases::rows(results)
        .into_iter()
        .filter(|r| r.ok())
        .collect();
    let mut floors: BTreeMap<Key, Vec<&Row<'_>>> = BTreeMap::new();
    for r in rows.iter().filter(|r| cases::is_floor(r.case)) {
        floors.entry(key(r)).or_default().push(r);
    }
    let mut out = Vec::new();
    for kp in rows
        .iter()
        .filter(|r| r.case.profile.as_deref() == Some("kube-proxy"))
    {
        let k = key(kp);
        let Some(candidates) = floors.get(&k) else {
            continue;
        };
        let floor = candidates
            .iter()
            .find(|f| std::ptr::eq(f.run, kp.run))
            .unwrap_or(&candidates[0]);
        let (env, mode, services, endpoints_per_service) = k;
        out.push(Pair {
            env,
            mode,
            services,
            endpoints_per_service,
            kube_proxy_version: kp.case.kube_proxy_version.clone(),
            lines: lines(kp.case, floor.case),
        });
    }
    out.sort_by(|a, b| {
        (
            &a.env,
            &a.mode,
            a.services,
            a.endpoints_per_service,
            &a.kube_proxy_version,
        )
            .cmp(&(
                &b.env,
                &b.mode,
                b.services,
                b.endpoints_per_service,
                &b.kube_proxy_version,
            ))
    });
    out
}

/// kube-proxy minus floor for every kind of sync both cases measured.
pub fn lines(kube_proxy: &Case, floor: &Case) -> Vec<Overhead> {
    let relative = relative_noise(kube_proxy, floor);
    SyncKind::ALL
        .into_iter()
        .filter_map(|kind| {
            let (k, f) = (kind.pick(kube_proxy)?, kind.pick(floor)?);
            let noise = match (spread(k, relative), spread(f, relative)) {
                (Some(a), Some(b)) => Some(Noise {
                    ms: a.ms.max(b.ms),
                    source: if a.source == NoiseSource::Iqr && b.source == NoiseSource::Iqr {
                        NoiseSource::Iqr
                    } else {
                        NoiseSource::CaseNoise
                    },
                }),
                _ => None,
            };
            Some(Overhead {
                kind,
                kube_proxy_ms: k.p50_ms,
                floor_ms: f.p50_ms,
                difference_ms: k.p50_ms - f.p50_ms,
                ratio: (f.p50_ms > 0.0).then(|| k.p50_ms / f.p50_ms),
                noise,
            })
        })
        .collect()
}

fn percentiles(samples: &[f64]) -> impl Fn(f64) -> f64 {
    let mut s = samples.to_vec();
    s.sort_by(f64::total_cmp);
    move |q| crate::run::metrics::percentile(&s, q)
}

/// The interquartile range of enough samples.
pub fn iqr(samples: &[f64]) -> Option<f64> {
    if samples.len() < MIN_SAMPLES {
        return None;
    }
    let p = percentiles(samples);
    Some(p(75.0) - p(25.0))
}

/// The median relative IQR of both cases' repeated timings; `None` when neither has any.
fn relative_noise(a: &Case, b: &Case) -> Option<f64> {
    let mut rel: Vec<f64> = SyncKind::ALL
        .into_iter()
        .flat_map(|kind| [kind.pick(a), kind.pick(b)])
        .flatten()
        .filter_map(|d| {
            let m = percentiles(&d.samples_ms)(50.0);
            iqr(&d.samples_ms).filter(|_| m > 0.0).map(|i| i / m)
        })
        .collect();
    if rel.is_empty() {
        return None;
    }
    rel.sort_by(f64::total_cmp);
    Some(crate::run::metrics::percentile(&rel, 50.0))
}

/// One side's spread: its own IQR, or its median times the cases' relative noise.
fn spread(d: &DurationSummary, relative: Option<f64>) -> Option<Noise> {
    match iqr(&d.samples_ms) {
        Some(ms) => Some(Noise {
            ms,
            source: NoiseSource::Iqr,
        }),
        None => relative.map(|r| Noise {
            ms: d.p50_ms * r,
            source: NoiseSource::CaseNoise,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::cases::fixtures::{case, profiled, results, summary};

    fn ten(from: f64) -> Vec<f64> {
        (0..10).map(|i| from + 2.0 * i as f64).collect()
    }

    #[test]
    fn differences_beyond_the_larger_iqr_are_measured() {
        // add: 50, 52, ..., 68 against 20, 22, ..., 38. Nearest rank over 10 samples:
        // p50 is the 5th (58 and 28), p25 the 3rd and p75 the 8th (IQR 10 each).
        let kp = profiled("iptables", 1000, "kube-proxy", &[700.0], &ten(50.0));
        let mut floor = profiled("iptables", 1000, "floor", &[300.0], &ten(20.0));
        // update: medians 12 and 11 (a difference of 1) with IQRs 2 and 3.
        let sync = floor.sync.as_mut().unwrap();
        sync.update_endpoints = Some(summary(&[8.0, 10.0, 11.0, 13.0, 14.0]));
        let kp = {
            let mut kp = kp;
            kp.sync.as_mut().unwrap().update_endpoints =
                Some(summary(&[10.0, 11.0, 12.0, 13.0, 14.0]));
            kp
        };
        let l = lines(&kp, &floor);
        assert_eq!(l.len(), 4);
        let add = &l[1];
        assert_eq!(add.kind, SyncKind::AddService);
        assert_eq!((add.kube_proxy_ms, add.floor_ms), (58.0, 28.0));
        assert_eq!(add.difference_ms, 30.0);
        assert_eq!(add.ratio, Some(58.0 / 28.0));
        assert_eq!(
            add.noise,
            Some(Noise {
                ms: 10.0,
                source: NoiseSource::Iqr
            })
        );
        assert_eq!(add.verdict(), Verdict::Measured);
        let update = &l[3];
        assert_eq!(update.difference_ms, 1.0);
        assert_eq!(update.noise.unwrap().ms, 3.0);
        assert_eq!(update.verdict(), Verdict::NoMeasurableDifference);
    }

    #[test]
    fn a_single_full_sync_borrows_its_cases_noise() {
        let kp = profiled("nftables", 1000, "kube-proxy", &[700.0], &ten(50.0));
        let floor = profiled("nftables", 1000, "floor", &[300.0], &ten(20.0));
        // Relative IQRs: 10/58 three times (kube-proxy), 10/28 three times (floor);
        // the median of the six (nearest rank: the 3rd) is 10/58.
        let full = &lines(&kp, &floor)[0];
        assert_eq!(full.kind, SyncKind::Full);
        assert_eq!(full.difference_ms, 400.0);
        let noise = full.noise.unwrap();
        assert_eq!(noise.source, NoiseSource::CaseNoise);
        assert!((noise.ms - 700.0 * 10.0 / 58.0).abs() < 1e-9, "{noise:?}");
        assert_eq!(full.verdict(), Verdict::Measured);
        // 700 against 650: 50 is less than 700 x 10/58 = 121.
        let close = profiled("nftables", 1000, "floor", &[650.0], &ten(20.0));
        assert_eq!(
            lines(&kp, &close)[0].verdict(),
            Verdict::NoMeasurableDifference
        );
        // No repeated timings anywhere: the number stands, flagged.
        let lone = |p, ms| profiled("nftables", 1000, p, &[ms], &[ms / 10.0]);
        let l = lines(&lone("kube-proxy", 700.0), &lone("floor", 650.0));
        assert_eq!(l[0].noise, None);
        assert_eq!(l[0].verdict(), Verdict::NoiseUnknown);
    }

    #[test]
    fn pairs_match_environment_mode_and_scale() {
        let kp = |n| profiled("nftables", n, "kube-proxy", &[700.0], &ten(50.0));
        let floor = |n| profiled("nftables", n, "floor", &[300.0], &ten(20.0));
        let host = results(
            "6.18.0",
            vec![
                kp(100),
                kp(1000),
                floor(1000),
                floor(5000),
                case("iptables", 1000, 50.0, 5.0, 1.0),
            ],
        );
        let mut lab = results("6.18.0", vec![floor(100)]);
        lab.environments[0].kind = "lab-kvm".into();
        let p = pairs(&[host, lab]);
        // 100 has its floor in the lab only; 5,000 has no kube-proxy case.
        assert_eq!(p.len(), 1);
        assert_eq!((p[0].mode.as_str(), p[0].services), ("nftables", 1000));
        assert_eq!(p[0].env.label(), "host 6.18.0");
        assert_eq!(p[0].kube_proxy_version.as_deref(), Some("1.36"));
        assert_eq!(p[0].lines[0].difference_ms, 400.0);
    }
}
