//! The socket load balancer in the kernel: the object (`dataplane/bpf/socklb.bpf.c`)
//! loaded once per node namespace, its maps, and its two programs attached by BPF
//! links to the cgroup v2 directory kpbench runs in.
//!
//! **Which sockets it translates.** A cgroup v2 hook sees every socket of the processes
//! in the cgroup and below, and cgroup v2 moves whole processes, not threads: kpbench's
//! load generator is threads of kpbench itself, inside the client network namespace.
//! So the programs are attached to kpbench's own cgroup and translate only sockets of
//! the client namespace, by its cookie (`kpb_config`): connects from any other
//! namespace, the host's included, pass untouched (a privileged test checks it).
//!
//! **Lifetime.** In a run nothing is pinned: the links and maps live as long as their
//! descriptors in this process, so a killed run leaves nothing attached. The registry
//! entry goes when the node namespace is deleted ([`forget`]). `kpbench apply` pins maps
//! and links under [`PIN_ROOT`]`/<namespace>/` ([`keep`]); `kpbench clean` removes the
//! pins, which detaches the links ([`clean_pins`]).

use std::collections::BTreeMap;
use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use aya::programs::CgroupSockAddr;
use aya::{Ebpf, EbpfLoader};

use super::layout::LbMap;
use super::sys;
use crate::backend::ApplyError;
use crate::netns::Netns;

/// The compiled object, when `build.rs` could build it.
pub const OBJECT: Option<&[u8]> = crate::bpf::SOCKLB;

/// Where kpbench mounts a bpffs of its own for `kpbench apply`'s pins (outside /sys,
/// which `ip netns exec` remounts).
pub const PIN_ROOT: &str = "/run/kpbench/bpf";
/// Where kpbench mounts cgroup2 when the host has no cgroup2 mount.
pub const CGROUP2_FALLBACK: &str = "/run/kpbench/cgroup2";

const PROG_CONNECT: &str = "kpb_sock4_connect";
const PROG_GETPEERNAME: &str = "kpb_sock4_getpeername";
const MAP_CONFIG: &str = "kpb_config";
const BPF_FS_MAGIC: i64 = 0xcafe4a11;

fn err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ApplyError {
    let what = what.into();
    move |source| ApplyError::Bpf { what, source }
}

fn aya_err(what: &str, e: impl std::error::Error) -> ApplyError {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    // The verifier's log is long; its end says why.
    if msg.len() > 600 {
        msg = format!("...{}", &msg[msg.len() - 600..]);
    }
    ApplyError::Bpf {
        what: what.to_string(),
        source: std::io::Error::other(msg),
    }
}

/// The maps of one loaded socket load balancer, by descriptor.
#[derive(Debug)]
pub struct Maps {
    fds: BTreeMap<LbMap, OwnedFd>,
}

impl Maps {
    pub fn fd(&self, map: LbMap) -> std::os::fd::BorrowedFd<'_> {
        self.fds[&map].as_fd()
    }
}

/// One loaded socket load balancer: the object, its links, its maps.
struct Loaded {
    ebpf: Ebpf,
    links: Vec<(&'static str, OwnedFd)>,
    maps: Arc<Maps>,
    client: String,
    cgroup: PathBuf,
}

fn registry() -> &'static Mutex<BTreeMap<String, Loaded>> {
    static R: OnceLock<Mutex<BTreeMap<String, Loaded>>> = OnceLock::new();
    R.get_or_init(|| Mutex::new(BTreeMap::new()))
}

/// The namespace whose sockets are translated for maps programmed in `node`: the
/// case's client namespace (`kpb-<run>-client` beside `kpb-<run>-node`), else `node`
/// itself (`kpbench apply --netns NAME`: connects made inside NAME are translated).
pub fn client_of(node: &Netns) -> Netns {
    if let Some(prefix) = node.name.strip_suffix("-node") {
        let client = Netns::named(&format!("{prefix}-client"));
        if client.exists() {
            return client;
        }
    }
    node.clone()
}

/// The maps for `node`, loading and attaching the programs on first use.
pub fn maps_for(node: &Netns) -> Result<Arc<Maps>, ApplyError> {
    let mut reg = registry().lock().unwrap_or_else(|p| p.into_inner());
    if let Some(l) = reg.get(&node.name) {
        return Ok(l.maps.clone());
    }
    let loaded = load(node)?;
    let maps = loaded.maps.clone();
    reg.insert(node.name.clone(), loaded);
    Ok(maps)
}

/// The maps already loaded for `node` in this process, if any.
pub fn loaded(node: &Netns) -> Option<Arc<Maps>> {
    let reg = registry().lock().unwrap_or_else(|p| p.into_inner());
    reg.get(&node.name).map(|l| l.maps.clone())
}

