//! Full- and partial-sync cost of kube-proxy's nftables mode on this kernel, per sync
//! profile (kube-proxy 1.35, kube-proxy 1.36, floor), through the controllers and the
//! real executor as the runner drives them. Needs root; every namespace it creates is
//! deleted again.
//!
//! ```text
//! cargo run --release -p dataplane --example nft_full_sync -- \
//!     [--profiles kube-proxy-1.35,kube-proxy-1.36,floor] [--endpoints 10] [--repeat 5] \
//!     [--full-only] 1000 2000 5000
//! ```
//!
//! Per size and profile: the full sync from empty (wall, and the user and sys time of
//! the tools, per step), then `--repeat` rounds of add one service / remove it again
//! (each remove settled before the next add, so an add never carries the delayed
//! delete), with the median of each.

#[path = "common/mod.rs"]
mod common;

use std::time::Duration;

use common::{fmt, median, NsGuard};
use dataplane::backend::SyncReport;
use dataplane::model::{service, spare_endpoint_ip, Endpoint, ENDPOINT_PORT};
use dataplane::nftables::NftablesBackend;
use dataplane::sync::{Controller, MeasuredExecutor, RealExecutor};
use dataplane::{Backend, Deadline, KubeProxyVersion, Netns, Profile, ServiceSet};

const TIMEOUT: Duration = Duration::from_secs(1800);

fn print_steps(report: &SyncReport) {
    for s in &report.steps.steps {
        println!("      {:<32} x{:<3} {}", s.name, s.calls, fmt(&s.cost));
    }
}

fn parse_profile(s: &str) -> Profile {
    match s {
        "floor" => Profile::Floor,
        "kube-proxy-1.35" => Profile::KubeProxy(KubeProxyVersion::V1_35),
        "kube-proxy-1.36" | "kube-proxy" => Profile::KubeProxy(KubeProxyVersion::V1_36),
        other => panic!("--profiles: kube-proxy-1.35, kube-proxy-1.36 or floor, not {other:?}"),
    }
}

struct Run<'a> {
    ctl: Box<dyn Controller>,
    io: RealExecutor<'a>,
    at: Duration,
}

impl Run<'_> {
    fn sync(
        &mut self,
        old: Option<&ServiceSet>,
        new: &ServiceSet,
    ) -> Result<SyncReport, dataplane::ApplyError> {
        self.io.begin(Deadline::after(TIMEOUT));
        self.ctl.sync(&mut self.io, old, new, self.at)?;
        self.at += Duration::from_secs(1);
        Ok(self.io.finish())
    }

    fn settle(&mut self, set: &ServiceSet) -> Result<SyncReport, dataplane::ApplyError> {
        self.io.begin(Deadline::after(TIMEOUT));
        self.ctl.settle(&mut self.io, set, self.at)?;
        Ok(self.io.finish())
    }
}

fn run(
    profile: Profile,
    n: usize,
    e: usize,
    repeat: usize,
    full_only: bool,
) -> Result<(), dataplane::ApplyError> {
    let name = format!("kpb-test-nft-{}-bench", std::process::id());
    let ns = NsGuard(Netns::create(&name)?);
    let backend = NftablesBackend::new();
    let set = ServiceSet::generate(n, e);
    let mut r = Run {
        ctl: backend.controller(profile),
        io: RealExecutor::new(&ns.0, Deadline::after(TIMEOUT)),
        at: Duration::ZERO,
    };
    let full = r.sync(None, &set)?;
    let found = backend.verify(&ns.0, &set, Deadline::after(TIMEOUT))?;
    println!(
        "{profile} services={n} endpoints={e} full sync: {}  payload {} B  read-back {found}",
        fmt(&full.cost),
        full.payload_bytes
    );
    print_steps(&full);
    if full_only {
        return Ok(());
    }
    let mut add_walls = Vec::new();
    let mut remove_walls = Vec::new();
    let mut last_add = None;
    for _ in 0..repeat {
        let mut add = set.clone();
        add.upsert(service(n, e));
        let c = r.sync(Some(&set), &add)?;
        add_walls.push(c.cost.wall);
        last_add = Some(c);
        let c = r.sync(Some(&add), &set)?;
        remove_walls.push(c.cost.wall);
        r.settle(&set)?;
    }
    if let Some(c) = &last_add {
        println!(
            "  partial add service:      median wall {:.3} s of {:?}",
            median(add_walls.clone()).as_secs_f64(),
            add_walls
                .iter()
                .map(|d| (d.as_secs_f64() * 1000.0).round() / 1000.0)
                .collect::<Vec<_>>()
        );
        print_steps(c);
    }
    println!(
        "  partial remove service:   median wall {:.3} s",
        median(remove_walls).as_secs_f64()
    );
    if let Some(mut svc) = set.get(n / 2).cloned() {
        svc.endpoints[0] = Endpoint {
            ip: spare_endpoint_ip(0),
            port: ENDPOINT_PORT,
        };
        let mut upd = set.clone();
        upd.upsert(svc);
        let c = r.sync(Some(&set), &upd)?;
        println!("  partial update endpoints: {}", fmt(&c.cost));
        print_steps(&c);
    }
    Ok(())
}

fn main() {
    let mut profiles = vec![
        Profile::KubeProxy(KubeProxyVersion::V1_35),
        Profile::KubeProxy(KubeProxyVersion::V1_36),
        Profile::Floor,
    ];
    let mut endpoints = 10;
    let mut repeat = 5;
    let mut full_only = false;
    let mut sizes = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--profiles" => {
                profiles = args
                    .next()
                    .expect("--profiles LIST")
                    .split(',')
                    .map(parse_profile)
                    .collect()
            }
            "--endpoints" => {
                endpoints = args
                    .next()
                    .and_then(|s| s.parse().ok())
                    .expect("--endpoints N")
            }
            "--repeat" => {
                repeat = args
                    .next()
                    .and_then(|s| s.parse().ok())
                    .expect("--repeat N")
            }
            "--full-only" => full_only = true,
            n => sizes.push(n.parse::<usize>().expect("sizes are numbers of services")),
        }
    }
    if !dataplane::netns::is_root() {
        eprintln!("nft_full_sync: needs root (it creates network namespaces)");
        std::process::exit(69);
    }
    for n in sizes {
        for &profile in &profiles {
            if let Err(e) = run(profile, n, endpoints, repeat, full_only) {
                eprintln!("nft_full_sync: {profile} {n}: {e}");
                std::process::exit(1);
            }
        }
    }
}
