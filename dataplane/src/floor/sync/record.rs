//! The recording executor: every call a controller makes is kept, in order, and
//! answered by **stand-ins** (small in-memory models of iptables, nft, ipset, IPVS and
//! the dummy link) instead of the kernel. `kpbench rules --profile P` prints the
//! recorded calls of a full sync from empty; the trace tests compare them, call by
//! call, with kube-proxy's.

use super::executor::{Executor, Request, ToolCall};
use super::standin::{ok, StandIn};
use crate::floor::error::ApplyError;
use crate::floor::exec::Output;

/// One recorded call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    /// A tool run: its command line and what it got on stdin.
    Tool { line: String, stdin: Option<String> },
    /// A kernel request of a mode: its kind (`netlink`, `bpf`) and its description
    /// (for BPF, fields and hex bytes).
    Request { kind: &'static str, text: String },
}

impl Call {
    /// One line: `$ CMD` for a tool, `KIND: ...` (`netlink: ...`) for a request.
    pub fn line(&self) -> String {
        match self {
            Call::Tool { line, .. } => format!("$ {line}"),
            Call::Request { kind, text } => format!("{kind}: {text}"),
        }
    }
}

/// Keeps every call and answers it from the first stand-in that models it; a tool no
/// stand-in models succeeds silently, a request none models answers "done".
#[derive(Default)]
pub struct Recorder {
    pub calls: Vec<Call>,
    standins: Vec<Box<dyn StandIn>>,
    /// Bytes the calls wrote (as the real executor counts them).
    pub bytes: usize,
}

impl Recorder {
    pub fn new(standins: Vec<Box<dyn StandIn>>) -> Self {
        Recorder {
            calls: Vec::new(),
            standins,
            bytes: 0,
        }
    }

    /// Forgets the calls so far (the stand-ins keep their state).
    pub fn clear(&mut self) {
        self.calls.clear();
        self.bytes = 0;
    }

    /// The calls, one line each.
    pub fn lines(&self) -> Vec<String> {
        self.calls.iter().map(Call::line).collect()
    }

    /// The calls with every tool's stdin after it, as `kpbench rules --profile` prints
    /// them.
    pub fn transcript(&self) -> String {
        let mut out = String::new();
        for c in &self.calls {
            out.push_str(&c.line());
            out.push('\n');
            if let Call::Tool {
                stdin: Some(text), ..
            } = c
            {
                out.push_str(text);
                if !text.ends_with('\n') {
                    out.push('\n');
                }
                out.push_str("# (end of stdin)\n");
            }
        }
        out
    }
}

impl Executor for Recorder {
    fn tool(&mut self, call: ToolCall<'_>) -> Result<Output, ApplyError> {
        let stdin = call.stdin.map(|d| String::from_utf8_lossy(d).into_owned());
        if let Some(d) = call.stdin {
            self.bytes += d.len();
        }
        self.calls.push(Call::Tool {
            line: call.command_line(),
            stdin,
        });
        for s in &mut self.standins {
            if let Some(out) = s.tool(call.program, &call.args, call.stdin) {
                return Ok(out);
            }
        }
        Ok(ok(""))
    }

    fn request(&mut self, req: &mut dyn Request) -> Result<(), ApplyError> {
        self.calls.push(Call::Request {
            kind: req.kind(),
            text: req.describe(),
        });
        self.bytes += req.bytes();
        for s in &mut self.standins {
            if req.answer(s.as_mut()) {
                return Ok(());
            }
        }
        req.unanswered();
        Ok(())
    }

    fn wrote(&mut self, bytes: usize) {
        self.bytes += bytes;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::floor::sync::Category;

    struct Counter(u32);

    impl StandIn for Counter {
        fn tool(&mut self, program: &str, _: &[String], _: Option<&[u8]>) -> Option<Output> {
            (program == "count").then(|| {
                self.0 += 1;
                ok(self.0.to_string())
            })
        }
    }

    #[test]
    fn calls_are_kept_in_order_and_answered_by_their_stand_in() {
        let mut r = Recorder::new(vec![Box::new(Counter(0))]);
        let a = r
            .tool(ToolCall::new("count", Category::Listing, "count", &["-x"]))
            .unwrap();
        let b = r
            .tool(ToolCall::new("other", Category::Restore, "other", &["a b"]).stdin(b"payload"))
            .unwrap();
        let c = r
            .tool(ToolCall::new("count", Category::Listing, "count", &[]))
            .unwrap();
        assert_eq!(
            (a.stdout.as_str(), b.status, c.stdout.as_str()),
            ("1", 0, "2")
        );
        assert_eq!(r.lines(), ["$ count -x", "$ other \"a b\"", "$ count"]);
        assert_eq!(
            r.transcript(),
            "$ count -x\n$ other \"a b\"\npayload\n# (end of stdin)\n$ count\n"
        );
        assert_eq!(r.bytes, 7);
    }
}