/// Drops what was loaded for `node` in this process: links detach, programs unload.
/// Called when the namespace is deleted.
pub fn forget(node: &str) {
    let gone = registry()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(node);
    drop(gone);
}

/// The connect4 program's accumulated run time and run count (they grow only while
/// BPF statistics are enabled); None when nothing is loaded for `node`.
pub fn connect_run_stats(node: &Netns) -> Option<(u64, u64)> {
    let reg = registry().lock().unwrap_or_else(|p| p.into_inner());
    let info = reg
        .get(&node.name)?
        .ebpf
        .program(PROG_CONNECT)?
        .info()
        .ok()?;
    Some((info.run_time().as_nanos() as u64, info.run_count()))
}

/// The client namespace and cgroup the programs for `node` are attached to.
pub fn attachment(node: &Netns) -> Option<(String, PathBuf)> {
    let reg = registry().lock().unwrap_or_else(|p| p.into_inner());
    reg.get(&node.name)
        .map(|l| (l.client.clone(), l.cgroup.clone()))
}

fn load(node: &Netns) -> Result<Loaded, ApplyError> {
    let object = OBJECT.ok_or_else(|| ApplyError::Bpf {
        what: "the socket load balancer was not built".into(),
        source: std::io::Error::other(
            "clang or libbpf-dev was missing at build time: run scripts/install-deps.sh, then rebuild",
        ),
    })?;
    // A fresh load replaces what an earlier `kpbench apply` pinned for this namespace.
    let _ = std::fs::remove_dir_all(Path::new(PIN_ROOT).join(&node.name));
    let mut ebpf = EbpfLoader::new()
        .load(object)
        .map_err(|e| aya_err("loading socklb.bpf.o", e))?;
    let mut fds = BTreeMap::new();
    for map in LbMap::ALL {
        let fd = map_fd(&ebpf, map.name())?;
        fds.insert(map, fd);
    }
    let client = client_of(node);
    let cookie = client
        .run(sys::netns_cookie)?
        .map_err(err(format!("SO_NETNS_COOKIE in {}", client.name)))?;
    let config = map_fd(&ebpf, MAP_CONFIG)?;
    sys::update(config.as_fd(), &0u32.to_ne_bytes(), &cookie.to_ne_bytes())
        .map_err(err("writing kpb_config"))?;
    let cgroup = own_cgroup()?;
    let dir = File::open(&cgroup).map_err(err(format!("opening cgroup {}", cgroup.display())))?;
    let mut links = Vec::new();
    for (name, attach) in [
        (PROG_CONNECT, sys::ATTACH_CONNECT4),
        (PROG_GETPEERNAME, sys::ATTACH_GETPEERNAME4),
    ] {
        let prog: &mut CgroupSockAddr = ebpf
            .program_mut(name)
            .ok_or_else(|| aya_err(name, std::io::Error::other("not in the object")))?
            .try_into()
            .map_err(|e| aya_err(name, e))?;
        prog.load()
            .map_err(|e| aya_err(&format!("loading {name}"), e))?;
        let fd = prog.fd().map_err(|e| aya_err(name, e))?;
        let link = sys::link_create(fd.as_fd(), dir.as_fd(), attach).map_err(err(format!(
            "attaching {name} to {} by a BPF link",
            cgroup.display()
        )))?;
        links.push((name, link));
    }
    tracing::debug!(
        "socket LB for {} attached to {} for sockets of {} (netns cookie {cookie})",
        node.name,
        cgroup.display(),
        client.name
    );
    Ok(Loaded {
        ebpf,
        links,
        maps: Arc::new(Maps { fds }),
        client: client.name,
        cgroup,
    })
}

fn map_fd(ebpf: &Ebpf, name: &str) -> Result<OwnedFd, ApplyError> {
    let map = ebpf
        .map(name)
        .ok_or_else(|| aya_err(name, std::io::Error::other("map not in the object")))?;
    let data = match map {
        aya::maps::Map::HashMap(d) | aya::maps::Map::LruHashMap(d) | aya::maps::Map::Array(d) => d,
        _ => return Err(aya_err(name, std::io::Error::other("unexpected map type"))),
    };
    data.fd()
        .as_fd()
        .try_clone_to_owned()
        .map_err(err(format!("dup of map {name}")))
}

