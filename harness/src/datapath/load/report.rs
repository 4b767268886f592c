//! Summaries of a [`LoadReport`]: latency percentiles, the HdrHistogram V2 (deflate)
//! encoding, and the JSON object `kpbench load --json` prints (field names follow a
//! datapath target in `results.schema.json`).

use hdrhistogram::serialization::{Serializer, V2DeflateSerializeError, V2DeflateSerializer};
use hdrhistogram::Histogram;
use serde::Serialize;

use super::LoadReport;

/// Percentiles of a latency histogram, in microseconds (all 0 when it is empty): the
/// `latency_us` object of `results.json`.
pub type LatencySummary = crate::results::Latency;

/// p50/p90/p99/p999/max/mean of `h`.
pub fn summarize(h: &Histogram<u64>) -> LatencySummary {
    let q = |q: f64| h.value_at_quantile(q) as f64;
    LatencySummary {
        p50: q(0.5),
        p90: q(0.9),
        p99: q(0.99),
        p999: q(0.999),
        max: h.max() as f64,
        mean: h.mean(),
    }
}

/// A histogram that could not be encoded (in practice only an allocation or internal
/// failure of the serializer); the report then goes without the encoded histogram.
#[derive(Debug, thiserror::Error)]
#[error("hdr histogram serialization: {0}")]
pub struct HistogramEncodeError(V2DeflateSerializeError);

/// `h` as HdrHistogram V2 deflate, base64 (readable by every HdrHistogram library).
pub fn histogram_base64(h: &Histogram<u64>) -> Result<String, HistogramEncodeError> {
    let mut bytes = Vec::new();
    V2DeflateSerializer::new()
        .serialize(h, &mut bytes)
        .map_err(HistogramEncodeError)?;
    Ok(data_encoding::BASE64.encode(&bytes))
}

/// The JSON form of a report (`kpbench load --json`).
#[derive(Debug, Clone, Serialize)]
pub struct LoadJson {
    /// Requests the generator meant to send: `ok + errors`.
    pub requests: u64,
    /// Requests answered with a 2xx status.
    pub ok: u64,
    /// Requests that failed, of every kind.
    pub errors: u64,
    /// Failed requests by kind.
    pub errors_by_kind: super::ErrorCounts,
    /// Requests per second offered (open loop); `null` for a closed loop.
    pub offered_rate_per_s: Option<f64>,
    /// Answered requests per second over the wall time.
    pub achieved_rate_per_s: f64,
    /// Latency of answered requests, coordinated-omission corrected in open loop.
    pub latency_us: LatencySummary,
    /// Latency from the actual send, without the correction.
    pub uncorrected_latency_us: LatencySummary,
    /// TCP connect time of each new connection.
    pub connect_latency_us: LatencySummary,
    /// Open loop: how late each request was sent after its due time.
    pub send_lag_us: LatencySummary,
    /// `latency_us` as HdrHistogram V2 (deflate), base64; empty if it could not be
    /// encoded.
    pub hdr_histogram_base64: String,
    /// Answers per endpoint (the IPv4 address in the response body).
    pub endpoints: std::collections::BTreeMap<String, u64>,
    /// Answers whose body was not an IPv4 address.
    pub endpoint_unknown: u64,
    /// User CPU of the generator's threads.
    pub client_cpu_user_ms: f64,
    /// System CPU of the generator's threads.
    pub client_cpu_sys_ms: f64,
    /// The generator's CPU (user + sys) per answered request.
    pub client_cpu_per_request_us: f64,
    /// The client, not the target, was probably the limit.
    pub client_limited: bool,
    /// From the start until the last thread finished, seconds.
    pub wall_s: f64,
    /// Generator threads.
    pub threads: usize,
    /// Connection slots.
    pub connections: usize,
}

