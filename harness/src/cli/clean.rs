//! `kpbench clean`: removes what crashed or killed runs left behind, and says what.

use super::failure::{require_root, Failure};
use super::CleanArgs;
use crate::exitcode;

/// `kpbench clean [--force]`.
pub fn main(a: CleanArgs) -> Result<i32, Failure> {
    require_root()?;
    let report = crate::sandbox::clean::clean(a.force);
    let lab_leftovers = crate::lab::clean_leftovers();
    for k in &lab_leftovers {
        println!("{k}");
    }
    for r in &report.removed {
        println!("removed {r}");
    }
    for k in &report.kept_live {
        println!("kept {k} (its run is still going; --force removes it)");
    }
    for e in &report.errors {
        eprintln!("kpbench clean: {e}");
    }
    if report.removed.is_empty() && report.errors.is_empty() && lab_leftovers.is_empty() {
        println!("nothing to clean");
    }
    Ok(if report.errors.is_empty() {
        exitcode::OK
    } else {
        exitcode::INTERNAL
    })
}
