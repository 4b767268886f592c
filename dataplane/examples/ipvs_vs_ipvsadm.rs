//! IPVS live check and measurement, for a kernel with IPVS (a host with `ip_vs`; the
//! kernel lab runs the same checks through `kpbench apply` and `kpbench run`).
//!
//! `ipvs_smoke smoke [SCHEDULER] [PROFILE]`: in a fresh namespace, a full sync of 5
//! services x 3 endpoints with the profile's controller (default kube-proxy), then a
//! partial sync (one service removed, one added, one with a changed endpoint) and its
//! settle; after each, the netlink read-back, the `ipvsadm -S -n` output, the addresses
//! on kube-ipvs0 and the KUBE-CLUSTER-IP set must all match what was meant. Exit 0 when
//! they do.
//!
//! `ipvs_smoke bench SERVICES ENDPOINTS`: programs SERVICES x ENDPOINTS virtual
//! services / real servers with `IpvsClient` (batched netlink) in one fresh namespace
//! and with `ipvsadm -R` (same content) in another, and prints both wall times.
//!
//! `ipvs_smoke sync SERVICES ENDPOINTS [PROFILE]`: a full sync and an add at that size
//! with the profile's controller, with times and steps.
//!
//! `ipvs_smoke profiles SERVICES ENDPOINTS`: both profiles, each in its own namespace,
//! through a full sync, an add, a remove and an endpoint update, then settle; prints
//! each sync's time and steps, and exits 0 when both namespaces hold the same objects.

use std::collections::BTreeSet;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use dataplane::exec::Tool;
use dataplane::ipvs::render::{ipvsadm_line, Changes};
use dataplane::ipvs::{host_port, IpvsBackend, IpvsClient};
use dataplane::model::{service, spare_endpoint_ip, ServiceSet};
use dataplane::sync::{Controller, MeasuredExecutor, Profile, ProfileKind, RealExecutor};
use dataplane::{
    ApplyError, Backend, Deadline, IpvsScheduler, KubeProxyVersion, Netns, SyncReport,
};

const TIMEOUT: Duration = Duration::from_secs(1800);

/// A namespace removed on drop.
struct Ns(Netns);

impl Ns {
    fn new(tag: &str) -> Ns {
        let name = format!("kpb-ipvs-{tag}-{}", std::process::id());
        let ns = Ns(Netns::create(&name).expect("create namespace"));
        // A real server's address is checked against the local routing table, which a
        // namespace only has once it has an address (as a node always does).
        Tool::new("/usr/sbin/ip", &["link", "set", "lo", "up"])
            .netns(&ns.0)
            .run_ok()
            .expect("ip link set lo up");
        ns
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = self.0.delete();
    }
}

/// A profile's controller driving syncs into one namespace, at 1 s of virtual time apart.
struct Driver<'a> {
    ctl: Box<dyn Controller>,
    io: RealExecutor<'a>,
    at: Duration,
    set: Option<ServiceSet>,
}

impl<'a> Driver<'a> {
    fn new(backend: &IpvsBackend, profile: Profile, ns: &'a Netns) -> Self {
        Driver {
            ctl: backend.controller(profile),
            io: RealExecutor::new(ns, Deadline::after(TIMEOUT)),
            at: Duration::ZERO,
            set: None,
        }
    }

    fn sync(&mut self, new: &ServiceSet) -> Result<SyncReport, ApplyError> {
        self.io.begin(Deadline::after(TIMEOUT));
        let done = self.ctl.sync(&mut self.io, self.set.as_ref(), new, self.at);
        let report = self.io.finish();
        done?;
        self.set = Some(new.clone());
        self.at += Duration::from_secs(1);
        Ok(report)
    }

    fn settle(&mut self) -> Result<(), ApplyError> {
        let set = self.set.clone().unwrap_or_default();
        self.io.begin(Deadline::after(TIMEOUT));
        let done = self.ctl.settle(&mut self.io, &set, self.at);
        self.io.finish();
        done
    }
}

