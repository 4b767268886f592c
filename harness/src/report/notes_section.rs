//! The report's "What the data path does not exercise" section (`#notes`): for every
//! case whose results carry `notes` (a shape's case in a mode whose programs do not take
//! every path its services' features need, today the eBPF modes), each note beside the
//! case, so a lookup figure is never read as covering a path it did not take. Absent
//! when no case has notes.

use std::fmt::Write;

use crate::analysis::cases::Row;

use super::markup::escape;

pub(super) fn notes(h: &mut String, rows: &[Row<'_>]) {
    let noted: Vec<&Row<'_>> = rows.iter().filter(|r| !r.case.notes.is_empty()).collect();
    if noted.is_empty() {
        return;
    }
    h.push_str(
        "<h2 id=\"notes\">What the data path does not exercise</h2>\n<p>These cases \
         program every kernel object their services' features need, as the mode's \
         controller does, but kpbench's traffic through them does not take every path \
         those objects serve. Their lookup and data-path figures cover only the paths \
         taken; the sync figures cover every object.</p>\n<div class=\"scroll\"><table>\n\
         <tr><th class=\"l\">environment</th><th class=\"l\">mode</th><th>services</th>\
         <th class=\"l\">not exercised</th></tr>\n",
    );
    for r in noted {
        let items: String = r
            .case
            .notes
            .iter()
            .map(|n| format!("<li>{}</li>", escape(n)))
            .collect();
        let _ = writeln!(
            h,
            "<tr><td class=\"l nw\">{}</td><td class=\"l nw\">{}</td><td>{}</td><td class=\"l\"><ul>{items}</ul></td></tr>",
            escape(&r.env().label()),
            escape(&r.mode()),
            r.case.services,
        );
    }
    h.push_str("</table></div>\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::cases::fixtures::{case, results};
    use crate::analysis::cases::rows;

    #[test]
    fn each_noted_case_is_a_row_with_its_notes_escaped() {
        let mut c = case("ebpf", 1000, 50.0, 5.0, 10.0);
        c.notes = vec![
            "UDP frontends are written, but <no> datagram is translated".into(),
            "affinity is not looked up".into(),
        ];
        let plain = case("iptables", 1000, 500.0, 5.0, 10.0);
        let r = results("6.18.0", vec![plain, c]);
        let mut h = String::new();
        notes(&mut h, &rows(std::slice::from_ref(&r)));
        assert!(h.contains("<h2 id=\"notes\">"), "{h}");
        // One row, for the noted case only.
        assert_eq!(h.matches("<tr><td").count(), 1, "{h}");
        assert!(
            h.contains("<td class=\"l nw\">ebpf</td><td>1000</td>"),
            "{h}"
        );
        assert!(
            h.contains("<li>UDP frontends are written, but &lt;no&gt; datagram is translated</li><li>affinity is not looked up</li>"),
            "{h}"
        );
    }

    #[test]
    fn no_section_when_no_case_has_notes() {
        let r = results("6.18.0", vec![case("iptables", 100, 50.0, 5.0, 10.0)]);
        let mut h = String::new();
        notes(&mut h, &rows(std::slice::from_ref(&r)));
        assert!(h.is_empty());
    }
}
