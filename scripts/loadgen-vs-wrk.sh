#!/usr/bin/env bash
# kpbench's load generator side by side with wrk, on loopback, against `kpbench serve`:
# closed loop, a new TCP connection per request, the same connections, threads and
# duration. Rounds alternate between the two so a busy machine hurts both alike.
# Exits 1 when kpbench's median rate is below wrk's.
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
printf '%-6s %12s %12s %14s %14s   (%s connections, %s threads, %ss, connection per request)\n' \
    round 'kpbench/s' 'wrk/s' 'kpbench cpu/req' 'wrk cpu/req' "$CONNECTIONS" "$THREADS" "$DURATION"
for round in $(seq "$ROUNDS"); do
    { time "$KPBENCH" load --url "$URL" --duration "${DURATION}s" \
        --connections "$CONNECTIONS" --threads "$THREADS" --json >"$tmp/kp.json"; } 2>"$tmp/kp.time"
    kp=$(grep -o '"achieved_rate_per_s":[0-9.]*' "$tmp/kp.json" | cut -d: -f2)
    kp_ok=$(grep -o '"ok":[0-9]*' "$tmp/kp.json" | cut -d: -f2)
    kp_err=$(grep -o '"errors":[0-9]*' "$tmp/kp.json" | head -1 | cut -d: -f2)
    sleep 1
    { time wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" \
        -H 'Connection: close' "$URL" >"$tmp/wrk.txt"; } 2>"$tmp/wrk.time"
    w=$(awk '/Requests\/sec/ {print $2}' "$tmp/wrk.txt")
    w_n=$(awk '/requests in/ {print $1}' "$tmp/wrk.txt")
    w_err=$(grep -E 'Socket errors|Non-2xx' "$tmp/wrk.txt" | tr -s ' ' || true)
    sleep 1
    printf '%-6s %12.0f %12.0f %14s %14s   errors: kpbench %s%s\n' "$round" "$kp" "$w" \
        "$(cpu_us "$tmp/kp.time" "$kp_ok")" "$(cpu_us "$tmp/wrk.time" "$w_n")" "$kp_err" \
        "${w_err:+, wrk$w_err}"
    kp_rates+=("$kp")
    wrk_rates+=("$w")
done

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
kp_med=$(median "${kp_rates[@]}")
wrk_med=$(median "${wrk_rates[@]}")
printf '%-6s %14.0f %14.0f   req/s\n' median "$kp_med" "$wrk_med"
if awk -v k="$kp_med" -v w="$wrk_med" 'BEGIN {exit !(k >= w)}'; then
    echo "ok: kpbench load keeps up with wrk"
else
    echo "kpbench load is slower than wrk" >&2
    exit 1
fi