fn print_report(what: &str, r: &SyncReport) {
    println!(
        "{what}: wall {:.3} s, user {:.3} s, sys {:.3} s, {} bytes",
        r.cost.wall.as_secs_f64(),
        r.cost.user.as_secs_f64(),
        r.cost.sys.as_secs_f64(),
        r.payload_bytes
    );
    for s in &r.steps.steps {
        println!(
            "    {:<28} {:>6} calls {:>9.3} s wall ({})",
            s.name,
            s.calls,
            s.cost.wall.as_secs_f64(),
            s.category.name()
        );
    }
}

/// What the kernel holds, in `ipvsadm -S -n` form, sorted.
fn kernel_lines(ns: &Netns) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (s, dests) in IpvsBackend::dump(ns, Deadline::after(TIMEOUT)).expect("netlink dump") {
        let svc = host_port(s.addr, s.port);
        out.insert(format!("-A -t {svc} -s {}", s.scheduler));
        for d in dests {
            let fwd = if d.fwd_method == 0 { "-m" } else { "-?" };
            out.insert(format!(
                "-a -t {svc} -r {} {fwd} -w {}",
                host_port(d.addr, d.port),
                d.weight
            ));
        }
    }
    out
}

fn run_in(ns: &Netns, program: &str, args: &[&str]) -> String {
    Tool::new(program, args)
        .netns(ns)
        .run_ok()
        .unwrap_or_else(|e| panic!("{program} {args:?}: {e}"))
        .stdout
}

fn ipvsadm_lines(ns: &Netns) -> BTreeSet<String> {
    run_in(ns, "ipvsadm", &["-S", "-n"])
        .lines()
        .map(str::to_string)
        .collect()
}

fn expected_lines(set: &ServiceSet, sched: IpvsScheduler) -> BTreeSet<String> {
    Changes::compute(None, set, sched.name())
        .ops()
        .iter()
        .map(ipvsadm_line)
        .collect()
}

/// (objects found, objects expected) by the backend's verify.
fn read_back(backend: &IpvsBackend, ns: &Netns, set: &ServiceSet) -> (usize, usize) {
    match backend.verify(ns, set, Deadline::after(TIMEOUT)) {
        Ok(found) => (found.count, found.count),
        Err(ApplyError::Mismatch {
            found, expected, ..
        }) => (found, expected),
        Err(e) => panic!("read back: {e}"),
    }
}

fn addresses(ns: &Netns) -> BTreeSet<String> {
    run_in(
        ns,
        "/usr/sbin/ip",
        &["-4", "-o", "addr", "show", "dev", "kube-ipvs0"],
    )
    .lines()
    .filter_map(|l| l.split_whitespace().nth(3).map(str::to_string))
    .collect()
}

fn check(ns: &Netns, backend: &IpvsBackend, set: &ServiceSet, what: &str) -> bool {
    let want = expected_lines(set, backend.scheduler());
    let netlink = kernel_lines(ns);
    let ipvsadm = ipvsadm_lines(ns);
    let (count, expected) = read_back(backend, ns, set);
    let addrs = addresses(ns).len();
    let ipset = run_in(ns, "ipset", &["list", "KUBE-CLUSTER-IP"])
        .lines()
        .filter(|l| l.contains(",tcp:"))
        .count();
    println!("--- {what}: ipvsadm -S -n in the namespace:");
    for l in &ipvsadm {
        println!("{l}");
    }
    let ok = netlink == want
        && ipvsadm == want
        && count == expected
        && addrs == set.len()
        && ipset == set.len();
    println!(
        "{what}: netlink dump {} lines, ipvsadm {} lines, expected {}; read_back {count} (expected {}); kube-ipvs0 addresses {addrs}, KUBE-CLUSTER-IP entries {ipset} (expected {}) => {}",
        netlink.len(),
        ipvsadm.len(),
        want.len(),
        expected,
        set.len(),
        if ok { "OK" } else { "MISMATCH" }
    );
    ok
}

