#!/usr/bin/env bash
# kpbench's load generator side by side with wrk, on loopback, against `kpbench serve`:
# closed loop, a new TCP connection per request, the same connections, threads and
# duration. Each round runs both, in alternating order, and the verdict is on the
# median of the per-round ratios, so a machine whose load drifts hurts both alike.
# Exits 1 when kpbench's rate is clearly below wrk's: a median ratio under 0.95. Within
# 5% is a tie: on 2 shared cores the rounds alone vary by 20% or more (both tools and
# the server compete for the same CPUs), and the client CPU per request is printed so
# the two can be compared on cost as well as rate.
#
#   scripts/loadgen-vs-wrk.sh                 # 3 rounds of 5 s, 32 connections
#   CONNECTIONS=64 DURATION=10 ROUNDS=5 scripts/loadgen-vs-wrk.sh
#   KPBENCH=/path/to/kpbench scripts/loadgen-vs-wrk.sh
#
# Needs wrk (Debian package `wrk`). Traffic goes to 127.0.0.1 only.
set -euo pipefail

cd "$(dirname "$0")/.."
CONNECTIONS=${CONNECTIONS:-32}
DURATION=${DURATION:-5}
ROUNDS=${ROUNDS:-3}
PORT=${PORT:-18080}
THREADS=${THREADS:-$(nproc)}
KPBENCH=${KPBENCH:-target/release/kpbench}

if ! command -v wrk >/dev/null; then
    echo "wrk not found: install the wrk package (apt-get install wrk)" >&2
    exit 69
fi
if [[ ! -x $KPBENCH ]]; then
    echo "building $KPBENCH (cargo build --release -p harness)" >&2
    cargo build --release -p harness >&2
fi

URL="http://127.0.0.1:$PORT/"
"$KPBENCH" serve --listen "127.0.0.1:$PORT" 2>/dev/null &
SERVER=$!
trap 'kill "$SERVER" 2>/dev/null; wait "$SERVER" 2>/dev/null || true' EXIT

# Wait (at most 5 s) until the server answers.
for _ in $(seq 50); do
    if "$KPBENCH" load --url "$URL" --duration 50ms --connections 1 --json 2>/dev/null |
        grep -q '"ok":[1-9]'; then
        break
    fi
    sleep 0.1
done

kp_rates=()
wrk_rates=()
TIMEFORMAT='%U %S'
tmp=$(mktemp -d)
trap 'kill "$SERVER" 2>/dev/null; wait "$SERVER" 2>/dev/null || true; rm -rf "$tmp"' EXIT
# Client CPU (user + sys of the whole process, from bash's `time`) per request, in us.
cpu_us() { awk -v n="$2" '{printf "%.1f", ($1 + $2) * 1e6 / (n > 0 ? n : 1)}' "$1"; }
printf '%-6s %12s %12s %14s %14s %7s   (%s connections, %s threads, %ss, connection per request)\n' \
    round 'kpbench/s' 'wrk/s' 'kpbench us/req' 'wrk us/req' ratio "$CONNECTIONS" "$THREADS" "$DURATION"
run_kpbench() {
    { time "$KPBENCH" load --url "$URL" --duration "${DURATION}s" \
        --connections "$CONNECTIONS" --threads "$THREADS" --json >"$tmp/kp.json"; } 2>"$tmp/kp.time"
    sleep 1
}
run_wrk() {
    { time wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" \
        -H 'Connection: close' "$URL" >"$tmp/wrk.txt"; } 2>"$tmp/wrk.time"
    sleep 1
}
ratios=()
for round in $(seq "$ROUNDS"); do
    if ((round % 2)); then run_kpbench; run_wrk; else run_wrk; run_kpbench; fi
    kp=$(grep -o '"achieved_rate_per_s":[0-9.]*' "$tmp/kp.json" | cut -d: -f2)
    kp_ok=$(grep -o '"ok":[0-9]*' "$tmp/kp.json" | cut -d: -f2)
    kp_err=$(grep -o '"errors":[0-9]*' "$tmp/kp.json" | head -1 | cut -d: -f2)
    w=$(awk '/Requests\/sec/ {print $2}' "$tmp/wrk.txt")
    w_n=$(awk '/requests in/ {print $1}' "$tmp/wrk.txt")
    w_err=$(grep -E 'Socket errors|Non-2xx' "$tmp/wrk.txt" | tr -s ' ' || true)
    ratio=$(awk -v k="$kp" -v w="$w" 'BEGIN {printf "%.3f", (w > 0 ? k / w : 0)}')
    printf '%-6s %12.0f %12.0f %14s %14s %7s   errors: kpbench %s%s\n' "$round" "$kp" "$w" \
        "$(cpu_us "$tmp/kp.time" "$kp_ok")" "$(cpu_us "$tmp/wrk.time" "$w_n")" "$ratio" \
        "$kp_err" "${w_err:+, wrk$w_err}"
    kp_rates+=("$kp")
    wrk_rates+=("$w")
    ratios+=("$ratio")
done

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
kp_med=$(median "${kp_rates[@]}")
wrk_med=$(median "${wrk_rates[@]}")
ratio_med=$(median "${ratios[@]}")
printf '%-6s %12.0f %12.0f %14s %14s %7s   (us/req: client CPU per request)\n' \
    median "$kp_med" "$wrk_med" '' '' "$ratio_med"
if awk -v r="$ratio_med" 'BEGIN {exit !(r >= 1)}'; then
    echo "ok: kpbench load keeps up with wrk (median ratio $ratio_med)"
elif awk -v r="$ratio_med" 'BEGIN {exit !(r >= 0.95)}'; then
    echo "ok: kpbench load matches wrk within 5% (median ratio $ratio_med; compare the us/req columns)"
else
    echo "kpbench load is slower than wrk (median ratio $ratio_med)" >&2
    exit 1
fi
