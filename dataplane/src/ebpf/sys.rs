//! The `bpf(2)` map commands the agent uses, on map file descriptors: one element at a
//! time, in batches, and iteration. Raw syscalls: aya 0.13 has no batch operations,
//! and a map request must be exactly one syscall to be timed as the agent's.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

const BPF_MAP_LOOKUP_ELEM: libc::c_long = 1;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_MAP_DELETE_ELEM: libc::c_long = 3;
const BPF_MAP_GET_NEXT_KEY: libc::c_long = 4;
const BPF_MAP_UPDATE_BATCH: libc::c_long = 26;
const BPF_MAP_DELETE_BATCH: libc::c_long = 27;

/// `union bpf_attr`, large enough for the commands above (zeroed past what they use).
#[repr(C, align(8))]
struct Attr([u8; 72]);

impl Attr {
    fn new() -> Self {
        Attr([0; 72])
    }

    fn u32_at(&mut self, off: usize, v: u32) -> &mut Self {
        self.0[off..off + 4].copy_from_slice(&v.to_ne_bytes());
        self
    }

    fn u64_at(&mut self, off: usize, v: u64) -> &mut Self {
        self.0[off..off + 8].copy_from_slice(&v.to_ne_bytes());
        self
    }

    fn read_u32(&self, off: usize) -> u32 {
        u32::from_ne_bytes(self.0[off..off + 4].try_into().expect("4 bytes"))
    }
}

fn bpf(cmd: libc::c_long, attr: &mut Attr) -> io::Result<()> {
    // SAFETY: `attr` is a valid bpf_attr for `cmd`, and every pointer in it refers to
    // a buffer that outlives the call with the size the map was created with.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut Attr as *mut libc::c_void,
            std::mem::size_of::<Attr>() as libc::c_uint,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn ptr(b: &[u8]) -> u64 {
    b.as_ptr() as u64
}

/// The element commands: `{u32 map_fd; u64 key; u64 value; u64 flags}`.
fn elem(cmd: libc::c_long, fd: BorrowedFd<'_>, key: &[u8], value: u64) -> io::Result<()> {
    let mut a = Attr::new();
    a.u32_at(0, fd.as_raw_fd() as u32)
        .u64_at(8, ptr(key))
        .u64_at(16, value);
    bpf(cmd, &mut a)
}

/// `BPF_MAP_UPDATE_ELEM` with `BPF_ANY`.
pub fn update(fd: BorrowedFd<'_>, key: &[u8], value: &[u8]) -> io::Result<()> {
    elem(BPF_MAP_UPDATE_ELEM, fd, key, ptr(value))
}

/// `BPF_MAP_DELETE_ELEM`.
pub fn delete(fd: BorrowedFd<'_>, key: &[u8]) -> io::Result<()> {
    elem(BPF_MAP_DELETE_ELEM, fd, key, 0)
}

/// `BPF_MAP_LOOKUP_ELEM` into `value`; false when the key is absent.
pub fn lookup(fd: BorrowedFd<'_>, key: &[u8], value: &mut [u8]) -> io::Result<bool> {
    match elem(BPF_MAP_LOOKUP_ELEM, fd, key, value.as_mut_ptr() as u64) {
        Ok(()) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Every entry of a map with these sizes (`BPF_MAP_GET_NEXT_KEY` + lookup).
pub fn dump(
    fd: BorrowedFd<'_>,
    key_size: usize,
    value_size: usize,
) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut out = Vec::new();
    let mut key: Option<Vec<u8>> = None;
    loop {
        let mut next = vec![0u8; key_size];
        let mut a = Attr::new();
        a.u32_at(0, fd.as_raw_fd() as u32)
            .u64_at(8, key.as_deref().map_or(0, ptr))
            .u64_at(16, next.as_mut_ptr() as u64);
        match bpf(BPF_MAP_GET_NEXT_KEY, &mut a) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(out),
            Err(e) => return Err(e),
        }
        let mut value = vec![0u8; value_size];
        if lookup(fd, &next, &mut value)? {
            out.push((next.clone(), value));
        }
        key = Some(next);
    }
}

/// The batch commands: `{u64 in_batch; u64 out_batch; u64 keys; u64 values; u32 count;
/// u32 map_fd; u64 elem_flags; u64 flags}`. Returns how many were done.
fn batch(
    cmd: libc::c_long,
    fd: BorrowedFd<'_>,
    keys: &[u8],
    values: Option<&[u8]>,
    count: usize,
) -> io::Result<usize> {
    let mut a = Attr::new();
    a.u64_at(16, ptr(keys))
        .u64_at(24, values.map_or(0, ptr))
        .u32_at(32, count as u32)
        .u32_at(36, fd.as_raw_fd() as u32);
    bpf(cmd, &mut a)?;
    Ok(a.read_u32(32) as usize)
}

/// `BPF_MAP_UPDATE_BATCH` of `count` entries, keys and values each contiguous.
pub fn update_batch(
    fd: BorrowedFd<'_>,
    keys: &[u8],
    values: &[u8],
    count: usize,
) -> io::Result<usize> {
    batch(BPF_MAP_UPDATE_BATCH, fd, keys, Some(values), count)
}

/// `BPF_MAP_DELETE_BATCH` of `count` contiguous keys.
pub fn delete_batch(fd: BorrowedFd<'_>, keys: &[u8], count: usize) -> io::Result<usize> {
    batch(BPF_MAP_DELETE_BATCH, fd, keys, None, count)
}

const BPF_OBJ_PIN: libc::c_long = 6;
const BPF_LINK_CREATE: libc::c_long = 28;
/// `BPF_CGROUP_INET4_CONNECT`.
pub const ATTACH_CONNECT4: u32 = 10;
/// `BPF_CGROUP_INET4_GETPEERNAME`.
pub const ATTACH_GETPEERNAME4: u32 = 29;

/// `BPF_LINK_CREATE` of `prog` on the cgroup `target` (`{u32 prog_fd; u32 target_fd;
/// u32 attach_type; u32 flags}`): the link's descriptor. The program stays attached
/// while a descriptor or pin of the link exists.
pub fn link_create(
    prog: BorrowedFd<'_>,
    target: BorrowedFd<'_>,
    attach_type: u32,
) -> io::Result<OwnedFd> {
    let mut a = Attr::new();
    a.u32_at(0, prog.as_raw_fd() as u32)
        .u32_at(4, target.as_raw_fd() as u32)
        .u32_at(8, attach_type);
    // SAFETY: as in `bpf`; BPF_LINK_CREATE returns a new descriptor this owns.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_LINK_CREATE,
            &mut a as *mut Attr as *mut libc::c_void,
            std::mem::size_of::<Attr>() as libc::c_uint,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor from the kernel, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(r as i32) })
}