/// The cgroup v2 directory this process is in, under a cgroup2 mount (kpbench mounts
/// one at [`CGROUP2_FALLBACK`] when the host has none).
pub fn own_cgroup() -> Result<PathBuf, ApplyError> {
    let text = std::fs::read_to_string("/proc/self/cgroup").map_err(err("/proc/self/cgroup"))?;
    let rel = text
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .unwrap_or("/")
        .trim_start_matches('/')
        .to_string();
    let mount = match cgroup2_mount() {
        Some(m) => m,
        None => {
            std::fs::create_dir_all(CGROUP2_FALLBACK).map_err(err(CGROUP2_FALLBACK))?;
            nix::mount::mount(
                Some("cgroup2"),
                CGROUP2_FALLBACK,
                Some("cgroup2"),
                nix::mount::MsFlags::empty(),
                None::<&str>,
            )
            .map_err(|e| err(format!("mounting cgroup2 at {CGROUP2_FALLBACK}"))(e.into()))?;
            PathBuf::from(CGROUP2_FALLBACK)
        }
    };
    Ok(mount.join(rel))
}

/// The first cgroup2 mount of the whole hierarchy, from /proc/self/mountinfo.
fn cgroup2_mount() -> Option<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    text.lines().find_map(|l| {
        let (pre, post) = l.split_once(" - ")?;
        let fields: Vec<&str> = pre.split(' ').collect();
        (post.starts_with("cgroup2 ") && fields.get(3) == Some(&"/"))
            .then(|| fields.get(4).map(PathBuf::from))
            .flatten()
    })
}

fn is_bpffs(path: &Path) -> bool {
    nix::sys::statfs::statfs(path)
        .map(|s| s.filesystem_type().0 == BPF_FS_MAGIC)
        .unwrap_or(false)
}

/// Mounts kpbench's bpffs at [`PIN_ROOT`] unless one is there.
fn ensure_bpffs() -> Result<(), ApplyError> {
    if is_bpffs(Path::new(PIN_ROOT)) {
        return Ok(());
    }
    std::fs::create_dir_all(PIN_ROOT).map_err(err(PIN_ROOT))?;
    nix::mount::mount(
        Some("bpf"),
        PIN_ROOT,
        Some("bpf"),
        nix::mount::MsFlags::empty(),
        None::<&str>,
    )
    .map_err(|e| err(format!("mounting bpffs at {PIN_ROOT}"))(e.into()))
}

/// Pins the maps and links loaded for `node` under [`PIN_ROOT`]`/<node>/`, so they
/// outlive this process (`kpbench apply`); `kpbench clean` removes them.
pub fn keep(node: &Netns) -> Result<PathBuf, ApplyError> {
    ensure_bpffs()?;
    let dir = Path::new(PIN_ROOT).join(&node.name);
    std::fs::create_dir_all(&dir).map_err(err(dir.display().to_string()))?;
    let mut reg = registry().lock().unwrap_or_else(|p| p.into_inner());
    let loaded = reg.get_mut(&node.name).ok_or_else(|| ApplyError::Bpf {
        what: format!("pinning the socket LB of {}", node.name),
        source: std::io::Error::other("nothing is loaded for it in this process"),
    })?;
    for map in LbMap::ALL.iter().map(|m| m.name()).chain([MAP_CONFIG]) {
        if let Some(m) = loaded.ebpf.map(map) {
            m.pin(dir.join(map))
                .map_err(|e| aya_err(&format!("pinning {map}"), e))?;
        }
    }
    for (name, link) in std::mem::take(&mut loaded.links) {
        let path = dir.join(format!("link_{name}"));
        sys::obj_pin(link.as_fd(), &path)
            .map_err(err(format!("pinning link {}", path.display())))?;
    }
    Ok(dir)
}

/// The namespaces with pins under [`PIN_ROOT`] (its directories; a bpffs also holds
/// the kernel's `maps.debug` and `progs.debug`).
pub fn pinned() -> Vec<String> {
    if !is_bpffs(Path::new(PIN_ROOT)) {
        return Vec::new();
    }
    let Ok(dir) = std::fs::read_dir(PIN_ROOT) else {
        return Vec::new();
    };
    let mut v: Vec<String> = dir
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    v.sort();
    v
}

/// Removes the pins of every namespace `remove` accepts (their links detach with
/// them), and unmounts kpbench's bpffs once it is empty. What was removed, and errors.
pub fn clean_pins(remove: impl Fn(&str) -> bool) -> (Vec<String>, Vec<String>) {
    let (mut removed, mut errors) = (Vec::new(), Vec::new());
    for name in pinned() {
        if !remove(&name) {
            continue;
        }
        let path = Path::new(PIN_ROOT).join(&name);
        match std::fs::remove_dir_all(&path) {
            Ok(()) => removed.push(format!("BPF pins {}", path.display())),
            Err(e) => errors.push(format!("removing {}: {e}", path.display())),
        }
    }
    if is_bpffs(Path::new(PIN_ROOT)) && pinned().is_empty() {
        if let Err(e) = nix::mount::umount2(PIN_ROOT, nix::mount::MntFlags::MNT_DETACH) {
            errors.push(format!("unmounting {PIN_ROOT}: {e}"));
        }
    }
    (removed, errors)
}
