//! Scenario files (TOML): what a run measures. Every field has a default, so an empty
//! file is a valid scenario; unknown fields and impossible sizes are rejected with an
//! error that names the file, the field and the fix.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use dataplane::{model, Mode};
use serde::{Deserialize, Serialize};

/// The quick scenario, embedded so `kpbench run` works from any directory.
pub const QUICK_TOML: &str = include_str!("../../../scenarios/quick.toml");

/// A scenario exactly as written in the file (every field optional).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    name: Option<String>,
    modes: Option<Vec<String>>,
    services: Option<Vec<i64>>,
    endpoints_per_service: Option<i64>,
    repeats: Option<i64>,
    case_timeout_s: Option<f64>,
    command_timeout_s: Option<f64>,
    scales: Option<BTreeMap<String, Vec<i64>>>,
    ipvs_schedulers: Option<Vec<String>>,
    datapath: Option<RawDatapath>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDatapath {
    enabled: Option<bool>,
    rate_per_s: Option<f64>,
    duration_s: Option<f64>,
    max_rate_duration_s: Option<f64>,
    connections: Option<i64>,
    keepalive: Option<bool>,
    request_timeout_ms: Option<i64>,
}

/// Data-path settings, every default filled in.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Datapath {
    /// Measure the data path (default true).
    pub enabled: bool,
    /// Open-loop offered rate per target, requests per second (default 300).
    pub rate_per_s: f64,
    /// Length of each open-loop phase, seconds (default 3).
    pub duration_s: f64,
    /// Length of the closed-loop max-rate phase, seconds (default 2; 0 skips it).
    pub max_rate_duration_s: f64,
    /// Concurrent connections of the max-rate phase (default 32).
    pub connections: usize,
    /// Reuse connections instead of one per request (default false: the first packet
    /// of each connection is where the rule lookup happens).
    pub keepalive: bool,
    /// Per-request timeout, milliseconds (default 2000).
    pub request_timeout_ms: u64,
}

impl Default for Datapath {
    fn default() -> Self {
        Datapath {
            enabled: true,
            rate_per_s: 300.0,
            duration_s: 3.0,
            max_rate_duration_s: 2.0,
            connections: 32,
            keepalive: false,
            request_timeout_ms: 2000,
        }
    }
}

/// A scenario with every default filled in (recorded as `run.scenario.resolved`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scenario {
    /// Name of the scenario (default: the file's stem).
    pub name: String,
    /// Modes to measure, in order (default: iptables, iptables-legacy, nftables, ipvs).
    pub modes: Vec<Mode>,
    /// Service counts to measure, ascending (default: 100, 1000, 5000).
    pub services: Vec<usize>,
    /// Endpoints per service (default 10).
    pub endpoints_per_service: usize,
    /// Repetitions of each incremental sync (default 10).
    pub repeats: usize,
    /// Time limit of one case, seconds (default 300). A case past it fails and the
    /// larger scales of its mode are skipped.
    pub case_timeout_s: f64,
    /// Time limit of one external command, seconds (default 300).
    pub command_timeout_s: f64,
    /// Per-mode service counts overriding `services` (e.g. `nftables = [100, 1000]`).
    pub scales: BTreeMap<String, Vec<usize>>,
    /// IPVS schedulers, each its own case (default ["rr"]).
    pub ipvs_schedulers: Vec<String>,
    pub datapath: Datapath,
}

/// A rejected scenario: names the file and field, says the fix.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: {message}")]
    Parse { file: String, message: String },
    #[error("{file}: field `{field}`: {message}")]
    Field {
        file: String,
        field: String,
        message: String,
    },
}

/// Largest time field a scenario accepts, seconds (about 11 days).
pub const MAX_SECONDS: f64 = 1_000_000.0;

/// Most concurrent connections of the max-rate phase.
pub const MAX_CONNECTIONS: usize = 10_000;

/// The IPVS schedulers kpbench accepts.
pub const IPVS_SCHEDULERS: [&str; 5] = ["rr", "lc", "sh", "dh", "wrr"];

