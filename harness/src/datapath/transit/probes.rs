//! Loading, attaching and reading the transit probes (`dataplane/bpf/transit.bpf.c`).
//!
//! The object is loaded once, so both programs share one set of maps. The programs
//! are attached inside the node namespace by a thread that entered it and stays
//! there for the probes' lifetime: tc attachment (tcx links from kernel 6.6, netlink
//! cls_bpf filters before) resolves interfaces in the calling thread's namespace, and
//! a netlink filter must be removed from that namespace too. The thread owns the
//! programs and links; dropping [`Probes`] detaches them there. The ring buffer of
//! samples and the counters are read from the caller's thread (no namespace needed).
//! Nothing is pinned, so no bpffs is needed.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::mpsc;
use std::thread::JoinHandle;

use aya::maps::{MapData, PerCpuArray, RingBuf};
use aya::programs::tc::SchedClassifierLinkId;
use aya::programs::{SchedClassifier, TcAttachType};
use aya::{Ebpf, EbpfLoader};
use dataplane::ebpf::tc::{self, Place};
use dataplane::Netns;

use super::TransitError;

/// The compiled object, when the dataplane crate's `build.rs` could build it.
pub(crate) const OBJECT: Option<&[u8]> = dataplane::floor::bpf::TRANSIT;

pub use dataplane::ebpf::tc::{BACKEND_VETH, CLIENT_VETH};

const PROG_IN: &str = "transit_in";
const PROG_OUT: &str = "transit_out";
const MAP_SAMPLES: &str = "samples";
const MAP_COUNTERS: &str = "counters";

/// `struct counters` of the BPF program, field for field.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
struct RawCounters {
    transit_ns: u64,
    packets: u64,
    syn_in: u64,
    syn_out: u64,
    syn_restarted: u64,
    syn_evicted: u64,
    synack_in: u64,
    synack_out: u64,
    synack_restarted: u64,
    synack_evicted: u64,
    other_unmatched: u64,
    ring_full: u64,
    udp_in: u64,
    udp_out: u64,
    udp_reply_in: u64,
    udp_reply_out: u64,
}

// SAFETY: plain integers, `repr(C)`, no padding.
unsafe impl aya::Pod for RawCounters {}

/// The probes' counters, summed over CPUs. Take two and subtract ([`Counters::since`])
/// to get a phase's share.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counters {
    /// Nanoseconds of node transit, all TCP packets timed (SYN and SYN-ACK included).
    pub transit_ns: u64,
    /// TCP packets timed through the node.
    pub packets: u64,
    /// SYNs stamped at ingress / timed at egress.
    pub syn_in: u64,
    pub syn_out: u64,
    /// A retransmitted SYN overwrote its own pending start (its sample then times
    /// the retransmission only).
    pub syn_restarted: u64,
    /// A pending SYN lost its slot to another SYN (it will have no sample).
    pub syn_evicted: u64,
    pub synack_in: u64,
    pub synack_out: u64,
    pub synack_restarted: u64,
    pub synack_evicted: u64,
    /// Other TCP packets that left the node with no start on their CPU (queued for
    /// neighbour resolution, or arriving on an interface without the ingress probe).
    pub other_unmatched: u64,
    /// Samples lost because the ring buffer was full.
    pub ring_full: u64,
    /// Probe datagrams (a UDP target's first datagram of a flow) stamped at ingress /
    /// timed at egress, and the same for their replies. UDP is in no other counter.
    pub udp_in: u64,
    pub udp_out: u64,
    pub udp_reply_in: u64,
    pub udp_reply_out: u64,
}

impl Counters {
    fn add(&mut self, r: &RawCounters) {
        self.transit_ns += r.transit_ns;
        self.packets += r.packets;
        self.syn_in += r.syn_in;
        self.syn_out += r.syn_out;
        self.syn_restarted += r.syn_restarted;
        self.syn_evicted += r.syn_evicted;
        self.synack_in += r.synack_in;
        self.synack_out += r.synack_out;
        self.synack_restarted += r.synack_restarted;
        self.synack_evicted += r.synack_evicted;
        self.other_unmatched += r.other_unmatched;
        self.ring_full += r.ring_full;
        self.udp_in += r.udp_in;
        self.udp_out += r.udp_out;
        self.udp_reply_in += r.udp_reply_in;
        self.udp_reply_out += r.udp_reply_out;
    }

