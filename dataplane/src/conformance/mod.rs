//! Each stand-in held against the kernel: one sequence of syncs (full, add a service,
//! remove one, update one's endpoints, then every pending timer fired) driven through a
//! mode's kube-proxy controller twice, once with the real executor in a namespace and
//! once with the recording executor and the mode's stand-ins. After each step the same
//! read-back requests (`iptables-save`, `nft list table`, `ipvsadm -S -n`, `ipset list`,
//! BPF map dumps: each mode's `Backend::readback`) go to both executors and their answers are
//! normalised by the same function, so a stand-in that drifts from the kernel shows as
//! a difference in the step where it drifted.
//!
//! The privileged tests (`dataplane/tests/standin_*.rs`, `harness/tests/standin_*.rs`)
//! call [`compare`] directly; the IPVS one runs in the kernel lab through the hidden
//! `kpbench conformance` command, as the host kernel has no IPVS.

pub mod diff;
pub mod featured;

use std::time::Duration;

use crate::floor::backend::Backend;
use crate::floor::deadline::Deadline;
use crate::floor::error::ApplyError;
use crate::floor::model::{service, spare_endpoint_ip, ServiceSet};
use crate::floor::netns::Netns;
use crate::floor::sync::record::Recorder;
use crate::floor::sync::{
    Controller, Executor, KubeProxyVersion, MeasuredExecutor, Profile, RealExecutor,
};

/// How long any one sync or read-back may take.
const STEP_TIMEOUT: Duration = Duration::from_secs(120);

/// One step of the sequence: a sync to `set` at virtual second `at`, or (`settle`) the
/// controller's pending timers fired with `set` programmed.
#[derive(Debug, Clone)]
pub struct Step {
    pub name: &'static str,
    pub set: ServiceSet,
    pub at: Duration,
    pub settle: bool,
}

impl Step {
    /// A sync to `set` (a copy) at virtual second `at_s`, or with `settle` the timers
    /// fired with it programmed.
    pub fn at(name: &'static str, set: &ServiceSet, at_s: u64, settle: bool) -> Step {
        Step {
            name,
            set: set.clone(),
            at: Duration::from_secs(at_s),
            settle,
        }
    }
}

/// The sequence from `services` x `endpoints`: full sync (t=0), a service added (t=1),
/// service 1 removed (t=2), service 2's first endpoint replaced and its last dropped
/// (t=3), then the timers fired (settle at t=3).
pub fn sequence(services: usize, endpoints: usize) -> Vec<Step> {
    let full = ServiceSet::generate(services, endpoints);
    let mut added = full.clone();
    added.upsert(service(services, endpoints));
    let mut removed = added.clone();
    removed.remove(1);
    let mut updated = removed.clone();
    let mut svc = updated.get(2).expect("service 2 is kept").clone();
    svc.endpoints[0].ip = spare_endpoint_ip(0);
    if svc.endpoints.len() > 1 {
        svc.endpoints.pop();
    }
    updated.upsert(svc);
    let step = Step::at;
    vec![
        step("full sync", &full, 0, false),
        step("add a service", &added, 1, false),
        step("remove a service", &removed, 2, false),
        step("update a service's endpoints", &updated, 3, false),
        step("timers fired", &updated, 3, true),
    ]
}

/// What both executors read back after one step, normalised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compared {
    pub step: &'static str,
    pub kernel: String,
    pub standin: String,
}

impl Compared {
    /// A unified-style diff (`-` kernel only, `+` stand-in only) when they differ.
    pub fn difference(&self) -> Option<String> {
        (self.kernel != self.standin).then(|| diff::lines(&self.kernel, &self.standin))
    }
}

/// Every step's differences, one block per step that differs; None when all agree.
pub fn differences(compared: &[Compared]) -> Option<String> {
    let blocks: Vec<String> = compared
        .iter()
        .filter_map(|c| {
            c.difference()
                .map(|d| format!("after {} (- kernel, + stand-in):\n{d}", c.step))
        })
        .collect();
    (!blocks.is_empty()).then(|| blocks.join("\n"))
}

