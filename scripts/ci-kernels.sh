#!/usr/bin/env bash
# Runs one scenario in the kernel lab on each of a list of kernels and collects every
# run's results under one parent directory, one subdirectory per kernel, for
# `kpbench report DIR...` to merge.
#
# Usage: scripts/ci-kernels.sh [-s SCENARIO] [-o OUT_DIR] [-- RUN ARGS...] KERNEL...
#   KERNEL: debian:6.1, debian:6.12, a kernel .deb, or VMLINUZ[:MODULES_DIR] (nightly)
#   RUN ARGS: extra `kpbench run` flags, e.g. --modes ipvs,iptables --services 100,1000
# Environment: KPBENCH (the kpbench binary; default target/release/kpbench, built if
# missing), KPBENCH_LAB_TIMEOUT (seconds per kernel, default 3600).
#
# Exit: 0 when every kernel's run succeeded, otherwise the first failing exit code
# (69 lab unavailable, 70 lab failure, or kpbench run's own); all kernels are tried.
set -uo pipefail
cd "$(dirname "$0")/.."

scenario=""
out="results/ci-kernels-$(date -u +%Y%m%dT%H%M%SZ)"
run_args=()
kernels=()
while [ $# -gt 0 ]; do
	case "$1" in
	-s | --scenario) scenario="$2"; shift 2 ;;
	-o | --out) out="$2"; shift 2 ;;
	--) shift
		while [ $# -gt 0 ] && [ "$1" != "--" ]; do run_args+=("$1"); shift; done
		[ $# -gt 0 ] && shift ;;
	-h | --help) sed -n '2,14p' "$0"; exit 0 ;;
	*) kernels+=("$1"); shift ;;
	esac
done
[ ${#kernels[@]} -gt 0 ] || { echo "ci-kernels: no kernels given (e.g. debian:6.1 debian:6.12)" >&2; exit 2; }

kpbench="${KPBENCH:-target/release/kpbench}"
if [ ! -x "$kpbench" ]; then
	cargo build --release -p harness --bin kpbench || exit 1
fi

mkdir -p "$out"
status=0
for k in "${kernels[@]}"; do
	# A directory name for the kernel: debian:6.12 -> debian-6.12, /x/bzImage -> bzImage.
	name=$(basename "${k%%:/*}" | tr ':/' '--')
	dir="$out/$name"
	echo "ci-kernels: === $k -> $dir ==="
	args=(lab --kernel "$k" --timeout "${KPBENCH_LAB_TIMEOUT:-3600}" run)
	[ -n "$scenario" ] && args+=("$scenario")
	args+=(--out "$dir" "${run_args[@]}")
	"$kpbench" "${args[@]}" 2>&1 | tee "$out/$name.log"
	rc=${PIPESTATUS[0]}
	echo "$k $rc" >>"$out/status.txt"
	if [ "$rc" -ne 0 ]; then
		echo "ci-kernels: $k failed with exit code $rc" >&2
		[ "$status" -eq 0 ] && status=$rc
	fi
done
echo "ci-kernels: results under $out (per-kernel exit codes in $out/status.txt)"
echo "ci-kernels: one report across kernels: $kpbench report --out $out/merged $out/*/results.json"
exit "$status"
