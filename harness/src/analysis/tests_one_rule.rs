//! One rule, one verdict: the claims, the capacity planner and the short answer, given
//! the same figure, give the verdict [`stats::trend`] gives it (issue 18, item 8).

use super::answer::{Entry, Pick};
use super::capacity::{plan, Budgets};
use super::claims::{check, from_trend, Claim, Verdict};
use super::{lookup, stats};
use crate::analysis::cases::fixtures::{case, est, results, with_transit};
use crate::results::{Estimate, Results, Trend};

/// The figures (a cost per service position, ns, with its 95% interval) and the verdict
/// the one rule gives each at the lookup margin's floor, ±0.5 ns.
const TABLE: [(f64, f64, f64, Trend); 7] = [
    (3.0, 2.5, 3.5, Trend::Grows),
    (0.1, -0.2, 0.4, Trend::Flat),
    // ebpf-tc at 5,000 in the old quick run: significant, inside the margin.
    (-0.023, -0.035, -0.009, Trend::Flat),
    (0.3, -0.9, 1.5, Trend::Inconclusive),
    // Excludes zero, but the effect is under the margin and the interval is not.
    (0.4, 0.1, 0.9, Trend::Inconclusive),
    // A lookup that gets cheaper with more rules ahead of it.
    (-2.0, -3.0, -1.0, Trend::Unexpected),
    (-75.7, -109.1, -42.8, Trend::Unexpected),
];

const MARGIN: f64 = stats::LOOKUP_MARGIN_FLOOR_NS;

/// One mode at 1,000 services whose transit pass gave `ns` per position.
fn run(mode: &str, ns: Estimate) -> Results {
    let c = with_transit(
        case(mode, 1000, 100.0, 20.0, 1.0),
        900.0,
        2500.0,
        ns.estimate,
        30.0,
        ns,
    );
    results("6.18.0", vec![c])
}

fn claim(r: &Results, claim: Claim) -> Verdict {
    check(std::slice::from_ref(r))
        .into_iter()
        .find(|f| f.claim == claim && f.env.is_some())
        .unwrap_or_else(|| panic!("{claim:?} judged"))
        .verdict
}

fn planner(r: &Results) -> Trend {
    let b = Budgets {
        max_update_ms: 1000.0,
        max_added_latency_us: 100.0,
    };
    let p = plan(std::slice::from_ref(r), b);
    p.envs[0].modes[0]
        .latency
        .as_ref()
        .expect("a latency model")
        .call
        .0
}

/// The short answer on a difference (runner-up minus best) whose margin is the same
/// ±0.5: a best figure of 5 (a tenth of it).
fn answer(d: Estimate) -> Trend {
    let entry = |mode: &str, value: f64| Entry {
        mode: mode.into(),
        value,
        ci95: Some([value, value]),
        what: "figure".into(),
    };
    let p = Pick::Best {
        best: entry("a", 5.0),
        runner_up: entry("b", 5.0 + d.estimate),
        difference: Some(d),
    };
    let (call, m) = p.call().expect("a call");
    assert_eq!(m, MARGIN);
    call
}

#[test]
fn the_claims_the_planner_and_the_short_answer_give_the_same_verdict() {
    for (e, lo, hi, want) in TABLE {
        let fig = est(e, lo, hi);
        let why = format!("{fig:?}");
        assert_eq!(stats::lookup_trend(&fig, MARGIN), want, "{why}");
        for decided in [false, true] {
            let mut ipvs = run("ipvs", fig);
            let mut ipt = run("iptables-legacy", fig);
            if decided {
                // As the recorder writes it: the verdict in the results.
                lookup::decide(&mut ipvs);
                lookup::decide(&mut ipt);
            }
            // O(1) expects flat; linear matching expects growth.
            assert_eq!(
                claim(&ipvs, Claim::IpvsConstantLookup),
                from_trend(want, Trend::Flat),
                "{why}"
            );
            assert_eq!(
                claim(&ipt, Claim::LinearMatching),
                from_trend(want, Trend::Grows),
                "{why}"
            );
            assert_eq!(planner(&ipvs), want, "{why}");
            assert_eq!(planner(&ipt), want, "{why}");
        }
        // A difference between two modes may go either way: what the lookup calls an
        // artefact is, between modes, the runner-up being cheaper.
        let between = match want {
            Trend::Unexpected => Trend::Shrinks,
            t => t,
        };
        assert_eq!(answer(fig), between, "{why}");
    }
}

#[test]
fn an_artefact_never_confirms_and_flat_refutes_linear_matching() {
    assert_eq!(
        from_trend(Trend::Unexpected, Trend::Flat),
        Verdict::Unexpected
    );
    assert_eq!(from_trend(Trend::Flat, Trend::Grows), Verdict::Refuted);
    assert_eq!(from_trend(Trend::Grows, Trend::Flat), Verdict::Refuted);
    assert_eq!(
        from_trend(Trend::Inconclusive, Trend::Grows),
        Verdict::Inconclusive
    );
}
