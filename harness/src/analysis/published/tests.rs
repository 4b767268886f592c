use super::*;
use crate::analysis::cases::fixtures::{case, est, results, with_transit};
use crate::results::{Case, Estimate, Trend};

fn entry(text: &str) -> Published {
    parse(text).expect("a valid file")
}

const LOOKUP: &str = r#"{"format": "kpbench.published/1", "entries": [{
  "id": "blog", "source": {"title": "t", "org": "o", "date": "2025", "url": "https://x"},
  "setup": "s", "quantity": "first_packet_latency", "statistic": "p50",
  "figures": [{"mode": "iptables", "services": 5000, "unit": "us", "quote": "chart"},
              {"mode": "iptables", "services": 20000, "unit": "us", "quote": "chart"}],
  "shapes": [{"mode": "iptables", "kpbench": ["iptables-legacy"], "expect": "grows", "words": "linear"},
             {"mode": "nftables", "kpbench": ["nftables"], "expect": "flat", "words": "flat"}],
  "differences": ["d"]}]}"#;

fn lookup_case(mode: &str, n: u64, slope: Estimate) -> Case {
    with_transit(
        case(mode, n, 1.0, 1.0, 1.0),
        3000.0,
        4000.0,
        slope.estimate,
        20.0,
        slope,
    )
}

#[test]
fn the_committed_file_reads_and_names_real_modes() {
    let p = load();
    assert!(p.entries.len() >= 3, "the three sources at least");
    for e in &p.entries {
        assert!(
            e.source.url.starts_with("https://"),
            "{}: a source URL",
            e.id
        );
        assert!(!e.differences.is_empty(), "{}: says what differs", e.id);
        for s in &e.shapes {
            for m in s.kpbench.iter().chain(s.versus.iter()) {
                let base = m.strip_suffix(" (floor)").unwrap_or(m);
                assert!(
                    dataplane::Mode::parse(base).is_some(),
                    "{}: {m} is not a kpbench mode",
                    e.id
                );
            }
        }
    }
}

#[test]
fn bad_files_name_the_entry() {
    let e = parse(r#"{"format": "kpbench.published/2", "entries": []}"#).unwrap_err();
    assert!(e.contains("kpbench.published/1"), "{e}");
    let no_modes = LOOKUP.replace(r#""kpbench": ["nftables"]"#, r#""kpbench": []"#);
    let e = parse(&no_modes).unwrap_err();
    assert!(e.contains("\"blog\"") && e.contains("nftables"), "{e}");
    let e = parse(&LOOKUP.replace("\"setup\"", "\"set-up\"")).unwrap_err();
    assert!(e.contains("scenarios/published.json"), "{e}");
}

#[test]
fn agreement_follows_the_one_rule() {
    use Agreement::*;
    assert_eq!(Agreement::of(Expect::Grows, Trend::Grows), Agrees);
    assert_eq!(Agreement::of(Expect::Flat, Trend::Flat), Agrees);
    assert_eq!(Agreement::of(Expect::Flat, Trend::Grows), Disagrees);
    assert_eq!(Agreement::of(Expect::Grows, Trend::Flat), Disagrees);
    assert_eq!(Agreement::of(Expect::Flat, Trend::Shrinks), Disagrees);
    assert_eq!(
        Agreement::of(Expect::Grows, Trend::Inconclusive),
        Inconclusive
    );
    // A lookup cheaper with more rules is an artefact, never a confirmation.
    assert_eq!(Agreement::of(Expect::Flat, Trend::Unexpected), Artefact);
}

#[test]
fn lookup_shapes_are_judged_per_scale() {
    let p = entry(LOOKUP);
    let r = results(
        "6.1",
        vec![
            lookup_case("iptables-legacy", 5000, est(2.5, 2.4, 2.6)),
            lookup_case("iptables-legacy", 20000, est(2.6, 2.5, 2.7)),
            lookup_case("nftables", 5000, est(0.01, -0.1, 0.1)),
            lookup_case("nftables", 20000, est(-0.9, -1.5, -0.6)),
            // Not one of the entry's scales: left out.
            lookup_case("nftables", 1000, est(9.0, 8.0, 10.0)),
        ],
    );
    let c = compare(&p, std::slice::from_ref(&r));
    assert_eq!(c.len(), 1);
    let (ipt, nft) = (&c[0].shapes[0].1[0], &c[0].shapes[1].1[0]);
    assert_eq!(ipt.points.len(), 2);
    assert_eq!(ipt.agreement, Some(Agreement::Agrees), "{ipt:?}");
    assert_eq!(ipt.verdict.map(|v| v.0), Some(Trend::Grows));
    // Flat at 5,000 but significantly cheaper at 20,000: an artefact, not agreement.
    assert_eq!(nft.points[0].verdict.map(|v| v.0), Some(Trend::Flat));
    assert_eq!(nft.agreement, Some(Agreement::Artefact), "{nft:?}");
}

#[test]
fn an_entry_without_cases_at_its_scales_is_left_out() {
    let p = entry(LOOKUP);
    let r = results(
        "6.1",
        vec![lookup_case("nftables", 1000, est(0.0, -0.1, 0.1))],
    );
    assert!(compare(&p, std::slice::from_ref(&r)).is_empty());
}

fn add_case(mode: &str, n: u64, add_ms: f64) -> Case {
    case(mode, n, 1.0, add_ms, 1.0)
}

#[test]
fn add_sync_growth_agrees_or_not() {
    let text = r#"{"format": "kpbench.published/1", "entries": [{
      "id": "huawei", "source": {"title": "t", "org": "o", "date": "2017", "url": "https://x"},
      "setup": "s", "quantity": "add_service_sync", "statistic": "one timing",
      "figures": [{"mode": "iptables", "services": 5000, "value": 660000, "unit": "ms", "quote": "11 min"},
                  {"mode": "iptables", "services": 20000, "value": 18000000, "unit": "ms", "quote": "5 hours"}],
      "shapes": [{"mode": "iptables", "kpbench": ["iptables-legacy"], "expect": "grows", "words": "w"},
                 {"mode": "IPVS", "kpbench": ["ipvs"], "expect": "flat", "words": "w"}],
      "differences": ["d"]}]}"#;
    let p = entry(text);
    let r = results(
        "6.1",
        vec![
            add_case("iptables-legacy", 5000, 50.0),
            add_case("iptables-legacy", 20000, 200.0),
            add_case("ipvs", 5000, 2.0),
            // IPVS's add sync growing fourfold: the published "flat" does not hold.
            add_case("ipvs", 20000, 8.0),
        ],
    );
    let c = compare(&p, std::slice::from_ref(&r));
    let (ipt, ipvs) = (&c[0].shapes[0].1[0], &c[0].shapes[1].1[0]);
    assert_eq!(ipt.agreement, Some(Agreement::Agrees), "{ipt:?}");
    assert_eq!(ipvs.verdict.map(|v| v.0), Some(Trend::Grows));
    assert_eq!(ipvs.agreement, Some(Agreement::Disagrees), "{ipvs:?}");
    assert!(ipt.evidence.contains("20,000"), "{}", ipt.evidence);
}

