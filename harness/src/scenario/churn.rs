//! The `[churn]` table: a phase per case in which endpoint changes arrive at a steady
//! rate while the controller syncs as kube-proxy does (see scenarios/README.md).

use serde::{Deserialize, Serialize};

use dataplane::Mode;

use super::fields::{count, parse_modes, seconds, sizes};

/// Most endpoint changes per second a churn phase applies.
pub const MAX_CHURN_RATE: f64 = 10_000.0;
/// Most background connections per second to the churned services.
pub const MAX_BACKGROUND_RATE: f64 = 100_000.0;
/// Most rates one `[churn]` sweeps (each phase draws its new endpoints from a block of
/// its own in the spare address pool).
pub const MAX_CHURN_RATES: usize = 8;

/// `[churn]` exactly as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawChurn {
    enabled: Option<bool>,
    /// A number, or a list of them (a sweep).
    rate_per_s: Option<toml::Value>,
    duration_s: Option<f64>,
    kind: Option<String>,
    services: Option<i64>,
    background_rate_per_s: Option<f64>,
    modes: Option<Vec<String>>,
    scales: Option<Vec<i64>>,
}

/// What each endpoint change does to one of the churned services.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChurnKind {
    /// A rolling update: the service's oldest endpoint goes, a new one comes.
    #[default]
    Rolling,
    /// Scale up by one endpoint, then down by one (the oldest), alternately per service.
    Scale,
    /// Every endpoint of the service replaced by new ones at once.
    Replace,
}

impl ChurnKind {
    pub const ALL: [ChurnKind; 3] = [ChurnKind::Rolling, ChurnKind::Scale, ChurnKind::Replace];

    /// The name in scenarios and results.
    pub fn name(self) -> &'static str {
        match self {
            ChurnKind::Rolling => "rolling",
            ChurnKind::Scale => "scale",
            ChurnKind::Replace => "replace",
        }
    }

    pub fn parse(s: &str) -> Option<ChurnKind> {
        ChurnKind::ALL.into_iter().find(|k| k.name() == s.trim())
    }
}

/// The churn phase, every default filled in.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Churn {
    /// Run the phase (default true once the table is present).
    pub enabled: bool,
    /// Endpoint changes per second, one phase per rate in order (default `[10]`): a
    /// sweep runs every rate in the same case, one after the other, on the same rules.
    #[serde(rename = "rate_per_s")]
    pub rates_per_s: Vec<f64>,
    /// Length of the phase, seconds (default 10); a quiet phase of the same length
    /// precedes it.
    pub duration_s: f64,
    /// What a change does: rolling, scale or replace (default rolling).
    pub kind: ChurnKind,
    /// How many services the changes go round (default 10, at most the case's count):
    /// the middle ones of the rule order.
    pub services: usize,
    /// New connections per second through the churned services' VIPs during both
    /// phases (default 400), spread evenly over them: the programming latency is
    /// resolved to about `services x endpoints / background_rate_per_s` seconds.
    pub background_rate_per_s: f64,
    /// The modes whose cases have the phase (default: every mode of the scenario).
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "serialize_modes"
    )]
    pub modes: Option<Vec<Mode>>,
    /// The service counts whose cases have the phase (default: every one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scales: Option<Vec<usize>>,
}

fn serialize_modes<S: serde::Serializer>(v: &Option<Vec<Mode>>, s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(v.iter().flatten().map(|m| m.name()))
}

impl Default for Churn {
    fn default() -> Self {
        Churn {
            enabled: true,
            rates_per_s: vec![10.0],
            duration_s: 10.0,
            kind: ChurnKind::Rolling,
            services: 10,
            background_rate_per_s: 400.0,
            modes: None,
            scales: None,
        }
    }
}

impl Churn {
    pub fn duration(&self) -> std::time::Duration {
        std::time::Duration::from_secs_f64(self.duration_s)
    }

    /// Whether the case of `mode` at `services` has the phase.
    pub fn applies(&self, mode: Mode, services: usize) -> bool {
        self.enabled
            && self.modes.as_ref().is_none_or(|m| m.contains(&mode))
            && self.scales.as_ref().is_none_or(|s| s.contains(&services))
    }
}

/// A rate from just above 0 to `max`, `default` when absent.
fn rate<E>(
    v: Option<f64>,
    default: f64,
    max: f64,
    name: &str,
    field: &impl Fn(&str, String) -> E,
) -> Result<f64, E> {
    let v = v.unwrap_or(default);
    if !v.is_finite() || v <= 0.0 || v > max {
        return Err(field(
            name,
            format!("{v} is out of range; use a number per second above 0 and at most {max}"),
        ));
    }
    Ok(v)
}

