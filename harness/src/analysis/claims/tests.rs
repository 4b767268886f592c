use super::*;
use crate::analysis::cases::fixtures::{case, est, profiled, results, skipped, with_transit};
use crate::results::{Estimate, Status};

fn verdicts(f: &[Finding]) -> Vec<(Claim, Option<&str>, Verdict)> {
    f.iter()
        .map(|f| (f.claim, f.mode.as_deref(), f.verdict))
        .collect()
}

fn find(f: &[Finding], claim: Claim, mode: Option<&str>) -> Finding {
    f.iter()
        .find(|x| x.claim == claim && x.mode.as_deref() == mode)
        .unwrap_or_else(|| panic!("{claim:?} {mode:?} in {f:#?}"))
        .clone()
}

fn ipvs(services: u64, scheduler: &str, incr_ms: f64, ns: Estimate) -> Case {
    let mut c = with_transit(
        case("ipvs", services, 100.0, incr_ms, 1.0),
        900.0,
        2500.0,
        ns.estimate,
        30.0,
        ns,
    );
    c.ipvs_scheduler = Some(scheduler.into());
    c
}

/// iptables: lookup 15 ns per position, add 10 -> 150 ms and its CPU 2 -> 30 ms.
/// IPVS: lookup flat, add 40 ms at both scales, every scheduler ok.
fn textbook() -> Results {
    let ipt = |n, incr, cpu: f64| {
        let mut c = with_transit(
            case("iptables", n, 100.0, incr, 1.0),
            900.0,
            3000.0,
            15.0,
            30.0,
            est(15.0, 14.5, 15.5),
        );
        let s = c.sync.as_mut().unwrap();
        for d in [s.add_service.as_mut().unwrap(), &mut s.full] {
            d.cpu_user_ms = cpu / 2.0;
            d.cpu_sys_ms = cpu / 2.0;
        }
        c
    };
    let flat = est(0.01, -0.2, 0.2);
    let mut c = vec![
        ipt(100, 10.0, 2.0),
        ipt(1000, 150.0, 30.0),
        ipvs(100, "rr", 40.0, flat),
        ipvs(1000, "rr", 40.0, flat),
    ];
    c.extend(["lc", "sh", "dh"].map(|s| ipvs(100, s, 40.0, flat)));
    results("6.18.0", c)
}

#[test]
fn the_textbook_run_confirms_the_textbook() {
    let f = check(&[textbook()]);
    textbook_verdicts(&f);
    textbook_iptables_evidence(&f);
    textbook_ipvs_evidence(&f);
}

/// Every claim is confirmed, but IPVS's smooth updates where one scale only ran.
fn textbook_verdicts(f: &[Finding]) {
    assert_eq!(
        verdicts(f),
        [
            (Claim::LinearMatching, Some("iptables"), Verdict::Confirmed),
            (
                Claim::WholeTableRewrite,
                Some("iptables"),
                Verdict::Confirmed
            ),
            (Claim::CpuSoars, Some("iptables"), Verdict::Confirmed),
            (
                Claim::IpvsConstantLookup,
                Some("ipvs/dh"),
                Verdict::Confirmed
            ),
            (
                Claim::IpvsConstantLookup,
                Some("ipvs/lc"),
                Verdict::Confirmed
            ),
            (
                Claim::IpvsConstantLookup,
                Some("ipvs/rr"),
                Verdict::Confirmed
            ),
            (
                Claim::IpvsConstantLookup,
                Some("ipvs/sh"),
                Verdict::Confirmed
            ),
            (
                Claim::IpvsSmoothUpdates,
                Some("ipvs/dh"),
                Verdict::NotMeasured
            ),
            (
                Claim::IpvsSmoothUpdates,
                Some("ipvs/lc"),
                Verdict::NotMeasured
            ),
            (
                Claim::IpvsSmoothUpdates,
                Some("ipvs/rr"),
                Verdict::Confirmed
            ),
            (
                Claim::IpvsSmoothUpdates,
                Some("ipvs/sh"),
                Verdict::NotMeasured
            ),
            (Claim::IpvsSchedulers, None, Verdict::Confirmed),
        ]
    );
}

