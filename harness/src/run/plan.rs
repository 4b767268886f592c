//! The cases a scenario asks for, in the order they run: mode by mode (each IPVS
//! scheduler a mode of its own), profile by profile, each at its scales from small to
//! large, so a mode and profile that times out gives up before its larger scales.

use dataplane::{ModeSpec, Profile};

use crate::results::{Case, Status};
use crate::scenario::Scenario;

/// One planned case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CaseSpec {
    pub mode: ModeSpec,
    pub profile: Profile,
    pub services: usize,
}

impl CaseSpec {
    /// How progress names it: `ipvs (rr), kube-proxy 1.36 x 100 services`.
    pub fn label(&self) -> String {
        format!(
            "{}, {} x {} services",
            self.mode, self.profile, self.services
        )
    }

    /// Its record, `skipped` with no reason yet and nothing measured.
    pub fn skipped(&self, environment: &str, endpoints: usize) -> Case {
        Case {
            environment: environment.to_string(),
            mode: self.mode.mode().name().into(),
            ipvs_scheduler: self.mode.scheduler().map(|s| s.name().to_string()),
            profile: Some(self.profile.kind().name().to_string()),
            kube_proxy_version: match self.profile {
                Profile::KubeProxy(v) => Some(v.name().to_string()),
                Profile::Floor => None,
            },
            services: self.services as u64,
            endpoints_per_service: endpoints as u64,
            status: Status::Skipped,
            reason: None,
            rules: None,
            sync: None,
            datapath: None,
            churn: None,
            churn_sweep: vec![],
            notes: vec![],
            elapsed_s: None,
            programmed_by: Some(self.profile.kind().name().to_string()),
            sync_over_limit_s: None,
        }
    }
}

/// Every case of `s`, in order.
pub fn plan(s: &Scenario) -> Vec<CaseSpec> {
    let mut out = Vec::new();
    for mode in s.mode_specs() {
        for profile in s.profile_list() {
            for &services in s.scales_for(mode.mode()) {
                out.push(CaseSpec {
                    mode,
                    profile,
                    services,
                });
            }
        }
    }
    out
}
