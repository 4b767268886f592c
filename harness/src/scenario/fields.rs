//! Checks of single scenario fields, each turning a raw value (or its absence) into a
//! resolved one. `field(name, message)` builds the error that names the field; the
//! message says what is wrong and what to use instead.

use std::collections::BTreeMap;

use dataplane::{floor::model, KubeProxyVersion, Mode, ProfileKind};

use super::{Datapath, RawDatapath, MAX_CONNECTIONS, MAX_REPLICATES, MAX_SECONDS};

/// Every mode's name, for "use one of" hints.
pub(super) fn mode_names() -> String {
    Mode::ALL
        .iter()
        .map(|m| m.name())
        .collect::<Vec<_>>()
        .join(", ")
}

/// `modes`: every mode when absent, else the list as given, duplicates dropped.
pub(super) fn modes<E>(
    v: Option<Vec<String>>,
    field: &impl Fn(&str, String) -> E,
) -> Result<Vec<Mode>, E> {
    match v {
        None => Ok(vec![
            Mode::Iptables,
            Mode::IptablesLegacy,
            Mode::Nftables,
            Mode::Ipvs,
        ]),
        Some(v) => parse_modes(&v, "modes", field),
    }
}

/// A non-empty list of mode names, in order, duplicates dropped.
pub(super) fn parse_modes<E>(
    list: &[String],
    name: &str,
    field: &impl Fn(&str, String) -> E,
) -> Result<Vec<Mode>, E> {
    if list.is_empty() {
        return Err(field(
            name,
            format!("is empty; list at least one of {}", mode_names()),
        ));
    }
    let mut out = Vec::new();
    for m in list {
        let mode = Mode::parse(m).ok_or_else(|| {
            field(
                name,
                format!("unknown mode {m:?}; use one of {}", mode_names()),
            )
        })?;
        if !out.contains(&mode) {
            out.push(mode);
        }
    }
    Ok(out)
}

/// A whole number of at least `min`, `default` when absent.
pub(super) fn count<E>(
    v: Option<i64>,
    default: i64,
    min: i64,
    name: &str,
    field: &impl Fn(&str, String) -> E,
) -> Result<usize, E> {
    let v = v.unwrap_or(default);
    if v < min {
        return Err(field(
            name,
            format!("{v} is too small; use a whole number >= {min}"),
        ));
    }
    Ok(v as usize)
}

