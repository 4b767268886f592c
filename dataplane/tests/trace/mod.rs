//! What the trace tests share: reading a fixture written by hand from kube-proxy's
//! sources. A fixture has one call a line, each followed by `  # <file> <function>`
//! citing the proxier code behind it; `## name` lines start sections (one per sync),
//! and comment-only or empty lines are skipped.

#![allow(dead_code)] // Each test binary uses part of it.

use std::path::Path;

/// A fixture's sections: `(title, calls)`, the calls without their citations.
pub fn sections(name: &str) -> Vec<(String, Vec<String>)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/trace")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for line in text.lines() {
        if let Some(title) = line.strip_prefix("## ") {
            out.push((title.trim().to_string(), Vec::new()));
            continue;
        }
        let call = line.split("  # ").next().unwrap_or("").trim_end();
        if call.is_empty() || call.starts_with('#') {
            continue;
        }
        if out.is_empty() {
            out.push((String::new(), Vec::new()));
        }
        out.last_mut()
            .expect("pushed above")
            .1
            .push(call.to_string());
    }
    out
}

/// Every call of a fixture, in order, sections flattened.
pub fn calls(name: &str) -> Vec<String> {
    sections(name).into_iter().flat_map(|(_, c)| c).collect()
}
