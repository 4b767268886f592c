//! `kpbench load`: the load generator on its own, against any HTTP/1.1 server.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use anyhow::{bail, Context};

use crate::datapath::load::{run_load, LoadSpec};

/// `kpbench load` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct LoadArgs {
    /// Target, `http://HOST:PORT/PATH` (HOST an IP address or a name in /etc/hosts).
    #[arg(long)]
    pub url: String,
    /// Requests per second (open loop, latency corrected for coordinated omission);
    /// omit to send as fast as the connections allow (closed loop).
    #[arg(long)]
    pub rate: Option<f64>,
    /// How long to send, e.g. `5s`, `500ms`, `1m`.
    #[arg(long, value_parser = super::duration::parse, default_value = "5s")]
    pub duration: Duration,
    /// Concurrent connections (open loop: the most in flight).
    #[arg(long, default_value_t = 32)]
    pub connections: usize,
    /// Reuse connections instead of a new TCP connection per request.
    #[arg(long)]
    pub keepalive: bool,
    /// Limit for one request, connect included.
    #[arg(long, value_parser = super::duration::parse, default_value = "2s")]
    pub timeout: Duration,
    /// Generator threads (0 = one per CPU).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Print one JSON object instead of a summary.
    #[arg(long)]
    pub json: bool,
}

/// Splits `http://host:port/path` into a socket address and a path.
pub fn parse_url(url: &str) -> anyhow::Result<(SocketAddr, String)> {
    let Some(rest) = url.strip_prefix("http://") else {
        bail!("--url {url}: only http:// URLs are supported");
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() {
        bail!("--url {url}: no host");
    }
    // An authority without a port (and not a bare IPv6 literal) gets port 80.
    let with_port = if authority
        .rsplit_once(':')
        .is_some_and(|(h, _)| !h.ends_with(':'))
        && !authority.ends_with(']')
    {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    let addr = with_port
        .to_socket_addrs()
        .with_context(|| format!("--url {url}: cannot resolve {authority}"))?
        .min_by_key(|a| !a.is_ipv4())
        .with_context(|| format!("--url {url}: {authority} has no address"))?;
    Ok((addr, path.to_string()))
}

/// `kpbench load`: runs one load phase from the current namespace and prints the result.
pub fn load_main(args: LoadArgs) -> anyhow::Result<()> {
    let (target, path) = parse_url(&args.url)?;
    let spec = LoadSpec {
        target,
        path,
        rate_per_s: args.rate,
        duration: args.duration,
        connections: args.connections,
        keepalive: args.keepalive,
        request_timeout: args.timeout,
        threads: args.threads,
    };
    let report = run_load(None, &spec)?;
    if args.json {
        println!("{}", serde_json::to_string(&report.to_json())?);
    } else {
        println!("{}", report.human());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        let (a, p) = parse_url("http://127.0.0.1:8080/").unwrap();
        assert_eq!((a.to_string(), p.as_str()), ("127.0.0.1:8080".into(), "/"));
        let (a, p) = parse_url("http://10.96.0.1/x/y").unwrap();
        assert_eq!((a.to_string(), p.as_str()), ("10.96.0.1:80".into(), "/x/y"));
        let (a, _) = parse_url("http://[::1]:81").unwrap();
        assert_eq!(a.to_string(), "[::1]:81");
        assert!(parse_url("https://127.0.0.1/").is_err());
        assert!(parse_url("http:///").is_err());
    }
}