/// `rate_per_s`: a number or a non-empty list of distinct ones (at most
/// [`MAX_CHURN_RATES`]), each above 0 and at most [`MAX_CHURN_RATE`]; `[10]` when absent.
fn rates<E>(v: Option<toml::Value>, field: &impl Fn(&str, String) -> E) -> Result<Vec<f64>, E> {
    const NAME: &str = "churn.rate_per_s";
    let number = |v: &toml::Value| match v {
        toml::Value::Integer(i) => Some(*i as f64),
        toml::Value::Float(f) => Some(*f),
        _ => None,
    };
    let not_a_number = |name: &str, v: &toml::Value| {
        field(
            name,
            format!(
                "{v} is not a number; use changes per second, e.g. 10, or a list, e.g. [1, 10, 50]"
            ),
        )
    };
    let list = match v {
        None => return Ok(Churn::default().rates_per_s),
        Some(toml::Value::Array(a)) => a,
        Some(one) => {
            let r = number(&one).ok_or_else(|| not_a_number(NAME, &one))?;
            return Ok(vec![rate(Some(r), r, MAX_CHURN_RATE, NAME, field)?]);
        }
    };
    if list.is_empty() || list.len() > MAX_CHURN_RATES {
        return Err(field(
            NAME,
            format!(
                "lists {} rates; list 1 to {MAX_CHURN_RATES}, e.g. [1, 10, 50]",
                list.len()
            ),
        ));
    }
    let mut out: Vec<f64> = Vec::new();
    for (i, v) in list.iter().enumerate() {
        let name = format!("{NAME}[{i}]");
        let r = number(v).ok_or_else(|| not_a_number(&name, v))?;
        let r = rate(Some(r), r, MAX_CHURN_RATE, &name, field)?;
        if out.contains(&r) {
            return Err(field(
                &name,
                format!("{r} is listed twice; list each rate once"),
            ));
        }
        out.push(r);
    }
    Ok(out)
}

/// The `[churn]` table, every default filled in.
pub(super) fn churn<E>(rc: RawChurn, field: &impl Fn(&str, String) -> E) -> Result<Churn, E> {
    let d = Churn::default();
    let kind = match rc.kind {
        None => d.kind,
        Some(k) => ChurnKind::parse(&k).ok_or_else(|| {
            let names: Vec<&str> = ChurnKind::ALL.iter().map(|k| k.name()).collect();
            field(
                "churn.kind",
                format!("unknown kind {k:?}; use one of {}", names.join(", ")),
            )
        })?,
    };
    let modes = rc
        .modes
        .map(|m| parse_modes(&m, "churn.modes", field))
        .transpose()?;
    let scales = rc
        .scales
        .map(|v| sizes(Some(v), vec![], "churn.scales", field))
        .transpose()?;
    Ok(Churn {
        modes,
        scales,
        enabled: rc.enabled.unwrap_or(d.enabled),
        rates_per_s: rates(rc.rate_per_s, field)?,
        duration_s: seconds(rc.duration_s, d.duration_s, "churn.duration_s", 0.5, field)?,
        kind,
        services: count(rc.services, d.services as i64, 1, "churn.services", field)?,
        background_rate_per_s: rate(
            rc.background_rate_per_s,
            d.background_rate_per_s,
            MAX_BACKGROUND_RATE,
            "churn.background_rate_per_s",
            field,
        )?,
    })
}

#[cfg(test)]
mod tests {
    use crate::scenario::{Scenario, ScenarioError};

    fn bad(text: &str) -> (String, String) {
        match Scenario::parse(text, "t.toml", "t") {
            Err(ScenarioError::Field { field, message, .. }) => (field, message),
            other => panic!("expected a field error, got {other:?}"),
        }
    }

    #[test]
    fn churn_defaults_fill_in_and_absence_means_no_phase() {
        let s = Scenario::parse("", "t.toml", "t").unwrap();
        assert_eq!(s.churn, None);
        let s = Scenario::parse("[churn]\nkind = \"replace\"\n", "t.toml", "t").unwrap();
        let c = s.churn.unwrap();
        assert_eq!(c.kind, super::ChurnKind::Replace);
        assert_eq!(c.rates_per_s, vec![10.0]);
        assert_eq!(c.duration_s, 10.0);
        assert_eq!(c.services, 10);
        assert!(c.enabled);
    }

