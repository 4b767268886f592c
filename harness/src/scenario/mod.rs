//! Scenario files (TOML): what a run measures. Every field has a default, so an empty
//! file is a valid scenario; unknown fields and impossible sizes are rejected with an
//! error that names the file, the field and the fix.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use dataplane::floor::shape::Shape;
use dataplane::{
    floor::model, IpvsScheduler, KubeProxyVersion, Mode, ModeSpec, Profile, ProfileKind, ServiceSet,
};
use serde::{Deserialize, Serialize};

mod churn;
mod fields;
pub mod shape;

pub use churn::{Churn, ChurnKind, MAX_CHURN_RATES};

use fields::{count, seconds, sizes};

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
    full_sync_repeats: Option<i64>,
    case_timeout_s: Option<f64>,
    sync_limit_s: Option<f64>,
    command_timeout_s: Option<f64>,
    scales: Option<BTreeMap<String, Vec<i64>>>,
    ipvs_schedulers: Option<Vec<String>>,
    profiles: Option<Vec<String>>,
    kube_proxy_version: Option<String>,
    sync_interval_s: Option<f64>,
    lab_compare: Option<bool>,
    datapath: Option<RawDatapath>,
    // Shapes: a shape file, its scale, or a synthetic draw.
    shape: Option<String>,
    scale: Option<f64>,
    synthetic: Option<shape::mix::RawSynthetic>,
    churn: Option<churn::RawChurn>,
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
    transit: Option<bool>,
    replicates: Option<i64>,
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
    /// Time the SYN through the node inside the kernel per service position, and the
    /// dataplane's own CPU per request (default true; needs the BPF programs).
    pub transit: bool,
    /// Independent replicates of the transit pass (default 3, at most
    /// [`MAX_REPLICATES`]): each further one in a fresh node namespace with the VIPs
    /// shuffled over the services, so address and hash effects move between positions;
    /// the cost per position's interval comes from the spread between them.
    pub replicates: usize,
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
            transit: true,
            replicates: 3,
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
    /// Full syncs from empty per case (default 3): the first in the case's namespace,
    /// the others each in a fresh empty one, for an interval; a repeat is skipped when
    /// the case's time limit could not take it.
    pub full_sync_repeats: usize,
    /// Time limit of one case, seconds (default 300). A case past it fails and the
    /// larger scales of its mode are skipped.
    pub case_timeout_s: f64,
    /// Time limit of a kube-proxy profile's first full sync, seconds (default
    /// `case_timeout_s`, at most that). Past it the sync is recorded as over the limit
    /// with its partial timings, and the identical objects are programmed by the floor
    /// profile, whose data path is then measured.
    pub sync_limit_s: f64,
    /// Time limit of one external command, seconds (default 300).
    pub command_timeout_s: f64,
    /// Per-mode service counts overriding `services` (e.g. `nftables = [100, 1000]`).
    pub scales: BTreeMap<String, Vec<usize>>,
    /// IPVS schedulers, each its own case (default ["rr"]).
    pub ipvs_schedulers: Vec<IpvsScheduler>,
    /// Sync profiles, each its own case (default ["kube-proxy"]; "floor" adds the
    /// fastest way to the identical kernel objects, for the controller's overhead).
    #[serde(serialize_with = "serialize_profiles")]
    pub profiles: Vec<ProfileKind>,
    /// The kube-proxy release whose sync loop the `kube-proxy` profile replays
    /// (default "1.36"; "1.35" lists nftables state the older way).
    #[serde(serialize_with = "serialize_version")]
    pub kube_proxy_version: KubeProxyVersion,
    /// Virtual seconds between measured syncs, for kube-proxy's timers (default 1,
    /// its minSyncPeriod): see scenarios/README.md.
    pub sync_interval_s: f64,
    /// When IPVS runs in the kernel lab (the host has none), also run the scenario's
    /// iptables, nftables and eBPF modes there at IPVS's scales, so that one kernel
    /// holds the comparison (default true).
    pub lab_compare: bool,
    pub datapath: Datapath,
    /// The shape file the services come from (default none: N x E ClusterIPs), its
    /// path resolved against the scenario file's folder; `services` is then its count.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shape: Option<PathBuf>,
    /// The shape file's scale (default 1): every group's count times it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scale: Option<f64>,
    /// The distributions a synthetic shape of each service count is drawn from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub synthetic: Option<shape::mix::Synthetic>,
    /// The shape file as read and scaled.
    #[serde(skip)]
    pub shape_file: Option<Shape>,
    /// The churn phase of each case (`[churn]`; none when the table is absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub churn: Option<Churn>,
}