#[test]
fn a_mode_against_another_uses_the_same_scale() {
    let text = r#"{"format": "kpbench.published/1", "entries": [{
      "id": "tigera", "source": {"title": "t", "org": "o", "date": "2019", "url": "https://x"},
      "setup": "s", "quantity": "dataplane_cpu", "statistic": "CPU",
      "figures": [{"mode": "iptables", "services": 10, "unit": "cores", "quote": "chart"},
                  {"mode": "iptables", "services": 10000, "unit": "cores", "quote": "chart"}],
      "shapes": [{"mode": "iptables", "kpbench": ["iptables-legacy"], "versus": "ipvs",
                  "from_services": 5000, "expect": "grows", "words": "w"}],
      "differences": ["d"]}]}"#;
    let p = entry(text);
    let both = |ipvs_at: u64| {
        results(
            "6.1",
            vec![
                lookup_case("iptables-legacy", 100, est(2.5, 2.4, 2.6)),
                lookup_case("ipvs", 100, est(0.0, -0.1, 0.1)),
                lookup_case("iptables-legacy", 10000, est(2.5, 2.4, 2.6)),
                lookup_case("ipvs", ipvs_at, est(0.0, -0.1, 0.1)),
            ],
        )
    };
    let r = both(10000);
    let c = compare(&p, std::slice::from_ref(&r));
    let m = &c[0].shapes[0].1[0];
    // Below `from_services` no point is drawn.
    assert_eq!(m.points.len(), 1);
    // SYN 4,000 + 2.5 ns per position at the middle of 10,000, plus a 2,000 ns SYN-ACK.
    let mid = m.points[0].figure.unwrap().estimate;
    assert!((mid - 18.5).abs() < 0.1, "{mid}");
    assert_eq!(m.verdict.map(|v| v.0), Some(Trend::Grows), "{m:?}");
    assert_eq!(m.agreement, Some(Agreement::Agrees));
    // IPVS measured only at 100 services: no verdict, and the evidence says why.
    let r = both(100);
    let c = compare(&p, std::slice::from_ref(&r));
    let m = &c[0].shapes[0].1[0];
    assert_eq!(m.verdict, None);
    assert!(m.evidence.contains("not both measured"), "{}", m.evidence);
}