    /// What was counted after `earlier` was read.
    pub fn since(&self, earlier: &Counters) -> Counters {
        Counters {
            transit_ns: self.transit_ns.saturating_sub(earlier.transit_ns),
            packets: self.packets.saturating_sub(earlier.packets),
            syn_in: self.syn_in.saturating_sub(earlier.syn_in),
            syn_out: self.syn_out.saturating_sub(earlier.syn_out),
            syn_restarted: self.syn_restarted.saturating_sub(earlier.syn_restarted),
            syn_evicted: self.syn_evicted.saturating_sub(earlier.syn_evicted),
            synack_in: self.synack_in.saturating_sub(earlier.synack_in),
            synack_out: self.synack_out.saturating_sub(earlier.synack_out),
            synack_restarted: self
                .synack_restarted
                .saturating_sub(earlier.synack_restarted),
            synack_evicted: self.synack_evicted.saturating_sub(earlier.synack_evicted),
            other_unmatched: self.other_unmatched.saturating_sub(earlier.other_unmatched),
            ring_full: self.ring_full.saturating_sub(earlier.ring_full),
            udp_in: self.udp_in.saturating_sub(earlier.udp_in),
            udp_out: self.udp_out.saturating_sub(earlier.udp_out),
            udp_reply_in: self.udp_reply_in.saturating_sub(earlier.udp_reply_in),
            udp_reply_out: self.udp_reply_out.saturating_sub(earlier.udp_reply_out),
        }
    }

    /// Probe datagrams that entered the node and were not timed out of it (dropped,
    /// or sent elsewhere by the rules).
    pub fn udp_unmatched(&self) -> u64 {
        self.udp_in.saturating_sub(self.udp_out)
    }

    /// SYNs that entered the node and were not timed out of it.
    pub fn syn_unmatched(&self) -> u64 {
        self.syn_in.saturating_sub(self.syn_out)
    }

    /// SYN-ACKs that entered the node and were not timed out of it.
    pub fn synack_unmatched(&self) -> u64 {
        self.synack_in.saturating_sub(self.synack_out)
    }

    /// The node's in-kernel transit time per request: all packets' nanoseconds over
    /// `requests` completed requests (the `dataplane_ns_per_request` of a phase whose
    /// counters these are). `None` without requests.
    pub fn ns_per_request(&self, requests: u64) -> Option<f64> {
        (requests > 0).then(|| self.transit_ns as f64 / requests as f64)
    }
}

/// Which packet a sample timed: of a TCP handshake, or of a UDP target's flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Syn,
    SynAck,
    /// A UDP target's first datagram (the SYN's counterpart).
    Udp,
    /// Its reply from the echo (the SYN-ACK's).
    UdpReply,
}

impl Kind {
    /// The opening packet of a flow (SYN or first datagram), not the answer.
    pub fn opening(self) -> bool {
        matches!(self, Kind::Syn | Kind::Udp)
    }

    /// A UDP probe's.
    pub fn udp(self) -> bool {
        matches!(self, Kind::Udp | Kind::UdpReply)
    }
}

/// The magic numbers a probe datagram's payload starts with (big-endian, then the
/// 32-bit key): `KPBQ` from the client, `KPBR` in the echo's reply. Must match
/// `PROBE_REQUEST` and `PROBE_REPLY` in `transit.bpf.c`.
pub const PROBE_REQUEST: u32 = 0x4b50_4251;
pub const PROBE_REPLY: u32 = 0x4b50_4252;

/// One exact sample: a SYN or SYN-ACK's transit through the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    pub kind: Kind,
    /// The SYN's sequence number (for a SYN-ACK, its ack_seq - 1); a probe datagram's
    /// key.
    pub key: u32,
    /// The address the client dialled: the service VIP:port, the endpoint (direct) or
    /// the node's address and node port.
    pub dest: SocketAddrV4,
    pub ns: u64,
}

/// `struct sample` of the BPF program: 24 bytes.
pub(crate) const SAMPLE_SIZE: usize = 24;

impl Sample {
    /// Decodes one ring-buffer record; `None` for a short or unknown record.
    pub(crate) fn decode(b: &[u8]) -> Option<Sample> {
        if b.len() < SAMPLE_SIZE {
            return None;
        }
        let ns = u64::from_ne_bytes(b[0..8].try_into().ok()?);
        let key = u32::from_ne_bytes(b[8..12].try_into().ok()?);
        // Network order in the packet, stored as-is.
        let addr = Ipv4Addr::new(b[12], b[13], b[14], b[15]);
        let port = u16::from_be_bytes([b[16], b[17]]);
        let kind = match b[18] {
            1 => Kind::Syn,
            2 => Kind::SynAck,
            3 => Kind::Udp,
            4 => Kind::UdpReply,
            _ => return None,
        };
        Some(Sample {
            kind,
            key,
            dest: SocketAddrV4::new(addr, port),
            ns,
        })
    }
}