fn serialize_profiles<S: serde::Serializer>(v: &[ProfileKind], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(v.iter().map(|p| p.name()))
}

fn serialize_version<S: serde::Serializer>(v: &KubeProxyVersion, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(v.name())
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

/// Most replicates of the transit pass.
pub const MAX_REPLICATES: usize = 20;

/// Most concurrent connections of the max-rate phase.
pub const MAX_CONNECTIONS: usize = 10_000;

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
    /// file has no `name`. Fields are checked one after another in a fixed order, and
    /// the first bad one is reported.
    pub fn parse(text: &str, file: &str, default_name: &str) -> Result<Scenario, ScenarioError> {
        let mut raw: RawScenario = toml::from_str(text).map_err(|e| ScenarioError::Parse {
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
        let counts_given = raw.services.is_some() || raw.scales.is_some();
        let modes = fields::modes(raw.modes, &field)?;
        let endpoints = count(
            raw.endpoints_per_service,
            10,
            0,
            "endpoints_per_service",
            &field,
        )?;
        let services = sizes(raw.services, vec![100, 1000, 5000], "services", &field)?;
        let scales = fields::scales(raw.scales, &field)?;
        fields::check_sizes(&services, &scales, endpoints, &field)?;
        let schedulers = match raw.ipvs_schedulers {
            None => vec![IpvsScheduler::default()],
            Some(names) if names.is_empty() => {
                return Err(field(
                    "ipvs_schedulers",
                    "is empty; list at least one, e.g. [\"rr\"]".into(),
                ))
            }
            Some(names) => names
                .iter()
                .map(|s| IpvsScheduler::parse(s))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| field("ipvs_schedulers", e.to_string()))?,
        };
        let profiles = fields::profiles(raw.profiles, &field)?;
        let kube_proxy_version = fields::kube_proxy_version(raw.kube_proxy_version, &field)?;
        let sync_interval_s = seconds(raw.sync_interval_s, 1.0, "sync_interval_s", 0.0, &field)?;
        let datapath = fields::datapath(raw.datapath.unwrap_or_default(), &field)?;
        let churn = raw.churn.map(|c| churn::churn(c, &field)).transpose()?;
        let base = Path::new(file).parent().unwrap_or(Path::new(""));
        let shaped = shape::resolve(
            shape::Written {
                shape: raw.shape.take().map(|p| base.join(p)),
                scale: raw.scale,
                synthetic: raw.synthetic.take(),
                counts_given,
                endpoints_given: raw.endpoints_per_service.is_some(),
                endpoints,
            },
            &services,
            &scales,
            &field,
        )?;
        let (case_timeout_s, sync_limit_s) =
            fields::limits(raw.case_timeout_s, raw.sync_limit_s, &field)?;
        let mut resolved = Scenario {
            name: raw.name.unwrap_or_else(|| default_name.to_string()),
            modes,
            services,
            endpoints_per_service: endpoints,
            repeats: count(raw.repeats, 10, 1, "repeats", &field)?,
            full_sync_repeats: count(raw.full_sync_repeats, 3, 1, "full_sync_repeats", &field)?,
            case_timeout_s,
            sync_limit_s,
            command_timeout_s: seconds(
                raw.command_timeout_s,
                300.0,
                "command_timeout_s",
                1.0,
                &field,
            )?,
            scales,
            ipvs_schedulers: schedulers,
            profiles,
            kube_proxy_version,
            sync_interval_s,
            lab_compare: raw.lab_compare.unwrap_or(true),
            datapath,
            churn,
            shape: None,
            scale: None,
            synthetic: None,
            shape_file: None,
        };
        resolved.take_shape(shaped);
        Ok(resolved)
    }

    /// The services of a case of `n` services: the shape file's (scaled), a synthetic
    /// draw of `n`, or `n` ClusterIPs of `endpoints_per_service` endpoints each.
    pub fn service_set(&self, n: usize) -> ServiceSet {
        match (&self.shape_file, &self.synthetic) {
            (Some(shape), _) => shape.service_set(),
            (None, Some(mix)) => mix.draw(n).service_set(),
            (None, None) => ServiceSet::generate(n, self.endpoints_per_service),
        }
    }

    /// Takes a resolved shape: its fields, and the service counts and mean endpoints
    /// per service it gives.
    fn take_shape(&mut self, r: shape::Resolved) {
        if let Some(services) = r.services {
            self.services = services;
            self.scales.clear();
        }
        if let Some(e) = r.endpoints_per_service {
            self.endpoints_per_service = e;
        }
        self.shape = r.shape;
        self.scale = r.scale;
        self.synthetic = r.synthetic;
        self.shape_file = r.shape_file;
    }

    /// Applies `kpbench run --shape FILE [--scale X]`: the file replaces the
    /// scenario's services (and any synthetic draw).
    pub fn use_shape(&mut self, file: &Path, scale: Option<f64>) -> Result<(), ScenarioError> {
        let field = |f: &str, m: String| ScenarioError::Field {
            file: "command line".into(),
            field: if f == "shape" {
                "--shape".into()
            } else {
                format!("--{f}")
            },
            message: m,
        };
        let r = shape::resolve(
            shape::Written {
                shape: Some(file.to_path_buf()),
                scale,
                synthetic: None,
                counts_given: false,
                endpoints_given: false,
                endpoints: 0,
            },
            &self.services,
            &self.scales,
            &field,
        )?;
        self.synthetic = None;
        self.take_shape(r);
        Ok(())
    }

    /// Whether the services come from a shape (a file or a synthetic draw), not N x E.
    pub fn is_shaped(&self) -> bool {
        self.shape_file.is_some() || self.synthetic.is_some()
    }

    /// Every mode as its cases run it, in order: each IPVS scheduler is a mode of its
    /// own (ipvs (rr), ipvs (sh), ...); the other modes have none.
    pub fn mode_specs(&self) -> Vec<ModeSpec> {
        self.modes
            .iter()
            .flat_map(|&mode| match mode {
                Mode::Ipvs => self
                    .ipvs_schedulers
                    .iter()
                    .map(|&s| ModeSpec::with_scheduler(mode, s))
                    .collect(),
                _ => vec![ModeSpec::new(mode)],
            })
            .collect()
    }

    /// Every profile as its cases run it, with the kube-proxy release.
    pub fn profile_list(&self) -> Vec<Profile> {
        self.profiles
            .iter()
            .map(|&k| Profile::new(k, self.kube_proxy_version))
            .collect()
    }

    /// Virtual time between measured syncs (kube-proxy's timers count in it).
    pub fn sync_interval(&self) -> Duration {
        Duration::from_secs_f64(self.sync_interval_s)
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

    /// The limit of a kube-proxy profile's first full sync (`sync_limit_s`).
    pub fn sync_limit(&self) -> Duration {
        Duration::from_secs_f64(self.sync_limit_s)
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
        profiles: Option<&[ProfileKind]>,
    ) -> Result<(), ScenarioError> {
        let field = |f: &str, m: String| ScenarioError::Field {
            file: "command line".into(),
            field: f.into(),
            message: m,
        };
        if let Some(m) = modes {
            let names: Vec<String> = m.iter().map(|m| m.name().to_string()).collect();
            self.modes = fields::parse_modes(&names, "--modes", &field)?;
        }
        if let Some(e) = endpoints {
            self.endpoints_per_service = e;
        }
        if let Some(p) = profiles {
            let names: Vec<String> = p.iter().map(|p| p.name().to_string()).collect();
            self.profiles =
                fields::profiles(Some(names), &|_: &str, m: String| field("--profiles", m))?;
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

/// Resolves the scenario argument of `kpbench run`: None is the embedded quick scenario.
pub fn resolve(path: Option<&PathBuf>) -> Result<(Scenario, Option<String>), ScenarioError> {
    match path {
        None => Ok((Scenario::quick(), None)),
        Some(p) => Ok((Scenario::load(p)?, Some(p.display().to_string()))),
    }
}

#[cfg(test)]
mod tests;
