//! What a run needs in memory, checked before it starts.
//!
//! The largest case decides: while its full sync runs, the node namespace holds its
//! rules, the tool that writes them (`nft`, `iptables-restore`) holds its parsed input,
//! and a repeated full sync in a scratch namespace holds a second copy of the rules.
//! The cost of one endpoint of one service in one copy is [`BYTES_PER_ENDPOINT`]; the
//! tool's peak is [`TOOL_BYTES_PER_ENDPOINT`] per endpoint on top; [`BASE_BYTES`] is
//! kpbench's own, its load generator and the sandbox. At 30,000 services x 10 endpoints
//! that is about 2 x 300,000 x 3 KiB + 300,000 x 13 KiB + 256 MiB, some 5.7 GiB.
//!
//! Measured once, on a shared 2-core VM (kernel 6.18, nft 1.0.6), with kube-proxy
//! 1.35's nftables full sync of 5,000 x 10 (28.6 MB of `nft -f` input, the largest
//! payload kpbench writes per endpoint) into a fresh namespace: `MemAvailable` fell by
//! 111 MB (2.2 KiB per endpoint; the slab grew 57 MB) and `nft`'s maximum resident set
//! was 642 MB (12.8 KiB per endpoint). The other modes' tools were not measured and are
//! taken to need no more.

use crate::scenario::Scenario;

/// Kernel memory one endpoint of one service takes in one copy of the rules, rounded
/// up: the drop in `MemAvailable` after the measured sync, over its 50,000 endpoints.
pub const BYTES_PER_ENDPOINT: u64 = 3 * 1024;

/// The writing tool's peak resident memory per endpoint, rounded up: `nft -f`'s
/// maximum resident set in the measured sync, over its 50,000 endpoints.
pub const TOOL_BYTES_PER_ENDPOINT: u64 = 13 * 1024;

/// kpbench, its load generator and a case's namespaces, before any rule.
pub const BASE_BYTES: u64 = 256 * 1024 * 1024;

/// The services of `s`'s largest case.
fn largest_case(s: &Scenario) -> usize {
    s.mode_specs()
        .iter()
        .flat_map(|m| s.scales_for(m.mode()).iter().copied())
        .max()
        .unwrap_or(0)
}

/// The memory `s` needs: its largest case's, by the model in the module docs.
pub fn needed_bytes(s: &Scenario) -> u64 {
    let endpoints = largest_case(s) as u64 * (s.endpoints_per_service.max(1) as u64);
    BASE_BYTES + endpoints * (2 * BYTES_PER_ENDPOINT + TOOL_BYTES_PER_ENDPOINT)
}

/// `MemAvailable` of /proc/meminfo, bytes; None when it cannot be read.
pub fn available_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    parse_available(&text)
}

fn parse_available(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Why the machine cannot run `s`, if it has less memory available than it needs: the
/// two figures and the fix.
pub fn shortfall(s: &Scenario, available: u64) -> Option<String> {
    let need = needed_bytes(s);
    (available < need).then(|| {
        format!(
            "scenario {} needs about {} MiB of memory (its largest case, {} services x {} \
             endpoints) and {} MiB are available: free memory, or run fewer services \
             (--services)",
            s.name,
            need / (1024 * 1024),
            largest_case(s),
            s.endpoints_per_service,
            available / (1024 * 1024)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(services: &[usize], endpoints: usize) -> Scenario {
        let mut s = crate::scenario::resolve(None).expect("quick").0;
        s.services = services.to_vec();
        s.scales.clear();
        s.endpoints_per_service = endpoints;
        s
    }

    #[test]
    fn the_largest_case_decides() {
        let s = scenario(&[100, 30_000], 10);
        let per = 2 * BYTES_PER_ENDPOINT + TOOL_BYTES_PER_ENDPOINT;
        assert_eq!(needed_bytes(&s), BASE_BYTES + 300_000 * per);
        // About 5.7 GiB at 30,000 x 10, as the module docs say.
        let gib = needed_bytes(&s) as f64 / (1u64 << 30) as f64;
        assert!((5.6..5.8).contains(&gib), "{gib}");
    }

    #[test]
    fn a_machine_short_of_memory_is_told_what_the_run_needs() {
        let s = scenario(&[30_000], 10);
        let why = shortfall(&s, 4 << 30).expect("4 GiB is too little");
        assert!(why.contains("30000 services x 10 endpoints"), "{why}");
        assert!(why.contains("4096 MiB are available"), "{why}");
        assert!(why.contains("--services"), "{why}");
        assert_eq!(shortfall(&s, 8 << 30), None);
    }

    #[test]
    fn mem_available_is_read_from_meminfo() {
        let text = "MemTotal:       24000000 kB\nMemFree:  1000 kB\nMemAvailable:   2000000 kB\n";
        assert_eq!(parse_available(text), Some(2_000_000 * 1024));
        assert_eq!(parse_available("MemTotal: 1 kB\n"), None);
    }
}