impl Scenario {
    /// Loads a scenario file.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            file: file.clone(),
            source,
        })?;
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "scenario".into());
        Scenario::parse(&text, &file, &stem)
    }

    /// The embedded quick scenario.
    pub fn quick() -> Scenario {
        Scenario::parse(QUICK_TOML, "scenarios/quick.toml", "quick")
            .expect("the embedded quick scenario is valid")
    }

    /// Parses scenario text; `file` names it in errors, `default_name` is used when the
    /// file has no `name`.
    pub fn parse(text: &str, file: &str, default_name: &str) -> Result<Scenario, ScenarioError> {
        let raw: RawScenario = toml::from_str(text).map_err(|e| ScenarioError::Parse {
            file: file.to_string(),
            message: format!(
                "{} (see scenarios/README.md for every field and its default)",
                e.to_string().trim().replace('\n', " ")
            ),
        })?;
        let field = |field: &str, message: String| ScenarioError::Field {
            file: file.to_string(),
            field: field.to_string(),
            message,
        };
        let d = Datapath::default();
        let rd = raw.datapath.unwrap_or_default();
        let modes = match raw.modes {
            None => vec![
                Mode::Iptables,
                Mode::IptablesLegacy,
                Mode::Nftables,
                Mode::Ipvs,
            ],
            Some(v) => parse_modes(&v).map_err(|m| field("modes", m))?,
        };
        let endpoints = count(
            raw.endpoints_per_service,
            10,
            0,
            "endpoints_per_service",
            &field,
        )?;
        let services = sizes(raw.services, vec![100, 1000, 5000], "services", &field)?;
        let mut scales = BTreeMap::new();
        for (mode, list) in raw.scales.unwrap_or_default() {
            if Mode::parse(&mode).is_none() {
                return Err(field(
                    &format!("scales.{mode}"),
                    format!("unknown mode {mode:?}; use one of {}", mode_names()),
                ));
            }
            let key = format!("scales.{mode}");
            scales.insert(mode, sizes(Some(list), vec![], &key, &field)?);
        }
        for (key, list) in std::iter::once(("services".to_string(), &services))
            .chain(scales.iter().map(|(k, v)| (format!("scales.{k}"), v)))
        {
            for &n in list {
                model::check_size(n as u64, endpoints as u64)
                    .map_err(|e| field(&key, format!("{e}; use fewer services or endpoints")))?;
            }
        }
        let schedulers = raw.ipvs_schedulers.unwrap_or_else(|| vec!["rr".into()]);
        if schedulers.is_empty() {
            return Err(field(
                "ipvs_schedulers",
                "is empty; list at least one, e.g. [\"rr\"]".into(),
            ));
        }
        for s in &schedulers {
            if !IPVS_SCHEDULERS.contains(&s.as_str()) {
                return Err(field(
                    "ipvs_schedulers",
                    format!(
                        "unknown scheduler {s:?}; use one of {}",
                        IPVS_SCHEDULERS.join(", ")
                    ),
                ));
            }
        }
        let seconds =
            |v: Option<f64>, default: f64, name: &str, min: f64| -> Result<f64, ScenarioError> {
                let v = v.unwrap_or(default);
                // The upper bound keeps every later Duration and Instant sum in range.
                if !v.is_finite() || v < min || v > MAX_SECONDS {
                    return Err(field(
                        name,
                        format!(
                        "{v} is out of range; use a number of seconds from {min} to {MAX_SECONDS}"
                    ),
                    ));
                }
                Ok(v)
            };
        let datapath = Datapath {
            enabled: rd.enabled.unwrap_or(d.enabled),
            rate_per_s: {
                let r = rd.rate_per_s.unwrap_or(d.rate_per_s);
                if !r.is_finite() || r <= 0.0 || r > 1_000_000.0 {
                    return Err(field(
                        "datapath.rate_per_s",
                        format!("{r} is out of range; use 1 to 1000000"),
                    ));
                }
                r
            },
            duration_s: seconds(rd.duration_s, d.duration_s, "datapath.duration_s", 0.1)?,
            max_rate_duration_s: seconds(
                rd.max_rate_duration_s,
                d.max_rate_duration_s,
                "datapath.max_rate_duration_s",
                0.0,
            )?,
            connections: {
                let n = count(
                    rd.connections,
                    d.connections as i64,
                    1,
                    "datapath.connections",
                    &field,
                )?;
                // Each is a task and a socket; more would exhaust memory or local ports.
                if n > MAX_CONNECTIONS {
                    return Err(field(
                        "datapath.connections",
                        format!("{n} is too many; use 1 to {MAX_CONNECTIONS}"),
                    ));
                }
                n
            },
            keepalive: rd.keepalive.unwrap_or(d.keepalive),
            request_timeout_ms: count(
                rd.request_timeout_ms,
                d.request_timeout_ms as i64,
                1,
                "datapath.request_timeout_ms",
                &field,
            )? as u64,
        };
        Ok(Scenario {
            name: raw.name.unwrap_or_else(|| default_name.to_string()),
            modes,
            services,
            endpoints_per_service: endpoints,
            repeats: count(raw.repeats, 10, 1, "repeats", &field)?,
            case_timeout_s: seconds(raw.case_timeout_s, 300.0, "case_timeout_s", 1.0)?,
            command_timeout_s: seconds(raw.command_timeout_s, 300.0, "command_timeout_s", 1.0)?,
            scales,
            ipvs_schedulers: schedulers,
            datapath,
        })
    }

    /// The service counts measured for `mode`.
    pub fn scales_for(&self, mode: Mode) -> &[usize] {
        self.scales
            .get(mode.name())
            .map(Vec::as_slice)
            .unwrap_or(&self.services)
    }

    pub fn case_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.case_timeout_s)
    }

    pub fn command_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.command_timeout_s)
    }

    /// Applies `--modes`, `--services`, `--endpoints` from the command line; a
    /// `--services` list replaces every per-mode scale too.
    pub fn override_with(
        &mut self,
        modes: Option<&[Mode]>,
        services: Option<&[usize]>,
        endpoints: Option<usize>,
    ) -> Result<(), ScenarioError> {
        let field = |f: &str, m: String| ScenarioError::Field {
            file: "command line".into(),
            field: f.into(),
            message: m,
        };
        if let Some(m) = modes {
            let names: Vec<String> = m.iter().map(|m| m.name().to_string()).collect();
            self.modes = parse_modes(&names).map_err(|e| field("--modes", e))?;
        }
        if let Some(e) = endpoints {
            self.endpoints_per_service = e;
        }
        if let Some(s) = services {
            let list: Vec<i64> = s.iter().map(|&n| n as i64).collect();
            self.services = sizes(Some(list), vec![], "--services", &field)?;
            self.scales.clear();
        }
        let all: Vec<usize> = self
            .services
            .iter()
            .chain(self.scales.values().flatten())
            .copied()
            .collect();
        for n in all {
            model::check_size(n as u64, self.endpoints_per_service as u64).map_err(|e| {
                field(
                    "--services/--endpoints",
                    format!("{e}; use fewer services or endpoints"),
                )
            })?;
        }
        Ok(())
    }
}

fn mode_names() -> String {
    Mode::ALL
        .iter()
        .map(|m| m.name())
        .collect::<Vec<_>>()
        .join(", ")
}

fn parse_modes(list: &[String]) -> Result<Vec<Mode>, String> {
    if list.is_empty() {
        return Err(format!("is empty; list at least one of {}", mode_names()));
    }
    let mut out = Vec::new();
    for m in list {
        let mode = Mode::parse(m)
            .ok_or_else(|| format!("unknown mode {m:?}; use one of {}", mode_names()))?;
        if !out.contains(&mode) {
            out.push(mode);
        }
    }
    Ok(out)
}

fn count<E>(
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

fn sizes<E>(
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

/// Resolves the scenario argument of `kpbench run`: None is the embedded quick scenario.
pub fn resolve(path: Option<&PathBuf>) -> Result<(Scenario, Option<String>), ScenarioError> {
    match path {
        None => Ok((Scenario::quick(), None)),
        Some(p) => Ok((Scenario::load(p)?, Some(p.display().to_string()))),
    }
}

#[cfg(test)]
mod tests;
