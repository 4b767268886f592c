//! The backend: a hyper HTTP/1.1 server that answers on every endpoint IP.
//!
//! One listener on `0.0.0.0:8080` in the backend namespace serves the whole pod CIDR (the
//! topology adds a local route for it). Each response body is the local address the
//! connection was accepted on, i.e. the endpoint IP, so the load generator can tell which
//! endpoint served a request.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use dataplane::floor::netns::{Netns, NetnsError};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::oneshot;

/// Listen backlog; connection-per-request load opens many connections at once.
const BACKLOG: u32 = 4096;

/// Errors starting or running the server.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Netns(#[from] NetnsError),
    #[error("listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("server runtime: {0}")]
    Runtime(#[source] std::io::Error),
    #[error("server thread panicked")]
    Panicked,
}

/// How to run the server.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Address to listen on; `0.0.0.0:8080` answers on every local address.
    pub listen: SocketAddr,
    /// Delay before each response (zero for none); emulates backend work in tests.
    pub delay: Duration,
    /// Runtime worker threads (0 = one per CPU).
    pub threads: usize,
    /// Where every accepted connection is logged with the endpoint IP it reached.
    pub hits: Option<HitLog>,
}

/// Accepted connections: when, and the local (endpoint) address each was accepted on.
pub type HitLog = Arc<std::sync::Mutex<Vec<(std::time::Instant, std::net::IpAddr)>>>;

impl ServeOptions {
    /// Listens on `listen`, no delay, one worker thread per CPU.
    pub fn new(listen: SocketAddr) -> Self {
        ServeOptions {
            listen,
            delay: Duration::ZERO,
            threads: 0,
            hits: None,
        }
    }
}

/// A running server on its own thread. Dropping it stops the server.
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    served: Arc<AtomicU64>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Starts the server on a dedicated thread, inside `ns` if given. Returns once the
    /// listener is bound, so connections made after this call succeed.
    pub fn start(ns: Option<&Netns>, opts: ServeOptions) -> Result<Server, ServeError> {
        let ns = ns.cloned();
        let served = Arc::new(AtomicU64::new(0));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<SocketAddr, ServeError>>();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let counter = served.clone();
        let thread = std::thread::Builder::new()
            .name("kpb-serve".into())
            .spawn(move || {
                // Threads the runtime spawns inherit this thread's namespace.
                if let Some(ns) = &ns {
                    if let Err(e) = ns.enter() {
                        let _ = ready_tx.send(Err(e.into()));
                        return;
                    }
                }
                let threads = if opts.threads == 0 {
                    std::thread::available_parallelism().map_or(1, |n| n.get())
                } else {
                    opts.threads
                };
                let rt = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(threads)
                    .thread_name("kpb-serve-w")
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(ServeError::Runtime(e)));
                        return;
                    }
                };
                let listener = match rt.block_on(async { bind(opts.listen) }) {
                    Ok(l) => l,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let addr = listener.local_addr().unwrap_or(opts.listen);
                let _ = ready_tx.send(Ok(addr));
                rt.block_on(accept_loop(
                    listener, opts.delay, counter, opts.hits, stop_rx,
                ));
                // Open connections are dropped with the runtime.
                rt.shutdown_timeout(Duration::from_millis(200));
            })
            .map_err(ServeError::Runtime)?;
        let (addr, thread) = ready(&ready_rx, thread)?;
        Ok(Server {
            addr,
            served,
            shutdown: Some(stop_tx),
            thread: Some(thread),
        })
    }

    /// The address the listener is bound to (with the real port if 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Requests answered so far.
    pub fn served(&self) -> u64 {
        self.served.load(Ordering::Relaxed)
    }

    /// Stops accepting, drops open connections and waits for the thread.
    pub fn stop(mut self) -> Result<(), ServeError> {
        self.shutdown_and_join()
    }

    fn shutdown_and_join(&mut self) -> Result<(), ServeError> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match self.thread.take() {
            Some(t) => t.join().map_err(|_| ServeError::Panicked),
            None => Ok(()),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.shutdown_and_join();
    }
}

fn bind(addr: SocketAddr) -> Result<TcpListener, ServeError> {
    let err = |source| ServeError::Listen { addr, source };
    let sock = if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(err)?;
    // Lets a new server bind while connections of the last one are in TIME_WAIT.
    sock.set_reuseaddr(true).map_err(err)?;
    sock.bind(addr).map_err(err)?;
    sock.listen(BACKLOG).map_err(err)
}

