//! Functions longer than the house style allows: free functions, methods, trait
//! methods with a body and functions nested in them, from `fn` to the closing brace.

use crate::{parse, SourceError};
use std::path::{Path, PathBuf};
use syn::spanned::Spanned;
use syn::visit::Visit;

/// A function over the limit.
#[derive(Debug)]
pub struct LongFunction {
    pub file: PathBuf,
    pub name: String,
    pub line: usize,
    pub lines: usize,
}

impl std::fmt::Display for LongFunction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "function {} at {}:{} is {} lines (split it into named steps)",
            self.name,
            self.file.display(),
            self.line,
            self.lines
        )
    }
}

/// Every function over `limit` lines in the `.rs` files below `src`, in file order.
pub fn over(src: &Path, limit: usize) -> Result<Vec<LongFunction>, SourceError> {
    let mut files = Vec::new();
    rust_files(src, &mut files)?;
    files.sort();
    let mut out = Vec::new();
    for file in files {
        let parsed = parse(&file)?;
        let mut lengths = Lengths::default();
        lengths.visit_file(&parsed);
        out.extend(
            lengths
                .found
                .into_iter()
                .filter(|(_, _, lines)| *lines > limit)
                .map(|(name, line, lines)| LongFunction {
                    file: file.clone(),
                    name,
                    line,
                    lines,
                }),
        );
    }
    Ok(out)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), SourceError> {
    let entries = std::fs::read_dir(dir).map_err(|e| SourceError {
        path: dir.to_path_buf(),
        message: e.to_string(),
    })?;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    Ok(())
}

#[derive(Default)]
struct Lengths {
    found: Vec<(String, usize, usize)>,
}

impl Lengths {
    fn record(&mut self, sig: &syn::Signature, block: &syn::Block) {
        let start = sig.fn_token.span.start().line;
        let end = block.span().end().line;
        self.found
            .push((sig.ident.to_string(), start, end.saturating_sub(start) + 1));
    }
}

impl<'ast> Visit<'ast> for Lengths {
    fn visit_item_fn(&mut self, f: &'ast syn::ItemFn) {
        self.record(&f.sig, &f.block);
        syn::visit::visit_item_fn(self, f);
    }

    fn visit_impl_item_fn(&mut self, f: &'ast syn::ImplItemFn) {
        self.record(&f.sig, &f.block);
        syn::visit::visit_impl_item_fn(self, f);
    }

    fn visit_trait_item_fn(&mut self, f: &'ast syn::TraitItemFn) {
        if let Some(block) = &f.default {
            self.record(&f.sig, block);
        }
        syn::visit::visit_trait_item_fn(self, f);
    }
}