fn smoke(sched: IpvsScheduler, profile: Profile) -> bool {
    let ns = Ns::new("smoke");
    let backend = IpvsBackend::new(sched);
    let mut d = Driver::new(&backend, profile, &ns.0);
    let old = ServiceSet::generate(5, 3);
    print_report("full sync", &d.sync(&old).expect("full sync"));
    let mut ok = check(&ns.0, &backend, &old, "full sync");
    let mut new = old.clone();
    new.remove(1);
    new.upsert(service(7, 3));
    let mut changed = new.get(3).unwrap().clone();
    changed.endpoints[0].ip = spare_endpoint_ip(0);
    new.upsert(changed);
    print_report("partial sync", &d.sync(&new).expect("partial sync"));
    d.settle().expect("settle");
    ok &= check(&ns.0, &backend, &new, "partial sync");
    ok
}

fn bench(services: usize, endpoints: usize) {
    let set = ServiceSet::generate(services, endpoints);
    let changes = Changes::compute(None, &set, "rr");
    let ops = changes.ops();

    let ns = Ns::new("bench-nl");
    let start = Instant::now();
    let mut client = IpvsClient::open_in(&ns.0).expect("open IPVS client");
    client.set_timeout(TIMEOUT).expect("timeout");
    let opened = start.elapsed();
    let stats = client.execute_ok(&ops, |_, _| false).expect("program IPVS");
    let nl = start.elapsed();
    let read = Instant::now();
    let count = kernel_lines(&ns.0).len();
    println!(
        "kpbench netlink: {} requests ({} bytes) in {:.3} s (socket + family {:.1} ms); read back {count} objects by netlink dumps in {:.3} s",
        stats.requests,
        stats.bytes,
        nl.as_secs_f64(),
        opened.as_secs_f64() * 1e3,
        read.elapsed().as_secs_f64()
    );
    drop(client);
    drop(ns);

    let ns = Ns::new("bench-ipvsadm");
    let input: String = ops.iter().map(|o| ipvsadm_line(o) + "\n").collect();
    let out = Tool::new("ipvsadm", &["-R"])
        .stdin(input.as_bytes())
        .netns(&ns.0)
        .timeout(TIMEOUT)
        .run_ok()
        .expect("ipvsadm -R");
    let count = kernel_lines(&ns.0).len();
    println!(
        "ipvsadm -R: {} lines in {:.3} s (user {:.3} s, sys {:.3} s); read back {count} objects",
        ops.len(),
        out.cost.wall.as_secs_f64(),
        out.cost.user.as_secs_f64(),
        out.cost.sys.as_secs_f64()
    );
    println!(
        "speed-up: {:.2}x",
        out.cost.wall.as_secs_f64() / nl.as_secs_f64()
    );
}

/// A full sync and an add of one service at size, with the profile's controller.
fn sync(services: usize, endpoints: usize, profile: Profile) -> bool {
    let ns = Ns::new("sync");
    let backend = IpvsBackend::new(IpvsScheduler::Rr);
    let mut d = Driver::new(&backend, profile, &ns.0);
    let set = ServiceSet::generate(services, endpoints);
    let r = d.sync(&set).expect("full sync");
    print_report(&format!("{profile} full sync {services}x{endpoints}"), &r);
    let (count, expected) = read_back(&backend, &ns.0, &set);
    println!("read back {count} objects (expected {expected})");
    let mut more = set.clone();
    more.upsert(service(services, endpoints));
    let r = d.sync(&more).expect("add");
    print_report(&format!("{profile} add one service"), &r);
    count == expected
}

/// What a namespace holds, normalised: ipvsadm lines, ipset headers and members,
/// iptables-save without counters, kube-ipvs0's addresses.
fn objects(ns: &Netns, save: &str) -> String {
    let mut out: Vec<String> = ipvsadm_lines(ns).into_iter().collect();
    let mut members = BTreeSet::new();
    let mut set = String::new();
    let mut in_members = false;
    for l in run_in(ns, "ipset", &["list"]).lines() {
        if let Some(n) = l.strip_prefix("Name: ") {
            set = n.to_string();
            in_members = false;
            out.push(l.to_string());
        } else if l == "Members:" {
            in_members = true;
        } else if l.is_empty() {
            in_members = false;
        } else if in_members {
            members.insert(format!("{set} {l}"));
        } else if !l.starts_with("Size in memory:") {
            let l = match l.find(" initval ") {
                Some(p) => &l[..p],
                None => l,
            };
            out.push(l.to_string());
        }
    }
    out.extend(members);
    for l in run_in(ns, save, &[]).lines() {
        if l.starts_with('#') {
            continue;
        }
        let l = match (l.starts_with(':'), l.rfind(" [")) {
            (true, Some(p)) => &l[..p],
            _ => l,
        };
        out.push(l.to_string());
    }
    out.extend(addresses(ns));
    out.join("\n") + "\n"
}