/// iptables: the evidence of linear matching, the whole-table rewrite and the CPU.
fn textbook_iptables_evidence(f: &[Finding]) {
    let a = find(f, Claim::LinearMatching, Some("iptables"));
    assert_eq!(a.env.unwrap().label(), "host 6.18.0");
    assert!(
        a.evidence.starts_with(
            "the SYN's in-kernel transit per service position at 1,000 services: grows (margin ±1.50 ns). \
             100 services: 15.0 ns (95% CI 14.5..15.5) per service position, last minus first +1485 ns"
        ),
        "{}",
        a.evidence
    );
    let b = find(f, Claim::WholeTableRewrite, Some("iptables"));
    assert!(
        b.evidence.starts_with(
            "the add-one-service sync's growth with the service count: grows (margin ±1.00 ms); p50 10.00 ms (95% CI 9.97..10.04) at 100 services, \
             150.00 ms (95% CI 149.97..150.04) at 1,000 services: +140.00 ms"
        ),
        "{}",
        b.evidence
    );
    assert!(
        b.evidence.contains("not the whole table"),
        "says what was measured"
    );
    let c = find(f, Claim::CpuSoars, Some("iptables"));
    assert!(
        c.evidence.contains("(1,000 pods)") && c.evidence.contains("(10,000 pods)"),
        "{}",
        c.evidence
    );
    assert!(c.evidence.contains("borrows the relative interval"));
}

/// IPVS: the evidence of the flat lookup, the one-scale updates and the schedulers.
fn textbook_ipvs_evidence(f: &[Finding]) {
    let d = find(f, Claim::IpvsConstantLookup, Some("ipvs/rr"));
    assert!(
        d.evidence.starts_with(
            "the SYN's in-kernel transit per service position is flat (margin ±1.50 ns): at 1,000 services"
        ),
        "{}",
        d.evidence
    );
    assert!(d
        .evidence
        .contains("; iptables: 15.0 ns (95% CI 14.5..15.5) per position."));
    let e = find(f, Claim::IpvsSmoothUpdates, Some("ipvs/lc"));
    assert!(
        e.evidence.starts_with("one scale only (100 services)"),
        "{}",
        e.evidence
    );
    let s = find(f, Claim::IpvsSchedulers, None);
    assert_eq!(
        s.evidence,
        "rr: measured ok; lc: measured ok; sh: measured ok; dh: measured ok."
    );
}

#[test]
fn a_run_against_the_textbook_refutes_it() {
    // iptables: a per-position cost whose whole interval lies inside the ±0.5 ns lookup
    // margin (flat, which refutes linear matching), flat updates, flat CPU.
    let ipt = |n| {
        with_transit(
            case("iptables-legacy", n, 100.0, 20.0, 1.0),
            900.0,
            3000.0,
            0.0,
            30.0,
            est(0.05, -0.2, 0.3),
        )
    };
    // IPVS under kube-proxy's profile: 12 ns per position against iptables-nft's 15,
    // and an add that grows with N.
    let kp = |n, incr| {
        let mut c = ipvs(n, "rr", incr, est(12.0, 11.0, 13.0));
        c.profile = Some("kube-proxy".into());
        c.kube_proxy_version = Some("1.36".into());
        c
    };
    let nft_ipt = with_transit(
        case("iptables", 1000, 100.0, 20.0, 1.0),
        900.0,
        3000.0,
        15.0,
        30.0,
        est(15.0, 14.5, 15.5),
    );
    let mut failed = skipped("ipvs", 100, "ip_vs_sh: scheduler rejected");
    failed.status = Status::Failed;
    failed.ipvs_scheduler = Some("sh".into());
    let mut lc = skipped("ipvs", 100, "ip_vs_lc module missing");
    lc.ipvs_scheduler = Some("lc".into());
    let r = results(
        "6.18.0",
        vec![
            ipt(100),
            ipt(1000),
            nft_ipt,
            kp(100, 30.0),
            kp(1000, 300.0),
            failed,
            lc,
        ],
    );
    let f = check(&[r]);
    let legacy = Some("iptables-legacy");
    assert_eq!(
        find(&f, Claim::LinearMatching, legacy).verdict,
        Verdict::Refuted
    );
    assert!(find(&f, Claim::LinearMatching, legacy)
        .evidence
        .starts_with(
            "the SYN's in-kernel transit per service position at 1,000 services: flat (margin ±0.500 ns)."
        ));
    let b = find(&f, Claim::WholeTableRewrite, legacy);
    assert_eq!(b.verdict, Verdict::Refuted);
    assert!(
        b.evidence.starts_with(
            "the add-one-service sync's growth with the service count: flat (margin ±2.00 ms); \
             p50 20.00 ms (95% CI 19.97..20.04) at 100 services, 20.00 ms (95% CI 19.97..20.04) at 1,000 services: 0.00 ms (95% CI -0.04..+0.04)"
        ),
        "{}",
        b.evidence
    );
    assert!(b
        .evidence
        .contains("replaces the whole table in the kernel"));
    assert_eq!(find(&f, Claim::CpuSoars, legacy).verdict, Verdict::Refuted);
    let d = find(&f, Claim::IpvsConstantLookup, Some("ipvs/rr"));
    assert_eq!(d.verdict, Verdict::Refuted);
    // The strictest bar: the cheapest iptables mode at the largest scale.
    assert!(
        d.evidence
            .contains("iptables-legacy: 0.050 ns (95% CI -0.200..0.300) per position"),
        "{}",
        d.evidence
    );
    let e = find(&f, Claim::IpvsSmoothUpdates, Some("ipvs/rr"));
    assert_eq!(e.verdict, Verdict::Refuted);
    assert!(e.evidence.contains("walks every service on each sync"));
    let s = find(&f, Claim::IpvsSchedulers, None);
    assert_eq!(s.verdict, Verdict::Refuted);
    assert_eq!(
        s.evidence,
        "rr: measured ok; lc: skipped (ip_vs_lc module missing); \
         sh: failed (ip_vs_sh: scheduler rejected); dh: not in this run's scenario."
    );
}

