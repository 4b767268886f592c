//! The paired connection pass: new TCP connections from the client namespace to every
//! target in turn (service positions from first to last, direct, then the other paths'
//! targets), one pass, round after round, so the machine's speed phases fall on every
//! target alike and cancel in the differences. Each connection is connect-then-close;
//! the probes time its SYN and SYN-ACK through the node. A UDP target gets one probe
//! datagram per flow from a fresh socket (a new conntrack entry, so a new lookup),
//! answered by an echo on its endpoints; the probes time the datagram and the reply.
//! Then the probe-overhead rounds: the same connections, alternately with the probes
//! attached and detached.

use std::collections::BTreeMap;
use std::net::{SocketAddr, SocketAddrV4, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use dataplane::floor::model::ServiceSet;

use super::probes::{enable_run_stats, Counters, Probes, Sample, PROBE_REPLY, PROBE_REQUEST};
use super::result::{summarize, FitConfig, Overhead, OverheadRound, Tally, TargetSamples, Transit};
use super::target::{all_targets, Target};
use super::TransitError;
use crate::analysis::stats::SplitMix64;
use crate::datapath::serve::UdpEcho;
use crate::results::TransitPath;
use crate::sandbox::topology::Topology;

/// How the pass runs.
#[derive(Debug, Clone)]
pub struct PassConfig {
    /// Service positions, evenly spaced from the first to the last (at least 2).
    pub positions: usize,
    /// Rounds over all targets (one connection to each per round).
    pub rounds: usize,
    /// The pass stops after this long even if rounds remain.
    pub pass_time_limit: Duration,
    /// Most pairs of overhead rounds (attached, detached); 0 skips the overhead test.
    pub overhead_pairs: usize,
    /// Pairs before the overhead's interval is first looked at; from then on, every
    /// [`OVERHEAD_CHECK_EVERY`] pairs, the test stops once the interval is no wider
    /// than ±5 points (`analysis::stats::overhead_resolved`).
    pub overhead_min_pairs: usize,
    /// How long one overhead round makes connections (round-robin over the targets).
    pub overhead_round: Duration,
    /// The overhead test stops after this long even if pairs remain.
    pub overhead_time_limit: Duration,
    pub connect_timeout: Duration,
    /// Bootstrap resamples for the slope's interval, and the generator's seed.
    pub resamples: usize,
    pub seed: u64,
}

impl Default for PassConfig {
    fn default() -> Self {
        PassConfig {
            positions: 9,
            rounds: 200,
            pass_time_limit: Duration::from_secs(60),
            overhead_pairs: 100,
            overhead_min_pairs: 20,
            overhead_round: Duration::from_millis(25),
            overhead_time_limit: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(1),
            resamples: 1_000,
            seed: 0x6b70_6265_6e63_6821,
        }
    }
}

/// The transit figures of a case, with the exact samples behind them.
#[derive(Debug, Clone)]
pub struct TransitPass {
    pub transit: Transit,
    pub samples: Vec<TargetSamples>,
    /// The probes' counters over the interleaved pass (not the overhead rounds).
    pub counters: Counters,
}

/// Runs the interleaved pass and the overhead rounds through `topo` (programmed with
/// `set`, the backend server answering) with `probes` loaded in its node. Leaves the
/// probes attached.
pub fn measure(
    probes: &mut Probes,
    topo: &Topology,
    set: &ServiceSet,
    cfg: &PassConfig,
) -> Result<TransitPass, TransitError> {
    let picked = all_targets(set, cfg.positions);
    let mut absent = picked.absent;
    let mut targets = picked.targets;
    if targets.is_empty() {
        return Err(TransitError::Pass("no service to time".into()));
    }
    let _echo = udp_echo(topo, &mut targets, &mut absent);
    let client = topo.client.clone();
    let run = std::thread::scope(|s| {
        s.spawn(|| -> Result<_, TransitError> {
            client.enter()?;
            probes.attach()?;
            let (tallies, samples, counters) = interleaved(probes, &targets, cfg)?;
            let live: Vec<Target> = targets
                .iter()
                .zip(&tallies)
                .filter(|(t, tally)| !retired(t, tally))
                .map(|(t, _)| t.clone())
                .collect();
            let overhead = overhead_rounds(probes, &live, cfg);
            probes.attach()?;
            Ok((tallies, samples, counters, overhead?))
        })
        .join()
    });
    let (tallies, samples, counters, overhead) =
        run.map_err(|_| TransitError::Thread("transit pass thread panicked".into()))??;
    if tallies.iter().all(|t| t.ok == 0) {
        return Err(TransitError::Pass(format!(
            "no connection to any of {} targets succeeded: the topology does not carry traffic",
            targets.len()
        )));
    }
    let fit = FitConfig {
        resamples: cfg.resamples,
        seed: cfg.seed,
    };
    let (transit, samples) = summarize(
        &targets, &absent, &tallies, &samples, &counters, &overhead, fit,
    );
    Ok(TransitPass {
        transit,
        samples,
        counters,
    })
}

/// The echo for the UDP targets, on their endpoints in the backend namespace; a UDP
/// target whose echo cannot listen is taken out, `absent` saying why.
fn udp_echo(
    topo: &Topology,
    targets: &mut Vec<Target>,
    absent: &mut BTreeMap<TransitPath, String>,
) -> Option<UdpEcho> {
    let addrs: Vec<SocketAddrV4> = targets
        .iter()
        .filter(|t| t.udp())
        .flat_map(|t| t.backends.iter().copied())
        .collect();
    if addrs.is_empty() {
        return None;
    }
    match UdpEcho::start(&topo.backend, &addrs) {
        Ok(echo) => Some(echo),
        Err(e) => {
            for t in targets.iter().filter(|t| t.udp()) {
                absent.insert(
                    t.path,
                    format!("{}: the UDP echo could not listen: {e}", t.name),
                );
            }
            targets.retain(|t| !t.udp());
            None
        }
    }
}

/// A path target (beyond `clusterip`) whose first this many tries all failed is
/// dialled no more in the pass: a mode that cannot carry it would otherwise spend a
/// timeout per round on it. Its record says so.
const RETIRE_AFTER: u64 = 3;

/// Fisher-Yates: `v` in a uniformly random order drawn from `rng`.
fn shuffle(v: &mut [usize], rng: &mut SplitMix64) {
    for i in (1..v.len()).rev() {
        v.swap(i, rng.below(i + 1));
    }
}

/// Connects to `addr` and closes; whether the connection was made.
fn connect(addr: SocketAddrV4, timeout: Duration) -> bool {
    TcpStream::connect_timeout(&SocketAddr::V4(addr), timeout).is_ok()
}

/// One flow to `t`: a TCP connection, or for a UDP target one probe datagram from a
/// fresh socket with the next key of `key`, answered by the echo within `timeout`.
fn dial(t: &Target, timeout: Duration, key: &mut u32) -> bool {
    if !t.udp() {
        return connect(t.addr, timeout);
    }
    *key = key.wrapping_add(1);
    datagram(t.addr, *key, timeout).unwrap_or(false)
}

/// Sends one probe datagram with `key` to `addr` and waits for its echo.
fn datagram(addr: SocketAddrV4, key: u32, timeout: Duration) -> std::io::Result<bool> {
    let sock = UdpSocket::bind(SocketAddr::from(([0, 0, 0, 0], 0)))?;
    sock.set_read_timeout(Some(timeout))?;
    sock.connect(SocketAddr::V4(addr))?;
    let mut out = [0u8; 16];
    out[..4].copy_from_slice(&PROBE_REQUEST.to_be_bytes());
    out[4..8].copy_from_slice(&key.to_be_bytes());
    sock.send(&out)?;
    let mut back = [0u8; 64];
    let n = sock.recv(&mut back)?;
    Ok(n >= 8 && back[..4] == PROBE_REPLY.to_be_bytes() && back[4..8] == key.to_be_bytes())
}

/// The pass proper, on a thread in the client namespace: one warm-up connection per
/// target (ARP, routes, the server's first accept), then rounds. Each round visits the
/// targets in a fresh random order (seeded by `cfg.seed`, so a pass can be replayed):
/// no target always comes first, follows the ring-buffer drain or follows a given
/// neighbour, so a place in the round is no effect fixed per target.
fn interleaved(
    probes: &mut Probes,
    targets: &[Target],
    cfg: &PassConfig,
) -> Result<(Vec<Tally>, Vec<Sample>, Counters), TransitError> {
    let mut key = cfg.seed as u32;
    for t in targets {
        dial(t, cfg.connect_timeout, &mut key);
    }
    let _ = probes.drain();
    let before = probes.counters()?;
    let started = Instant::now();
    let mut tallies = vec![Tally::default(); targets.len()];
    let mut samples = Vec::with_capacity(cfg.rounds * targets.len() * 2);
    let mut order: Vec<usize> = (0..targets.len()).collect();
    let mut rng = SplitMix64::new(cfg.seed);
    for round in 0..cfg.rounds {
        if dataplane::floor::exec::cancelled() {
            return Err(TransitError::Interrupted);
        }
        if started.elapsed() > cfg.pass_time_limit {
            tracing::warn!(
                "transit pass: time limit reached after {round} of {} rounds",
                cfg.rounds
            );
            break;
        }
        shuffle(&mut order, &mut rng);
        for &i in &order {
            if retired(&targets[i], &tallies[i]) {
                continue;
            }
            if dial(&targets[i], cfg.connect_timeout, &mut key) {
                tallies[i].ok += 1;
            } else {
                tallies[i].errors += 1;
            }
        }
        samples.extend(probes.drain());
    }
    // A last SYN-ACK may still be on its way out of the node.
    std::thread::sleep(Duration::from_millis(20));
    samples.extend(probes.drain());
    let counters = probes.counters()?.since(&before);
    Ok((tallies, samples, counters))
}

/// Whether `t` is dialled no more: a path target whose every one of its first
/// [`RETIRE_AFTER`] tries failed.
fn retired(t: &Target, tally: &Tally) -> bool {
    t.path != TransitPath::ClusterIp && tally.ok == 0 && tally.errors >= RETIRE_AFTER
}

/// How often (in pairs) the overhead test looks at its interval after its minimum.
pub const OVERHEAD_CHECK_EVERY: usize = 10;

/// Whether `rounds` are enough: at least `min` pairs, at a check point, and the paired
/// overhead's interval no wider than ±5 points.
fn overhead_done(rounds: &[OverheadRound], min: usize) -> bool {
    let n = rounds.len();
    if n < min.max(1) || !(n - min).is_multiple_of(OVERHEAD_CHECK_EVERY) {
        return false;
    }
    let pairs: Vec<(f64, f64)> = rounds.iter().map(|r| (r.on_per_s, r.off_per_s)).collect();
    super::stats::paired_overhead_pct(&pairs).is_some_and(|e| {
        crate::analysis::stats::overhead_resolved(&crate::results::Estimate {
            estimate: e.estimate,
            ci95: e.ci95,
        })
    })
}

/// Pairs of short rounds, attached then detached or the reverse (alternating, so a
/// drift favours neither): connections per second each, until the overhead's interval
/// is narrow enough to state it ([`overhead_done`]), the pairs run out or the time
/// limit is reached (then it is reported as not resolved). Meanwhile the kernel's BPF
/// run-time statistics give the programs' own time per connection, a figure the
/// machine's load does not blur.
fn overhead_rounds(
    probes: &mut Probes,
    targets: &[Target],
    cfg: &PassConfig,
) -> Result<Overhead, TransitError> {
    if cfg.overhead_pairs == 0 {
        return Ok(Overhead::default());
    }
    let stats_fd = enable_run_stats();
    let stats_before = probes.run_stats().ok();
    let started = Instant::now();
    let mut rounds = Vec::with_capacity(cfg.overhead_pairs);
    let mut next = 0usize;
    let mut key = (cfg.seed as u32).wrapping_add(1 << 31);
    let mut on_connections = 0u64;
    let mut rate = |probes: &mut Probes, on: bool| -> Result<f64, TransitError> {
        if on {
            probes.attach()?;
        } else {
            probes.detach()?;
        }
        let t0 = Instant::now();
        let mut ok = 0u64;
        while t0.elapsed() < cfg.overhead_round {
            ok += u64::from(dial(
                &targets[next % targets.len()],
                cfg.connect_timeout,
                &mut key,
            ));
            next += 1;
        }
        let secs = t0.elapsed().as_secs_f64();
        let _ = probes.drain();
        if on {
            on_connections += ok;
        }
        Ok(if secs > 0.0 { ok as f64 / secs } else { 0.0 })
    };
    for pair in 0..cfg.overhead_pairs {
        if dataplane::floor::exec::cancelled() {
            return Err(TransitError::Interrupted);
        }
        if started.elapsed() > cfg.overhead_time_limit {
            tracing::info!(
                "probe overhead: time limit reached after {pair} of at most {} pairs",
                cfg.overhead_pairs
            );
            break;
        }
        let (on, off) = if pair % 2 == 0 {
            let on = rate(probes, true)?;
            (on, rate(probes, false)?)
        } else {
            let off = rate(probes, false)?;
            (rate(probes, true)?, off)
        };
        rounds.push(OverheadRound {
            on_per_s: on,
            off_per_s: off,
        });
        if overhead_done(&rounds, cfg.overhead_min_pairs) {
            break;
        }
    }
    let run = match (stats_fd.as_ref(), stats_before, probes.run_stats()) {
        (Some(_), Some(before), Ok(after)) => Some(after.since(&before)),
        _ => None,
    };
    drop(stats_fd);
    Ok(Overhead {
        rounds,
        run_ns_per_connection: run
            .filter(|r| r.runs > 0 && on_connections > 0)
            .map(|r| r.run_ns as f64 / on_connections as f64),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rounds(pct: &[f64]) -> Vec<OverheadRound> {
        pct.iter()
            .map(|p| OverheadRound {
                on_per_s: 1000.0 * (1.0 - p / 100.0),
                off_per_s: 1000.0,
            })
            .collect()
    }

    #[test]
    fn the_overhead_test_stops_once_its_interval_is_narrow_enough() {
        // Tight pairs: done at the minimum, not before, and only at check points.
        let tight: Vec<f64> = (0..40).map(|k| 3.0 + (k % 5) as f64 * 0.5).collect();
        assert!(!overhead_done(&rounds(&tight[..19]), 20));
        assert!(overhead_done(&rounds(&tight[..20]), 20));
        assert!(!overhead_done(&rounds(&tight[..25]), 20));
        assert!(overhead_done(&rounds(&tight[..30]), 20));
        // Pairs spread over ±40 points: never resolved at 40 pairs.
        let wide: Vec<f64> = (0..40)
            .map(|k| if k % 2 == 0 { 40.0 } else { -40.0 })
            .collect();
        assert!(!overhead_done(&rounds(&wide), 20));
    }
}
