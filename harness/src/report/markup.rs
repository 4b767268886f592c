//! The HTML pieces every section of report.html writes with: escaping input text and
//! one chart inline. Below `html.rs` and the section modules, so each imports it and
//! none imports another back.

use std::fmt::Write;

use crate::report::charts::Chart;

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// One chart inline, with its title, caption and links to its files.
pub(super) fn figure(h: &mut String, c: &Chart, svg: &str) {
    let caption = if c.caption.is_empty() {
        String::new()
    } else {
        format!("<br>{}", escape(&c.caption))
    };
    // The SVG text comes from plotters, which escapes the text it draws.
    let _ = writeln!(
        h,
        "<figure id=\"chart-{name}\">\n{svg}\n<figcaption>{}{caption} &middot; <a href=\"charts/{name}.svg\">SVG</a> &middot; <a href=\"charts/{name}.png\">PNG</a></figcaption>\n</figure>",
        escape(&c.title),
        name = escape(&c.name),
    );
}
