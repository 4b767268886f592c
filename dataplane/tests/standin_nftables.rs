//! The nft stand-in held against the kernel: the conformance sequence (full sync, add,
//! remove, update, the delayed chain deletes fired) through the kube-proxy controller,
//! once in a namespace and once on the stand-in, with the normalised `nft list table ip
//! kube-proxy` compared after each step. Privileged: without feature `root-tests`
//! reported as ignored.

mod standin;

use dataplane::nftables::NftablesBackend;

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root: scripts/test.sh runs it as root"
)]
fn the_nft_standin_agrees_with_the_kernel() {
    standin::holds(&NftablesBackend::new(), "nft", 6, 3);
}
