//! Which machine an environment was, and what about two environments' CPUs differs.
//!
//! An interval holds within one run on one machine: machines of one kind have differed
//! in per-rule cost far outside it. So `kpbench compare` needs to know whether two runs
//! ran on one machine. Two environments are the **same machine** when their `machine`
//! (a digest of the machine id), `cpu_model` and `cpus` agree. The kernel, microcode,
//! mitigations and governor are not part of it: comparing two kernels, or mitigations
//! on and off, on one machine is what compare is for; they are shown beside the
//! comparison when they differ.

use crate::results::Environment;

/// Whether two environments ran on one machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SameMachine {
    Yes,
    /// They differ; the field that tells them apart, e.g. "cpu model A / B".
    No(String),
    /// A side did not record its machine (results from before it was recorded) and
    /// nothing else tells them apart.
    Unknown,
}

fn or_unknown(v: Option<&str>) -> &str {
    v.unwrap_or("unknown")
}

/// Whether `a` and `b` ran on one machine, by [the module's rule](self).
pub fn same_machine(a: &Environment, b: &Environment) -> SameMachine {
    if let (Some(x), Some(y)) = (&a.cpu_model, &b.cpu_model) {
        if x != y {
            return SameMachine::No(format!("cpu model {x} / {y}"));
        }
    }
    if a.cpus != b.cpus {
        return SameMachine::No(format!("cpus {} / {}", a.cpus, b.cpus));
    }
    match (&a.machine, &b.machine) {
        (Some(x), Some(y)) if x != y => SameMachine::No(format!("machine {x} / {y}")),
        (Some(_), Some(_)) => SameMachine::Yes,
        _ => SameMachine::Unknown,
    }
}

/// An environment's fingerprint, worded for a table cell each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shown {
    pub machine: String,
    pub microcode: String,
    /// "intel_pstate/performance", or "none (no cpufreq)".
    pub cpufreq: String,
    /// The command line's mitigation flags, or "none (kernel defaults)".
    pub cmdline: String,
}

const NOT_RECORDED: &str = "not recorded";

impl Shown {
    pub fn of(e: &Environment) -> Shown {
        let machine = or_unknown(e.machine.as_deref()).to_string();
        let Some(c) = &e.cpu else {
            return Shown {
                machine,
                microcode: NOT_RECORDED.into(),
                cpufreq: NOT_RECORDED.into(),
                cmdline: NOT_RECORDED.into(),
            };
        };
        let cpufreq = match (&c.cpufreq_driver, &c.governor) {
            (None, None) => "none (no cpufreq)".to_string(),
            (d, g) => format!("{}/{}", or_unknown(d.as_deref()), or_unknown(g.as_deref())),
        };
        Shown {
            machine,
            microcode: c.microcode.clone().unwrap_or_else(|| "none shown".into()),
            cpufreq,
            cmdline: if c.cmdline_mitigations.is_empty() {
                "none (kernel defaults)".into()
            } else {
                c.cmdline_mitigations.join(" ")
            },
        }
    }
}

/// One line for an environment: "host 6.12.57, machine 1a2b.., Intel Xeon, 2 cpus,
/// microcode 0xb4, cpufreq none (no cpufreq), mitigations none (kernel defaults),
/// 19 vulnerability entries".
pub fn describe(e: &Environment) -> String {
    let s = Shown::of(e);
    let vulns = e
        .cpu
        .as_ref()
        .map(|c| format!("{} vulnerability entries", c.vulnerabilities.len()))
        .unwrap_or_else(|| format!("vulnerabilities {NOT_RECORDED}"));
    format!(
        "{} {}, machine {}, {}, {} cpus, microcode {}, cpufreq {}, mitigations {}, {vulns}",
        e.kind,
        e.kernel_release,
        s.machine,
        or_unknown(e.cpu_model.as_deref()),
        e.cpus,
        s.microcode,
        s.cpufreq,
        s.cmdline
    )
}

