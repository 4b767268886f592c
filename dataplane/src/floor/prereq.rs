//! What a backend needs from the machine: the programs it runs (each with the Debian
//! package that ships it) and the kernel features it programs, each with the fix to
//! suggest. A missing program and a missing kernel feature are different errors: one
//! is fixed with `apt-get install`, the other with another kernel.

use std::path::Path;

use crate::floor::exec::which;

/// A program a backend runs, and the Debian package that ships it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ToolNeed {
    pub program: &'static str,
    pub package: &'static str,
}

impl ToolNeed {
    pub const fn new(program: &'static str, package: &'static str) -> Self {
        ToolNeed { program, package }
    }

    /// Whether the program is on PATH (or in the sbin directories).
    pub fn present(self) -> bool {
        which(self.program).is_some()
    }
}

/// A kernel feature a backend programs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KernelFeature {
    /// IPVS, the kernel's L4 load balancer (`ip_vs`).
    IpVs,
    /// nf_tables (`nft` and the `iptables-nft` tools).
    NfTables,
    /// x_tables' IPv4 tables (the `iptables-legacy` tools).
    IpTables,
    /// IP sets (`ipset`).
    IpSet,
    /// BPF programs on cgroup v2 socket hooks, attached by BPF links (the ebpf mode).
    CgroupBpf,
    /// BPF programs at tc (tcx from 6.6, else clsact with cls_bpf): the ebpf-tc mode.
    TcBpf,
}

/// What a look at the running kernel says about a feature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    Present,
    Absent,
    /// No sign either way: it may be a module that loads on first use.
    Unknown,
}

impl KernelFeature {
    /// How people call it.
    pub fn name(self) -> &'static str {
        match self {
            KernelFeature::IpVs => "IPVS",
            KernelFeature::NfTables => "nf_tables",
            KernelFeature::IpTables => "ip_tables",
            KernelFeature::IpSet => "ip_set",
            KernelFeature::CgroupBpf => "cgroup BPF",
            KernelFeature::TcBpf => "tc BPF",
        }
    }

    /// The kernel configuration option that provides it.
    pub fn config(self) -> &'static str {
        match self {
            KernelFeature::IpVs => "CONFIG_IP_VS",
            KernelFeature::NfTables => "CONFIG_NF_TABLES",
            KernelFeature::IpTables => "CONFIG_IP_NF_IPTABLES",
            KernelFeature::IpSet => "CONFIG_IP_SET",
            KernelFeature::CgroupBpf => "CONFIG_CGROUP_BPF",
            KernelFeature::TcBpf => "CONFIG_NET_CLS_BPF",
        }
    }

    /// The module that provides it when it is not built in.
    pub fn module(self) -> &'static str {
        match self {
            KernelFeature::IpVs => "ip_vs",
            KernelFeature::NfTables => "nf_tables",
            KernelFeature::IpTables => "ip_tables",
            KernelFeature::IpSet => "ip_set",
            // Built in or absent: there is no module.
            KernelFeature::CgroupBpf => "",
            // clsact and cls_bpf before tcx (6.6); the attach loads them.
            KernelFeature::TcBpf => "cls_bpf",
        }
    }

    /// What to do when it is missing.
    pub fn fix(self) -> String {
        match self {
            KernelFeature::CgroupBpf => return "use a kernel built with CONFIG_BPF_SYSCALL and CONFIG_CGROUP_BPF (5.7 or later for BPF links)".into(),
            KernelFeature::TcBpf => return "load sch_ingress and cls_bpf (modprobe sch_ingress cls_bpf), or use a kernel built with CONFIG_NET_SCH_INGRESS and CONFIG_NET_CLS_BPF (6.6 or later attaches by tcx without them)".into(),
            _ => {}
        }
        format!(
            "load the {m} module (modprobe {m}) or use a kernel built with {c}",
            m = self.module(),
            c = self.config()
        )
    }

    /// Looks for the feature in the running kernel. Only IPVS can be called absent:
    /// its `/proc/net/ip_vs` exists once the module is loaded or built in, and kpbench
    /// loads it (the lab) before looking. The others may be modules the kernel loads
    /// on first use, so without a sign of them they are [`Presence::Unknown`].
    pub fn probe(self) -> Presence {
        let exists = |p: &str| Path::new(p).exists();
        let present = match self {
            KernelFeature::IpVs => exists("/proc/net/ip_vs"),
            KernelFeature::IpTables => exists("/proc/net/ip_tables_names"),
            KernelFeature::CgroupBpf | KernelFeature::TcBpf => {
                exists("/sys/kernel/btf/vmlinux") || exists("/proc/sys/kernel/bpf_stats_enabled")
            }
            KernelFeature::NfTables | KernelFeature::IpSet => {
                exists(&format!("/sys/module/{}", self.module())) || module_loaded(self.module())
            }
        };
        match (present, self) {
            (true, _) => Presence::Present,
            (false, KernelFeature::IpVs) => Presence::Absent,
            (false, _) => Presence::Unknown,
        }
    }
}

