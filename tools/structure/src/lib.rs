//! kpbench's structure check: the layout that `docs/architecture.md` draws, checked.
//!
//! It fails on an import cycle among a crate's modules, a function over
//! [`MAX_FUNCTION_LINES`] lines, and a top-level entry of a crate's `src/` that the
//! architecture document does not list. It reads sources with `syn`; it runs nothing.

pub mod cycles;
pub mod functions;
pub mod imports;
pub mod listing;
pub mod tree;

use std::path::{Path, PathBuf};

/// The longest function the house style allows (conventions: "a function a reader
/// cannot hold (over ~100 lines) is split into named steps").
pub const MAX_FUNCTION_LINES: usize = 100;

/// The crates checked, by their `src/` folder relative to the repository.
pub const CRATES: &[&str] = &["harness/src", "dataplane/src"];

/// Where the listing of top-level entries lives, relative to the repository.
pub const ARCHITECTURE: &str = "docs/architecture.md";

/// A file that could not be read or parsed.
#[derive(Debug)]
pub struct SourceError {
    pub path: PathBuf,
    pub message: String,
}

impl std::fmt::Display for SourceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.message)
    }
}

impl std::error::Error for SourceError {}

/// What the check found in one repository.
#[derive(Debug, Default)]
pub struct Findings {
    /// One line per crate: modules, imports, cycles, functions read.
    pub summary: Vec<String>,
    /// One entry per problem, each naming the modules, function or file.
    pub problems: Vec<String>,
}

/// Checks the crates of the repository at `repo`.
pub fn check(repo: &Path) -> Result<Findings, SourceError> {
    let mut findings = Findings::default();
    let listed = listing::read(&repo.join(ARCHITECTURE))?.unwrap_or_else(|| {
        findings.problems.push(format!(
            "{ARCHITECTURE} has no ```structure block listing each crate's top-level entries (see tools/structure/src/listing.rs)"
        ));
        listing::Listed::new()
    });
    for krate in CRATES {
        let src = repo.join(krate);
        let modules = tree::modules(&src)?;
        let edges = imports::edges(&modules);
        let found = cycles::find(&modules, &edges);
        let long = functions::over(&src, MAX_FUNCTION_LINES)?;
        let unlisted = listing::unlisted(&src, krate, &listed)?;
        findings.summary.push(format!(
            "{krate}: {} modules, {} imports between modules, {} cycles, {} functions over {MAX_FUNCTION_LINES} lines, {} unlisted top-level entries",
            modules.len(),
            edges.len(),
            found.len(),
            long.len(),
            unlisted.len()
        ));
        findings
            .problems
            .extend(found.iter().map(|c| c.to_string()));
        findings.problems.extend(long.iter().map(|f| f.to_string()));
        findings.problems.extend(unlisted);
    }
    Ok(findings)
}

/// Parses one file, naming it on failure.
pub(crate) fn parse(path: &Path) -> Result<syn::File, SourceError> {
    let text = std::fs::read_to_string(path).map_err(|e| SourceError {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    syn::parse_file(&text).map_err(|e| SourceError {
        path: path.to_path_buf(),
        message: format!("line {}: {e}", e.span().start().line),
    })
}