/// The programs' own run time, as the kernel accounts it while run-time statistics
/// are on ([`enable_run_stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunStats {
    pub run_ns: u64,
    pub runs: u64,
}

impl RunStats {
    pub fn since(&self, earlier: &RunStats) -> RunStats {
        RunStats {
            run_ns: self.run_ns.saturating_sub(earlier.run_ns),
            runs: self.runs.saturating_sub(earlier.runs),
        }
    }
}

/// Turns on the kernel's BPF run-time statistics (`BPF_ENABLE_STATS`) while the
/// returned descriptor lives; `None` when the kernel refuses. It adds two clock reads
/// to every BPF program run on the machine, so only the overhead rounds use it.
pub fn enable_run_stats() -> Option<std::os::fd::OwnedFd> {
    aya::sys::enable_stats(aya::sys::Stats::RunTime)
        .map_err(|e| tracing::debug!("BPF run-time statistics: {e}"))
        .ok()
}

type Reply<T> = mpsc::Sender<Result<T, TransitError>>;

enum Command {
    Attach(Reply<()>),
    Detach(Reply<()>),
    RunStats(Reply<RunStats>),
}

/// The transit probes of one case, loaded once into the node namespace.
pub struct Probes {
    node: String,
    samples: RingBuf<MapData>,
    counters: PerCpuArray<MapData, RawCounters>,
    commands: Option<mpsc::Sender<Command>>,
    thread: Option<JoinHandle<()>>,
    attached: bool,
}

impl std::fmt::Debug for Probes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Probes")
            .field("node", &self.node)
            .field("attached", &self.attached)
            .finish()
    }
}

impl Probes {
    /// Loads the programs and attaches them to the node's veths in `node`
    /// ([`CLIENT_VETH`], [`BACKEND_VETH`]): `transit_in` at both ingresses,
    /// `transit_out` at both egresses.
    pub fn load(node: &Netns) -> Result<Probes, TransitError> {
        let object = OBJECT.ok_or(TransitError::NotBuilt)?;
        if !dataplane::floor::netns::is_root() {
            return Err(TransitError::NotRoot);
        }
        let (ready_tx, ready_rx) = mpsc::channel();
        let (cmd_tx, cmd_rx) = mpsc::channel();
        let ns = node.clone();
        let thread = std::thread::Builder::new()
            .name("transit-probes".into())
            .spawn(move || probe_thread(ns, object, ready_tx, cmd_rx))
            .map_err(|e| TransitError::Thread(e.to_string()))?;
        let (samples, counters) = match ready_rx.recv() {
            Ok(Ok(maps)) => maps,
            Ok(Err(e)) => {
                let _ = thread.join();
                return Err(e);
            }
            Err(_) => {
                let _ = thread.join();
                return Err(TransitError::Thread("probe thread ended".into()));
            }
        };
        let mut probes = Probes {
            node: node.name.clone(),
            samples,
            counters,
            commands: Some(cmd_tx),
            thread: Some(thread),
            attached: false,
        };
        probes.attach()?;
        Ok(probes)
    }

    /// Whether the programs are attached now.
    pub fn is_attached(&self) -> bool {
        self.attached
    }

    /// Attaches the programs (again); a no-op when attached.
    pub fn attach(&mut self) -> Result<(), TransitError> {
        if self.attached {
            return Ok(());
        }
        self.command(Command::Attach)?;
        self.attached = true;
        Ok(())
    }

    /// Detaches the programs, keeping them and their maps loaded; a no-op when
    /// detached.
    pub fn detach(&mut self) -> Result<(), TransitError> {
        if !self.attached {
            return Ok(());
        }
        self.command(Command::Detach)?;
        self.attached = false;
        Ok(())
    }

    /// Both programs' run time so far (it grows only while [`enable_run_stats`]'s
    /// descriptor lives).
    pub fn run_stats(&self) -> Result<RunStats, TransitError> {
        self.command(Command::RunStats)
    }

    fn command<T>(&self, make: fn(Reply<T>) -> Command) -> Result<T, TransitError> {
        let gone = || TransitError::Thread("probe thread ended".into());
        let (tx, rx) = mpsc::channel();
        self.commands
            .as_ref()
            .ok_or_else(gone)?
            .send(make(tx))
            .map_err(|_| gone())?;
        rx.recv().map_err(|_| gone())?
    }

