//! The x_tables stand-in held against the kernel, for both iptables backends: the
//! conformance sequence (full sync, add, remove, update, timers fired) through the
//! kube-proxy controller, once in a namespace and once on the stand-in, with the
//! normalised `iptables-save` compared after each step. Privileged: without feature
//! `root-tests` reported as ignored.

mod standin;

use dataplane::iptables::IptablesBackend;

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root: scripts/test.sh runs it as root"
)]
fn the_xtables_standin_agrees_with_iptables_nft() {
    // Small (every sync saves) and large (1,020 endpoints: the save runs only every
    // 30 virtual seconds, so removed chains wait for the timer that settle fires).
    standin::holds(&IptablesBackend::nft(), "nft-small", 6, 3);
    standin::holds(&IptablesBackend::nft(), "nft-large", 102, 10);
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root: scripts/test.sh runs it as root"
)]
fn the_xtables_standin_agrees_with_iptables_legacy() {
    standin::holds(&IptablesBackend::legacy(), "leg-small", 6, 3);
    standin::holds(&IptablesBackend::legacy(), "leg-large", 102, 10);
}
