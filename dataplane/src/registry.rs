//! The registry: the one file that names every mode, mapping a [`ModeSpec`] to its
//! [`Backend`]. Adding a mode is its folder, its `Mode` variant (`mode.rs`) and one
//! line here.

use crate::floor::backend::{Backend, NotImplemented};
use crate::floor::sync::KubeProxyVersion;
use crate::mode::{Mode, ModeSpec};

/// The backend of a mode with its settings, for the newest kube-proxy release.
pub fn backend(spec: ModeSpec) -> Result<Box<dyn Backend>, NotImplemented> {
    backend_for_release(spec, KubeProxyVersion::default())
}

/// The backend of a mode for kube-proxy `release`: the release whose objects the floor
/// programs and the read-back expects where releases write different rules (nftables).
pub fn backend_for_release(
    spec: ModeSpec,
    release: KubeProxyVersion,
) -> Result<Box<dyn Backend>, NotImplemented> {
    match spec.mode() {
        Mode::Iptables => Ok(Box::new(crate::iptables::IptablesBackend::nft())),
        Mode::IptablesLegacy => Ok(Box::new(crate::iptables::IptablesBackend::legacy())),
        Mode::Nftables => Ok(Box::new(
            crate::nftables::NftablesBackend::new().for_release(release),
        )),
        Mode::Ipvs => Ok(Box::new(crate::ipvs::IpvsBackend::new(
            spec.scheduler().unwrap_or_default(),
        ))),
        Mode::Ebpf => Ok(Box::new(crate::ebpf::EbpfBackend::socket())),
        Mode::EbpfTc => Ok(Box::new(crate::ebpf::EbpfBackend::tc())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mode::IpvsScheduler;

    #[test]
    fn every_mode_has_a_backend_that_says_what_it_needs() {
        for mode in Mode::ALL {
            let b = backend(ModeSpec::new(mode)).unwrap();
            assert_eq!(b.mode(), mode);
            // The ebpf modes run no tool: they speak bpf(2) themselves.
            assert_eq!(
                b.tools().is_empty(),
                matches!(mode, Mode::Ebpf | Mode::EbpfTc),
                "{mode}"
            );
            assert!(!b.prerequisites().kernel.is_empty(), "{mode}");
            assert!(!b.inspect_command().is_empty(), "{mode}");
        }
    }

    #[test]
    fn the_tools_of_each_mode_are_those_recorded_in_results() {
        let tools = |spec| backend(spec).unwrap().tools();
        let legacy = tools(ModeSpec::new(Mode::IptablesLegacy));
        assert_eq!(
            legacy,
            [
                "iptables-legacy",
                "iptables-legacy-restore",
                "iptables-legacy-save"
            ]
        );
        assert_eq!(tools(ModeSpec::new(Mode::Nftables)), ["nft"]);
        let ipvs = tools(ModeSpec::with_scheduler(Mode::Ipvs, IpvsScheduler::Wrr));
        assert_eq!(ipvs.len(), 3);
        assert_eq!(ipvs[0], "ipset");
    }

    #[test]
    fn prerequisites_name_the_same_packages_as_install_hints() {
        for mode in Mode::ALL {
            let Ok(b) = backend(ModeSpec::new(mode)) else {
                continue;
            };
            for t in b.prerequisites().tools {
                assert_eq!(
                    t.package,
                    crate::floor::exec::package_of(t.program),
                    "{mode}"
                );
            }
        }
    }

    #[test]
    fn the_ipvs_backend_keeps_its_scheduler() {
        let b = backend(ModeSpec::with_scheduler(Mode::Ipvs, IpvsScheduler::Sh)).unwrap();
        assert_eq!(b.spec().scheduler(), Some(IpvsScheduler::Sh));
        assert_eq!(b.inspect_command(), "ipvsadm -S -n");
    }
}
