//! An error on its way out of the binary, with the exit code it maps to.

use crate::exitcode;

/// An error with the exit code it maps to ([`crate::exitcode`]).
#[derive(Debug)]
pub struct Failure {
    pub code: i32,
    pub error: anyhow::Error,
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure {
            code: exitcode::INTERNAL,
            error: e.into(),
        }
    }
}

impl Failure {
    /// A failure with `code` and a message.
    pub fn new(code: i32, msg: impl std::fmt::Display) -> Failure {
        Failure {
            code,
            error: anyhow::anyhow!("{msg}"),
        }
    }

    /// Bad input (exit 2).
    pub fn usage(msg: impl std::fmt::Display) -> Failure {
        Failure::new(exitcode::USAGE, msg)
    }

    /// The environment cannot run it (exit 69).
    pub fn unavailable(msg: impl std::fmt::Display) -> Failure {
        Failure::new(exitcode::UNAVAILABLE, msg)
    }
}

/// Fails with exit 69 unless this process is root.
pub fn require_root() -> Result<(), Failure> {
    if !dataplane::floor::netns::is_root() {
        return Err(Failure::unavailable(
            "this needs root: kpbench creates network namespaces and programs kernel rules (run it as root, e.g. with sudo)",
        ));
    }
    Ok(())
}
