//! A crate's module tree, from `lib.rs` down: file modules (`mod x;` as `x.rs` or
//! `x/mod.rs`) and inline ones (`mod tests { ... }`), each with the items it holds.

use crate::{parse, SourceError};
use std::path::{Path, PathBuf};

/// One module: its path below the crate root (`["run", "lab"]`), its file, and its own
/// items (an inline child's items belong to the child).
#[derive(Debug)]
pub struct Module {
    pub path: Vec<String>,
    pub file: PathBuf,
    pub items: Vec<syn::Item>,
}

impl Module {
    /// `crate::run::lab`.
    pub fn name(&self) -> String {
        name(&self.path)
    }
}

/// `crate` followed by the path's segments.
pub fn name(path: &[String]) -> String {
    std::iter::once("crate")
        .chain(path.iter().map(String::as_str))
        .collect::<Vec<_>>()
        .join("::")
}

/// Every module of the crate whose root is `src/lib.rs` (or `src/main.rs` when there
/// is no library).
pub fn modules(src: &Path) -> Result<Vec<Module>, SourceError> {
    let root = if src.join("lib.rs").exists() {
        src.join("lib.rs")
    } else {
        src.join("main.rs")
    };
    let file = parse(&root)?;
    let mut out = Vec::new();
    walk(Vec::new(), root, src.to_path_buf(), file.items, &mut out)?;
    Ok(out)
}

/// Adds the module at `path` (its items from `file`; children's files under `dir`).
fn walk(
    path: Vec<String>,
    file: PathBuf,
    dir: PathBuf,
    items: Vec<syn::Item>,
    out: &mut Vec<Module>,
) -> Result<(), SourceError> {
    let mut own = Vec::new();
    let mut children = Vec::new();
    for item in items {
        match item {
            syn::Item::Mod(m) => children.push(m),
            other => own.push(other),
        }
    }
    out.push(Module {
        path: path.clone(),
        file: file.clone(),
        items: own,
    });
    for child in children {
        let name = child.ident.to_string();
        let mut child_path = path.clone();
        child_path.push(name.clone());
        match child.content {
            Some((_, items)) => walk(child_path, file.clone(), dir.join(&name), items, out)?,
            None => {
                let (child_file, child_dir) = locate(&dir, &name, &file)?;
                let parsed = parse(&child_file)?;
                walk(child_path, child_file, child_dir, parsed.items, out)?;
            }
        }
    }
    Ok(())
}

/// `dir/name.rs` or `dir/name/mod.rs`, and the folder its own children live in.
fn locate(dir: &Path, name: &str, parent: &Path) -> Result<(PathBuf, PathBuf), SourceError> {
    let flat = dir.join(format!("{name}.rs"));
    if flat.exists() {
        return Ok((flat, dir.join(name)));
    }
    let nested = dir.join(name).join("mod.rs");
    if nested.exists() {
        return Ok((nested, dir.join(name)));
    }
    Err(SourceError {
        path: parent.to_path_buf(),
        message: format!(
            "mod {name}: neither {} nor {} exists",
            flat.display(),
            nested.display()
        ),
    })
}
