//! `kpbench conformance --mode M` (hidden): the stand-in conformance sequence of
//! [`dataplane::conformance`] in a fresh namespace of this machine. It exists for the
//! IPVS mode, whose kernel side only the lab has: `harness/tests/standin_ipvs.rs` runs
//! it in the guest. Prints each step's size and exits 0 when the stand-in agreed with
//! the kernel after every step, else prints the differences and exits 1.

use clap::Args;
use dataplane::conformance::featured::featured_sequence;
use dataplane::conformance::{compare, differences, sequence};
use dataplane::{backend, ModeSpec, Netns};

use super::failure::{require_root, Failure};
use crate::exitcode;

#[derive(Debug, Args)]
pub struct ConformanceArgs {
    /// Mode: iptables, iptables-legacy, nftables, ipvs (ebpf needs a topology: see
    /// harness/tests/standin_ebpf.rs).
    #[arg(long, value_parser = super::parse_mode)]
    pub mode: dataplane::Mode,
    /// Run the featured sequence instead: a service per shape feature the mode renders
    /// (`dataplane::conformance::featured`) beside 4 x 2 ClusterIPs.
    #[arg(long)]
    pub featured: bool,
}

/// Deletes the namespace when dropped, also on panic.
struct Scratch(Netns);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = self.0.delete();
    }
}

pub fn main(a: ConformanceArgs) -> Result<i32, Failure> {
    require_root()?;
    let b = backend(ModeSpec::new(a.mode))
        .map_err(|e| Failure::usage(format!("--mode {}: {e}", a.mode)))?;
    let name = format!("kpb-conformance-{}", std::process::id());
    let ns =
        Scratch(Netns::create(&name).map_err(|e| Failure::new(exitcode::INTERNAL, e.to_string()))?);
    let steps = if a.featured {
        featured_sequence(4, 2, b.renders())
    } else {
        sequence(6, 3)
    };
    let compared = compare(b.as_ref(), &ns.0, &steps).map_err(|e| {
        let code = if e.is_unavailable() {
            exitcode::UNAVAILABLE
        } else {
            exitcode::INTERNAL
        };
        Failure::new(code, format!("{}: {e}", a.mode))
    })?;
    for c in &compared {
        println!("{}: {} lines read back", c.step, c.kernel.lines().count());
    }
    match differences(&compared) {
        Some(d) => {
            println!("{}: the stand-in differs from the kernel\n{d}", a.mode);
            Ok(exitcode::INTERNAL)
        }
        None => {
            println!("STANDIN-AGREES {} {}", a.mode, compared.len());
            Ok(exitcode::OK)
        }
    }
}
