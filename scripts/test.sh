#!/usr/bin/env bash
# The README's second command (and CI's): install what is missing, then run every test
# tier. Pure tests run anywhere; privileged tests run as root (otherwise they print
# "skipped: needs root"); lab tests boot a Debian kernel under qemu.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -eq 0 ]; then
	scripts/install-deps.sh
else
	echo "test.sh: not root: privileged and lab tests will be skipped (visible in the output)" >&2
fi
# Tests run one binary at a time: they share the machine's 2 cores with the kernel
# work they measure.
cargo test --workspace --locked --no-fail-fast -- --test-threads=1 2>&1
