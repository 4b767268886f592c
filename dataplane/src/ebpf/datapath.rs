//! Cilium's two load balancers in the kernel, loaded once per node namespace on
//! Cilium's maps: the socket LB (`dataplane/bpf/socklb.bpf.c`, mode `ebpf`) attached
//! by BPF links to the client's cgroup ([`super::cgroup`]), and the per-packet LB
//! (`dataplane/bpf/tclb.bpf.c`, mode `ebpf-tc`) attached at tc ingress of the node's
//! veths ([`super::tc`]).
//!
//! **Which sockets the socket LB translates.** Those of kpbench's client cgroup, and of
//! them only the client namespace's, by its cookie (`kpb_config`): connects from any
//! other namespace, the host's included, pass untouched (a privileged test checks it).
//! The tc LB sees only packets on the node's veths, inside the run's namespaces.
//!
//! **Lifetime.** In a run nothing is pinned: links and maps live as long as their
//! descriptors in this process (cls_bpf filters, before kernel 6.6, as long as the node
//! namespace), so a killed run leaves nothing attached. The registry entry goes when
//! the node namespace is deleted ([`forget`]). `kpbench apply` pins maps and links
//! under [`PIN_ROOT`]`/<namespace>/` ([`keep`]); `kpbench clean` removes the pins,
//! which detaches the links, and the client cgroup.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use aya::programs::links::FdLink;
use aya::programs::tc::SchedClassifierLinkId;
use aya::programs::{CgroupSockAddr, SchedClassifier, TcAttachType};
use aya::{Ebpf, EbpfLoader};

use super::err;
use super::layout::LbMap;
use super::tc::{Place, BACKEND_VETH, CLIENT_VETH};
use super::{cgroup, pins, sys};
use crate::floor::error::ApplyError;
use crate::floor::netns::Netns;
use crate::mode::Mode;

pub use super::cgroup::CGROUP2_FALLBACK;
pub use super::pins::{clean_pins, pinned, PIN_ROOT};

const PROG_CONNECT: &str = "kpb_sock4_connect";
const PROG_GETPEERNAME: &str = "kpb_sock4_getpeername";
const PROG_TC_CLIENT: &str = "kpb_tc_client";
const PROG_TC_BACKEND: &str = "kpb_tc_backend";
const MAP_CONFIG: &str = "kpb_config";
const MAP_CT: &str = "cilium_ct4_global";

/// Which of Cilium's load balancers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Datapath {
    /// cgroup `connect4` and `getpeername4` (mode `ebpf`).
    SocketLb,
    /// tc programs with their own conntrack (mode `ebpf-tc`).
    Tc,
}

impl Datapath {
    pub fn mode(self) -> Mode {
        match self {
            Datapath::SocketLb => Mode::Ebpf,
            Datapath::Tc => Mode::EbpfTc,
        }
    }

    /// What it is, for messages and traces.
    pub fn describe(self) -> &'static str {
        match self {
            Datapath::SocketLb => "socket LB (cgroup connect4, getpeername4)",
            Datapath::Tc => "per-packet LB (tc ingress of veth-client and veth-backend)",
        }
    }

    /// The compiled object, when `build.rs` could build it.
    fn object(self) -> Option<&'static [u8]> {
        match self {
            Datapath::SocketLb => crate::floor::bpf::SOCKLB,
            Datapath::Tc => crate::floor::bpf::TCLB,
        }
    }

    /// The maps of Cilium's it holds (the tc LB has no reverse socket map).
    pub fn maps(self) -> &'static [LbMap] {
        const TC: [LbMap; 6] = [
            LbMap::Services,
            LbMap::Backends,
            LbMap::RevNat,
            LbMap::AffinityMatch,
            LbMap::Affinity,
            LbMap::SourceRange,
        ];
        match self {
            Datapath::SocketLb => &LbMap::ALL,
            Datapath::Tc => &TC,
        }
    }

    /// The program whose run time is the lookup's cost: per connect for the socket LB,
    /// per packet from the client for the tc LB.
    fn programs(self) -> [&'static str; 2] {
        match self {
            Datapath::SocketLb => [PROG_CONNECT, PROG_GETPEERNAME],
            Datapath::Tc => [PROG_TC_CLIENT, PROG_TC_BACKEND],
        }
    }

    fn lookup_program(self) -> &'static str {
        match self {
            Datapath::SocketLb => PROG_CONNECT,
            Datapath::Tc => PROG_TC_CLIENT,
        }
    }
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

/// The maps of one loaded load balancer, by descriptor.
#[derive(Debug)]
pub struct Maps {
    fds: BTreeMap<LbMap, OwnedFd>,
}

