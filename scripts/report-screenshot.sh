#!/bin/sh
# Renders a kpbench report in headless Chromium, checks it as a person would see it
# (charts drawn, no console errors, nothing fetched) and keeps a screenshot.
#
#   scripts/report-screenshot.sh [RUN_DIR...]    default: the report test fixtures
#
# Environment: OUT (default target/report-screenshot), KPBENCH (default target/debug/kpbench,
# built if missing), CHROMIUM (default /usr/bin/chromium; Debian package "chromium").
# Exit: 0 ok, 1 a check failed, 69 chromium is not installed.
set -eu

cd "$(dirname "$0")/.."
OUT=${OUT:-target/report-screenshot}
KPBENCH=${KPBENCH:-target/debug/kpbench}
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}

if [ ! -x "$CHROMIUM" ]; then
    echo "skipped: chromium not installed (apt-get install chromium)" >&2
    exit 69
fi
if [ ! -x "$KPBENCH" ]; then
    cargo build -p harness --bin kpbench
fi
if [ $# -eq 0 ]; then
    set -- harness/tests/fixtures/report/host harness/tests/fixtures/report/lab
fi

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
"$KPBENCH" report "$@" --out "$OUT" >/dev/null

profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
chrome() {
    timeout 120 "$CHROMIUM" --headless --no-sandbox --disable-gpu \
        --disable-background-networking --disable-component-update --disable-sync \
        --no-first-run --hide-scrollbars --enable-logging=stderr --v=0 \
        --user-data-dir="$profile" "$@" "file://$OUT/report.html"
}
chrome --dump-dom >"$OUT/dom.html" 2>"$OUT/chromium.log"
chrome --window-size=1280,2400 --screenshot="$OUT/report.png" >/dev/null 2>>"$OUT/chromium.log"

fail=0
svgs=$(grep -o '<svg' "$OUT/dom.html" | wc -l)
lines=$(grep -o '<polyline\|<path\|<rect' "$OUT/dom.html" | wc -l)
if [ "$svgs" -eq 0 ] || [ "$lines" -eq 0 ]; then
    echo "FAIL: no charts drawn ($svgs <svg>, $lines shapes) in $OUT/dom.html" >&2
    fail=1
fi
if grep -E 'Uncaught|ERROR:CONSOLE|Failed to load resource|net::ERR_' "$OUT/chromium.log" >&2; then
    echo "FAIL: console errors above (full log: $OUT/chromium.log)" >&2
    fail=1
fi
if [ ! -s "$OUT/report.png" ]; then
    echo "FAIL: no screenshot" >&2
    fail=1
fi
[ "$fail" -eq 0 ] || exit 1
echo "ok: $svgs charts, $lines shapes, no console errors"
echo "report:     $OUT/report.html"
echo "screenshot: $OUT/report.png"