impl std::fmt::Display for KernelFeature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Whether `/proc/modules` lists `name`.
fn module_loaded(name: &str) -> bool {
    std::fs::read_to_string("/proc/modules")
        .map(|t| t.lines().any(|l| l.split(' ').next() == Some(name)))
        .unwrap_or(false)
}

/// The kernel release (`uname -r`).
pub fn kernel_release() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_else(|_| "unknown".into())
}

/// Why a mode cannot run on this machine.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unavailable {
    #[error("{program} not found: install the {package} package (apt-get install {package})")]
    Tool {
        program: &'static str,
        package: &'static str,
    },
    #[error("this kernel ({release}) has no {feature} ({}): {}", feature.config(), feature.fix())]
    KernelFeature {
        feature: KernelFeature,
        release: String,
    },
}

impl Unavailable {
    /// The kernel feature that is missing, if that is the reason.
    pub fn kernel_feature(&self) -> Option<KernelFeature> {
        match self {
            Unavailable::KernelFeature { feature, .. } => Some(*feature),
            Unavailable::Tool { .. } => None,
        }
    }

    /// The error for `feature`, absent from the running kernel.
    pub fn missing_feature(feature: KernelFeature) -> Self {
        Unavailable::KernelFeature {
            feature,
            release: kernel_release(),
        }
    }
}

/// Everything a backend needs from the machine.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Prerequisites {
    /// Programs it runs, in the order the backend lists them.
    pub tools: Vec<ToolNeed>,
    /// Kernel features it programs.
    pub kernel: Vec<KernelFeature>,
}

impl Prerequisites {
    /// The programs' names.
    pub fn programs(&self) -> Vec<&'static str> {
        self.tools.iter().map(|t| t.program).collect()
    }

    /// The first thing this machine lacks: programs first, then kernel features that
    /// are known to be absent ([`KernelFeature::probe`]).
    pub fn check(&self) -> Result<(), Unavailable> {
        if let Some(t) = self.tools.iter().find(|t| !t.present()) {
            return Err(Unavailable::Tool {
                program: t.program,
                package: t.package,
            });
        }
        match self.kernel.iter().find(|f| f.probe() == Presence::Absent) {
            Some(&feature) => Err(Unavailable::missing_feature(feature)),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_program_names_its_package() {
        let p = Prerequisites {
            tools: vec![
                ToolNeed::new("sh", "dash"),
                ToolNeed::new("kpbench-no-such-tool", "kpbench-tools"),
            ],
            kernel: vec![],
        };
        assert_eq!(p.programs(), vec!["sh", "kpbench-no-such-tool"]);
        let err = p.check().unwrap_err();
        assert_eq!(err.kernel_feature(), None);
        assert_eq!(
            err.to_string(),
            "kpbench-no-such-tool not found: install the kpbench-tools package (apt-get install kpbench-tools)"
        );
    }

    #[test]
    fn a_missing_kernel_feature_says_which_option_and_the_fix() {
        let err = Unavailable::KernelFeature {
            feature: KernelFeature::IpVs,
            release: "6.18.0".into(),
        };
        assert_eq!(err.kernel_feature(), Some(KernelFeature::IpVs));
        assert_eq!(
            err.to_string(),
            "this kernel (6.18.0) has no IPVS (CONFIG_IP_VS): load the ip_vs module (modprobe ip_vs) or use a kernel built with CONFIG_IP_VS"
        );
    }

    #[test]
    fn only_ipvs_is_ever_called_absent() {
        for f in [
            KernelFeature::NfTables,
            KernelFeature::IpTables,
            KernelFeature::IpSet,
        ] {
            assert_ne!(f.probe(), Presence::Absent, "{f}");
        }
        let ipvs = KernelFeature::IpVs.probe();
        assert_eq!(
            ipvs == Presence::Present,
            Path::new("/proc/net/ip_vs").exists()
        );
    }
}
