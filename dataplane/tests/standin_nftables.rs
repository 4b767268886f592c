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

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root: scripts/test.sh runs it as root"
)]
fn the_nft_standin_agrees_with_the_kernel_on_every_rendered_feature() {
    use dataplane::conformance::featured::featured_sequence;
    use dataplane::conformance::{compare, differences};
    use dataplane::Backend;
    let backend = NftablesBackend::new();
    standin::require(&backend);
    let ns = standin::NsGuard::new("nft-features");
    let steps = featured_sequence(4, 2, backend.renders());
    let compared = compare(&backend, &ns.0, &steps).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(compared.len(), steps.len());
    assert!(compared[0].kernel.contains("service-nodeports"));
    assert!(
        compared[0].kernel.contains("chain firewall-"),
        "{}",
        compared[0].kernel
    );
    assert!(
        compared[0].kernel.contains("set affinity-"),
        "{}",
        compared[0].kernel
    );
    if let Some(d) = differences(&compared) {
        panic!("nftables: the stand-in differs from the kernel\n{d}");
    }
}
