//! Sync cost of kube-proxy's iptables modes (iptables-nft and iptables-legacy) on this
//! kernel, per sync profile, through the controllers and the real executor as the
//! runner drives them. Needs root; every namespace it creates is deleted again.
//!
//! ```text
//! cargo run --release -p dataplane --example iptables_profiles -- \
//!     [--modes nft,legacy] [--profiles kube-proxy,floor] [--endpoints 10] [--repeat 5] \
//!     100 1000
//! ```
//!
//! Per mode, size and profile, `--repeat` rounds, each in a fresh namespace: the full
//! sync from empty at virtual t=0 s, then add one service (t=1 s), remove it (t=2 s),
//! replace one endpoint of another service (t=3 s), and add one more service at t=40 s
//! (in a large cluster, the first sync whose `iptables-save` is due again). Medians of
//! the wall time; the steps of the last round.

#[path = "common/mod.rs"]
mod common;

use std::time::Duration;

use common::{fmt, median, NsGuard};
use dataplane::backend::SyncReport;
use dataplane::iptables::IptablesBackend;
use dataplane::model::{service, spare_endpoint_ip};
use dataplane::sync::{Controller, MeasuredExecutor, RealExecutor};
use dataplane::{Backend, Deadline, KubeProxyVersion, Netns, Profile, ServiceSet};

const TIMEOUT: Duration = Duration::from_secs(1800);
const OPS: [&str; 5] = ["full", "add", "remove", "update", "add@40s"];

fn sync(
    ctl: &mut dyn Controller,
    ns: &Netns,
    old: Option<&ServiceSet>,
    new: &ServiceSet,
    at: u64,
) -> SyncReport {
    let mut io = RealExecutor::new(ns, Deadline::after(TIMEOUT));
    io.begin(Deadline::after(TIMEOUT));
    ctl.sync(&mut io, old, new, Duration::from_secs(at))
        .unwrap_or_else(|e| panic!("{} at {at} s: {e}", ctl.profile()));
    io.finish()
}

/// One round: the five syncs' reports.
fn round(b: &IptablesBackend, profile: Profile, n: usize, e: usize, tag: &str) -> Vec<SyncReport> {
    let ns = NsGuard(
        Netns::create(&format!("kpbtest-ipt-{}-{tag}", std::process::id()))
            .expect("create namespace"),
    );
    let mut ctl = b.controller(profile);
    let full = ServiceSet::generate(n, e);
    let mut added = full.clone();
    added.upsert(service(n, e));
    let removed = full.clone();
    let mut updated = removed.clone();
    let mut svc = updated.get(0).expect("a service").clone();
    svc.endpoints[0].ip = spare_endpoint_ip(0);
    updated.upsert(svc);
    let mut later = updated.clone();
    later.upsert(service(n + 1, e));
    vec![
        sync(ctl.as_mut(), &ns.0, None, &full, 0),
        sync(ctl.as_mut(), &ns.0, Some(&full), &added, 1),
        sync(ctl.as_mut(), &ns.0, Some(&added), &removed, 2),
        sync(ctl.as_mut(), &ns.0, Some(&removed), &updated, 3),
        sync(ctl.as_mut(), &ns.0, Some(&updated), &later, 40),
    ]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut modes = vec!["nft".to_string(), "legacy".to_string()];
    let mut profiles = vec![Profile::KubeProxy(KubeProxyVersion::V1_36), Profile::Floor];
    let (mut endpoints, mut repeat) = (10usize, 5usize);
    let mut sizes = Vec::new();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--modes" => {
                modes = args
                    .next()
                    .expect("--modes M,M")
                    .split(',')
                    .map(String::from)
                    .collect()
            }
            "--profiles" => {
                profiles = args
                    .next()
                    .expect("--profiles P,P")
                    .split(',')
                    .map(|p| match p {
                        "floor" => Profile::Floor,
                        "kube-proxy" | "kube-proxy-1.36" => {
                            Profile::KubeProxy(KubeProxyVersion::V1_36)
                        }
                        "kube-proxy-1.35" => Profile::KubeProxy(KubeProxyVersion::V1_35),
                        other => panic!("unknown profile {other}"),
                    })
                    .collect()
            }
            "--endpoints" => {
                endpoints = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--endpoints N")
            }
            "--repeat" => {
                repeat = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--repeat N")
            }
            n => sizes.push(n.parse::<usize>().expect("a number of services")),
        }
    }
    if sizes.is_empty() {
        sizes = vec![100, 1000];
    }
    for mode in &modes {
        let b = match mode.as_str() {
            "nft" => IptablesBackend::nft(),
            "legacy" => IptablesBackend::legacy(),
            other => panic!("unknown mode {other}"),
        };
        for &n in &sizes {
            for &profile in &profiles {
                let mut walls: Vec<Vec<Duration>> = vec![Vec::new(); OPS.len()];
                let mut last = Vec::new();
                for r in 0..repeat {
                    let reports = round(&b, profile, n, endpoints, &format!("{mode}-{r}"));
                    for (i, rep) in reports.iter().enumerate() {
                        walls[i].push(rep.cost.wall);
                    }
                    last = reports;
                }
                println!(
                    "{} {n} x {endpoints}, {profile}: median of {repeat} (ms)",
                    b.xtables().restore
                );
                for (i, op) in OPS.iter().enumerate() {
                    println!(
                        "  {op:<8} {:9.1}   last round: {}",
                        median(walls[i].clone()).as_secs_f64() * 1000.0,
                        fmt(&last[i].cost)
                    );
                    for s in &last[i].steps.steps {
                        println!("      {:<26} x{:<3} {}", s.name, s.calls, fmt(&s.cost));
                    }
                }
            }
        }
    }
}