/// `BPF_OBJ_PIN` of a map, program or link at `path` on a bpffs.
pub fn obj_pin(fd: BorrowedFd<'_>, path: &std::path::Path) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let mut a = Attr::new();
    a.u64_at(0, c.as_ptr() as u64)
        .u32_at(8, fd.as_raw_fd() as u32);
    bpf(BPF_OBJ_PIN, &mut a)
}

/// `SO_NETNS_COOKIE` (Linux 5.14).
const SO_NETNS_COOKIE: libc::c_int = 71;

/// The cookie of the calling thread's network namespace, as `bpf_get_netns_cookie()`
/// returns it for sockets there.
pub fn netns_cookie() -> io::Result<u64> {
    // SAFETY: plain socket calls on a descriptor owned here and closed below.
    unsafe {
        let s = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if s < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut cookie: u64 = 0;
        let mut len = std::mem::size_of::<u64>() as libc::socklen_t;
        let r = libc::getsockopt(
            s,
            libc::SOL_SOCKET,
            SO_NETNS_COOKIE,
            &mut cookie as *mut u64 as *mut libc::c_void,
            &mut len,
        );
        let err = io::Error::last_os_error();
        libc::close(s);
        if r < 0 {
            return Err(err);
        }
        Ok(cookie)
    }
}

const BPF_PROG_GET_NEXT_ID: libc::c_long = 11;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;

/// The names of every BPF program loaded on the machine (the kernel keeps the first 15
/// characters), for checks that nothing was left behind.
pub fn program_names() -> io::Result<Vec<String>> {
    let mut names = Vec::new();
    let mut id = 0u32;
    loop {
        let mut a = Attr::new();
        a.u32_at(0, id);
        match bpf(BPF_PROG_GET_NEXT_ID, &mut a) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(names),
            Err(e) => return Err(e),
        }
        id = a.read_u32(4);
        let mut a = Attr::new();
        a.u32_at(0, id);
        // SAFETY: as in `bpf`; BPF_PROG_GET_FD_BY_ID returns a new descriptor.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_PROG_GET_FD_BY_ID,
                &mut a as *mut Attr as *mut libc::c_void,
                std::mem::size_of::<Attr>() as libc::c_uint,
            )
        };
        if fd < 0 {
            continue; // Unloaded since.
        }
        // SAFETY: a fresh descriptor from the kernel.
        let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        // struct bpf_prog_info: name[16] at offset 64.
        let mut info = [0u8; 128];
        let mut a = Attr::new();
        a.u32_at(0, fd.as_raw_fd() as u32)
            .u32_at(4, info.len() as u32)
            .u64_at(8, info.as_mut_ptr() as u64);
        if bpf(BPF_OBJ_GET_INFO_BY_FD, &mut a).is_ok() {
            let name = &info[64..80];
            let end = name.iter().position(|&b| b == 0).unwrap_or(16);
            names.push(String::from_utf8_lossy(&name[..end]).into_owned());
        }
    }
}
