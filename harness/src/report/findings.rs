//! The report's conclusions: the short answer it opens with, the claims checked, and
//! the lookup cost (chart and table). Every difference is given by the rule of
//! [`crate::analysis::stats`] with its 95% interval, and every conclusion by the one
//! three-way rule ([`crate::analysis::stats::trend`]) with its margin.

use std::fmt::Write;

use crate::analysis::answer::{self, Answer};
use crate::analysis::cases::{self, Row};
use crate::analysis::claims::{self, Verdict};
use crate::analysis::lookup;
use crate::analysis::stats;
use crate::report::charts::{Chart, Section};
use crate::results::Results;

use super::markup::{escape, figure};

/// "Short answer": per environment and scale, fastest to update and cheapest to look up.
pub(super) fn short_answer(h: &mut String, rows: &[Row<'_>]) {
    h.push_str("<h2 id=\"answer\">Short answer</h2>\n");
    let answers = answer::answers(rows);
    if answers.is_empty() {
        h.push_str("<p>No case ran ok: nothing to answer from.</p>\n");
        return;
    }
    h.push_str(
        "<p>For each environment and scale measured: the mode <strong>fastest to \
         update</strong> (lowest p50 of its slowest incremental sync) and the one \
         <strong>cheapest to look up</strong> (lowest in-kernel SYN transit to the last \
         service position), each against the runner-up with the 95% interval of the \
         difference (within one run). A winner is named only when the one three-way rule \
         calls the difference <em>grows</em> against a margin of a tenth of the best \
         figure, printed beside it; otherwise the two are <em>level within the \
         margin</em> (flat) or <em>cannot be told apart</em> (inconclusive), with the verdict and its margin. kube-proxy's profile is what is compared (the \
         floor only where nothing else ran). Where iptables and IPVS both ran in one \
         environment and scale, a second row answers the question itself, <em>iptables \
         or IPVS?</em>, between those two alone.</p>\n<div class=\"scroll\"><table>\n<tr><th \
         class=\"l\">environment</th><th>services</th><th>endpoints</th><th \
         class=\"l\">fastest to update</th><th class=\"l\">cheapest to look up</th></tr>\n",
    );
    for a in &answers {
        answer_row(h, a, "", &a.update, &a.lookup);
        if let Some((update, lookup)) = &a.iptables_or_ipvs {
            answer_row(h, a, "iptables or IPVS: ", update, lookup);
        }
    }
    h.push_str("</table></div>\n");
}

fn answer_row(
    h: &mut String,
    a: &Answer,
    lead: &str,
    update: &answer::Pick,
    lookup: &answer::Pick,
) {
    let cell = |p: &answer::Pick, unit, better| {
        let text = escape(&answer::describe(p, unit, better));
        match p.winner() {
            Some(w) => text.replacen(&escape(w), &format!("<strong>{}</strong>", escape(w)), 1),
            None => text,
        }
    };
    let _ = writeln!(
        h,
        "<tr><td class=\"l nw\">{}</td><td>{}</td><td>{}</td><td class=\"l\">{lead}{}</td><td class=\"l\">{lead}{}</td></tr>",
        escape(&a.env.label()),
        stats::count(a.scale.0 as f64),
        a.scale.1,
        cell(update, "ms", "faster"),
        cell(lookup, "ns", "cheaper"),
    );
}

/// "Claims checked": each claim's verdicts with their numbers.
pub(super) fn claims_checked(h: &mut String, results: &[Results]) {
    h.push_str(
        "<h2 id=\"claims\">Claims checked</h2>\n<p>The usual iptables-versus-IPVS advice, \
         each claim given a verdict from this run's measurements: <em>confirmed</em>, \
         <em>refuted</em>, <em>inconclusive</em>, <em>unexpected: likely an artefact</em> \
         or <em>not measured in this run</em>, per environment and mode, with the numbers \
         and what was actually measured. Each timed claim is decided by the one three-way \
         rule (grows, flat or inconclusive against the margin printed beside the verdict; \
         a significant fall is an artefact, never a confirmation). Sync intervals hold \
         within one run; a cost per position says what its interval spans in the lookup \
         table below.</p>\n<div class=\"scroll\"><table>\n<tr><th \
         class=\"l\">claim</th><th class=\"l\">environment</th><th class=\"l\">mode</th><th \
         class=\"l\">verdict</th><th class=\"l\">evidence</th></tr>\n",
    );
    let findings = claims::check(results);
    for claim in claims::Claim::ALL {
        let rows: Vec<&claims::Finding> = findings.iter().filter(|f| f.claim == claim).collect();
        for (i, f) in rows.iter().enumerate() {
            let head = if i == 0 {
                format!(
                    "<td class=\"l\" rowspan=\"{}\">{}</td>",
                    rows.len(),
                    escape(claim.text())
                )
            } else {
                String::new()
            };
            let class = match f.verdict {
                Verdict::Confirmed => "confirmed",
                Verdict::Refuted => "refuted",
                Verdict::Inconclusive => "inconclusive",
                Verdict::Unexpected => "unexpected",
                Verdict::NotMeasured => "unmeasured",
            };
            let _ = writeln!(
                h,
                "<tr>{head}<td class=\"l nw\">{}</td><td class=\"l nw\">{}</td><td class=\"l nw {class}\">{}</td><td class=\"l\">{}</td></tr>",
                escape(&f.env.as_ref().map(|e| e.label()).unwrap_or_else(|| "any".into())),
                f.mode.as_deref().map(escape).unwrap_or_else(|| "&ndash;".into()),
                f.verdict.label(),
                escape(&f.evidence),
            );
        }
    }
    h.push_str("</table></div>\n");
}

/// "Lookup cost": the transit charts, then per environment the numbers behind them, and
/// the end-to-end figures of cases without a transit pass.
pub(super) fn lookup_cost(h: &mut String, rows: &[Row<'_>], charts: &[(&Chart, String)]) {
    h.push_str(
        "<h2 id=\"lookup\">Lookup cost</h2>\n<p>What a service lookup costs, timed inside \
         the kernel: the SYN's transit through the node (tc ingress on the client's veth to \
         tc egress on the backend's) for service positions from first to last and for a \
         direct connection, interleaved in one pass so the machine's speed phases hit \
         every target alike. Differences are of medians, with 95% intervals combining each \
         median's order-statistic interval (within one run). The cost per service position \
         is the regression on the targets' medians, an intercept per replicate, its \
         interval from the residual error between targets and replicates (so effects fixed \
         per VIP are inside it), and its verdict by the one three-way rule with the margin \
         beside it; each says what its interval spans. Every interval here holds within \
         one run: another machine or another run can differ by more.</p>\n",
    );
    for (c, svg) in charts.iter().filter(|(c, _)| c.section == Section::Lookup) {
        figure(h, c, svg);
    }
    let ok: Vec<&Row<'_>> = rows
        .iter()
        .filter(|r| r.ok() && r.case.datapath.is_some())
        .collect();
    if ok.is_empty() {
        h.push_str("<p>No case measured the data path.</p>\n");
        return;
    }
    let timed: Vec<&&Row<'_>> = ok
        .iter()
        .filter(|r| lookup::transit(r.case).is_some())
        .collect();
    if !timed.is_empty() {
        h.push_str("<div class=\"scroll\"><table>\n<tr><th class=\"l\">environment</th><th class=\"l\">mode</th><th>services</th><th class=\"l\">direct SYN p50 ns</th><th class=\"l\">last position SYN p50 ns</th><th class=\"l\">last minus direct ns</th><th class=\"l\">last minus first ns</th><th class=\"l\">ns per service position</th><th class=\"l\">probe overhead</th><th>unmatched SYNs</th><th class=\"l\">dataplane BPF run time</th></tr>\n");
        for r in &timed {
            transit_row(h, r);
        }
        h.push_str("</table></div>\n");
        path_table(h, &timed);
    }
    let untimed: Vec<&&Row<'_>> = ok
        .iter()
        .filter(|r| lookup::transit(r.case).is_none())
        .collect();
    if !untimed.is_empty() {
        h.push_str("<p>Cases without in-kernel timing: the end-to-end request p50 through the VIP against direct, with intervals from the recorded latency histograms (the phases ran one after the other, so a drift of the machine between them is not in the interval).</p>\n<div class=\"scroll\"><table>\n<tr><th class=\"l\">environment</th><th class=\"l\">mode</th><th>services</th><th class=\"l\">last minus direct us</th><th class=\"l\">last minus first us</th><th class=\"l\">why no in-kernel timing</th></tr>\n");
        for r in &untimed {
            let e = lookup::end_to_end(r.case);
            let diff = |d: Option<crate::results::Estimate>| {
                d.map(|d| escape(&stats::difference(&d, "us")))
                    .unwrap_or_else(|| "no interval (no latency histograms)".into())
            };
            let _ = writeln!(
                h,
                "<tr><td class=\"l nw\">{}</td><td class=\"l nw\">{}</td><td>{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td></tr>",
                escape(&r.env().label()),
                escape(&r.mode()),
                r.case.services,
                diff(e.vip_vs_direct()),
                diff(e.last_vs_first()),
                escape(&lookup::transit_missing(r.case)),
            );
        }
        h.push_str("</table></div>\n");
    }
}

/// The other paths' targets of every timed case that has them (or says why not): the
/// opening packet's p50 and its difference from direct, per path per mode.
fn path_table(h: &mut String, timed: &[&&Row<'_>]) {
    let with: Vec<(&Row<'_>, lookup::TransitLookup)> = timed
        .iter()
        .filter_map(|r| Some((**r, lookup::transit(r.case)?)))
        .filter(|(_, t)| !t.paths.is_empty() || !t.absent_paths.is_empty())
        .collect();
    if with.is_empty() {
        return;
    }
    h.push_str(
        "<p>Per lookup path (shaped service sets): the opening packet's transit through the \
         node, the SYN or, for <code>udp</code>, the flow's first datagram, for one service \
         per path at the rule position given; its difference from direct combines both \
         medians' intervals. A path without a target says why.</p>\n<div class=\"scroll\"><table>\n\
         <tr><th class=\"l\">environment</th><th class=\"l\">mode</th><th>services</th><th class=\"l\">path</th><th>service position</th><th class=\"l\">p50 ns</th><th class=\"l\">minus direct ns</th><th>samples</th></tr>\n",
    );
    for (r, t) in &with {
        let head = format!(
            "<td class=\"l nw\">{}</td><td class=\"l nw\">{}</td><td>{}</td>",
            escape(&r.env().label()),
            escape(&cases::mode_label(r.case)),
            r.case.services
        );
        for p in &t.paths {
            let _ = writeln!(
                h,
                "<tr>{head}<td class=\"l nw\">{}</td><td>{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td>{}</td></tr>",
                p.path.name(),
                p.service_index.map_or("&ndash;".into(), |i| i.to_string()),
                escape(&stats::with_ci(&p.syn_ns, "")),
                t.path_vs_direct(p.path)
                    .map(|e| escape(&stats::difference(&e, "")))
                    .unwrap_or_else(|| "&ndash;".into()),
                p.samples,
            );
        }
        for (path, why) in &t.absent_paths {
            let _ = writeln!(
                h,
                "<tr>{head}<td class=\"l nw\">{}</td><td colspan=\"4\" class=\"l\">not measured: {}</td></tr>",
                path.name(),
                escape(why),
            );
        }
    }
    h.push_str("</table></div>\n");
}

fn transit_row(h: &mut String, r: &Row<'_>) {
    let Some(t) = lookup::transit(r.case) else {
        return;
    };
    let ci = |e: Option<crate::results::Estimate>| {
        e.map(|e| escape(&stats::with_ci(&e, "")))
            .unwrap_or_else(|| "&ndash;".into())
    };
    let diff = |e: Option<crate::results::Estimate>| {
        e.map(|e| escape(&stats::difference(&e, "")))
            .unwrap_or_else(|| "&ndash;".into())
    };
    let _ = writeln!(
        h,
        "<tr><td class=\"l nw\">{}</td><td class=\"l nw\">{}</td><td>{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td>{}</td><td class=\"l\">{}</td></tr>",
        escape(&r.env().label()),
        escape(&cases::mode_label(r.case)),
        r.case.services,
        ci(t.direct),
        ci(t.last().map(|p| p.syn_ns)),
        diff(t.vip_vs_direct()),
        diff(t.last_vs_first()),
        escape(&t.per_service_words()),
        escape(&t.overhead_words()),
        t.unmatched,
        escape(&bpf_run_label(r.case)),
    );
}

/// The dataplane's own BPF run time per invocation, averaged over the targets that
/// have it, labelled by what one invocation is: a connection for the socket load
/// balancer (`ebpf`: connect4 runs once, before any packet), a packet for the others.
fn bpf_run_label(case: &crate::results::Case) -> String {
    let runs: Vec<f64> = case
        .datapath
        .as_ref()
        .and_then(|d| d.transit.as_ref())
        .map(|t| t.targets.iter().filter_map(|x| x.bpf_run_ns).collect())
        .unwrap_or_default();
    if runs.is_empty() {
        return "-".into();
    }
    let mean = runs.iter().sum::<f64>() / runs.len() as f64;
    let per = if case.mode == "ebpf" {
        "connection"
    } else {
        "packet"
    };
    format!("{mean:.0} ns per {per} (mean of {} targets)", runs.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::cases::fixtures::{case, est, with_transit};

    fn with_bpf(mode: &str) -> crate::results::Case {
        let slope = est(0.0, -0.1, 0.1);
        let mut c = with_transit(
            case(mode, 1000, 10.0, 1.0, 5.0),
            40_000.0,
            41_000.0,
            0.0,
            100.0,
            slope,
        );
        let t = c.datapath.as_mut().unwrap().transit.as_mut().unwrap();
        for (i, target) in t.targets.iter_mut().enumerate() {
            if target.service_index.is_some() {
                target.bpf_run_ns = Some(900.0 + i as f64);
            }
        }
        c
    }

    #[test]
    fn the_path_table_lists_each_path_per_mode_and_says_why_one_is_missing() {
        use crate::analysis::cases::fixtures::{results, with_paths};
        use crate::results::TransitPath;
        let slope = est(1.0, 0.5, 1.5);
        let timed = with_transit(
            case("iptables", 100, 10.0, 1.0, 5.0),
            900.0,
            3000.0,
            1.0,
            30.0,
            slope,
        );
        let c = with_paths(
            timed.clone(),
            &[(TransitPath::Affinity, 7, 4200.0)],
            &[(
                TransitPath::Udp,
                "udp (svc-3 at 10.96.0.4:53/UDP): no packet timed",
            )],
        );
        let r = results("6.18.0", vec![c, timed]);
        let rows = cases::rows(std::slice::from_ref(&r));
        let refs: Vec<&Row<'_>> = rows.iter().collect();
        let timed: Vec<&&Row<'_>> = refs.iter().collect();
        let mut h = String::new();
        path_table(&mut h, &timed);
        assert_eq!(
            h.matches("<tr>").count(),
            3,
            "a header, a path, an absent path: {h}"
        );
        assert!(
            h.contains("<td class=\"l nw\">affinity</td><td>7</td>"),
            "{h}"
        );
        assert!(
            h.contains("not measured: udp (svc-3 at 10.96.0.4:53/UDP)"),
            "{h}"
        );
        // Plain cases only: no table.
        let mut h = String::new();
        path_table(&mut h, &timed[1..]);
        assert!(h.is_empty());
    }

    #[test]
    fn the_socket_lb_is_labelled_per_connection_and_tc_per_packet() {
        assert!(bpf_run_label(&with_bpf("ebpf")).contains(" ns per connection (mean of "));
        assert!(bpf_run_label(&with_bpf("ebpf-tc")).contains(" ns per packet (mean of "));
        assert_eq!(bpf_run_label(&case("nftables", 1000, 10.0, 1.0, 5.0)), "-");
    }
}
