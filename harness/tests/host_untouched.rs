//! A full small run (rules and data path, every host mode) leaves the host's own (root
//! namespace's) firewall, routes, links and sysctls exactly as they were. Needs root:
//! without feature `root-tests` the run is reported as ignored. Counters and timestamps are left out: the host's own traffic
//! moves them.

mod reliability;
mod tier;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use reliability::*;

/// A tool's stdout, or a note that it is absent or failed (which must not change either).
fn output_of(program: &str, args: &[&str]) -> String {
    if dataplane::floor::exec::which(program).is_none() {
        return format!("({program} not installed)");
    }
    match Command::new(program).args(args).output() {
        Ok(o) => format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            if o.status.success() {
                String::new()
            } else {
                format!(
                    "(exit {:?}) {}",
                    o.status.code(),
                    String::from_utf8_lossy(&o.stderr)
                )
            }
        ),
        Err(e) => format!("({program}: {e})"),
    }
}

/// iptables-save without its dated comments and packet counters.
fn iptables_rules(text: &str) -> String {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| match (l.starts_with(':'), l.rfind(" [")) {
            (true, Some(at)) => &l[..at],
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `nft list ruleset` with counter values blanked.
fn nft_rules(text: &str) -> String {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut words: Vec<&str> = line.split(' ').collect();
        for i in 1..words.len() {
            if matches!(words[i - 1], "packets" | "bytes") {
                words[i] = "N";
            }
        }
        out.push(words.join(" "));
    }
    out.join("\n")
}

/// `ip -o link`: each link's name, flags and state (not its counters or queue).
fn links(text: &str) -> String {
    text.lines()
        .map(|l| {
            let mut parts = l.split_whitespace().skip(1);
            let name = parts.next().unwrap_or("");
            let flags = parts.next().unwrap_or("");
            let state = l
                .split_whitespace()
                .skip_while(|w| *w != "state")
                .nth(1)
                .unwrap_or("");
            format!("{name} {flags} {state}")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The host state kpbench must never change, by name.
fn host_state() -> BTreeMap<String, String> {
    let mut s = BTreeMap::new();
    s.insert(
        "iptables-legacy-save".into(),
        iptables_rules(&output_of("iptables-legacy-save", &[])),
    );
    s.insert(
        "iptables-nft-save".into(),
        iptables_rules(&output_of("iptables-nft-save", &[])),
    );
    s.insert(
        "nft list ruleset".into(),
        nft_rules(&output_of("nft", &["list", "ruleset"])),
    );
    s.insert(
        "ip -d route show table all".into(),
        output_of("ip", &["-d", "route", "show", "table", "all"]),
    );
    s.insert(
        "ip -o link".into(),
        links(&output_of("ip", &["-o", "link"])),
    );
    // The ebpf-tc mode's programs go on the node's veths only, never on the host's.
    s.insert("tc qdisc show".into(), output_of("tc", &["qdisc", "show"]));
    let mut sysctls: Vec<String> = [
        "net/ipv4/ip_forward",
        "net/ipv4/ip_local_port_range",
        "net/ipv4/tcp_tw_reuse",
    ]
    .map(String::from)
    .to_vec();
    if let Ok(dir) = std::fs::read_dir("/proc/sys/net/ipv4/vs") {
        sysctls.extend(
            dir.flatten()
                .map(|e| format!("net/ipv4/vs/{}", e.file_name().to_string_lossy())),
        );
    }
    for k in sysctls {
        let v =
            std::fs::read_to_string(format!("/proc/sys/{k}")).unwrap_or_else(|e| format!("({e})"));
        s.insert(format!("sysctl {k}"), v.trim().to_string());
    }
    s
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root: scripts/test.sh runs it as root"
)]
fn a_full_run_leaves_the_host_untouched() {
    tier::require_root();
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("host.toml");
    // Every mode that runs on the host (ipvs would go to the kernel lab), rules and
    // data path, kept short.
    std::fs::write(
        &scenario,
        "name = \"host-untouched\"\nmodes = [\"iptables\", \"iptables-legacy\", \"nftables\", \"ebpf\", \"ebpf-tc\"]\n\
         services = [10]\nendpoints_per_service = 2\nrepeats = 1\n\
         [datapath]\nrate_per_s = 100\nduration_s = 0.3\nmax_rate_duration_s = 0.3\n\
         connections = 4\nrequest_timeout_ms = 1000\n",
    )
    .unwrap();
    let before = host_state();
    let mut run = Run::scenario("host", dir.path(), &scenario, None);
    let (code, text, took) = run.wait(Duration::from_secs(120));
    let after = host_state();
    assert_eq!(code, Some(0), "{text}");
    let c = cases(&run.results());
    // The modes whose tools are installed ran, with the data path.
    let ran: Vec<_> = c.iter().filter(|c| c.0 == "ok").collect();
    assert!(!ran.is_empty(), "no case ran: {c:?}");
    assert!(
        c.iter().all(|c| c.0 == "ok" || c.2.contains("not found")),
        "{c:?}"
    );
    for case in run.results()["cases"].as_array().unwrap() {
        if case["status"] == "ok" {
            assert!(case["datapath"].is_object(), "no data path in {case}");
        }
    }
    for (what, was) in &before {
        assert_eq!(
            &after[what], was,
            "the run changed the host's {what}:\n--- before\n{was}\n--- after\n{}",
            after[what]
        );
    }
    nothing_left(&run.id);
    // The ebpf modes' programs went with the run: nothing is attached or pinned, and
    // the socket LB's client cgroup is gone.
    let ours: Vec<String> = dataplane::ebpf::sys::program_names()
        .unwrap()
        .into_iter()
        .filter(|n| n.starts_with("kpb_sock4") || n.starts_with("kpb_tc_"))
        .collect();
    assert!(ours.is_empty(), "eBPF LB programs left loaded: {ours:?}");
    let cgroups = dataplane::ebpf::cgroup::leftovers();
    assert!(
        !cgroups.iter().any(|n| n.contains(&run.id)),
        "client cgroups left: {cgroups:?}"
    );
    assert!(
        !dataplane::ebpf::datapath::pinned()
            .iter()
            .any(|n| n.contains(&run.id)),
        "pins left for run {}",
        run.id
    );
    eprintln!(
        "host untouched over {took:?}: {}",
        before.keys().cloned().collect::<Vec<_>>().join(", ")
    );
}

#[test]
fn the_state_readers_see_what_they_must() {
    // The comparison is only as good as its normalising: it keeps rules, drops counters.
    let save =
        "# Generated by x on Mon\n*filter\n:INPUT ACCEPT [12:345]\n-A INPUT -j DROP\nCOMMIT\n";
    assert_eq!(
        iptables_rules(save),
        "*filter\n:INPUT ACCEPT\n-A INPUT -j DROP\nCOMMIT"
    );
    assert_eq!(
        nft_rules("\t\tip daddr 1.2.3.4 counter packets 17 bytes 999 drop"),
        "\t\tip daddr 1.2.3.4 counter packets N bytes N drop"
    );
    assert_eq!(
        links("1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN mode DEFAULT"),
        "lo: <LOOPBACK,UP,LOWER_UP> UNKNOWN"
    );
}

/// The live half of the check above, split off so that it is reported as ignored, not
/// folded into a pass, when it cannot run.
#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root: scripts/test.sh runs it as root"
)]
fn the_state_readers_see_the_live_host() {
    tier::require_root();
    let s = host_state();
    assert!(s["ip -o link"].contains("lo:"), "{}", s["ip -o link"]);
    assert!(s["sysctl net/ipv4/ip_forward"] == "0" || s["sysctl net/ipv4/ip_forward"] == "1");
}
