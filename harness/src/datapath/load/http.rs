//! A minimal HTTP/1.1 client for one request/response exchange over a raw tokio
//! `TcpStream`: a fixed request written in one go, the response parsed with `httparse`
//! from a reused buffer. hyper's client costs a task and several allocations per
//! connection, which shows when every request opens a new connection; this path makes
//! none per request.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::errors::{classify, ErrorKind};

/// Largest response head plus body the client accepts.
const MAX_RESPONSE: usize = 64 * 1024;

/// The bytes of a GET request to `path` on `target`.
pub(crate) fn request_bytes(target: SocketAddr, path: &str, keepalive: bool) -> Vec<u8> {
    let conn = if keepalive {
        ""
    } else {
        "Connection: close\r\n"
    };
    format!("GET {path} HTTP/1.1\r\nHost: {target}\r\nUser-Agent: kpbench\r\n{conn}\r\n")
        .into_bytes()
}

/// Why an exchange failed.
#[derive(Debug)]
pub(crate) enum ExchangeError {
    Io(io::Error),
    Status(u16),
    Protocol(&'static str),
}

impl ExchangeError {
    pub(crate) fn kind(&self) -> ErrorKind {
        match self {
            ExchangeError::Io(e) => classify(e),
            ExchangeError::Status(_) => ErrorKind::HttpStatus,
            ExchangeError::Protocol(_) => ErrorKind::Other,
        }
    }

    pub(crate) fn message(&self) -> String {
        match self {
            ExchangeError::Io(e) => e.to_string(),
            ExchangeError::Status(s) => format!("http status {s}"),
            ExchangeError::Protocol(m) => (*m).to_string(),
        }
    }
}

impl From<io::Error> for ExchangeError {
    fn from(e: io::Error) -> Self {
        ExchangeError::Io(e)
    }
}

/// A successful exchange.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Exchange {
    /// Time to establish the TCP connection, if this exchange opened one.
    pub connect: Option<Duration>,
    /// When the whole response had arrived.
    pub completed: Instant,
    /// The endpoint named by the response body, if it is an IPv4 address.
    pub endpoint: Option<Ipv4Addr>,
}

/// One connection slot: an optional kept-alive connection and a reused read buffer.
pub(crate) struct Conn {
    stream: Option<TcpStream>,
    buf: Vec<u8>,
}

impl Conn {
    pub(crate) fn new() -> Self {
        Conn {
            stream: None,
            buf: vec![0; 4096],
        }
    }

    /// Forgets the connection (after a timeout its state is unknown).
    pub(crate) fn reset(&mut self) {
        self.stream = None;
    }

    /// Sends `req` and reads one response, connecting first when no connection is open.
    /// Without keep-alive it then waits for the server's FIN, so the server, not the
    /// client, holds TIME_WAIT and the client's ephemeral ports stay free.
    pub(crate) async fn exchange(
        &mut self,
        target: SocketAddr,
        req: &[u8],
        keepalive: bool,
    ) -> Result<Exchange, ExchangeError> {
        let mut connect = None;
        let mut stream = match self.stream.take() {
            Some(s) => s,
            None => {
                let t0 = Instant::now();
                let s = TcpStream::connect(target).await?;
                connect = Some(t0.elapsed());
                if keepalive {
                    s.set_nodelay(true)?;
                }
                s
            }
        };
        stream.write_all(req).await?;
        let (endpoint, server_close) = read_response(&mut stream, &mut self.buf).await?;
        let completed = Instant::now();
        if keepalive && !server_close {
            self.stream = Some(stream);
        } else {
            // Wait for EOF; a reset after a whole response is harmless.
            let mut byte = [0u8; 64];
            while let Ok(n) = stream.read(&mut byte).await {
                if n == 0 {
                    break;
                }
            }
        }
        Ok(Exchange {
            connect,
            completed,
            endpoint,
        })
    }
}

/// Reads one response; returns the endpoint from the body and whether the server will
/// close the connection.
async fn read_response(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
) -> Result<(Option<Ipv4Addr>, bool), ExchangeError> {
    let mut filled = 0;
    let (head_len, body_len, status, close) = loop {
        let n = read_more(stream, buf, filled).await?;
        if n == 0 {
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into());
        }
        filled += n;
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut resp = httparse::Response::new(&mut headers);
        match resp.parse(&buf[..filled]) {
            Ok(httparse::Status::Partial) => continue,
            Ok(httparse::Status::Complete(head_len)) => {
                let status = resp.code.unwrap_or(0);
                let mut body_len = None;
                let mut close = resp.version == Some(0);
                for h in resp.headers.iter() {
                    if h.name.eq_ignore_ascii_case("content-length") {
                        body_len = std::str::from_utf8(h.value)
                            .ok()
                            .and_then(|v| v.trim().parse::<usize>().ok());
                        if body_len.is_none() {
                            return Err(ExchangeError::Protocol("bad content-length"));
                        }
                    } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                        return Err(ExchangeError::Protocol(
                            "chunked responses are not supported",
                        ));
                    } else if h.name.eq_ignore_ascii_case("connection") {
                        close |= h.value.eq_ignore_ascii_case(b"close");
                    }
                }
                break (head_len, body_len, status, close);
            }
            Err(_) => return Err(ExchangeError::Protocol("malformed http response")),
        }
    };
    let end = match body_len {
        Some(len) => {
            let end = head_len + len;
            if end > MAX_RESPONSE {
                return Err(ExchangeError::Protocol("response too large"));
            }
            while filled < end {
                let n = read_more(stream, buf, filled).await?;
                if n == 0 {
                    return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into());
                }
                filled += n;
            }
            end
        }
        // No length: the body runs to EOF.
        None => loop {
            let n = read_more(stream, buf, filled).await?;
            if n == 0 {
                break filled;
            }
            filled += n;
        },
    };
    if !(200..300).contains(&status) {
        return Err(ExchangeError::Status(status));
    }
    let endpoint = std::str::from_utf8(&buf[head_len..end])
        .ok()
        .and_then(|s| s.trim().parse::<Ipv4Addr>().ok());
    Ok((endpoint, close || body_len.is_none()))
}

/// Reads into `buf[filled..]`, growing it up to [`MAX_RESPONSE`].
async fn read_more(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    filled: usize,
) -> Result<usize, ExchangeError> {
    if filled == buf.len() {
        if buf.len() >= MAX_RESPONSE {
            return Err(ExchangeError::Protocol("response too large"));
        }
        buf.resize((buf.len() * 2).min(MAX_RESPONSE), 0);
    }
    Ok(stream.read(&mut buf[filled..]).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_text() {
        let t: SocketAddr = "10.96.0.1:80".parse().unwrap();
        assert_eq!(
            String::from_utf8(request_bytes(t, "/", false)).unwrap(),
            "GET / HTTP/1.1\r\nHost: 10.96.0.1:80\r\nUser-Agent: kpbench\r\nConnection: close\r\n\r\n"
        );
        assert!(!String::from_utf8(request_bytes(t, "/x", true))
            .unwrap()
            .contains("Connection"));
    }
}
