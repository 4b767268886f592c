//! Rendering cost of full-sync payloads. Compare with the time the kernel tools take to
//! load the same payloads (`kpbench run`, full sync): rendering must be a small fraction.
//! For the ebpf modes, the agent's planning (IDs, encoded entries) of a full sync and of
//! one added service, against the map calls' time in a run's step breakdown.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use dataplane::ebpf::controller::AgentState;
use dataplane::{floor::model, iptables, ServiceSet};

fn bench_iptables(c: &mut Criterion) {
    let mut group = c.benchmark_group("iptables_render_full");
    group.sample_size(10);
    for n in [10_000usize, 50_000] {
        let set = ServiceSet::generate(n, 10);
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::from_parameter(n), &set, |b, set| {
            b.iter(|| iptables::render_full(set))
        });
    }
    group.finish();
}

fn bench_ebpf_agent(c: &mut Criterion) {
    let mut group = c.benchmark_group("ebpf_agent_plan");
    group.sample_size(10);
    let n = 5_000usize;
    let set = ServiceSet::generate(n, 10);
    group.throughput(Throughput::Elements(n as u64));
    group.bench_function(BenchmarkId::new("full", n), |b| {
        b.iter(|| AgentState::default().plan(None, &set))
    });
    // One added service: what the agent does for it, and (apart) finding it.
    let mut state = AgentState::default();
    state.plan(None, &set);
    let mut grown = set.clone();
    grown.upsert(model::service(n, 10));
    let changes = state.changes(Some(&set), &grown);
    group.bench_function(BenchmarkId::new("add_one_apply", n), |b| {
        // By reference, so dropping the cloned state stays out of the timing.
        b.iter_batched_ref(
            || state.clone(),
            |s| s.apply(&changes),
            criterion::BatchSize::LargeInput,
        )
    });
    group.bench_function(BenchmarkId::new("add_one_find_changes", n), |b| {
        b.iter(|| state.changes(Some(&set), &grown).len())
    });
    group.finish();
}

criterion_group!(benches, bench_iptables, bench_ebpf_agent);
criterion_main!(benches);
