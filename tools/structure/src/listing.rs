//! The top-level entries of each crate's `src/` that `docs/architecture.md` lists, in
//! its fenced block tagged `structure`:
//!
//! ```text
//! harness/src: main.rs lib.rs cli/ run/
//! ```
//!
//! A folder ends in `/`. An entry on disk that the block does not list is a problem.

use crate::SourceError;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Crate folder (`harness/src`) -> the entries listed for it.
pub type Listed = BTreeMap<String, BTreeSet<String>>;

/// Reads the `structure` block of the architecture document (`None` when it has none).
pub fn read(doc: &Path) -> Result<Option<Listed>, SourceError> {
    let text = std::fs::read_to_string(doc).map_err(|e| SourceError {
        path: doc.to_path_buf(),
        message: e.to_string(),
    })?;
    let mut listed = Listed::new();
    let mut inside = false;
    let mut found = false;
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with("```") {
            inside = !inside && trimmed == "```structure";
            found |= inside;
            continue;
        }
        if !inside {
            continue;
        }
        if let Some((krate, entries)) = trimmed.split_once(':') {
            listed
                .entry(krate.trim().to_string())
                .or_default()
                .extend(entries.split_whitespace().map(str::to_string));
        }
    }
    Ok(found.then_some(listed))
}

/// The entries of `src` that are not listed for `krate`, each as a problem line.
pub fn unlisted(src: &Path, krate: &str, listed: &Listed) -> Result<Vec<String>, SourceError> {
    let entries = std::fs::read_dir(src).map_err(|e| SourceError {
        path: src.to_path_buf(),
        message: e.to_string(),
    })?;
    let empty = BTreeSet::new();
    let allowed = listed.get(krate).unwrap_or(&empty);
    let mut out: Vec<String> = entries
        .flatten()
        .filter_map(|entry| {
            let mut name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                return None;
            }
            if entry.path().is_dir() {
                name.push('/');
            }
            (!allowed.contains(&name)).then(|| {
                format!("{krate}/{name} is not listed in docs/architecture.md's structure block (list it under {krate}, or move it into a stage's folder)")
            })
        })
        .collect();
    out.sort();
    Ok(out)
}
