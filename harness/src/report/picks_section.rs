//! The report's "Incremental syncs by service" section (`#picks`): for every case of
//! a shaped scenario, each pick's service (`typical`, `largest`, `nodeport`) and its
//! add, remove and update medians with their intervals, or why a pick or a kind is
//! missing. Absent when no case has picks (N x E scenarios).

use std::fmt::Write;

use crate::analysis::cases::Row;
use crate::analysis::stats;
use crate::results::DurationSummary;

use super::markup::escape;

/// A sync's median with its interval ("2.1 (95% CI 2.0..2.3)"), with too few samples
/// for one the median and the count, or a dash when it was not measured.
fn median(d: Option<&DurationSummary>) -> String {
    let Some(d) = d else {
        return "&ndash;".into();
    };
    let e = (d.samples_ms.len() >= stats::MIN_SAMPLES)
        .then(|| stats::median_estimate(&d.samples_ms))
        .flatten();
    match e {
        Some(e) => escape(&stats::with_ci(&e, "")),
        None => format!("{:.1} (n={})", d.p50_ms, d.samples),
    }
}

pub(super) fn picks(h: &mut String, rows: &[Row<'_>]) {
    let shaped: Vec<&Row<'_>> = rows
        .iter()
        .filter(|r| r.case.sync.as_ref().is_some_and(|s| !s.picks.is_empty()))
        .collect();
    if shaped.is_empty() {
        return;
    }
    h.push_str(
        "<h2 id=\"picks\">Incremental syncs by service</h2>\n<p>A shaped scenario's \
         incremental syncs run for each pick every round: <em>typical</em> (the shape's \
         most common type and port count, the median endpoint count, the most common \
         features), <em>largest</em> (the most endpoints) and <em>nodeport</em> (the \
         typical NodePort service). Each round adds a copy of the picked service, removes \
         it and replaces one of its endpoints, so each pick and kind of sync has samples \
         of its own. The summary table's add, remove and update columns are the typical \
         pick's. ms, the median with its 95% interval (order statistics; with fewer than \
         6 samples, their range).</p>\n<div class=\"scroll\"><table>\n<tr><th \
         class=\"l\">environment</th><th class=\"l\">mode</th><th>services</th><th \
         class=\"l\">pick</th><th class=\"l\">service</th><th class=\"l\">type</th>\
         <th>ports</th><th>endpoints</th><th>add ms</th><th>remove ms</th><th>update \
         ms</th><th class=\"l\">note</th></tr>\n",
    );
    for r in shaped {
        let sync = r.case.sync.as_ref().expect("filtered on its sync");
        for p in &sync.picks {
            let num = |v: Option<u64>| v.map_or("&ndash;".into(), |v| v.to_string());
            let _ = writeln!(
                h,
                "<tr><td class=\"l nw\">{}</td><td class=\"l nw\">{}</td><td>{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"l\">{}</td></tr>",
                escape(&r.env().label()),
                escape(&r.mode()),
                r.case.services,
                escape(&p.pick),
                p.service_index
                    .map_or("&ndash;".into(), |i| format!("svc-{i}")),
                p.kind.as_deref().map_or("&ndash;".into(), escape),
                num(p.ports),
                num(p.endpoints),
                median(p.add_service.as_ref()),
                median(p.remove_service.as_ref()),
                median(p.update_endpoints.as_ref()),
                p.reason.as_deref().map(escape).unwrap_or_default(),
            );
        }
    }
    h.push_str("</table></div>\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::cases::fixtures::{case, results};
    use crate::analysis::cases::rows;
    use crate::results::PickedSyncs;

    fn pick(name: &str, d: Option<DurationSummary>, reason: Option<&str>) -> PickedSyncs {
        PickedSyncs {
            pick: name.into(),
            service_index: d.as_ref().map(|_| 7),
            kind: d.as_ref().map(|_| "NodePort".into()),
            ports: d.as_ref().map(|_| 2),
            endpoints: d.as_ref().map(|_| 3),
            add_service: d.clone(),
            remove_service: d.clone(),
            update_endpoints: d,
            reason: reason.map(str::to_string),
        }
    }

    #[test]
    fn each_pick_is_a_row_with_its_service_and_why_one_is_missing() {
        let mut c = case("iptables", 1000, 500.0, 5.0, 10.0);
        let d = c.sync.as_ref().unwrap().add_service.clone().unwrap();
        c.sync.as_mut().unwrap().picks = vec![
            pick("typical", Some(d.clone()), None),
            pick(
                "nodeport",
                None,
                Some("the shape has no service of type NodePort"),
            ),
        ];
        let plain = case("iptables", 100, 50.0, 5.0, 10.0);
        let r = results("6.18.0", vec![plain, c]);
        let mut h = String::new();
        picks(&mut h, &rows(std::slice::from_ref(&r)));
        assert!(h.contains("<h2 id=\"picks\">"), "{h}");
        // One row per pick of the shaped case; the plain case has none.
        assert_eq!(h.matches("<tr><td").count(), 2, "{h}");
        assert!(h.contains("<td class=\"l\">typical</td><td class=\"l\">svc-7</td><td class=\"l\">NodePort</td><td>2</td><td>3</td>"), "{h}");
        assert!(h.contains(&format!("<td>{}</td>", median(Some(&d)))), "{h}");
        assert!(
            h.contains("the shape has no service of type NodePort</td>"),
            "{h}"
        );
        let mut none = String::new();
        let plain = results("6.18.0", vec![case("iptables", 100, 50.0, 5.0, 10.0)]);
        picks(&mut none, &rows(std::slice::from_ref(&plain)));
        assert!(none.is_empty());
    }
}
