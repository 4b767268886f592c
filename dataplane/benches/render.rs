//! Rendering cost of full-sync payloads. Compare with the time the kernel tools take to
//! load the same payloads (`kpbench run`, full sync): rendering must be a small fraction.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use dataplane::{iptables, ServiceSet};

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

criterion_group!(benches, bench_iptables);
criterion_main!(benches);
