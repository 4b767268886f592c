//! The load generator against in-process servers on loopback (and, as root, inside a
//! `kpb-` namespace of its own: without feature `root-tests` that test is reported as
//! ignored). Every phase is short and bounded.

mod tier;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use dataplane::floor::netns::Netns;
use harness::datapath::load::{run_load, summarize, LoadError, LoadSpec, SpecError};
use harness::datapath::serve::{ServeOptions, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Timing-sensitive: run one at a time so they do not compete for the two CPUs.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn loopback_server() -> Server {
    Server::start(None, ServeOptions::new("127.0.0.1:0".parse().unwrap())).unwrap()
}

/// A raw HTTP server on 127.0.0.1 for behaviours `serve` does not have. `respond`
/// gets the arrival time of each request and returns (when to answer, status).
/// The server thread ends when `stop` is dropped.
struct RawServer {
    addr: SocketAddr,
    _stop: tokio::sync::oneshot::Sender<()>,
}

fn raw_server(respond: fn(Instant, Instant) -> (Instant, u16)) -> RawServer {
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            addr_tx.send(l.local_addr().unwrap()).unwrap();
            let t0 = Instant::now();
            loop {
                let (mut s, _) = tokio::select! {
                    _ = &mut stop_rx => return,
                    a = l.accept() => a.unwrap(),
                };
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    let mut got = Vec::new();
                    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                        match s.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => got.extend_from_slice(&buf[..n]),
                        }
                    }
                    let (at, status) = respond(t0, Instant::now());
                    tokio::time::sleep_until(at.into()).await;
                    let body = "127.0.0.1";
                    let resp = format!(
                        "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = s.write_all(resp.as_bytes()).await;
                    let _ = s.shutdown().await;
                });
            }
        });
    });
    RawServer {
        addr: addr_rx.recv().unwrap(),
        _stop: stop_tx,
    }
}

#[test]
fn closed_loop_connection_per_request_tallies_endpoints() {
    let _g = serial();
    let server = loopback_server();
    let spec = LoadSpec::closed_loop(server.local_addr(), Duration::from_millis(300), 4);
    let r = run_load(None, &spec).unwrap();
    assert!(r.ok > 50, "only {} ok", r.ok);
    assert_eq!(r.errors.total(), 0, "{:?}", r.errors);
    assert_eq!(r.requests, r.ok);
    assert_eq!(r.latency_us.len(), r.ok);
    // A new connection for every request.
    assert_eq!(r.connect_us.len(), r.ok);
    assert_eq!(r.endpoints.len(), 1);
    assert_eq!(r.endpoints[&Ipv4Addr::LOCALHOST], r.ok);
    assert_eq!(server.served(), r.ok);
    assert!(r.achieved_rate_per_s > 0.0);
    assert!(r.client_cpu_user_ms + r.client_cpu_sys_ms > 0.0);
    assert!(r.wall < Duration::from_secs(3));
}

#[test]
fn keepalive_reuses_connections() {
    let _g = serial();
    let server = loopback_server();
    let mut spec = LoadSpec::closed_loop(server.local_addr(), Duration::from_millis(300), 3);
    spec.keepalive = true;
    let r = run_load(None, &spec).unwrap();
    assert!(r.ok > 50, "only {} ok", r.ok);
    assert_eq!(r.errors.total(), 0, "{:?}", r.errors);
    // At most one connection per slot.
    assert!(r.connect_us.len() <= 3, "{} connects", r.connect_us.len());
    assert_eq!(r.endpoints[&Ipv4Addr::LOCALHOST], r.ok);
}

#[test]
fn open_loop_keeps_the_rate() {
    let _g = serial();
    let server = loopback_server();
    let spec = LoadSpec::open_loop(server.local_addr(), 200.0, Duration::from_secs(1), 8);
    let r = run_load(None, &spec).unwrap();
    assert_eq!(r.errors.total(), 0, "{:?}", r.errors);
    assert!((199..=201).contains(&r.requests), "{} requests", r.requests);
    assert!(
        (150.0..=210.0).contains(&r.achieved_rate_per_s),
        "{}",
        r.achieved_rate_per_s
    );
    let lag = summarize(&r.send_lag_us);
    // Sends go out close to their due times (a busy CI machine may delay some).
    assert_eq!(r.send_lag_us.len(), r.requests);
    assert!(lag.p50 < 2_000.0, "send lag {lag:?}");
    assert_eq!(r.offered_rate_per_s, Some(200.0));
}