    #[test]
    fn bad_churn_fields_are_named() {
        for (text, name) in [
            ("[churn]\nrate_per_s = 0\n", "churn.rate_per_s"),
            ("[churn]\nrate_per_s = -1\n", "churn.rate_per_s"),
            ("[churn]\nrate_per_s = 20000\n", "churn.rate_per_s"),
            ("[churn]\nrate_per_s = \"fast\"\n", "churn.rate_per_s"),
            ("[churn]\nrate_per_s = []\n", "churn.rate_per_s"),
            (
                "[churn]\nrate_per_s = [1, 2, 3, 4, 5, 6, 7, 8, 9]\n",
                "churn.rate_per_s",
            ),
            ("[churn]\nrate_per_s = [1, 0]\n", "churn.rate_per_s[1]"),
            ("[churn]\nrate_per_s = [1, \"x\"]\n", "churn.rate_per_s[1]"),
            ("[churn]\nrate_per_s = [10, 20000]\n", "churn.rate_per_s[1]"),
            (
                "[churn]\nrate_per_s = [10, 5, 10.0]\n",
                "churn.rate_per_s[2]",
            ),
            ("[churn]\nduration_s = 0.1\n", "churn.duration_s"),
            ("[churn]\nkind = \"wave\"\n", "churn.kind"),
            ("[churn]\nservices = 0\n", "churn.services"),
            (
                "[churn]\nbackground_rate_per_s = 0\n",
                "churn.background_rate_per_s",
            ),
            ("[churn]\nmodes = [\"ipvx\"]\n", "churn.modes"),
            ("[churn]\nmodes = []\n", "churn.modes"),
            ("[churn]\nscales = [0]\n", "churn.scales[0]"),
        ] {
            let (field, message) = bad(text);
            assert_eq!(field, name, "{text}: {message}");
        }
        let (_, message) = bad("[churn]\nkind = \"wave\"\n");
        assert!(message.contains("rolling, scale, replace"), "{message}");
    }

    #[test]
    fn a_rate_sweep_is_a_list_and_a_bare_number_one_rate() {
        let parse = |text: &str| Scenario::parse(text, "t.toml", "t").unwrap().churn.unwrap();
        assert_eq!(parse("[churn]\nrate_per_s = 5\n").rates_per_s, vec![5.0]);
        assert_eq!(parse("[churn]\nrate_per_s = 2.5\n").rates_per_s, vec![2.5]);
        let sweep = parse("[churn]\nrate_per_s = [1, 10, 50.0]\n");
        // In the order written: the phases run in it.
        assert_eq!(sweep.rates_per_s, vec![1.0, 10.0, 50.0]);
        assert_eq!(
            parse("[churn]\nrate_per_s = [50, 1]\n").rates_per_s,
            vec![50.0, 1.0]
        );
        let (_, message) = bad("[churn]\nrate_per_s = [1, 1]\n");
        assert!(message.contains("listed twice"), "{message}");
        let (_, message) = bad("[churn]\nrate_per_s = true\n");
        assert!(message.contains("[1, 10, 50]"), "{message}");
    }

    #[test]
    fn unknown_churn_field_is_rejected_with_its_name() {
        let e = Scenario::parse("[churn]\nrate = 3\n", "t.toml", "t").unwrap_err();
        assert!(e.to_string().contains("rate"), "{e}");
    }

    #[test]
    fn the_resolved_churn_table_reads_back_the_same() {
        let text =
            "[churn]\nrate_per_s = [5, 0.5]\nduration_s = 4\nkind = \"scale\"\nservices = 3\n\
                    modes = [\"nftables\"]\nscales = [1000]\n";
        let s = Scenario::parse(text, "t.toml", "t").unwrap();
        let again = toml::to_string(&s).unwrap();
        let back = Scenario::parse(&again, "t.toml", "t").unwrap();
        assert_eq!(back.churn, s.churn);
        let c = s.churn.unwrap();
        assert!(c.applies(dataplane::Mode::Nftables, 1000));
        assert!(!c.applies(dataplane::Mode::Nftables, 100));
        assert!(!c.applies(dataplane::Mode::Iptables, 1000));
    }

    #[test]
    fn the_shipped_scenarios_churn_where_they_say() {
        use dataplane::Mode;
        let quick = Scenario::quick();
        let c = quick.churn.expect("the quick scenario has a churn phase");
        for m in [Mode::Iptables, Mode::IptablesLegacy, Mode::Nftables] {
            assert!(c.applies(m, 1000) && !c.applies(m, 100), "{m}");
        }
        assert!(!c.applies(Mode::Ipvs, 100) && !c.applies(Mode::Ebpf, 1000));
        let churn = Scenario::parse(
            include_str!("../../../scenarios/churn.toml"),
            "churn.toml",
            "churn",
        )
        .unwrap();
        assert_eq!(churn.services, vec![1000, 5000, 10000]);
        assert_eq!(churn.churn.unwrap().rates_per_s, vec![1.0, 10.0, 50.0]);
        assert_eq!(c.rates_per_s, vec![10.0]);
    }
}
