//! Where tc programs go on the node's veths, and how they are attached: as tcx links
//! from kernel 6.6, as cls_bpf filters under a clsact qdisc before (the lab's 6.1).
//!
//! Two users share the veths: the transit probes (which only observe, and must run
//! first at ingress and last at egress so the interval holds the node's own work) and
//! the ebpf-tc mode's load balancer (between them at ingress). [`Place`] says which.

use aya::programs::links::LinkOrder;
use aya::programs::tc::{self, NlOptions, TcAttachOptions};
use aya::util::KernelVersion;

/// The node's side of the client's veth.
pub const CLIENT_VETH: &str = "veth-client";
/// The node's side of the backends' veth.
pub const BACKEND_VETH: &str = "veth-backend";

/// A program's place among the tc programs of one hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    First,
    Middle,
    Last,
}

impl Place {
    /// cls_bpf's priority: the lowest number runs first.
    fn priority(self) -> u16 {
        match self {
            Place::First => 1,
            Place::Middle => 100,
            Place::Last => u16::MAX,
        }
    }
}

/// Whether tc programs attach as tcx links (kernel 6.6 and later) rather than as
/// cls_bpf filters under a clsact qdisc.
pub fn has_tcx() -> bool {
    KernelVersion::current().is_ok_and(|v| v >= KernelVersion::new(6, 6, 0))
}

/// The options that put a program at `place` on a hook of `iface`, adding the clsact
/// qdisc cls_bpf needs when there is none. Call it from a thread inside the
/// interface's namespace.
pub fn options(iface: &str, place: Place) -> Result<TcAttachOptions, std::io::Error> {
    if has_tcx() {
        return Ok(TcAttachOptions::TcxOrder(match place {
            Place::First => LinkOrder::first(),
            Place::Middle | Place::Last => LinkOrder::last(),
        }));
    }
    if let Err(e) = tc::qdisc_add_clsact(iface) {
        if e.kind() != std::io::ErrorKind::AlreadyExists {
            return Err(std::io::Error::new(
                e.kind(),
                format!("adding a clsact qdisc to {iface}: {e}"),
            ));
        }
    }
    Ok(TcAttachOptions::Netlink(NlOptions {
        priority: place.priority(),
        handle: 0,
    }))
}