/// 20 ms per request, and one 300 ms stall 200 ms into the run. At 100 requests/s on
/// 4 connections the server keeps up except during the stall. Measured from the send
/// (uncorrected), only the 4 requests caught in the stall look slow; measured from
/// their due times, the ~30 requests due during the stall and those queued behind it
/// are slow too, which is what a user at a constant rate would see.
#[test]
fn open_loop_corrects_for_coordinated_omission() {
    let _g = serial();
    fn respond(t0: Instant, now: Instant) -> (Instant, u16) {
        let (from, to) = (
            t0 + Duration::from_millis(200),
            t0 + Duration::from_millis(500),
        );
        let normal = now + Duration::from_millis(20);
        if now >= from && now < to {
            (normal.max(to), 200)
        } else {
            (normal, 200)
        }
    }
    let server = raw_server(respond);
    let spec = LoadSpec::open_loop(server.addr, 100.0, Duration::from_secs(1), 4);
    let r = run_load(None, &spec).unwrap();
    assert_eq!(r.errors.total(), 0, "{:?}", r.errors);
    assert!((99..=101).contains(&r.requests), "{} requests", r.requests);
    let corrected = summarize(&r.latency_us);
    let uncorrected = summarize(&r.uncorrected_latency_us);
    let slow = |h: &hdrhistogram::Histogram<u64>| h.count_between(100_000, u64::MAX);
    // About 30 requests were due during the stall, and more queued behind it.
    assert!(
        slow(&r.latency_us) >= 20,
        "corrected {corrected:?} should include the stall's queueing"
    );
    assert!(corrected.p90 > 100_000.0, "corrected {corrected:?}");
    assert!(corrected.max > 250_000.0, "corrected {corrected:?}");
    // Only the requests the stall caught on the 4 connections (a few more on a busy
    // machine) look slow when measured from the send.
    assert!(
        slow(&r.uncorrected_latency_us) <= 10,
        "uncorrected {uncorrected:?} should hide it"
    );
    assert!(uncorrected.p50 >= 20_000.0, "{uncorrected:?}");
}

#[test]
fn refused_connections_are_counted() {
    let _g = serial();
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let spec = LoadSpec::open_loop(port, 100.0, Duration::from_millis(300), 4);
    let r = run_load(None, &spec).unwrap();
    assert_eq!(r.ok, 0);
    assert!(r.requests >= 29, "{} requests", r.requests);
    assert_eq!(r.errors.refused, r.requests, "{:?}", r.errors);
    assert_eq!(r.latency_us.len(), 0);
}

#[test]
fn http_status_and_timeouts_are_counted() {
    let _g = serial();
    fn unavailable(_t0: Instant, now: Instant) -> (Instant, u16) {
        (now, 503)
    }
    let s503 = raw_server(unavailable);
    let spec = LoadSpec::closed_loop(s503.addr, Duration::from_millis(200), 2);
    let r = run_load(None, &spec).unwrap();
    assert!(r.requests > 0);
    assert_eq!(r.errors.http_status, r.requests, "{:?}", r.errors);

    // Accepts (the kernel completes the handshake) but never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut spec = LoadSpec::open_loop(
        silent.local_addr().unwrap(),
        20.0,
        Duration::from_millis(250),
        10,
    );
    spec.request_timeout = Duration::from_millis(200);
    let t = Instant::now();
    let r = run_load(None, &spec).unwrap();
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "took {:?}",
        t.elapsed()
    );
    assert_eq!(r.ok, 0);
    assert!(r.requests >= 4, "{} requests", r.requests);
    assert_eq!(r.errors.timeout, r.requests, "{:?}", r.errors);
}

#[test]
fn invalid_specs_are_rejected() {
    let target: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let mut bad_path = LoadSpec::closed_loop(target, Duration::from_secs(1), 1);
    bad_path.path = "/a b".into();
    let bad = [
        (
            LoadSpec::closed_loop(target, Duration::from_secs(1), 0),
            SpecError::Connections,
        ),
        (
            LoadSpec::closed_loop(target, Duration::ZERO, 1),
            SpecError::Duration,
        ),
        (
            LoadSpec::open_loop(target, 0.0, Duration::from_secs(1), 1),
            SpecError::Rate,
        ),
        (
            LoadSpec::open_loop(target, f64::NAN, Duration::from_secs(1), 1),
            SpecError::Rate,
        ),
        (bad_path, SpecError::Path),
    ];
    for (spec, want) in bad {
        match run_load(None, &spec) {
            Err(LoadError::Spec(got)) => assert_eq!(got, want, "{spec:?}"),
            other => panic!("{spec:?}: expected {want:?}, got {other:?}"),
        }
    }
}

/// Deletes the namespace when dropped, also on panic.
struct NsGuard(Netns);

impl Drop for NsGuard {
    fn drop(&mut self) {
        let _ = self.0.delete();
    }
}

fn lo_up(ns: &Netns) {
    ns.run(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let (conn, handle, _) = rtnetlink::new_connection().unwrap();
            tokio::spawn(conn);
            // `lo` is always index 1 in a new namespace.
            handle.link().set(1).up().execute().await.unwrap();
        });
    })
    .unwrap();
}

/// The server answers on every local address with the address it was reached on, and
/// both ends run inside a namespace. Needs root.
#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root: scripts/test.sh runs it as root"
)]
fn serves_and_loads_inside_a_namespace() {
    tier::require_root();
    let _g = serial();
    let name = format!("kpb-test-load-{}", std::process::id());
    let ns = NsGuard(Netns::create(&name).unwrap());
    lo_up(&ns.0);
    let server = Server::start(
        Some(&ns.0),
        ServeOptions::new("0.0.0.0:8080".parse().unwrap()),
    )
    .unwrap();
    for ip in [Ipv4Addr::new(127, 0, 0, 2), Ipv4Addr::new(127, 0, 0, 3)] {
        let spec = LoadSpec::open_loop(
            SocketAddr::from((ip, 8080)),
            200.0,
            Duration::from_millis(200),
            4,
        );
        let r = run_load(Some(&ns.0), &spec).unwrap();
        assert_eq!(r.errors.total(), 0, "{:?}", r.errors);
        assert!(r.ok >= 39, "{} ok", r.ok);
        assert_eq!(r.endpoints.len(), 1);
        assert_eq!(r.endpoints[&ip], r.ok);
    }
    server.stop().unwrap();
}
