//! Stand-ins: small in-memory models of the kernel state a mode's tools and requests
//! touch (iptables, nft, ipset, IPVS, the dummy link, BPF maps), which answer the
//! recording executor ([`super::record::Recorder`]) in the kernel's place. Each mode
//! defines its own; this is what they all implement, below the executor and the
//! recorder, which both use it.

use crate::floor::exec::{Cost, Output};

/// A model of one part of the kernel's state that answers calls for it. Kernel
/// requests find the stand-in that models them (see [`Request::answer`](super::executor::Request::answer)): a stand-in
/// is `Any` so that its mode's requests can recognise it.
pub trait StandIn: std::any::Any + Send {
    /// Answers a tool run it models; None if the program is not its own.
    fn tool(&mut self, program: &str, args: &[String], stdin: Option<&[u8]>) -> Option<Output>;
}

impl dyn StandIn {
    /// This stand-in as a `T`, if it is one.
    pub fn downcast_mut<T: StandIn>(&mut self) -> Option<&mut T> {
        (self as &mut dyn std::any::Any).downcast_mut::<T>()
    }
}

/// The output of a tool that succeeded and printed `stdout`.
pub fn ok(stdout: impl Into<String>) -> Output {
    Output {
        status: 0,
        stdout: stdout.into(),
        stderr: String::new(),
        cost: Cost::default(),
    }
}

/// The output of a tool that failed with `status` and said `stderr`.
pub fn failed(status: i32, stderr: impl Into<String>) -> Output {
    Output {
        status,
        stdout: String::new(),
        stderr: stderr.into(),
        cost: Cost::default(),
    }
}
