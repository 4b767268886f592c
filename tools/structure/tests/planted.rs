//! The check must fail on what it exists to catch: a planted import cycle, a planted
//! long function and an unlisted top-level file, each in a small tree of its own.

use std::fs;
use std::path::Path;

fn write(root: &Path, rel: &str, text: &str) {
    let path = root.join(rel);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

/// A clean two-crate tree: the check passes on it.
fn clean_tree() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(
        root,
        "docs/architecture.md",
        "# layout\n\n```structure\nharness/src: lib.rs run/\ndataplane/src: lib.rs model.rs\n```\n",
    );
    write(
        root,
        "harness/src/lib.rs",
        "//! Names crate::run::seams in a doc comment only.\npub mod run;\n",
    );
    write(
        root,
        "harness/src/run/mod.rs",
        "pub mod lab;\npub mod seams;\npub use seams::Cases;\n",
    );
    write(
        root,
        "harness/src/run/seams.rs",
        "pub struct Cases;\n/// Not an import: crate::run::lab::go.\npub fn none() {}\n",
    );
    write(
        root,
        "harness/src/run/lab.rs",
        "use crate::run::seams::Cases;\npub fn go(_: Cases) { super::seams::none() }\n",
    );
    write(root, "dataplane/src/lib.rs", "pub mod model;\n");
    write(root, "dataplane/src/model.rs", "pub struct Service;\n");
    dir
}

#[test]
fn a_clean_tree_passes() {
    let tree = clean_tree();
    let findings = structure::check(tree.path()).unwrap();
    assert!(findings.problems.is_empty(), "{:?}", findings.problems);
    assert!(
        findings.summary[0].contains("1 imports between modules"),
        "{:?}",
        findings.summary
    );
}

#[test]
fn a_planted_cycle_fails_naming_both_modules() {
    let tree = clean_tree();
    // seams now calls into lab, which imports seams: a circle.
    write(
        tree.path(),
        "harness/src/run/seams.rs",
        "pub struct Cases;\npub fn none() { crate::run::lab::go(Cases) }\n",
    );
    let findings = structure::check(tree.path()).unwrap();
    let cycles: Vec<_> = findings
        .problems
        .iter()
        .filter(|p| p.starts_with("import cycle"))
        .collect();
    assert_eq!(cycles.len(), 1, "{:?}", findings.problems);
    assert!(
        cycles[0].contains("crate::run::lab, crate::run::seams"),
        "{}",
        cycles[0]
    );
    assert!(cycles[0].contains("seams.rs:2"), "{}", cycles[0]);
}

#[test]
fn a_planted_long_function_fails_naming_it() {
    let tree = clean_tree();
    let body: String = (0..100)
        .map(|i| format!("    let _x{i} = {i};\n"))
        .collect();
    write(
        tree.path(),
        "dataplane/src/model.rs",
        &format!("pub struct Service;\nimpl Service {{\n    pub fn long() {{\n{body}    }}\n}}\n"),
    );
    let findings = structure::check(tree.path()).unwrap();
    assert_eq!(findings.problems.len(), 1, "{:?}", findings.problems);
    assert!(
        findings.problems[0].contains("function long at"),
        "{}",
        findings.problems[0]
    );
    assert!(
        findings.problems[0].contains("is 102 lines"),
        "{}",
        findings.problems[0]
    );
}

#[test]
fn a_function_of_exactly_the_limit_passes() {
    let tree = clean_tree();
    let body: String = (0..98).map(|i| format!("    let _x{i} = {i};\n")).collect();
    write(
        tree.path(),
        "dataplane/src/model.rs",
        &format!("pub fn limit() {{\n{body}}}\n"),
    );
    let findings = structure::check(tree.path()).unwrap();
    assert!(findings.problems.is_empty(), "{:?}", findings.problems);
}

#[test]
fn an_unlisted_top_level_file_fails_naming_it() {
    let tree = clean_tree();
    write(
        tree.path(),
        "dataplane/src/utils.rs",
        "pub fn helper() {}\n",
    );
    let findings = structure::check(tree.path()).unwrap();
    assert_eq!(findings.problems.len(), 1, "{:?}", findings.problems);
    assert!(
        findings.problems[0].starts_with("dataplane/src/utils.rs is not listed"),
        "{}",
        findings.problems[0]
    );
}

#[test]
fn a_missing_listing_is_a_problem_not_a_pass() {
    let tree = clean_tree();
    write(
        tree.path(),
        "docs/architecture.md",
        "# layout, no listing\n",
    );
    let findings = structure::check(tree.path()).unwrap();
    assert!(
        findings
            .problems
            .iter()
            .any(|p| p.contains("no ```structure block")),
        "{:?}",
        findings.problems
    );
}
