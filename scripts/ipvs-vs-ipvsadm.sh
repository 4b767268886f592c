#!/bin/sh
# Programs SERVICES x ENDPOINTS IPVS virtual services / real servers twice in the same
# kernel: once through kpbench's batched generic-netlink client, once through
# `ipvsadm -R` with the same content (each in a fresh network namespace), and prints
# both wall times. IPVS needs a kernel with ip_vs, so by default this runs inside the
# kernel lab; with --here it runs on the current kernel (root, ip_vs and ipvsadm needed).
#
#   scripts/ipvs-vs-ipvsadm.sh [--here] [SERVICES] [ENDPOINTS] [KERNEL]
#   defaults: 10000 services, 10 endpoints, kernel debian:6.1
set -eu
here=0
if [ "${1:-}" = "--here" ]; then here=1; shift; fi
services=${1:-10000}
endpoints=${2:-10}
kernel=${3:-debian:6.1}
cd "$(dirname "$0")/.."
cargo build --release -p dataplane --example ipvs_vs_ipvsadm
bin=target/release/examples/ipvs_vs_ipvsadm
if [ "$here" = 1 ]; then
    exec "$bin" "$services" "$endpoints"
fi
cargo build --release -p harness
# The lab puts $KPBENCH_LAB_BINARY into the guest as /usr/local/bin/kpbench: here that
# is the ipvs_vs_ipvsadm example, so the guest command runs it.
KPBENCH_LAB_BINARY="$bin" exec target/release/kpbench lab --kernel "$kernel" -- \
    /usr/local/bin/kpbench "$services" "$endpoints"
