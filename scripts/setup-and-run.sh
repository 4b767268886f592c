#!/usr/bin/env bash
# The README's first command: install what is missing, build kpbench (release), and run
# the default (quick) scenario. Extra arguments go to `kpbench run`. Run it as root; from
# another account it re-runs itself through sudo when sudo is there.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
	if command -v sudo >/dev/null 2>&1; then
		exec sudo -E env "PATH=$PATH" "$0" "$@"
	fi
	echo "setup-and-run: needs root (it installs packages and creates network namespaces): run it as root" >&2
	exit 69
fi
scripts/install-deps.sh
cargo build --release --locked
exec ./target/release/kpbench run "$@"