impl Maps {
    pub fn fd(&self, map: LbMap) -> std::os::fd::BorrowedFd<'_> {
        self.fds[&map].as_fd()
    }
}

/// How the programs are attached.
enum Links {
    /// BPF links to the client cgroup, by descriptor.
    Cgroup {
        links: Vec<(&'static str, OwnedFd)>,
        cgroup: PathBuf,
        client: String,
    },
    /// tc links (tcx) or cls_bpf filters, owned by the programs in `Loaded::ebpf`.
    Tc(Vec<(&'static str, &'static str, SchedClassifierLinkId)>),
}

/// One loaded load balancer: the object, its links, its maps.
struct Loaded {
    datapath: Datapath,
    ebpf: Ebpf,
    links: Links,
    maps: Arc<Maps>,
    /// `kpbench apply` keeps the client cgroup when the process ends.
    keep_cgroup: bool,
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

/// The maps of `datapath` for `node`, loading and attaching its programs on first use.
pub fn maps_for(node: &Netns, datapath: Datapath) -> Result<Arc<Maps>, ApplyError> {
    let mut reg = registry().lock().unwrap_or_else(|p| p.into_inner());
    if let Some(l) = reg.get(&node.name) {
        if l.datapath != datapath {
            return Err(ApplyError::Bpf {
                what: format!("loading the {} into {}", datapath.describe(), node.name),
                source: std::io::Error::other(format!(
                    "the {} is loaded there already; one namespace holds one",
                    l.datapath.describe()
                )),
            });
        }
        return Ok(l.maps.clone());
    }
    let loaded = load(node, datapath)?;
    let maps = loaded.maps.clone();
    // Deleting the namespace drops what was loaded for it first.
    crate::floor::netns::on_delete(forget);
    reg.insert(node.name.clone(), loaded);
    Ok(maps)
}

/// The maps already loaded for `node` in this process, if any.
pub fn loaded(node: &Netns) -> Option<Arc<Maps>> {
    let reg = registry().lock().unwrap_or_else(|p| p.into_inner());
    reg.get(&node.name).map(|l| l.maps.clone())
}

/// Drops what was loaded for `node` in this process: links detach, programs unload,
/// and the process leaves the client cgroup. Called when the namespace is deleted,
/// before it goes: cls_bpf filters are detached from inside it (by interface index,
/// which means another link in another namespace).
pub fn forget(node: &str) {
    let gone = registry()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(node);
    let Some(loaded) = gone else {
        return;
    };
    match loaded.links {
        Links::Cgroup { .. } => {
            let keep = loaded.keep_cgroup;
            drop(loaded);
            cgroup::leave(keep);
        }
        Links::Tc(_) => {
            let ns = Netns::named(node);
            if !ns.exists() {
                // Its veths are gone with it; a detach here would name an interface
                // index of whatever namespace this thread is in.
                std::mem::forget(loaded);
                return;
            }
            let done = ns.run(move || drop(loaded));
            if let Err(e) = done {
                tracing::warn!("detaching the tc LB in {node}: {e}");
            }
        }
    }
}

/// The lookup program's accumulated run time and run count (they grow only while BPF
/// statistics are enabled): per connect for the socket LB (connect4), per packet from
/// the client for the tc LB. None when nothing is loaded for `node`.
pub fn lookup_run_stats(node: &Netns) -> Option<(Datapath, u64, u64)> {
    let reg = registry().lock().unwrap_or_else(|p| p.into_inner());
    let l = reg.get(&node.name)?;
    let info = l.ebpf.program(l.datapath.lookup_program())?.info().ok()?;
    Some((
        l.datapath,
        info.run_time().as_nanos() as u64,
        info.run_count(),
    ))
}

/// Where the programs for `node` are attached: the client namespace and cgroup of a
/// socket LB, or the tc LB's interfaces.
pub fn attachment(node: &Netns) -> Option<Vec<String>> {
    let reg = registry().lock().unwrap_or_else(|p| p.into_inner());
    reg.get(&node.name).map(|l| match &l.links {
        Links::Cgroup { cgroup, client, .. } => {
            vec![
                format!("cgroup {}", cgroup.display()),
                format!("netns {client}"),
            ]
        }
        Links::Tc(links) => links
            .iter()
            .map(|(prog, iface, _)| format!("{prog} at tc ingress of {iface}"))
            .collect(),
    })
}

fn load(node: &Netns, datapath: Datapath) -> Result<Loaded, ApplyError> {
    let object = datapath.object().ok_or_else(|| ApplyError::Bpf {
        what: format!("the {} was not built", datapath.describe()),
        source: std::io::Error::other(
            "clang or libbpf-dev was missing at build time: run scripts/install-deps.sh, then rebuild",
        ),
    })?;
    // A fresh load replaces what an earlier `kpbench apply` pinned for this namespace.
    pins::unpin(&node.name);
    let ebpf = EbpfLoader::new()
        .load(object)
        .map_err(|e| aya_err(&format!("loading the {}", datapath.describe()), e))?;
    let mut fds = BTreeMap::new();
    for map in datapath.maps() {
        fds.insert(*map, map_fd(&ebpf, map.name())?);
    }
    let maps = Arc::new(Maps { fds });
    let (ebpf, links) = match datapath {
        Datapath::SocketLb => attach_cgroup(node, ebpf)?,
        Datapath::Tc => attach_tc(node, ebpf)?,
    };
    Ok(Loaded {
        datapath,
        ebpf,
        links,
        maps,
        keep_cgroup: false,
    })
}

/// The socket LB: the client's cookie into `kpb_config`, then both programs by BPF
/// links to the client cgroup, with this process moved into it.
fn attach_cgroup(node: &Netns, mut ebpf: Ebpf) -> Result<(Ebpf, Links), ApplyError> {
    let client = client_of(node);
    let cookie = client
        .run(sys::netns_cookie)?
        .map_err(err(format!("SO_NETNS_COOKIE in {}", client.name)))?;
    let config = map_fd(&ebpf, MAP_CONFIG)?;
    sys::update(config.as_fd(), &0u32.to_ne_bytes(), &cookie.to_ne_bytes())
        .map_err(err("writing kpb_config"))?;
    let mut progs = Vec::new();
    for name in [PROG_CONNECT, PROG_GETPEERNAME] {
        let prog: &mut CgroupSockAddr = ebpf
            .program_mut(name)
            .ok_or_else(|| aya_err(name, std::io::Error::other("not in the object")))?
            .try_into()
            .map_err(|e| aya_err(name, e))?;
        prog.load()
            .map_err(|e| aya_err(&format!("loading {name}"), e))?;
        let fd = prog.fd().map_err(|e| aya_err(name, e))?;
        let fd = fd
            .as_fd()
            .try_clone_to_owned()
            .map_err(err(format!("dup of {name}")))?;
        progs.push((name, fd));
    }
    let cgroup = cgroup::enter(&node.name)?;
    let attached = (|| {
        let dir =
            File::open(&cgroup).map_err(err(format!("opening cgroup {}", cgroup.display())))?;
        let mut links = Vec::new();
        for ((name, fd), attach) in progs
            .iter()
            .zip([sys::ATTACH_CONNECT4, sys::ATTACH_GETPEERNAME4])
        {
            let link = sys::link_create(fd.as_fd(), dir.as_fd(), attach).map_err(err(format!(
                "attaching {name} to {} by a BPF link",
                cgroup.display()
            )))?;
            links.push((*name, link));
        }
        Ok(links)
    })();
    let links = match attached {
        Ok(l) => l,
        Err(e) => {
            cgroup::leave(false);
            return Err(e);
        }
    };
    tracing::debug!(
        "socket LB for {} attached to {} for sockets of {} (netns cookie {cookie})",
        node.name,
        cgroup.display(),
        client.name
    );
    Ok((
        ebpf,
        Links::Cgroup {
            links,
            cgroup,
            client: client.name,
        },
    ))
}

/// The tc LB: `kpb_tc_client` at ingress of veth-client, `kpb_tc_backend` at ingress
/// of veth-backend, from a thread inside `node` (tc attaches by interface name). A
/// namespace without them (`kpbench apply` into a bare one) gets the maps only.
// The closure that runs in the namespace returns the crate's usual error.
#[allow(clippy::result_large_err)]
fn attach_tc(node: &Netns, mut ebpf: Ebpf) -> Result<(Ebpf, Links), ApplyError> {
    for name in [PROG_TC_CLIENT, PROG_TC_BACKEND] {
        tc_program(&mut ebpf, name)?
            .load()
            .map_err(|e| aya_err(&format!("loading {name}"), e))?;
    }
    let ns = node.name.clone();
    let (ebpf, links) = node
        .run(move || {
            let mut links = Vec::new();
            for (name, iface) in [
                (PROG_TC_CLIENT, CLIENT_VETH),
                (PROG_TC_BACKEND, BACKEND_VETH),
            ] {
                if !has_link(iface) {
                    tracing::debug!("{ns} has no {iface}: {name} is loaded but not attached");
                    continue;
                }
                let what = format!("attaching {name} to tc ingress of {iface} in {ns}");
                let attached = super::tc::options(iface, Place::Middle)
                    .map_err(|e| err(what.clone())(e))
                    .and_then(|opts| {
                        tc_program(&mut ebpf, name)?
                            .attach_with_options(iface, TcAttachType::Ingress, opts)
                            .map_err(|e| aya_err(&what, e))
                    });
                match attached {
                    Ok(id) => links.push((name, iface, id)),
                    Err(e) => return Err((ebpf, e)),
                }
            }
            Ok((ebpf, links))
        })?
        .map_err(|(ebpf, e)| {
            // Whatever was attached is detached in the namespace before the error goes up.
            let _ = node.run(move || drop(ebpf));
            e
        })?;
    Ok((ebpf, Links::Tc(links)))
}

/// Whether this thread's namespace has a link named `iface`.
fn has_link(iface: &str) -> bool {
    let Ok(name) = std::ffi::CString::new(iface) else {
        return false;
    };
    // SAFETY: a valid NUL-terminated string; the call only reads it.
    unsafe { libc::if_nametoindex(name.as_ptr()) != 0 }
}

fn tc_program<'a>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut SchedClassifier, ApplyError> {
    ebpf.program_mut(name)
        .ok_or_else(|| aya_err(name, std::io::Error::other("not in the object")))?
        .try_into()
        .map_err(|e| aya_err(name, e))
}

fn map_fd(ebpf: &Ebpf, name: &str) -> Result<OwnedFd, ApplyError> {
    let map = ebpf
        .map(name)
        .ok_or_else(|| aya_err(name, std::io::Error::other("map not in the object")))?;
    let data = match map {
        aya::maps::Map::HashMap(d)
        | aya::maps::Map::LruHashMap(d)
        | aya::maps::Map::Array(d)
        | aya::maps::Map::LpmTrie(d) => d,
        _ => return Err(aya_err(name, std::io::Error::other("unexpected map type"))),
    };
    data.fd()
        .as_fd()
        .try_clone_to_owned()
        .map_err(err(format!("dup of map {name}")))
}

/// Pins the maps and links loaded for `node` under [`PIN_ROOT`]`/<node>/`, so they
/// outlive this process (`kpbench apply`); `kpbench clean` removes them. A socket LB's
/// client cgroup stays too; cls_bpf filters (before kernel 6.6) stay with the node's
/// veths, which `kpbench clean` deletes with the namespace.
pub fn keep(node: &Netns) -> Result<PathBuf, ApplyError> {
    let dir = pins::dir_for(&node.name)?;
    let mut reg = registry().lock().unwrap_or_else(|p| p.into_inner());
    let loaded = reg.get_mut(&node.name).ok_or_else(|| ApplyError::Bpf {
        what: format!("pinning the load balancer of {}", node.name),
        source: std::io::Error::other("nothing is loaded for it in this process"),
    })?;
    let names = loaded.datapath.maps().iter().map(|m| m.name());
    for map in names.chain([MAP_CONFIG, MAP_CT]) {
        if let Some(m) = loaded.ebpf.map(map) {
            m.pin(dir.join(map))
                .map_err(|e| aya_err(&format!("pinning {map}"), e))?;
        }
    }
    // The programs too: a tc LB applied to a namespace without the node's veths is
    // attached to nothing, and `tc filter add ... bpf da pinned PATH` can use them.
    for name in loaded.datapath.programs() {
        if let Some(p) = loaded.ebpf.program_mut(name) {
            p.pin(dir.join(format!("prog_{name}")))
                .map_err(|e| aya_err(&format!("pinning {name}"), e))?;
        }
    }
    match &mut loaded.links {
        Links::Cgroup { links, .. } => {
            for (name, link) in std::mem::take(links) {
                pins::pin_link(&link, &dir.join(format!("link_{name}")))?;
            }
            loaded.keep_cgroup = true;
        }
        Links::Tc(links) => {
            for (name, iface, id) in std::mem::take(links) {
                let link = tc_program(&mut loaded.ebpf, name)?
                    .take_link(id)
                    .map_err(|e| aya_err(name, e))?;
                if !super::tc::has_tcx() {
                    // A cls_bpf filter: dropping its handle would detach it.
                    std::mem::forget(link);
                    continue;
                }
                let path = dir.join(format!("link_{name}_{iface}"));
                FdLink::try_from(link)
                    .map_err(|e| aya_err(name, e))?
                    .pin(&path)
                    .map_err(|e| aya_err(&format!("pinning {}", path.display()), e))?;
            }
        }
    }
    Ok(dir)
}
