//! Kernel errors by their errno name, as `strace` and the kernel's headers write them:
//! "EEXIST: File exists (os error 17)". A message that says only "File exists" or
//! "os error 17" makes the reader look the number up; the name is what they search for.

use std::fmt;
use std::io;

/// An [`io::Error`] shown with its errno name first, when it has one.
pub struct Named<'a>(pub &'a io::Error);

impl fmt::Display for Named<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.raw_os_error().and_then(name) {
            Some(n) => write!(f, "{n}: {}", self.0),
            None => write!(f, "{}", self.0),
        }
    }
}

/// The name of `errno` (`EEXIST` for 17), if the kernel has one by that number.
pub fn name(errno: i32) -> Option<String> {
    let e = nix::errno::Errno::from_raw(errno);
    // nix names its variants after the C symbols, so their `Debug` form is the name.
    (e != nix::errno::Errno::UnknownErrno).then(|| format!("{e:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_os_error_is_shown_with_its_name() {
        let e = io::Error::from_raw_os_error(libc::EEXIST);
        assert_eq!(Named(&e).to_string(), "EEXIST: File exists (os error 17)");
        let e = io::Error::from_raw_os_error(libc::E2BIG);
        assert_eq!(
            Named(&e).to_string(),
            "E2BIG: Argument list too long (os error 7)"
        );
        assert_eq!(name(libc::ENOMEM).as_deref(), Some("ENOMEM"));
        assert_eq!(name(libc::ENOENT).as_deref(), Some("ENOENT"));
    }

    #[test]
    fn an_error_without_a_number_or_name_is_shown_as_it_is() {
        let e = io::Error::other("no datapath is attached");
        assert_eq!(Named(&e).to_string(), "no datapath is attached");
        assert_eq!(name(100_000), None);
        let e = io::Error::from_raw_os_error(100_000);
        assert_eq!(Named(&e).to_string(), e.to_string());
    }
}