impl LoadReport {
    /// The report's JSON form.
    pub fn to_json(&self) -> LoadJson {
        LoadJson {
            requests: self.requests,
            ok: self.ok,
            errors: self.errors.total(),
            errors_by_kind: self.errors.clone(),
            offered_rate_per_s: self.offered_rate_per_s,
            achieved_rate_per_s: self.achieved_rate_per_s,
            latency_us: summarize(&self.latency_us),
            uncorrected_latency_us: summarize(&self.uncorrected_latency_us),
            connect_latency_us: summarize(&self.connect_us),
            send_lag_us: summarize(&self.send_lag_us),
            hdr_histogram_base64: histogram_base64(&self.latency_us).unwrap_or_default(),
            endpoints: self
                .endpoints
                .iter()
                .map(|(ip, n)| (ip.to_string(), *n))
                .collect(),
            endpoint_unknown: self.endpoint_unknown,
            client_cpu_user_ms: self.client_cpu_user_ms,
            client_cpu_sys_ms: self.client_cpu_sys_ms,
            client_cpu_per_request_us: self.client_cpu_per_request_us(),
            client_limited: self.client_limited(),
            wall_s: self.wall.as_secs_f64(),
            threads: self.threads,
            connections: self.connections,
        }
    }

    /// A few lines for people.
    pub fn human(&self) -> String {
        let l = summarize(&self.latency_us);
        let c = summarize(&self.connect_us);
        let e = &self.errors;
        let mut s = format!(
            "{} requests in {:.2}s, {} ok, {} errors, {:.1} req/s",
            self.requests,
            self.wall.as_secs_f64(),
            self.ok,
            e.total(),
            self.achieved_rate_per_s
        );
        if let Some(r) = self.offered_rate_per_s {
            s += &format!(" (offered {r:.1} req/s)");
        }
        s += &format!(
            "\nlatency us: p50 {} p90 {} p99 {} p999 {} max {} mean {:.1}",
            l.p50, l.p90, l.p99, l.p999, l.max, l.mean
        );
        if !self.connect_us.is_empty() {
            s += &format!("\nconnect us: p50 {} p99 {} max {}", c.p50, c.p99, c.max);
        }
        if e.total() > 0 {
            s += &format!(
                "\nerrors: refused {} reset {} timeout {} http_status {} not_sent {} other {}",
                e.refused, e.reset, e.timeout, e.http_status, e.not_sent, e.other
            );
            if let Some(m) = &e.first_other {
                s += &format!(" (first other: {m})");
            }
        }
        let hit = self.endpoints.len();
        if hit > 0 {
            let (min, max) = self
                .endpoints
                .values()
                .fold((u64::MAX, 0), |(lo, hi), &n| (lo.min(n), hi.max(n)));
            s += &format!("\nendpoints: {hit} answered (min {min}, max {max} each)");
        }
        s += &format!(
            "\nclient cpu: user {:.0} ms, sys {:.0} ms on {} threads{}",
            self.client_cpu_user_ms,
            self.client_cpu_sys_ms,
            self.threads,
            if self.client_limited() {
                " (the client was probably the limit)"
            } else {
                ""
            }
        );
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hdrhistogram::serialization::Deserializer;

    #[test]
    fn summary_and_roundtrip() {
        let mut h = crate::datapath::load::new_histogram();
        for v in 1..=1000u64 {
            h.record(v).unwrap();
        }
        let s = summarize(&h);
        assert_eq!((s.p50, s.p90, s.p99), (500.0, 900.0, 990.0));
        assert_eq!(s.max, 1000.0);
        assert!((s.mean - 500.5).abs() < 0.01);
        let b64 = histogram_base64(&h).unwrap();
        let bytes = data_encoding::BASE64.decode(b64.as_bytes()).unwrap();
        let back: Histogram<u64> = Deserializer::new()
            .deserialize(&mut bytes.as_slice())
            .unwrap();
        assert_eq!(back.len(), 1000);
        assert_eq!(back.value_at_quantile(0.99), 990);
    }

    #[test]
    fn empty_summary_is_zero() {
        let s = summarize(&crate::datapath::load::new_histogram());
        assert_eq!((s.p50, s.max, s.mean), (0.0, 0.0, 0.0));
    }
}
