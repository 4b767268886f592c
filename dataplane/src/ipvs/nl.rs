//! A small synchronous netlink socket: many requests per `send()` with every ACK's
//! errno mapped back to its request by sequence number, and dumps (multi-part replies
//! up to `NLMSG_DONE`). Shared by the IPVS client (generic netlink) and the
//! `kube-ipvs0` link and address code (rtnetlink).

use std::io;
use std::os::fd::AsRawFd;
use std::time::Duration;

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NetlinkSerializable, NLMSG_DONE, NLMSG_ERROR,
    NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST,
};
use netlink_sys::{Socket, SocketAddr};

/// Requests per `send()`: the kernel handles a whole send before returning and queues
/// one ACK per request, so a chunk's ACKs must fit the receive buffer.
const MAX_CHUNK_MSGS: usize = 2048;
/// Bytes per `send()` (the kernel refuses sends larger than the socket's send buffer).
const MAX_CHUNK_BYTES: usize = 512 * 1024;
/// Buffers asked for (root may exceed the sysctl limits with the *FORCE options).
const SOCKET_BUFFER: libc::c_int = 8 * 1024 * 1024;
/// One receive; dumps put up to ~32 KiB in one datagram.
const RX_BUFFER: usize = 256 * 1024;

/// Netlink message header length.
const NLMSG_HDRLEN: usize = 16;

/// Requests serialized back to back, ready to be sent in chunks.
#[derive(Debug, Default)]
pub struct Batch {
    buf: Vec<u8>,
    /// Start offset of each message in `buf`.
    starts: Vec<usize>,
    first_seq: u32,
}

impl Batch {
    pub fn len(&self) -> usize {
        self.starts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.starts.is_empty()
    }

    /// Total bytes of all requests.
    pub fn bytes(&self) -> usize {
        self.buf.len()
    }

    /// The serialized requests (for tests).
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    fn chunk_end(&self, from: usize) -> usize {
        let mut end = from;
        while end < self.starts.len()
            && end - from < MAX_CHUNK_MSGS
            && (end == from || self.offset(end + 1) - self.offset(from) <= MAX_CHUNK_BYTES)
        {
            end += 1;
        }
        end
    }

    fn offset(&self, i: usize) -> usize {
        self.starts.get(i).copied().unwrap_or(self.buf.len())
    }
}

/// Serializes `payload` as one request with `flags` and sequence number `seq`,
/// appending it to `out`.
pub fn encode<M: NetlinkSerializable>(out: &mut Vec<u8>, payload: M, flags: u16, seq: u32) {
    let mut header = NetlinkHeader::default();
    header.flags = flags;
    header.sequence_number = seq;
    let mut msg = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(payload));
    msg.finalize();
    let start = out.len();
    out.resize(start + msg.buffer_len(), 0);
    msg.serialize(&mut out[start..]);
}

/// One message of a reply: its type, flags, sequence number and the bytes after the
/// netlink header.
#[derive(Debug)]
pub struct Reply<'a> {
    pub kind: u16,
    pub flags: u16,
    pub seq: u32,
    pub payload: &'a [u8],
}

/// Splits a datagram into netlink messages.
pub fn split(mut data: &[u8]) -> io::Result<Vec<Reply<'_>>> {
    let mut out = Vec::new();
    while data.len() >= NLMSG_HDRLEN {
        let len = u32::from_ne_bytes(data[0..4].try_into().expect("4 bytes")) as usize;
        if len < NLMSG_HDRLEN || len > data.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("netlink message of length {len} in {} bytes", data.len()),
            ));
        }
        out.push(Reply {
            kind: u16::from_ne_bytes([data[4], data[5]]),
            flags: u16::from_ne_bytes([data[6], data[7]]),
            seq: u32::from_ne_bytes(data[8..12].try_into().expect("4 bytes")),
            payload: &data[NLMSG_HDRLEN..len],
        });
        let aligned = (len + 3) & !3;
        data = &data[aligned.min(data.len())..];
    }
    Ok(out)
}

/// The errno of an `NLMSG_ERROR` payload (0 is an ACK), as a positive number.
fn error_code(payload: &[u8]) -> io::Result<i32> {
    let raw: [u8; 4] = payload
        .get(0..4)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "short NLMSG_ERROR"))?;
    Ok(-i32::from_ne_bytes(raw))
}

/// A netlink socket of one protocol, bound in the namespace of the thread that opened it.
pub struct NlSocket {
    sock: Socket,
    seq: u32,
    rx: Vec<u8>,
}

impl NlSocket {
    /// Opens and binds a socket of `protocol` (e.g. `NETLINK_GENERIC`). The socket
    /// belongs to the calling thread's network namespace for good.
    pub fn open(protocol: isize) -> io::Result<Self> {
        let mut sock = Socket::new(protocol)?;
        sock.bind(&SocketAddr::new(0, 0))?;
        // ACKs carry only the request's header, not its whole payload.
        sock.set_cap_ack(true)?;
        sock.set_ext_ack(true)?;
        let fd = sock.as_raw_fd();
        for (force, plain) in [
            (libc::SO_RCVBUFFORCE, libc::SO_RCVBUF),
            (libc::SO_SNDBUFFORCE, libc::SO_SNDBUF),
        ] {
            if setsockopt_int(fd, force, SOCKET_BUFFER).is_err() {
                setsockopt_int(fd, plain, SOCKET_BUFFER)?;
            }
        }
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(1);
        Ok(NlSocket {
            sock,
            seq: seed,
            rx: vec![0; RX_BUFFER],
        })
    }

