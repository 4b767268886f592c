//! `check-structure [REPO]`: checks the layout of the repository at REPO (default: the
//! current directory). Exit 0 when it holds, 1 naming every problem, 2 when a source
//! file or the architecture document cannot be read.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() > 1 || args.first().is_some_and(|a| a.starts_with('-')) {
        eprintln!("usage: check-structure [REPO]  (the repository's root; default: .)");
        return ExitCode::from(2);
    }
    let repo = args
        .first()
        .map(PathBuf::from)
        .unwrap_or_else(|| ".".into());
    match structure::check(&repo) {
        Err(e) => {
            eprintln!("check-structure: {e}");
            ExitCode::from(2)
        }
        Ok(findings) => {
            for line in &findings.summary {
                println!("check-structure: {line}");
            }
            for problem in &findings.problems {
                println!("check-structure: FAIL: {problem}");
            }
            if findings.problems.is_empty() {
                println!("check-structure: ok");
                ExitCode::SUCCESS
            } else {
                println!("check-structure: {} problems (docs/architecture.md, \"Structure check\", says what to do)", findings.problems.len());
                ExitCode::from(1)
            }
        }
    }
}
