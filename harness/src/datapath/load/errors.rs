//! Failed requests, counted by kind. A failure is never dropped: every request the
//! generator meant to send ends either as a response or as one of these.

use std::io;

/// Why a request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The connection was refused (RST to the SYN: nothing listening, or a REJECT rule).
    Refused,
    /// The connection was reset or closed before a whole response arrived.
    Reset,
    /// No whole response within the request timeout (connect included).
    Timeout,
    /// A response arrived with a status other than 2xx.
    HttpStatus,
    /// Open loop only: the request was due but the generator could not send it before
    /// the phase ended (every connection slot was busy): the client was the limit.
    NotSent,
    /// Anything else (no local port free, malformed response, ...).
    Other,
}

/// Failed requests by kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ErrorCounts {
    /// [`ErrorKind::Refused`].
    pub refused: u64,
    /// [`ErrorKind::Reset`].
    pub reset: u64,
    /// [`ErrorKind::Timeout`].
    pub timeout: u64,
    /// [`ErrorKind::HttpStatus`].
    pub http_status: u64,
    /// [`ErrorKind::NotSent`].
    pub not_sent: u64,
    /// [`ErrorKind::Other`].
    pub other: u64,
    /// The first "other" error's message, to say what it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_other: Option<String>,
}

impl ErrorCounts {
    /// Counts one failure.
    pub fn add(&mut self, kind: ErrorKind) {
        match kind {
            ErrorKind::Refused => self.refused += 1,
            ErrorKind::Reset => self.reset += 1,
            ErrorKind::Timeout => self.timeout += 1,
            ErrorKind::HttpStatus => self.http_status += 1,
            ErrorKind::NotSent => self.not_sent += 1,
            ErrorKind::Other => self.other += 1,
        }
    }

    /// Counts one failure of kind "other" and keeps the first message.
    pub fn add_other(&mut self, msg: impl FnOnce() -> String) {
        self.other += 1;
        if self.first_other.is_none() {
            self.first_other = Some(msg());
        }
    }

    /// All failures.
    pub fn total(&self) -> u64 {
        self.refused + self.reset + self.timeout + self.http_status + self.not_sent + self.other
    }

    /// The kinds that occurred, by name (`refused`, `reset`, `timeout`, `http_status`,
    /// `not_sent`, `other`), for `errors_by_kind` in `results.json`.
    pub fn by_kind(&self) -> std::collections::BTreeMap<String, u64> {
        [
            ("refused", self.refused),
            ("reset", self.reset),
            ("timeout", self.timeout),
            ("http_status", self.http_status),
            ("not_sent", self.not_sent),
            ("other", self.other),
        ]
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|(k, n)| (k.to_string(), n))
        .collect()
    }

    /// Adds another tally to this one.
    pub fn merge(&mut self, o: &ErrorCounts) {
        self.refused += o.refused;
        self.reset += o.reset;
        self.timeout += o.timeout;
        self.http_status += o.http_status;
        self.not_sent += o.not_sent;
        self.other += o.other;
        if self.first_other.is_none() {
            self.first_other.clone_from(&o.first_other);
        }
    }
}

/// The kind of an I/O error from connecting, writing or reading.
pub fn classify(e: &io::Error) -> ErrorKind {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => ErrorKind::Refused,
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe
        | io::ErrorKind::UnexpectedEof => ErrorKind::Reset,
        io::ErrorKind::TimedOut => ErrorKind::Timeout,
        _ => ErrorKind::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_and_totals() {
        let mut c = ErrorCounts::default();
        c.add(classify(&io::Error::from(io::ErrorKind::ConnectionRefused)));
        c.add(classify(&io::Error::from(io::ErrorKind::ConnectionReset)));
        c.add(classify(&io::Error::from(io::ErrorKind::UnexpectedEof)));
        c.add(ErrorKind::HttpStatus);
        c.add_other(|| "first".into());
        c.add_other(|| "second".into());
        assert_eq!((c.refused, c.reset, c.http_status, c.other), (1, 2, 1, 2));
        assert_eq!(c.total(), 6);
        assert_eq!(c.first_other.as_deref(), Some("first"));
        let kinds: Vec<_> = c.by_kind().into_iter().collect();
        assert_eq!(
            kinds,
            [
                ("http_status".to_string(), 1),
                ("other".to_string(), 2),
                ("refused".to_string(), 1),
                ("reset".to_string(), 2)
            ]
        );
        let mut d = ErrorCounts::default();
        d.merge(&c);
        assert_eq!(d, c);
    }
}