    /// Fails receives that wait longer than `t` (`SO_RCVTIMEO`).
    pub fn set_timeout(&self, t: Duration) -> io::Result<()> {
        let tv = libc::timeval {
            tv_sec: t.as_secs().min(i32::MAX as u64) as libc::time_t,
            tv_usec: t.subsec_micros().max(1) as libc::suseconds_t,
        };
        // SAFETY: valid fd and a timeval of the size given.
        let r = unsafe {
            libc::setsockopt(
                self.sock.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                &tv as *const _ as *const libc::c_void,
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    /// Serializes `payloads` as requests with `NLM_F_REQUEST|NLM_F_ACK|extra_flags`
    /// and consecutive sequence numbers.
    pub fn batch<M: NetlinkSerializable>(
        &mut self,
        payloads: impl IntoIterator<Item = M>,
        extra_flags: u16,
    ) -> Batch {
        let mut b = Batch {
            first_seq: self.seq.wrapping_add(1),
            ..Batch::default()
        };
        for p in payloads {
            let seq = self.next_seq();
            b.starts.push(b.buf.len());
            encode(&mut b.buf, p, NLM_F_REQUEST | NLM_F_ACK | extra_flags, seq);
        }
        b
    }

    /// Sends a batch in chunks and returns each request's errno (0 = success), in order.
    pub fn execute(&mut self, batch: &Batch) -> io::Result<Vec<i32>> {
        let mut result: Vec<Option<i32>> = vec![None; batch.len()];
        let mut from = 0;
        while from < batch.len() {
            let to = batch.chunk_end(from);
            self.send_all(&batch.buf[batch.offset(from)..batch.offset(to)])?;
            let mut pending = to - from;
            while pending > 0 {
                let n = self.recv()?;
                for r in split(&self.rx[..n])? {
                    let idx = r.seq.wrapping_sub(batch.first_seq) as usize;
                    if r.kind != NLMSG_ERROR || idx < from || idx >= to {
                        continue;
                    }
                    if result[idx].is_none() {
                        result[idx] = Some(error_code(r.payload)?);
                        pending -= 1;
                    }
                }
            }
            from = to;
        }
        Ok(result.into_iter().map(|r| r.unwrap_or(0)).collect())
    }

    /// Sends one request and returns the payloads of its reply messages (a dump's
    /// parts, or the single answer of a GET), failing with the kernel's errno.
    pub fn request<M: NetlinkSerializable>(
        &mut self,
        payload: M,
        dump: bool,
    ) -> io::Result<Vec<Vec<u8>>> {
        let seq = self.next_seq();
        let flags = if dump {
            NLM_F_REQUEST | NLM_F_DUMP
        } else {
            NLM_F_REQUEST | NLM_F_ACK
        };
        let mut buf = Vec::new();
        encode(&mut buf, payload, flags, seq);
        self.send_all(&buf)?;
        let mut out = Vec::new();
        loop {
            let n = self.recv()?;
            for r in split(&self.rx[..n])? {
                if r.seq != seq {
                    continue;
                }
                match r.kind {
                    // A dump ends in NLMSG_DONE, which carries the dump's own errno.
                    NLMSG_DONE => {
                        let code = error_code(r.payload).unwrap_or(0);
                        if code > 0 {
                            return Err(io::Error::from_raw_os_error(code));
                        }
                        return Ok(out);
                    }
                    // A GET's single answer is followed by its ACK.
                    NLMSG_ERROR => {
                        let code = error_code(r.payload)?;
                        if code != 0 {
                            return Err(io::Error::from_raw_os_error(code));
                        }
                        return Ok(out);
                    }
                    _ => out.push(r.payload.to_vec()),
                }
            }
        }
    }

    fn send_all(&self, data: &[u8]) -> io::Result<()> {
        let fd = self.sock.as_raw_fd();
        loop {
            // SAFETY: valid fd and buffer.
            let r = unsafe { libc::send(fd, data.as_ptr() as *const libc::c_void, data.len(), 0) };
            if r >= 0 {
                if r as usize != data.len() {
                    return Err(io::Error::other("netlink send was cut short"));
                }
                return Ok(());
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }

    fn recv(&mut self) -> io::Result<usize> {
        let fd = self.sock.as_raw_fd();
        loop {
            // SAFETY: valid fd and buffer of the length given.
            let r = unsafe {
                libc::recv(
                    fd,
                    self.rx.as_mut_ptr() as *mut libc::c_void,
                    self.rx.len(),
                    0,
                )
            };
            if r >= 0 {
                return Ok(r as usize);
            }
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::WouldBlock => {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "no netlink reply before the timeout",
                    ))
                }
                _ => return Err(e),
            }
        }
    }
}

fn setsockopt_int(fd: libc::c_int, opt: libc::c_int, val: libc::c_int) -> io::Result<()> {
    // SAFETY: valid fd and an int option.
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            opt,
            &val as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