/// Every fingerprint field where `a` and `b` differ, "field: A / B", kernel first;
/// vulnerabilities one entry each.
pub fn differences(a: &Environment, b: &Environment) -> Vec<String> {
    let mut out = Vec::new();
    let mut diff = |name: &str, x: &str, y: &str| {
        if x != y {
            out.push(format!("{name}: {x} / {y}"));
        }
    };
    diff("kernel", &a.kernel_release, &b.kernel_release);
    diff(
        "cpu model",
        or_unknown(a.cpu_model.as_deref()),
        or_unknown(b.cpu_model.as_deref()),
    );
    diff("cpus", &a.cpus.to_string(), &b.cpus.to_string());
    let (sa, sb) = (Shown::of(a), Shown::of(b));
    diff("machine", &sa.machine, &sb.machine);
    diff("microcode", &sa.microcode, &sb.microcode);
    diff("cpufreq", &sa.cpufreq, &sb.cpufreq);
    diff("command-line mitigations", &sa.cmdline, &sb.cmdline);
    if let (Some(ca), Some(cb)) = (&a.cpu, &b.cpu) {
        let names: std::collections::BTreeSet<&String> = ca
            .vulnerabilities
            .keys()
            .chain(cb.vulnerabilities.keys())
            .collect();
        for n in names {
            let v = |c: &crate::results::CpuState| {
                c.vulnerabilities
                    .get(n)
                    .cloned()
                    .unwrap_or_else(|| "absent".into())
            };
            diff(&format!("vulnerabilities/{n}"), &v(ca), &v(cb));
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::results::CpuState;

    /// A host environment on `machine` with a recorded CPU state.
    pub(crate) fn on_machine(machine: &str) -> Environment {
        Environment {
            id: "host".into(),
            kind: "host".into(),
            kernel_release: "6.12.57".into(),
            kernel_source: None,
            cpus: 2,
            cpu_model: Some("Test CPU".into()),
            memory_bytes: None,
            machine: Some(machine.into()),
            cpu: Some(CpuState {
                microcode: Some("0xb4".into()),
                vulnerabilities: [(
                    "spectre_v2".to_string(),
                    "Mitigation: Retpolines".to_string(),
                )]
                .into(),
                cpufreq_driver: None,
                governor: None,
                cmdline_mitigations: vec![],
            }),
            tools: Default::default(),
        }
    }

    #[test]
    fn one_machine_is_machine_model_and_cpus_and_not_the_kernel() {
        let a = on_machine("aaaa");
        let mut other_kernel = a.clone();
        other_kernel.kernel_release = "6.1.0".into();
        other_kernel.cpu.as_mut().unwrap().microcode = Some("0xb6".into());
        assert_eq!(same_machine(&a, &other_kernel), SameMachine::Yes);
        assert_eq!(
            differences(&a, &other_kernel),
            ["kernel: 6.12.57 / 6.1.0", "microcode: 0xb4 / 0xb6"]
        );
        assert_eq!(
            same_machine(&a, &on_machine("bbbb")),
            SameMachine::No("machine aaaa / bbbb".into())
        );
        let mut old = a.clone();
        old.machine = None;
        old.cpu = None;
        assert_eq!(same_machine(&a, &old), SameMachine::Unknown);
        // Without machine ids, another CPU still tells them apart.
        let mut other_cpu = old.clone();
        other_cpu.cpu_model = Some("Other CPU".into());
        assert!(matches!(same_machine(&old, &other_cpu), SameMachine::No(_)));
    }

    #[test]
    fn the_fingerprint_says_none_and_not_recorded_honestly() {
        let a = on_machine("aaaa");
        let s = Shown::of(&a);
        assert_eq!(s.cpufreq, "none (no cpufreq)");
        assert_eq!(s.cmdline, "none (kernel defaults)");
        let mut b = a.clone();
        let c = b.cpu.as_mut().unwrap();
        c.cpufreq_driver = Some("intel_pstate".into());
        c.governor = Some("powersave".into());
        c.cmdline_mitigations = vec!["mitigations=off".into()];
        c.vulnerabilities
            .insert("spectre_v2".into(), "Vulnerable".into());
        assert_eq!(
            differences(&a, &b),
            [
                "cpufreq: none (no cpufreq) / intel_pstate/powersave",
                "command-line mitigations: none (kernel defaults) / mitigations=off",
                "vulnerabilities/spectre_v2: Mitigation: Retpolines / Vulnerable"
            ]
        );
        b.cpu = None;
        assert_eq!(Shown::of(&b).microcode, "not recorded");
        assert!(describe(&a).contains("machine aaaa, Test CPU, 2 cpus, microcode 0xb4"));
    }
}