#[test]
fn what_did_not_run_is_not_measured() {
    // Only nftables: no claim about iptables or IPVS can be judged.
    let f = check(&[results(
        "6.18.0",
        vec![case("nftables", 100, 1.0, 1.0, 1.0)],
    )]);
    assert_eq!(f.len(), Claim::ALL.len());
    assert!(f
        .iter()
        .all(|f| f.verdict == Verdict::NotMeasured && f.env.is_none()));
    assert!(f[0]
        .evidence
        .starts_with("no iptables or iptables-legacy case"));
    assert_eq!(f[5].evidence, "no IPVS case ran");
    // iptables at one scale, without transit (BPF could not load): the lookup is not
    // timed, growth needs two scales.
    let mut c = case("iptables", 1000, 100.0, 20.0, 1.0);
    c.datapath.as_mut().unwrap().transit_error = Some("loading BPF programs needs root".into());
    let f = check(&[results("6.18.0", vec![c])]);
    let a = find(&f, Claim::LinearMatching, Some("iptables"));
    assert_eq!(a.verdict, Verdict::NotMeasured);
    assert_eq!(
        a.evidence,
        "lookup cost not timed: in-kernel timing did not run: loading BPF programs needs root"
    );
    let b = find(&f, Claim::WholeTableRewrite, Some("iptables"));
    assert_eq!(b.verdict, Verdict::NotMeasured);
    assert!(b.evidence.starts_with("one scale only (1,000 services)"));
    let c = find(&f, Claim::CpuSoars, Some("iptables"));
    assert_eq!(c.verdict, Verdict::NotMeasured);
    // Floor-only IPVS updates still answer (e), with the kernel's own cost.
    let floor = |n| profiled("ipvs", n, "floor", &[50.0; 3], &[2.0, 2.1, 2.2, 2.0, 2.1]);
    let f = check(&[results("6.18.0", vec![floor(100), floor(5000)])]);
    let e = find(&f, Claim::IpvsSmoothUpdates, Some("ipvs/rr (floor)"));
    assert_eq!(e.verdict, Verdict::Confirmed);
    assert!(e
        .evidence
        .contains("the kernel's own cost of an IPVS update"));
    assert_eq!(
        find(&f, Claim::IpvsConstantLookup, None).verdict,
        Verdict::NotMeasured
    );
}

#[test]
fn the_whole_table_claim_is_judged_on_what_an_update_wrote() {
    let with_payloads = |services: u64, add: u64, full: u64| {
        let mut c = profiled(
            "iptables",
            services,
            "kube-proxy",
            &[900.0, 910.0, 920.0],
            &[40.0 + services as f64 / 100.0, 41.0, 42.0],
        );
        c.rules.as_mut().unwrap().payload_bytes = Some(full);
        c.sync
            .as_mut()
            .unwrap()
            .add_service
            .as_mut()
            .unwrap()
            .payload_bytes = Some(add);
        c
    };
    let partial = results(
        "6.18",
        vec![
            with_payloads(100, 2_000, 60_000),
            with_payloads(1000, 20_000, 600_000),
        ],
    );
    let b = find(
        &check(std::slice::from_ref(&partial)),
        Claim::WholeTableRewrite,
        Some("iptables"),
    );
    assert_eq!(b.verdict, Verdict::Refuted, "{}", b.evidence);
    assert!(
        b.evidence
            .starts_with("at 1,000 services, adding one service wrote 20000 bytes against 600000 bytes for the whole table (3.3%)"),
        "{}",
        b.evidence
    );
    let whole = results("6.18", vec![with_payloads(1000, 590_000, 600_000)]);
    let b = find(
        &check(std::slice::from_ref(&whole)),
        Claim::WholeTableRewrite,
        Some("iptables"),
    );
    assert_eq!(b.verdict, Verdict::Confirmed, "{}", b.evidence);
}