async fn accept_loop(
    listener: TcpListener,
    delay: Duration,
    served: Arc<AtomicU64>,
    hits: Option<HitLog>,
    mut stop: oneshot::Receiver<()>,
) {
    loop {
        let accepted = tokio::select! {
            _ = &mut stop => return,
            a = listener.accept() => a,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!("serve: accept: {e}");
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            }
        };
        let Ok(local) = stream.local_addr() else {
            continue;
        };
        if let Some(h) = &hits {
            if let Ok(mut log) = h.lock() {
                log.push((std::time::Instant::now(), local.ip()));
            }
        }
        let _ = stream.set_nodelay(true);
        let served = served.clone();
        tokio::spawn(async move {
            let body = Bytes::from(local.ip().to_string());
            let service = hyper::service::service_fn(move |_req: Request<Incoming>| {
                let body = body.clone();
                let served = served.clone();
                async move {
                    if !delay.is_zero() {
                        tokio::time::sleep(delay).await;
                    }
                    served.fetch_add(1, Ordering::Relaxed);
                    Ok::<_, Infallible>(Response::new(Full::new(body)))
                }
            });
            // Clients that reset or vanish are normal under load; nothing to report.
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// A UDP echo on given endpoint addresses, for the transit pass's UDP targets: each
/// socket is bound to its endpoint's own IP (the pod CIDR's local route lets it), so
/// the reply leaves from the address the node's DNAT sent the datagram to and its
/// conntrack entry reverses it. A probe datagram (`transit::probes::PROBE_REQUEST`
/// first) comes back with `PROBE_REPLY` in its place; anything else comes back as it
/// came. Dropping it stops the echo.
#[derive(Debug)]
pub struct UdpEcho {
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl UdpEcho {
    /// Binds every address of `addrs` inside `ns` on one thread; returns once all are
    /// bound (an address that cannot be bound fails the whole echo).
    pub fn start(ns: &Netns, addrs: &[std::net::SocketAddrV4]) -> Result<UdpEcho, ServeError> {
        let ns = ns.clone();
        let addrs = addrs.to_vec();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), ServeError>>();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("kpb-udp-echo".into())
            .spawn(move || {
                if let Err(e) = ns.enter() {
                    let _ = ready_tx.send(Err(e.into()));
                    return;
                }
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(ServeError::Runtime(e)));
                        return;
                    }
                };
                rt.block_on(async move {
                    let mut sockets = Vec::with_capacity(addrs.len());
                    for a in &addrs {
                        let addr = SocketAddr::V4(*a);
                        match tokio::net::UdpSocket::bind(addr).await {
                            Ok(s) => sockets.push(s),
                            Err(source) => {
                                let _ = ready_tx.send(Err(ServeError::Listen { addr, source }));
                                return;
                            }
                        }
                    }
                    let _ = ready_tx.send(Ok(()));
                    let tasks: Vec<_> =
                        sockets.into_iter().map(|s| tokio::spawn(echo(s))).collect();
                    let _ = stop_rx.await;
                    for t in tasks {
                        t.abort();
                    }
                });
            })
            .map_err(ServeError::Runtime)?;
        let ((), thread) = ready(&ready_rx, thread)?;
        Ok(UdpEcho {
            shutdown: Some(stop_tx),
            thread: Some(thread),
        })
    }
}

/// Waits until a server's thread says it is ready: what it sent and the thread, or,
/// once the thread is joined, its error ([`ServeError::Panicked`] if it sent nothing).
fn ready<T>(
    rx: &std::sync::mpsc::Receiver<Result<T, ServeError>>,
    thread: JoinHandle<()>,
) -> Result<(T, JoinHandle<()>), ServeError> {
    match rx.recv() {
        Ok(Ok(v)) => Ok((v, thread)),
        Ok(Err(e)) => {
            let _ = thread.join();
            Err(e)
        }
        Err(_) => {
            let _ = thread.join();
            Err(ServeError::Panicked)
        }
    }
}

impl Drop for UdpEcho {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Answers every datagram on `sock` to its sender, a probe's magic turned into the
/// reply's.
async fn echo(sock: tokio::net::UdpSocket) {
    use crate::datapath::transit::probes::{PROBE_REPLY, PROBE_REQUEST};
    let mut buf = [0u8; 2048];
    loop {
        let Ok((n, peer)) = sock.recv_from(&mut buf).await else {
            // Not expected on an unconnected socket; never spin on it.
            tokio::time::sleep(Duration::from_millis(1)).await;
            continue;
        };
        if n >= 4 && buf[..4] == PROBE_REQUEST.to_be_bytes() {
            buf[..4].copy_from_slice(&PROBE_REPLY.to_be_bytes());
        }
        let _ = sock.send_to(&buf[..n], peer).await;
    }
}