fn profiles(services: usize, endpoints: usize) -> bool {
    let backend = IpvsBackend::new(IpvsScheduler::Rr);
    let save = if dataplane::exec::which("iptables-nft-save").is_some() {
        "iptables-nft-save"
    } else {
        "iptables-save"
    };
    let full = ServiceSet::generate(services, endpoints);
    let mut grown = full.clone();
    grown.upsert(service(services, endpoints));
    let mut updated = full.clone();
    if endpoints > 0 && services > 0 {
        let mut changed = updated.services[services / 2].clone();
        changed.endpoints[0].ip = spare_endpoint_ip(0);
        updated.upsert(changed);
    }
    let mut seen = Vec::new();
    let mut namespaces = Vec::new();
    for kind in ProfileKind::ALL {
        let profile = Profile::new(kind, KubeProxyVersion::default());
        let ns = Ns::new(kind.name());
        {
            let mut d = Driver::new(&backend, profile, &ns.0);
            for (what, set) in [
                ("full sync", &full),
                ("add", &grown),
                ("remove", &full),
                ("update endpoints", &updated),
            ] {
                let r = d
                    .sync(set)
                    .unwrap_or_else(|e| panic!("{profile} {what}: {e}"));
                print_report(&format!("{profile} {what} ({services}x{endpoints})"), &r);
            }
            d.settle().expect("settle");
        }
        seen.push(objects(&ns.0, save));
        namespaces.push(ns);
    }
    let same = seen[0] == seen[1];
    println!(
        "objects after settle: {} lines; the two profiles {}",
        seen[0].lines().count(),
        if same { "agree" } else { "DIFFER" }
    );
    if !same {
        for (a, b) in seen[0].lines().zip(seen[1].lines()) {
            if a != b {
                println!("  kube-proxy: {a}\n  floor:      {b}");
            }
        }
    }
    same
}

fn profile_arg(arg: Option<&String>) -> Result<Profile, String> {
    match arg {
        None => Ok(Profile::default()),
        Some(s) => ProfileKind::parse(s)
            .map(|k| Profile::new(k, KubeProxyVersion::default()))
            .ok_or_else(|| format!("{s:?} is not a profile ({})", ProfileKind::names())),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n = |i: usize, d: usize| args.get(i).and_then(|s| s.parse().ok()).unwrap_or(d);
    let verdict = |ok: bool| {
        if ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    };
    let result = match args.first().map(String::as_str) {
        Some("smoke") => (|| {
            let sched = match args.get(1) {
                None => IpvsScheduler::Rr,
                Some(s) => s.parse::<IpvsScheduler>().map_err(|e| e.to_string())?,
            };
            let profile = profile_arg(args.get(2))?;
            let ok = smoke(sched, profile);
            println!(
                "IPVS SMOKE {} ({sched}, {profile})",
                if ok { "OK" } else { "FAILED" }
            );
            Ok(verdict(ok))
        })(),
        Some("sync") => {
            profile_arg(args.get(3)).map(|p| verdict(sync(n(1, 10_000), n(2, 10), p)))
        }
        Some("bench") => {
            bench(n(1, 10_000), n(2, 10));
            Ok(ExitCode::SUCCESS)
        }
        Some("profiles") => Ok(verdict(profiles(n(1, 100), n(2, 10)))),
        _ => Err("usage: ipvs_smoke smoke [SCHEDULER] [PROFILE] | bench [SERVICES] [ENDPOINTS] | sync [SERVICES] [ENDPOINTS] [PROFILE] | profiles [SERVICES] [ENDPOINTS]".to_string()),
    };
    result.unwrap_or_else(|e| {
        eprintln!("ipvs_smoke: {e}");
        ExitCode::from(2)
    })
}
