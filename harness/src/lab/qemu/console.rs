//! Reading the guest's serial console: lines cleaned of terminal noise, and the
//! protocol markers of `init.sh` (alive, command start and end, the results' base64)
//! told apart from the command's own output.

use std::io::{Read, Write};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::lab::{Accel, LabEvent};

/// Drops terminal escape sequences (SeaBIOS clears the screen) and carriage returns.
pub(super) fn clean_line(raw: &[u8]) -> String {
    let s = String::from_utf8_lossy(raw);
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\x1b' => {
                if chars.peek() == Some(&'[') {
                    chars.next();
                    while let Some(&n) = chars.peek() {
                        chars.next();
                        if n.is_ascii_alphabetic() {
                            break;
                        }
                    }
                } else {
                    chars.next();
                }
            }
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

/// What the console reader thread sends.
pub(super) enum Msg {
    Line(Vec<u8>),
    Eof,
}

/// Copies qemu's stdout to the console log and sends it on line by line.
pub(super) fn read_lines(mut stdout: impl Read, mut log: std::fs::File, tx: mpsc::Sender<Msg>) {
    let mut buf = [0u8; 8192];
    let mut line = Vec::new();
    loop {
        match stdout.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let _ = log.write_all(&buf[..n]);
                for &b in &buf[..n] {
                    if b == b'\n' {
                        let _ = tx.send(Msg::Line(std::mem::take(&mut line)));
                    } else {
                        line.push(b);
                    }
                }
            }
        }
    }
    if !line.is_empty() {
        let _ = tx.send(Msg::Line(line));
    }
    let _ = tx.send(Msg::Eof);
}

/// The last `n` non-blank lines of `text`.
pub(super) fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// What the console has told so far.
#[derive(Default)]
pub(super) struct Watch {
    /// When the guest's /init announced itself, counted from qemu's start.
    pub alive: Option<Duration>,
    began: bool,
    pub exit_code: Option<i32>,
    pub ended: Option<Instant>,
    in_tar: bool,
    /// The results archive, base64, when the guest had no results disk.
    pub tar_b64: String,
    pub panic: Option<String>,
    /// The last console lines outside the protocol, for failure messages.
    pub recent: Vec<String>,
}

impl Watch {
    /// Takes one console line: a protocol marker (`marker` is `@@KPBENCH-LAB:<nonce>:`),
    /// base64 results, or output to pass on as an event.
    pub(super) fn line(
        &mut self,
        line: &str,
        marker: &str,
        start: Instant,
        accel: Accel,
        progress: &mut dyn FnMut(LabEvent),
    ) {
        if let Some(at) = line.find(marker) {
            let before = &line[..at];
            let what = line[at + marker.len()..].trim_end_matches('@');
            if self.began && self.exit_code.is_none() && !before.is_empty() {
                progress(LabEvent::GuestOutput(before.to_string()));
            }
            self.marker(what, start, accel, progress);
            return;
        }
        if self.in_tar {
            self.tar_b64.push_str(line.trim());
            return;
        }
        if line.contains("Kernel panic - not syncing") && self.panic.is_none() {
            self.panic = Some(line.trim().to_string());
        }
        self.recent.push(line.to_string());
        if self.recent.len() > 50 {
            self.recent.remove(0);
        }
        if self.began && self.exit_code.is_none() {
            progress(LabEvent::GuestOutput(line.to_string()));
        } else {
            progress(LabEvent::Console(line.to_string()));
        }
    }

    fn marker(
        &mut self,
        what: &str,
        start: Instant,
        accel: Accel,
        progress: &mut dyn FnMut(LabEvent),
    ) {
        if what == "INIT" {
            let after = start.elapsed();
            self.alive = Some(after);
            progress(LabEvent::GuestAlive { accel, after });
        } else if what == "BEGIN" {
            self.began = true;
        } else if let Some(rc) = what.strip_prefix("END rc=") {
            let code = rc.trim().parse().unwrap_or(-1);
            self.exit_code = Some(code);
            self.ended = Some(Instant::now());
            progress(LabEvent::GuestExited {
                code,
                after: start.elapsed(),
            });
        } else if what == "TAR-BEGIN" {
            self.in_tar = true;
        } else if what == "TAR-END" {
            self.in_tar = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_lines_are_cleaned() {
        assert_eq!(clean_line(b"\x1bc\x1b[?7l\x1b[2JSeaBIOS\r"), "SeaBIOS");
        assert_eq!(
            clean_line(b"6.1.0-56-cloud-amd64\r"),
            "6.1.0-56-cloud-amd64"
        );
        assert_eq!(tail("a\n\nb\nc\n", 2), "b\nc");
    }

    #[test]
    fn watch_follows_the_protocol() {
        let mut events = Vec::new();
        let mut w = Watch::default();
        let m = "@@KPBENCH-LAB:n1:";
        let start = Instant::now();
        for l in [
            "boot noise",
            "@@KPBENCH-LAB:n1:INIT@@",
            "kpbench-lab: modprobe x failed",
            "@@KPBENCH-LAB:n1:BEGIN@@",
            "hello",
            "no newline@@KPBENCH-LAB:n1:END rc=3@@",
            "@@KPBENCH-LAB:n1:TAR-BEGIN@@",
            "AAAA",
            "@@KPBENCH-LAB:n1:TAR-END@@",
            "reboot: Power down",
        ] {
            w.line(l, m, start, Accel::Tcg, &mut |e| events.push(e));
        }
        assert_eq!(w.exit_code, Some(3));
        assert!(w.alive.is_some());
        assert_eq!(w.tar_b64, "AAAA");
        let out: Vec<String> = events
            .iter()
            .filter_map(|e| match e {
                LabEvent::GuestOutput(l) => Some(l.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(out, vec!["hello".to_string(), "no newline".to_string()]);
    }
}
