//! `kpbench rules` (print the payload, no root) and `kpbench apply` (program it into a
//! namespace and leave it there).

use std::io::Write;
use std::time::Duration;

use dataplane::floor::sync::record::Recorder;
use dataplane::floor::sync::{MeasuredExecutor, RealExecutor};

use dataplane::{
    backend_for_release, floor::model, ApplyError, Backend, Deadline, ModeSpec, Netns, ServiceSet,
};

use super::failure::{require_root, Failure};
use super::{ApplyArgs, RulesArgs};
use crate::exitcode;

fn service_set(a: &RulesArgs) -> Result<ServiceSet, Failure> {
    model::check_size(a.services as u64, a.endpoints as u64)
        .map_err(|e| Failure::usage(format!("--services/--endpoints: {e}; use fewer")))?;
    Ok(ServiceSet::generate(a.services, a.endpoints))
}

/// The backend of `--mode` with `--scheduler`; a mode without a backend is bad input
/// here, as there is nothing to print or program.
fn backend_for(a: &RulesArgs) -> Result<Box<dyn Backend>, Failure> {
    backend_for_release(
        ModeSpec::with_scheduler(a.mode, a.scheduler),
        a.kube_proxy_version,
    )
    .map_err(|e| Failure::usage(format!("--mode {}: {e}; use another mode", a.mode)))
}

/// `kpbench rules`: exactly what a full sync from empty sends with `--profile`, in
/// order: every tool run (with its stdin) and netlink request, answered by stand-ins
/// for the kernel.
pub fn rules_main(a: RulesArgs) -> Result<i32, Failure> {
    let set = service_set(&a)?;
    let b = backend_for(&a)?;
    let mut recorder = Recorder::new(b.standins());
    let mut ctl = b.controller(a.profile());
    ctl.sync(&mut recorder, None, &set, Duration::ZERO)
        .map_err(|e| Failure::new(exitcode::INTERNAL, format!("rendering {}: {e}", b.mode())))?;
    let text = format!(
        "# kpbench rules --mode {} --profile {}: a full sync of {} services x {} endpoints from empty\n{}",
        b.spec(),
        a.profile(),
        a.services,
        a.endpoints,
        recorder.transcript()
    );
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(text.as_bytes()) {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            return Err(e.into());
        }
    }
    Ok(exitcode::OK)
}

/// `kpbench apply`: programs the payload into `--netns` and leaves it there.
pub fn apply_main(a: ApplyArgs) -> Result<i32, Failure> {
    let set = service_set(&a.rules)?;
    let b = backend_for(&a.rules)?;
    require_root()?;
    let ns = if Netns::named(&a.netns).exists() {
        Netns::named(&a.netns)
    } else {
        Netns::create(&a.netns).map_err(Failure::unavailable)?
    };
    let deadline = || Deadline::after(Duration::from_secs(1800));
    let mut ctl = b.controller(a.rules.profile());
    let mut io = RealExecutor::new(&ns, deadline());
    io.begin(deadline());
    let done = ctl.sync(&mut io, None, &set, Duration::ZERO);
    let report = io.finish();
    done.map_err(|e| {
        let code = if e.is_unavailable() {
            exitcode::UNAVAILABLE
        } else {
            exitcode::INTERNAL
        };
        Failure::new(
            code,
            format!("programming {} into {}: {e}", b.mode(), a.netns),
        )
    })?;
    // A read-back that disagrees is reported, not fatal: the rules stay for inspection.
    let (found, expected, what) = match b.verify(&ns, &set, deadline()) {
        Ok(o) => (o.count, o.count, o.kind),
        Err(ApplyError::Mismatch {
            what,
            found,
            expected,
        }) => (found, expected, what),
        Err(e) => return Err(Failure::new(exitcode::INTERNAL, e)),
    };
    println!(
        "programmed {} services x {} endpoints ({}, {} profile) into network namespace {} in {:.1} ms; the kernel holds {found} {what} ({expected} expected)",
        set.len(),
        a.rules.endpoints,
        b.spec(),
        a.rules.profile(),
        a.netns,
        report.cost.wall.as_secs_f64() * 1000.0,
    );
    let kept = match b.keep(&ns) {
        Ok(Some(place)) => {
            println!("kept beyond this process: pinned under {place}");
            true
        }
        Ok(None) => false,
        Err(e) => return Err(Failure::new(exitcode::INTERNAL, e)),
    };
    let inspect = b.inspect_command();
    let remove = if kept {
        "kpbench clean".to_string()
    } else {
        format!("ip netns delete {}", a.netns)
    };
    println!(
        "inspect with: ip netns exec {ns} {inspect}; remove with: {remove}",
        ns = a.netns
    );
    Ok(exitcode::OK)
}