/// The kube-proxy profile these tests replay.
pub fn profile() -> Profile {
    Profile::KubeProxy(KubeProxyVersion::V1_36)
}

/// One step through `ctl` on `io`.
fn drive(
    ctl: &mut dyn Controller,
    io: &mut dyn Executor,
    old: Option<&ServiceSet>,
    step: &Step,
) -> Result<(), ApplyError> {
    if step.settle {
        ctl.settle(io, &step.set, step.at)
    } else {
        ctl.sync(io, old, &step.set, step.at)
    }
}

/// Runs `steps` through two fresh controllers of `backend` (kube-proxy profile), one
/// against the kernel in `ns` (which must be fresh), one against the recording
/// executor with `backend`'s stand-ins; after each step, both read-backs.
pub fn compare(
    backend: &dyn Backend,
    ns: &Netns,
    steps: &[Step],
) -> Result<Vec<Compared>, ConformanceError> {
    let mut real = RealExecutor::owned(ns.clone(), Deadline::after(STEP_TIMEOUT));
    let mut model = Recorder::new(backend.standins());
    let mut kernel_ctl = backend.controller(profile());
    let mut model_ctl = backend.controller(profile());
    let mut out = Vec::new();
    let mut old: Option<&ServiceSet> = None;
    for step in steps {
        let fail = |side: &'static str| {
            move |source| ConformanceError::Step {
                step: step.name,
                side,
                source,
            }
        };
        real.begin(Deadline::after(STEP_TIMEOUT));
        drive(kernel_ctl.as_mut(), &mut real, old, step).map_err(fail("kernel"))?;
        drive(model_ctl.as_mut(), &mut model, old, step).map_err(fail("stand-in"))?;
        real.begin(Deadline::after(STEP_TIMEOUT));
        let kernel = backend
            .readback(&mut real)
            .map_err(fail("kernel read-back"))?;
        let standin = backend
            .readback(&mut model)
            .map_err(fail("stand-in read-back"))?;
        out.push(Compared {
            step: step.name,
            kernel,
            standin,
        });
        old = Some(&step.set);
    }
    Ok(out)
}

/// A step that could not run on one side.
#[derive(Debug, thiserror::Error)]
pub enum ConformanceError {
    #[error("{step} ({side}): {source}")]
    Step {
        step: &'static str,
        side: &'static str,
        #[source]
        source: ApplyError,
    },
}

impl ConformanceError {
    /// Whether the machine lacks a tool or kernel feature the mode needs.
    pub fn is_unavailable(&self) -> bool {
        match self {
            ConformanceError::Step { source, .. } => source.is_unavailable(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sequence_adds_removes_updates_and_settles_last() {
        let steps = sequence(4, 3);
        let names: Vec<_> = steps.iter().map(|s| s.name).collect();
        assert_eq!(names.len(), 5);
        assert_eq!(steps[0].set.len(), 4);
        assert_eq!(steps[1].set.len(), 5);
        assert_eq!(steps[2].set.len(), 4);
        assert!(steps[2].set.get(1).is_none());
        let updated = steps[3].set.get(2).unwrap();
        assert_eq!(updated.endpoints.len(), 2);
        assert_eq!(updated.endpoints[0].ip, spare_endpoint_ip(0));
        assert!(steps[4].settle && !steps[3].settle);
        assert_eq!(steps[4].set, steps[3].set);
    }

    #[test]
    fn differences_name_the_step_and_the_side_of_each_line() {
        let same = Compared {
            step: "full sync",
            kernel: "a\n".into(),
            standin: "a\n".into(),
        };
        let differs = Compared {
            step: "add a service",
            kernel: "a\nb\nc\n".into(),
            standin: "a\nc\nd\n".into(),
        };
        assert_eq!(differences(std::slice::from_ref(&same)), None);
        assert_eq!(
            differences(&[same, differs]).unwrap(),
            "after add a service (- kernel, + stand-in):\n  a\n- b\n  c\n+ d\n"
        );
    }
}
