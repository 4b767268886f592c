//! `kpbench rules` (print the payload, no root) and `kpbench apply` (program it into a
//! namespace and leave it there).

use std::io::Write;

use dataplane::{backend, model, Netns, ServiceSet};

use super::failure::{require_root, Failure};
use super::{ApplyArgs, RulesArgs};
use crate::exitcode;

fn service_set(a: &RulesArgs) -> Result<ServiceSet, Failure> {
    model::check_size(a.services as u64, a.endpoints as u64)
        .map_err(|e| Failure::usage(format!("--services/--endpoints: {e}; use fewer")))?;
    Ok(ServiceSet::generate(a.services, a.endpoints))
}

fn backend_for(a: &RulesArgs) -> Result<Box<dyn dataplane::Backend>, Failure> {
    let mode = a.mode;
    if !crate::scenario::IPVS_SCHEDULERS.contains(&a.scheduler.as_str()) {
        return Err(Failure::usage(format!(
            "--scheduler {:?}: use one of {}",
            a.scheduler,
            crate::scenario::IPVS_SCHEDULERS.join(", ")
        )));
    }
    backend::backend_with(mode, Some(&a.scheduler)).ok_or_else(|| {
        Failure::unavailable(format!(
            "mode {mode} is not implemented in this version of kpbench"
        ))
    })
}

/// `kpbench rules`: the exact payload of a full sync on stdout.
pub fn rules_main(a: RulesArgs) -> Result<i32, Failure> {
    let set = service_set(&a)?;
    let b = backend_for(&a)?;
    let text = b.render(None, &set);
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
    let timeout = std::time::Duration::from_secs(1800);
    let report = b.sync(&ns, None, &set, timeout).map_err(|e| {
        let code = if e.is_missing_tool() {
            exitcode::UNAVAILABLE
        } else {
            exitcode::INTERNAL
        };
        Failure::new(
            code,
            format!("programming {} into {}: {e}", b.mode(), a.netns),
        )
    })?;
    let found = b
        .read_back(&ns, timeout)
        .map_err(|e| Failure::new(exitcode::INTERNAL, e))?;
    println!(
        "programmed {} services x {} endpoints ({}) into network namespace {} in {:.1} ms; the kernel holds {found} {} ({} expected)",
        set.len(),
        a.rules.endpoints,
        b.mode(),
        a.netns,
        report.cost.wall.as_secs_f64() * 1000.0,
        b.object_kind(),
        b.expected_objects(&set)
    );
    let inspect = match b.mode() {
        dataplane::Mode::Ipvs => "ipvsadm -S -n",
        dataplane::Mode::Nftables => "nft list table ip kube-proxy",
        dataplane::Mode::IptablesLegacy => "iptables-legacy-save",
        _ => "iptables-nft-save",
    };
    println!(
        "inspect with: ip netns exec {ns} {inspect}; remove with: ip netns delete {ns}",
        ns = a.netns
    );
    Ok(exitcode::OK)
}
