#!/usr/bin/env bash
# The README's first command: install what is missing, build kpbench (release), and run
# the default (quick) scenario. Extra arguments go to `kpbench run`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cargo build --release --locked
exec ./target/release/kpbench run "$@"
