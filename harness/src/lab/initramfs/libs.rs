//! The shared libraries the copied programs need, from `ldd`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::lab::host::{self, limit};
use crate::lab::LabError;

/// Shared libraries needed by the copied programs.
#[derive(Default)]
pub(super) struct Libs(BTreeSet<PathBuf>);

impl Libs {
    /// Adds the libraries `exe` links against.
    pub(super) fn add_deps_of(&mut self, exe: &Path) -> Result<(), LabError> {
        let exe_arg = host::arg(exe);
        let ldd = host::tool("ldd", &[&exe_arg], limit::QUICK);
        // "not a dynamic executable" exits non-zero: nothing to add.
        let out = host::output(ldd, || format!("ldd {}", exe.display()))?;
        self.0.extend(parse_ldd(&out.stdout));
        Ok(())
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = &Path> {
        self.0.iter().map(PathBuf::as_path)
    }
}

/// The library paths in `ldd` output (`libx.so => /path (0x..)` and `/lib64/ld-... (0x..)`).
pub fn parse_ldd(text: &str) -> Vec<PathBuf> {
    text.lines()
        .filter_map(|l| {
            let l = l.trim();
            let target = match l.split_once("=>") {
                Some((_, rhs)) => rhs.trim(),
                None => l,
            };
            let path = target.split_whitespace().next()?;
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_output() {
        let text = "\tlinux-vdso.so.1 (0x00007ffd)\n\
            \tlibmnl.so.0 => /lib/x86_64-linux-gnu/libmnl.so.0 (0x00007f)\n\
            \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f)\n\
            \t/lib64/ld-linux-x86-64.so.2 (0x00007f)\n\
            \tlibgone.so => not found\n";
        assert_eq!(
            parse_ldd(text),
            vec![
                PathBuf::from("/lib/x86_64-linux-gnu/libmnl.so.0"),
                PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6"),
                PathBuf::from("/lib64/ld-linux-x86-64.so.2"),
            ]
        );
        assert!(parse_ldd("\tnot a dynamic executable\n").is_empty());
    }
}
