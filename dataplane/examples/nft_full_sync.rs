//! Full- and partial-sync cost of kube-proxy's nftables mode on this kernel, for the
//! statement orders in `dataplane::nftables::Shape` (see that module's docs for the
//! findings). Needs root; every namespace it creates is deleted again.
//!
//! ```text
//! cargo run --release -p dataplane --example nft_full_sync -- [--shape kube-proxy|bind-early|both] [--endpoints 10] 1000 2000 5000
//! ```

use std::time::Duration;

use dataplane::exec::Cost;
use dataplane::model::{service, spare_endpoint_ip, Endpoint, ENDPOINT_PORT};
use dataplane::nftables::{NftablesBackend, Shape};
use dataplane::{Backend, Netns, ServiceSet};

const TIMEOUT: Duration = Duration::from_secs(1800);

struct NsGuard(Netns);

impl Drop for NsGuard {
    fn drop(&mut self) {
        let _ = self.0.delete();
    }
}

fn fmt(c: &Cost) -> String {
    format!(
        "wall {:7.3} s  user {:7.3} s  sys {:7.3} s",
        c.wall.as_secs_f64(),
        c.user.as_secs_f64(),
        c.sys.as_secs_f64()
    )
}

fn run(shape: Shape, n: usize, e: usize) -> Result<(), dataplane::ApplyError> {
    let name = format!("kpb-test-nft-{}-bench", std::process::id());
    let ns = NsGuard(Netns::create(&name)?);
    let backend = NftablesBackend::with_shape(shape);
    let set = ServiceSet::generate(n, e);
    let full = backend.sync(&ns.0, None, &set, TIMEOUT)?;
    let found = backend.read_back(&ns.0, TIMEOUT)?;
    let expected = backend.expected_objects(&set);
    println!(
        "{shape:?} services={n} endpoints={e} full sync: {}  payload {} B  read-back {found}/{expected}",
        fmt(&full.cost),
        full.payload_bytes
    );
    if found != expected {
        return Err(dataplane::ApplyError::Mismatch {
            what: "nftables rules and elements",
            found,
            expected,
        });
    }
    // Partial syncs with N services present, as the runner measures them.
    let state = set;
    let added = service(n, e);
    let mut add = state.clone();
    add.upsert(added);
    let c = backend.sync(&ns.0, Some(&state), &add, TIMEOUT)?;
    println!("  partial add service:      {}", fmt(&c.cost));
    let c = backend.sync(&ns.0, Some(&add), &state, TIMEOUT)?;
    println!("  partial remove service:   {}", fmt(&c.cost));
    if let Some(mut svc) = state.get(n / 2).cloned() {
        svc.endpoints[0] = Endpoint {
            ip: spare_endpoint_ip(0),
            port: ENDPOINT_PORT,
        };
        let mut upd = state.clone();
        upd.upsert(svc);
        let c = backend.sync(&ns.0, Some(&state), &upd, TIMEOUT)?;
        println!("  partial update endpoints: {}", fmt(&c.cost));
    }
    Ok(())
}

fn main() {
    let mut shapes = vec![Shape::BindEarly];
    let mut endpoints = 10;
    let mut sizes = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--shape" => {
                shapes = match args.next().as_deref() {
                    Some("kube-proxy") => vec![Shape::KubeProxy],
                    Some("bind-early") => vec![Shape::BindEarly],
                    Some("both") => vec![Shape::KubeProxy, Shape::BindEarly],
                    other => panic!("--shape: kube-proxy, bind-early or both, not {other:?}"),
                }
            }
            "--endpoints" => {
                endpoints = args
                    .next()
                    .and_then(|s| s.parse().ok())
                    .expect("--endpoints N")
            }
            n => sizes.push(n.parse::<usize>().expect("sizes are numbers of services")),
        }
    }
    if !dataplane::netns::is_root() {
        eprintln!("nft_full_sync: needs root (it creates network namespaces)");
        std::process::exit(69);
    }
    for n in sizes {
        for &shape in &shapes {
            if let Err(e) = run(shape, n, endpoints) {
                eprintln!("nft_full_sync: {shape:?} {n}: {e}");
                std::process::exit(1);
            }
        }
    }
}