/// A non-empty list of service counts, sorted and without duplicates; `default` when
/// absent.
pub(super) fn sizes<E>(
    v: Option<Vec<i64>>,
    default: Vec<usize>,
    name: &str,
    field: &impl Fn(&str, String) -> E,
) -> Result<Vec<usize>, E> {
    let Some(v) = v else { return Ok(default) };
    if v.is_empty() {
        return Err(field(
            name,
            "is empty; list at least one service count, e.g. [100, 1000]".into(),
        ));
    }
    let mut out = Vec::new();
    for (i, n) in v.into_iter().enumerate() {
        if n < 1 {
            return Err(field(
                &format!("{name}[{i}]"),
                format!("{n} is not a service count; use whole numbers >= 1"),
            ));
        }
        out.push(n as usize);
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// A number of seconds from `min` to [`MAX_SECONDS`], `default` when absent.
pub(super) fn seconds<E>(
    v: Option<f64>,
    default: f64,
    name: &str,
    min: f64,
    field: &impl Fn(&str, String) -> E,
) -> Result<f64, E> {
    let v = v.unwrap_or(default);
    // The upper bound keeps every later Duration and Instant sum in range.
    if !v.is_finite() || v < min || v > MAX_SECONDS {
        return Err(field(
            name,
            format!("{v} is out of range; use a number of seconds from {min} to {MAX_SECONDS}"),
        ));
    }
    Ok(v)
}

/// `case_timeout_s` and `sync_limit_s` (default the case's limit, at most that).
pub(super) fn limits<E>(
    case: Option<f64>,
    sync: Option<f64>,
    field: &impl Fn(&str, String) -> E,
) -> Result<(f64, f64), E> {
    let case = seconds(case, 300.0, "case_timeout_s", 1.0, field)?;
    let sync = seconds(sync, case, "sync_limit_s", 1.0, field)?;
    if sync > case {
        return Err(field(
            "sync_limit_s",
            format!(
                "{sync} is more than case_timeout_s ({case}); the first full sync runs \
                 within the case's limit: use at most {case}"
            ),
        ));
    }
    Ok((case, sync))
}

/// `scales`: per-mode service counts, keyed by a known mode's name.
pub(super) fn scales<E>(
    v: Option<BTreeMap<String, Vec<i64>>>,
    field: &impl Fn(&str, String) -> E,
) -> Result<BTreeMap<String, Vec<usize>>, E> {
    let mut scales = BTreeMap::new();
    for (mode, list) in v.unwrap_or_default() {
        if Mode::parse(&mode).is_none() {
            return Err(field(
                &format!("scales.{mode}"),
                format!("unknown mode {mode:?}; use one of {}", mode_names()),
            ));
        }
        let key = format!("scales.{mode}");
        scales.insert(mode, sizes(Some(list), vec![], &key, field)?);
    }
    Ok(scales)
}

/// Every scale (`services` and each of `scales`) fits the address ranges with
/// `endpoints` endpoints per service.
pub(super) fn check_sizes<E>(
    services: &[usize],
    scales: &BTreeMap<String, Vec<usize>>,
    endpoints: usize,
    field: &impl Fn(&str, String) -> E,
) -> Result<(), E> {
    for (key, list) in std::iter::once(("services".to_string(), services)).chain(
        scales
            .iter()
            .map(|(k, v)| (format!("scales.{k}"), v.as_slice())),
    ) {
        for &n in list {
            model::check_size(n as u64, endpoints as u64)
                .map_err(|e| field(&key, format!("{e}; use fewer services or endpoints")))?;
        }
    }
    Ok(())
}

/// The `[datapath]` table, every default filled in.
pub(super) fn datapath<E>(
    rd: RawDatapath,
    field: &impl Fn(&str, String) -> E,
) -> Result<Datapath, E> {
    let d = Datapath::default();
    let rate_per_s = rd.rate_per_s.unwrap_or(d.rate_per_s);
    if !rate_per_s.is_finite() || rate_per_s <= 0.0 || rate_per_s > 1_000_000.0 {
        return Err(field(
            "datapath.rate_per_s",
            format!("{rate_per_s} is out of range; use 1 to 1000000"),
        ));
    }
    let duration_s = seconds(
        rd.duration_s,
        d.duration_s,
        "datapath.duration_s",
        0.1,
        field,
    )?;
    let max_rate_duration_s = seconds(
        rd.max_rate_duration_s,
        d.max_rate_duration_s,
        "datapath.max_rate_duration_s",
        0.0,
        field,
    )?;
    let connections = count(
        rd.connections,
        d.connections as i64,
        1,
        "datapath.connections",
        field,
    )?;
    // Each is a task and a socket; more would exhaust memory or local ports.
    if connections > MAX_CONNECTIONS {
        return Err(field(
            "datapath.connections",
            format!("{connections} is too many; use 1 to {MAX_CONNECTIONS}"),
        ));
    }
    let request_timeout_ms = count(
        rd.request_timeout_ms,
        d.request_timeout_ms as i64,
        1,
        "datapath.request_timeout_ms",
        field,
    )? as u64;
    let replicates = count(
        rd.replicates,
        d.replicates as i64,
        1,
        "datapath.replicates",
        field,
    )?;
    if replicates > MAX_REPLICATES {
        return Err(field(
            "datapath.replicates",
            format!("{replicates} is too many; use 1 to {MAX_REPLICATES}"),
        ));
    }
    Ok(Datapath {
        transit: rd.transit.unwrap_or(d.transit),
        replicates,
        enabled: rd.enabled.unwrap_or(d.enabled),
        rate_per_s,
        duration_s,
        max_rate_duration_s,
        connections,
        keepalive: rd.keepalive.unwrap_or(d.keepalive),
        request_timeout_ms,
    })
}

/// `profiles`: a non-empty list of profile names, de-duplicated in order.
pub(super) fn profiles<E>(
    v: Option<Vec<String>>,
    field: &impl Fn(&str, String) -> E,
) -> Result<Vec<ProfileKind>, E> {
    let Some(names) = v else {
        return Ok(vec![ProfileKind::KubeProxy]);
    };
    if names.is_empty() {
        return Err(field(
            "profiles",
            format!("is empty; list at least one of {}", ProfileKind::names()),
        ));
    }
    let mut out = Vec::new();
    for n in &names {
        let p = ProfileKind::parse(n).ok_or_else(|| {
            field(
                "profiles",
                format!("unknown profile {n:?}; use one of {}", ProfileKind::names()),
            )
        })?;
        if !out.contains(&p) {
            out.push(p);
        }
    }
    Ok(out)
}

/// `kube_proxy_version`: a release kpbench replays ("1.35", "1.36").
pub(super) fn kube_proxy_version<E>(
    v: Option<String>,
    field: &impl Fn(&str, String) -> E,
) -> Result<KubeProxyVersion, E> {
    let Some(s) = v else {
        return Ok(KubeProxyVersion::default());
    };
    KubeProxyVersion::parse(&s).ok_or_else(|| {
        let known: Vec<&str> = KubeProxyVersion::ALL.iter().map(|v| v.name()).collect();
        field(
            "kube_proxy_version",
            format!(
                "{s:?} is not a release kpbench replays; use one of {}",
                known.join(", ")
            ),
        )
    })
}
