//! Generator threads: each enters the namespace, runs a current-thread tokio runtime
//! with its share of the connection slots, and keeps its own statistics, merged at
//! the end. Nothing is shared between threads while the load runs.

use std::panic::AssertUnwindSafe;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use dataplane::floor::netns::Netns;

use super::state::{Shared, Stats};
use super::{closedloop, openloop, LoadError, LoadSpec};

/// One thread's result.
pub(crate) struct WorkerOutput {
    pub stats: Stats,
    pub cpu_user: Duration,
    pub cpu_sys: Duration,
}

/// Lines the threads up so they start together, and lets the main thread call the
/// start off when one of them (or spawning one) failed. Unlike a `Barrier`, it cannot
/// leave a thread waiting forever.
#[derive(Default)]
struct StartGate {
    state: Mutex<(usize, Option<Option<Instant>>)>,
    cv: Condvar,
}

impl StartGate {
    /// A thread is ready; waits for the decision: the start time, or `None` to give up.
    fn arrive(&self) -> Option<Instant> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.0 += 1;
        self.cv.notify_all();
        loop {
            if let Some(decision) = st.1 {
                return decision;
            }
            st = self.cv.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Waits for `n` threads to arrive.
    fn wait_ready(&self, n: usize) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        while st.0 < n {
            st = self.cv.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }

    fn decide(&self, start: Option<Instant>) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.1 = Some(start);
        self.cv.notify_all();
    }
}

/// Runs `threads` generator threads and returns their outputs and the common start.
pub(crate) fn run_threads(
    ns: Option<&Netns>,
    spec: &LoadSpec,
    threads: usize,
) -> Result<(Vec<WorkerOutput>, Instant), LoadError> {
    let gate = Arc::new(StartGate::default());
    let failed = Arc::new(AtomicBool::new(false));
    let mut handles = Vec::with_capacity(threads);
    for index in 0..threads {
        let (gate_t, failed_t) = (gate.clone(), failed.clone());
        let ns = ns.cloned();
        let spec = spec.clone();
        let slots = spec.connections / threads + usize::from(index < spec.connections % threads);
        let h = std::thread::Builder::new()
            .name(format!("kpb-load-{index}"))
            .spawn(move || -> Result<WorkerOutput, LoadError> {
                let setup = std::panic::catch_unwind(AssertUnwindSafe(|| setup(ns.as_ref())))
                    .unwrap_or(Err(LoadError::Panicked));
                if setup.is_err() {
                    failed_t.store(true, Ordering::SeqCst);
                }
                let start = gate_t.arrive();
                let rt = setup?;
                let Some(start) = start else {
                    return Err(LoadError::Aborted);
                };
                let cpu0 = dataplane::floor::thread_cpu::now();
                let stats = run_worker(&rt, &spec, start, index, threads, slots);
                let (cpu_user, cpu_sys) = dataplane::floor::thread_cpu::now().since(cpu0);
                Ok(WorkerOutput {
                    stats,
                    cpu_user,
                    cpu_sys,
                })
            });
        match h {
            Ok(h) => handles.push(h),
            Err(e) => {
                gate.decide(None);
                for h in handles {
                    let _ = h.join();
                }
                return Err(LoadError::Thread(e));
            }
        }
    }
    gate.wait_ready(threads);
    let start = Instant::now() + Duration::from_millis(2);
    gate.decide((!failed.load(Ordering::SeqCst)).then_some(start));
    let mut outs = Vec::with_capacity(threads);
    let mut first_err = None;
    for h in handles {
        match h.join().unwrap_or(Err(LoadError::Panicked)) {
            Ok(o) => outs.push(o),
            Err(LoadError::Aborted) => {}
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok((outs, start)),
    }
}

fn setup(ns: Option<&Netns>) -> Result<tokio::runtime::Runtime, LoadError> {
    if let Some(ns) = ns {
        ns.enter()?;
    }
    // Timer slack would delay timer wake-ups by up to 50 us by default. Only this
    // thread's slack changes; failing to lower it costs precision, not correctness.
    let _ = nix::sys::prctl::set_timerslack(1);
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(LoadError::Thread)
}

fn run_worker(
    rt: &tokio::runtime::Runtime,
    spec: &LoadSpec,
    start: Instant,
    index: usize,
    threads: usize,
    slots: usize,
) -> Stats {
    let shared = Rc::new(Shared::new(spec, start));
    let local = tokio::task::LocalSet::new();
    local.block_on(rt, async {
        let mut tasks = Vec::with_capacity(slots + 1);
        match spec.rate_per_s {
            Some(rate) => {
                let share = openloop::Share {
                    rate,
                    index,
                    threads,
                    start,
                };
                tasks.push(tokio::task::spawn_local(openloop::dispatch(
                    shared.clone(),
                    share,
                )));
                for _ in 0..slots {
                    tasks.push(tokio::task::spawn_local(openloop::slot(shared.clone())));
                }
            }
            None => {
                for _ in 0..slots {
                    tasks.push(tokio::task::spawn_local(closedloop::slot(
                        shared.clone(),
                        start,
                    )));
                }
            }
        }
        for t in tasks {
            let _ = t.await;
        }
    });
    shared.take_stats()
}