    /// The counters now, summed over CPUs.
    pub fn counters(&self) -> Result<Counters, TransitError> {
        let per_cpu = self.counters.get(&0, 0).map_err(|e| TransitError::Map {
            map: MAP_COUNTERS,
            detail: e.to_string(),
        })?;
        let mut sum = Counters::default();
        for c in per_cpu.iter() {
            sum.add(c);
        }
        Ok(sum)
    }

    /// Takes every sample waiting in the ring buffer.
    pub fn drain(&mut self) -> Vec<Sample> {
        let mut out = Vec::new();
        while let Some(item) = self.samples.next() {
            if let Some(s) = Sample::decode(&item) {
                out.push(s);
            }
        }
        out
    }
}

impl Drop for Probes {
    fn drop(&mut self) {
        // Closing the channel ends the thread, which drops the programs and their
        // links inside the node namespace.
        self.commands = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

type Maps = (RingBuf<MapData>, PerCpuArray<MapData, RawCounters>);

/// The thread that lives in the node namespace: loads, then attaches and detaches on
/// command until the channel closes.
fn probe_thread(
    node: Netns,
    object: &'static [u8],
    ready: mpsc::Sender<Result<Maps, TransitError>>,
    commands: mpsc::Receiver<Command>,
) {
    if let Err(e) = node.enter() {
        let _ = ready.send(Err(TransitError::Netns(e)));
        return;
    }
    let mut loaded = match load(object) {
        Ok(l) => l,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let maps = match take_maps(&mut loaded.ebpf) {
        Ok(m) => m,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    if ready.send(Ok(maps)).is_err() {
        return;
    }
    while let Ok(cmd) = commands.recv() {
        match cmd {
            Command::Attach(reply) => {
                let r = loaded.attach(&node.name);
                if r.is_err() {
                    loaded.detach();
                }
                let _ = reply.send(r);
            }
            Command::Detach(reply) => {
                loaded.detach();
                let _ = reply.send(Ok(()));
            }
            Command::RunStats(reply) => {
                let _ = reply.send(loaded.run_stats());
            }
        }
    }
    // Links go first, in this namespace; then the programs and maps.
    loaded.detach();
}

/// The loaded object and the links made from it.
struct Loaded {
    ebpf: Ebpf,
    links: Vec<(&'static str, SchedClassifierLinkId)>,
}

fn load(object: &[u8]) -> Result<Loaded, TransitError> {
    let mut ebpf = EbpfLoader::new().load(object).map_err(|e| match e {
        aya::EbpfError::ParseError(_) | aya::EbpfError::BtfRelocationError(_) => {
            TransitError::Object(chain(&e))
        }
        _ => TransitError::Load(chain(&e)),
    })?;
    for name in [PROG_IN, PROG_OUT] {
        let prog: &mut SchedClassifier = program(&mut ebpf, name)?;
        prog.load()
            .map_err(|e| TransitError::Load(format!("program {name}: {}", chain(&e))))?;
    }
    Ok(Loaded {
        ebpf,
        links: Vec::new(),
    })
}

fn program<'a>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut SchedClassifier, TransitError> {
    ebpf.program_mut(name)
        .ok_or_else(|| TransitError::Load(format!("program {name} missing from the object")))?
        .try_into()
        .map_err(|e: aya::programs::ProgramError| {
            TransitError::Load(format!("program {name}: {e}"))
        })
}

fn take_maps(ebpf: &mut Ebpf) -> Result<Maps, TransitError> {
    let missing = |map| TransitError::Map {
        map,
        detail: "missing from the object".into(),
    };
    let samples = ebpf
        .take_map(MAP_SAMPLES)
        .ok_or_else(|| missing(MAP_SAMPLES))?;
    let counters = ebpf
        .take_map(MAP_COUNTERS)
        .ok_or_else(|| missing(MAP_COUNTERS))?;
    let samples = RingBuf::try_from(samples).map_err(|e| TransitError::Map {
        map: MAP_SAMPLES,
        detail: e.to_string(),
    })?;
    let counters = PerCpuArray::try_from(counters).map_err(|e| TransitError::Map {
        map: MAP_COUNTERS,
        detail: e.to_string(),
    })?;
    Ok((samples, counters))
}

impl Loaded {
    /// `transit_in` first at both ingresses, `transit_out` last at both egresses, so
    /// another tc program on the same link (the ebpf-tc mode's) runs inside the
    /// interval.
    fn attach(&mut self, ns: &str) -> Result<(), TransitError> {
        let points = [
            (PROG_IN, CLIENT_VETH, TcAttachType::Ingress),
            (PROG_IN, BACKEND_VETH, TcAttachType::Ingress),
            (PROG_OUT, BACKEND_VETH, TcAttachType::Egress),
            (PROG_OUT, CLIENT_VETH, TcAttachType::Egress),
        ];
        for (name, iface, at) in points {
            let err = |detail: String| TransitError::Attach {
                program: name,
                iface,
                ns: ns.to_string(),
                detail,
            };
            let place = match at {
                TcAttachType::Ingress => Place::First,
                _ => Place::Last,
            };
            let options = tc::options(iface, place).map_err(|e| err(e.to_string()))?;
            let prog = program(&mut self.ebpf, name)?;
            let id = prog
                .attach_with_options(iface, at, options)
                .map_err(|e| err(chain(&e)))?;
            self.links.push((name, id));
        }
        Ok(())
    }

    fn run_stats(&mut self) -> Result<RunStats, TransitError> {
        let mut sum = RunStats::default();
        for name in [PROG_IN, PROG_OUT] {
            let info = program(&mut self.ebpf, name)?
                .info()
                .map_err(|e| TransitError::Load(format!("program {name} info: {}", chain(&e))))?;
            sum.run_ns += info.run_time().as_nanos() as u64;
            sum.runs += info.run_count();
        }
        Ok(sum)
    }

    fn detach(&mut self) {
        for (name, id) in std::mem::take(&mut self.links) {
            if let Ok(prog) = program(&mut self.ebpf, name) {
                if let Err(e) = prog.detach(id) {
                    tracing::warn!("detaching {name}: {}", chain(&e));
                }
            }
        }
    }
}

/// An error with its sources, one line ("a: b: c"); the verifier's log is cut to its
/// last lines.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(cause) = src {
        let text = cause.to_string();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(4)..].join(" | ");
        s.push_str(": ");
        s.push_str(&tail);
        src = cause.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ring_record_decodes_to_its_sample() {
        let mut b = Vec::new();
        b.extend_from_slice(&9_010u64.to_ne_bytes());
        b.extend_from_slice(&0xdead_beefu32.to_ne_bytes());
        b.extend_from_slice(&[10, 96, 0, 1]);
        b.extend_from_slice(&80u16.to_be_bytes());
        b.push(1);
        b.extend_from_slice(&[0; 5]);
        assert_eq!(b.len(), SAMPLE_SIZE);
        assert_eq!(
            Sample::decode(&b),
            Some(Sample {
                kind: Kind::Syn,
                key: 0xdead_beef,
                dest: "10.96.0.1:80".parse().unwrap(),
                ns: 9_010,
            })
        );
        b[18] = 2;
        assert_eq!(Sample::decode(&b).unwrap().kind, Kind::SynAck);
        b[18] = 3;
        assert_eq!(Sample::decode(&b).unwrap().kind, Kind::Udp);
        b[18] = 4;
        assert_eq!(Sample::decode(&b).unwrap().kind, Kind::UdpReply);
        b[18] = 7;
        assert_eq!(Sample::decode(&b), None);
        assert_eq!(Sample::decode(&b[..20]), None);
    }

    #[test]
    fn counters_subtract_and_divide_by_requests() {
        let a = Counters {
            transit_ns: 1_000,
            packets: 10,
            syn_in: 3,
            syn_out: 3,
            ..Default::default()
        };
        let b = Counters {
            transit_ns: 31_000,
            packets: 40,
            syn_in: 13,
            syn_out: 12,
            ..Default::default()
        };
        let d = b.since(&a);
        assert_eq!(d.transit_ns, 30_000);
        assert_eq!(d.syn_unmatched(), 1);
        assert_eq!(d.ns_per_request(10), Some(3_000.0));
        assert_eq!(d.ns_per_request(0), None);
    }

    #[test]
    fn the_object_is_embedded_or_loading_says_what_to_install() {
        match OBJECT {
            Some(obj) => {
                assert_eq!(&obj[..4], b"\x7fELF");
                assert_eq!(obj.as_ptr() as usize % 8, 0);
            }
            None => {
                let e = Probes::load(&Netns::named("unused")).unwrap_err();
                assert_eq!(
                    e.to_string(),
                    "BPF programs not built: install clang and libbpf-dev (scripts/install-deps.sh), then rebuild"
                );
            }
        }
    }

    #[test]
    fn the_counters_layout_matches_the_program() {
        // struct counters: sixteen __u64.
        assert_eq!(std::mem::size_of::<RawCounters>(), 16 * 8);
    }
}
