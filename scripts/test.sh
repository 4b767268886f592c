#!/usr/bin/env bash
# The README's second command (and CI's, through .ci/run): install what is missing,
# check formatting, lints and the layout (tools/structure), then run every test tier
# this machine can run:
#   pure        always: rendering, statistics, schema, report;
#   privileged  as root (features harness/root-tests, dataplane/root-tests): network
#               namespaces and real rules on this kernel;
#   lab         as root (feature harness/lab-tests): boots the lab kernel under qemu;
#               KPBENCH_SKIP_LAB=1 leaves it out;
#   browser     when /usr/bin/chromium exists (feature harness/browser-tests).
# A test of a tier that is off is reported by cargo test as "ignored", never as passed;
# a test of a tier that is on fails if what it needs is missing. The last lines say which
# tiers ran, which were skipped and why.
set -euo pipefail
cd "$(dirname "$0")/.."

features=()
if [ "$(id -u)" -eq 0 ]; then
	scripts/install-deps.sh
	features+=(harness/root-tests dataplane/root-tests)
	privileged="ran"
	if [ -n "${KPBENCH_SKIP_LAB:-}" ]; then
		lab="skipped (KPBENCH_SKIP_LAB is set)"
	else
		features+=(harness/lab-tests)
		lab="ran"
	fi
else
	privileged="skipped (not root: run sudo scripts/test.sh)"
	lab="skipped (not root: run sudo scripts/test.sh)"
	echo "test.sh: not root: the privileged and lab tests will be reported as ignored" >&2
fi
if [ -x /usr/bin/chromium ]; then
	features+=(harness/browser-tests)
	browser="ran"
else
	browser="skipped (/usr/bin/chromium not installed: scripts/install-deps.sh installs it as root)"
fi

# Lints first, but a lint failure does not stop the tests: one CI run reports both.
lint_failed=()
echo "test.sh: cargo fmt --all --check" >&2
if ! cargo fmt --all --check; then
	lint_failed+=("cargo fmt (run cargo fmt --all)")
fi
# Every feature on, so the tier-gated test code is linted whatever this machine runs.
echo "test.sh: cargo clippy --workspace --all-targets --all-features --locked -- -D warnings" >&2
if ! cargo clippy --workspace --all-targets --all-features --locked -- -D warnings; then
	lint_failed+=("cargo clippy")
fi

# The layout check (tools/structure): import cycles between modules, functions over 100
# lines, top-level files docs/architecture.md does not list. Like a lint, a failure
# fails the command but does not stop the tests.
echo "test.sh: cargo run -p structure --bin check-structure -- ." >&2
structure_failed=0
if cargo run -q -p structure --locked --bin check-structure -- . >"${TMPDIR:-/tmp}/kpbench-structure.$$" 2>&1; then
	structure="ok"
else
	structure_failed=1
	problems=$(grep -c 'FAIL:' "${TMPDIR:-/tmp}/kpbench-structure.$$" || true)
	if [ "$problems" -gt 0 ]; then
		structure="FAILED ($problems problems: docs/architecture.md, \"Structure check\")"
	else
		structure="FAILED (check-structure did not run to the end: its output is above)"
	fi
fi
cat "${TMPDIR:-/tmp}/kpbench-structure.$$" >&2
rm -f "${TMPDIR:-/tmp}/kpbench-structure.$$"

feature_args=()
if [ ${#features[@]} -gt 0 ]; then
	feature_args=(--features "$(IFS=,; echo "${features[*]}")")
fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# Tests run one binary at a time: they share the machine's 2 cores with the kernel
# work they measure.
test_cmd=(cargo test --workspace --locked --no-fail-fast ${feature_args[@]+"${feature_args[@]}"} -- --test-threads=1)
echo "test.sh: ${test_cmd[*]}" >&2
set +e
"${test_cmd[@]}" 2>&1 | tee "$log"
test_status=${PIPESTATUS[0]}
set -e

# Totals over every test binary's "test result:" line.
counts=$(awk '/^test result:/ {
	for (i = 1; i <= NF; i++) {
		if ($(i) ~ /^passed;?$/) p += $(i - 1)
		if ($(i) ~ /^failed;?$/) f += $(i - 1)
		if ($(i) ~ /^ignored;?$/) g += $(i - 1)
	}
} END { printf "%d passed, %d failed, %d ignored", p, f, g }' "$log")
if [ "$test_status" -eq 0 ]; then tests="ok ($counts)"; else tests="FAILED ($counts)"; fi
if [ ${#lint_failed[@]} -eq 0 ]; then
	lint="ok (fmt, clippy)"
else
	lint="FAILED: $(printf '%s; ' "${lint_failed[@]}")"
	lint=${lint%; }
fi

echo
echo "test.sh: tiers: pure ran; privileged $privileged; lab $lab; browser $browser"
echo "test.sh: lint $lint; structure $structure; tests $tests"
if [ "$test_status" -ne 0 ]; then
	exit "$test_status"
fi
if [ ${#lint_failed[@]} -ne 0 ] || [ "$structure_failed" -ne 0 ]; then
	exit 1
fi
