//! Named network namespaces (`/run/netns/NAME`, as iproute2 keeps them): create,
//! open, enter from a thread, delete. No `ip` command is run.

use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

/// Where iproute2 and kpbench keep named namespaces.
pub const NETNS_DIR: &str = "/run/netns";

/// Errors handling namespaces.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    #[error("network namespace {name}: {op}: {source} (are you running as root?)")]
    Sys {
        name: String,
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
}

/// A named network namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Netns {
    pub name: String,
}

/// What runs before a namespace is deleted, with its name: per-namespace state a mode
/// keeps in this process and must drop first (registered by the mode, so this floor
/// module names none).
fn delete_hooks() -> &'static Mutex<Vec<DeleteHook>> {
    static HOOKS: OnceLock<Mutex<Vec<DeleteHook>>> = OnceLock::new();
    HOOKS.get_or_init(Default::default)
}

/// A hook of [`on_delete`], given the namespace's name.
type DeleteHook = fn(&str);

/// Runs `hook` with a namespace's name before [`Netns::delete`] removes it, from now
/// on; registering the same hook again changes nothing.
pub fn on_delete(hook: fn(&str)) {
    let mut hooks = delete_hooks().lock().unwrap_or_else(|p| p.into_inner());
    if !hooks.iter().any(|h| std::ptr::fn_addr_eq(*h, hook)) {
        hooks.push(hook);
    }
}

fn sys<'a>(name: &'a str, op: &'static str) -> impl FnOnce(std::io::Error) -> NetnsError + 'a {
    move |source| NetnsError::Sys {
        name: name.to_string(),
        op,
        source,
    }
}

fn nix_err(e: nix::Error) -> std::io::Error {
    std::io::Error::from_raw_os_error(e as i32)
}

impl Netns {
    /// Refers to an existing namespace by name.
    pub fn named(name: &str) -> Self {
        Netns {
            name: name.to_string(),
        }
    }

    pub fn path(&self) -> PathBuf {
        PathBuf::from(NETNS_DIR).join(&self.name)
    }

    /// Whether `/run/netns/NAME` exists.
    pub fn exists(&self) -> bool {
        self.path().exists()
    }

    /// Creates a new namespace bound at `/run/netns/NAME` (like `ip netns add NAME`).
    pub fn create(name: &str) -> Result<Self, NetnsError> {
        let ns = Netns::named(name);
        std::fs::create_dir_all(NETNS_DIR).map_err(sys(name, "create /run/netns"))?;
        let path = ns.path();
        File::options()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(sys(name, "create mount point"))?;
        // unshare(CLONE_NEWNET) affects only the calling thread, so do it on a thread of
        // its own and bind its namespace to the mount point.
        let p = path.clone();
        let res = std::thread::spawn(move || -> std::io::Result<()> {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).map_err(nix_err)?;
            let tid = nix::unistd::gettid();
            let src = format!("/proc/self/task/{tid}/ns/net");
            nix::mount::mount(
                Some(src.as_str()),
                &p,
                None::<&str>,
                nix::mount::MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(nix_err)
        })
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("namespace thread panicked")));
        if let Err(e) = res {
            let _ = std::fs::remove_file(&path);
            return Err(sys(name, "unshare and bind")(e));
        }
        Ok(ns)
    }

    /// Opens the namespace file (for setns).
    pub fn open(&self) -> Result<OwnedFd, NetnsError> {
        File::open(self.path())
            .map(OwnedFd::from)
            .map_err(sys(&self.name, "open"))
    }

    /// Moves the calling thread into this namespace. Sockets the thread creates from
    /// then on belong to it; use a dedicated thread.
    pub fn enter(&self) -> Result<(), NetnsError> {
        let fd = self.open()?;
        nix::sched::setns(fd.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(|e| sys(&self.name, "setns")(nix_err(e)))
    }

    /// Runs `f` on a new thread inside this namespace and returns its result.
    pub fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, NetnsError> {
        let ns = self.clone();
        std::thread::spawn(move || -> Result<T, NetnsError> {
            ns.enter()?;
            Ok(f())
        })
        .join()
        .unwrap_or_else(|_| {
            Err(NetnsError::Sys {
                name: self.name.clone(),
                op: "run",
                source: std::io::Error::other("thread panicked"),
            })
        })
    }

    /// A long-lived thread inside this namespace that runs jobs sent to it (see
    /// [`NsThread`]).
    pub fn thread(&self) -> Result<NsThread, NetnsError> {
        NsThread::start(self)
    }

    /// Deletes the namespace (like `ip netns delete NAME`). Missing is not an error.
    pub fn delete(&self) -> Result<(), NetnsError> {
        // What a mode keeps for it in this process goes with it (the ebpf modes' load
        // balancers: their links detach).
        let hooks = delete_hooks()
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for hook in hooks {
            hook(&self.name);
        }
        let path = self.path();
        if !path.exists() {
            return Ok(());
        }
        match nix::mount::umount2(&path, nix::mount::MntFlags::MNT_DETACH) {
            Ok(()) | Err(nix::Error::EINVAL) | Err(nix::Error::ENOENT) => {}
            Err(e) => return Err(sys(&self.name, "unmount")(nix_err(e))),
        }
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(sys(&self.name, "remove")(e)),
        }
    }

    /// Names of every namespace in `/run/netns` starting with `prefix`.
    pub fn list(prefix: &str) -> Vec<String> {
        let Ok(dir) = std::fs::read_dir(NETNS_DIR) else {
            return Vec::new();
        };
        let mut v: Vec<String> = dir
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| n.starts_with(prefix))
            .collect();
        v.sort();
        v
    }
}

/// Writes a sysctl of the namespace the calling thread is in (e.g. `net/ipv4/ip_forward`).
/// Network sysctls resolve against the opener's namespace, so call this from a thread
/// that has entered the target namespace.
pub fn write_sysctl(key: &str, value: &str) -> std::io::Result<()> {
    std::fs::write(format!("/proc/sys/{key}"), value)
}

/// Whether the process can manage namespaces (root).
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

type Job = Box<dyn FnOnce() + Send>;

/// A thread that has entered a namespace and runs the jobs it is given, one at a time.
/// Processes it starts are born in the namespace without a `setns` between fork and
/// exec, so the standard library can start them with `posix_spawn` (vfork) instead of
/// copying the whole process: as cheap as Go's process start in kube-proxy.
pub struct NsThread {
    jobs: Option<std::sync::mpsc::Sender<Job>>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl NsThread {
    fn start(ns: &Netns) -> Result<NsThread, NetnsError> {
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let ns = ns.clone();
        let handle = std::thread::spawn(move || {
            let entered = ns.enter();
            let ok = entered.is_ok();
            let _ = ready_tx.send(entered);
            if ok {
                for job in rx {
                    job();
                }
            }
        });
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(NsThread {
                jobs: Some(tx),
                handle: Some(handle),
            }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(NetnsError::Sys {
                name: "namespace thread".into(),
                op: "start",
                source: std::io::Error::other("thread ended before entering"),
            }),
        }
    }

    /// Runs `f` on the thread and returns its result.
    pub fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = std::sync::mpsc::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(f());
        });
        self.jobs
            .as_ref()
            .expect("jobs are open until drop")
            .send(job)
            .expect("the namespace thread runs until drop");
        rx.recv().expect("the namespace thread answers every job")
    }
}

impl Drop for NsThread {
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
