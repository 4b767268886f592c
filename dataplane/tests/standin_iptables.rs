//! The x_tables stand-in held against the kernel, for both iptables backends: the
//! conformance sequence (full sync, add, remove, update, timers fired) through the
//! kube-proxy controller, once in a namespace and once on the stand-in, with the
//! normalised `iptables-save` compared after each step. Privileged: without feature
//! `root-tests` reported as ignored.

mod standin;

use dataplane::conformance::{compare, differences, Step};
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

/// The steps of a shape with every feature (tests/fixtures/shapes/every-feature.json):
/// its full sync, then the one local endpoint of each Local LoadBalancer turning
/// serving and terminating (the fallback), then a firewalled service losing its
/// endpoints, then the timers fired.
fn featured_steps() -> Vec<Step> {
    use dataplane::floor::spec::{Conditions, TrafficPolicy};
    let shape: dataplane::floor::shape::Shape =
        serde_json::from_str(include_str!("fixtures/shapes/every-feature.json")).unwrap();
    let full = shape.service_set();
    let mut terminating = full.clone();
    for svc in full.services.iter() {
        let local = svc.spec.conditions.iter().find(|(_, c)| c.local);
        if let (TrafficPolicy::Local, Some((ip, c))) = (svc.spec.external_policy, local) {
            let mut svc = svc.clone();
            let c = Conditions {
                ready: false,
                terminating: true,
                ..*c
            };
            svc.spec.conditions.insert(*ip, c);
            terminating.upsert(svc);
        }
    }
    let mut emptied = terminating.clone();
    let mut svc = emptied
        .services
        .iter()
        .find(|s| !s.spec.source_ranges.is_empty())
        .unwrap()
        .clone();
    svc.endpoints.clear();
    emptied.upsert(svc);
    let step = Step::at;
    vec![
        step("full sync of every feature", &full, 0, false),
        step("local endpoints terminating", &terminating, 1, false),
        step("a firewalled service without endpoints", &emptied, 2, false),
        step("timers fired", &emptied, 2, true),
    ]
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root: scripts/test.sh runs it as root"
)]
fn the_xtables_standin_agrees_on_every_feature() {
    for (tag, b) in [
        ("nft-feat", IptablesBackend::nft()),
        ("leg-feat", IptablesBackend::legacy()),
    ] {
        standin::require(&b);
        let ns = standin::NsGuard::new(tag);
        let compared = compare(&b, &ns.0, &featured_steps()).unwrap();
        assert!(
            compared[0].kernel.contains("KUBE-FW-"),
            "{}",
            compared[0].kernel
        );
        if let Some(d) = differences(&compared) {
            panic!("{tag}: the stand-in differs from the kernel\n{d}");
        }
    }
}
