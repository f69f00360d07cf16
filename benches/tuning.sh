#!/usr/bin/env bash
# [server] tuning sweep: the pingora knobs tokengate exposes, each measured against the default in
# one run, so the defaults in the README are measured rather than assumed.
#
#   make bench-tuning                     # or: bash benches/tuning.sh
#   ROUNDS=2 DURATION=3 bash benches/tuning.sh
#
# Environment (defaults in brackets): ROUNDS [3], DURATION seconds per measurement [5], WARMUP [1],
# CONNS wrk connections [50], IDLE_WAIT seconds to wait for other load to settle before each
# measurement [20; 0 = off].
#
# Every variant is a tokengate process with one [server] setting changed from the default, pinned
# to core 0 (wrk and the upstream on core 1, as in benches/load.sh), serving J1 (one cached RS256
# token on a JWT route). Rounds alternate the variants, so drift hits them alike; the report gives
# medians of req/s and gateway CPU per request, and each variant's ratio to the default.
# Output: markdown on stdout and in target/bench/tuning-report.md.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
CONNS=${CONNS:-50}
IDLE_WAIT=${IDLE_WAIT:-20}
CARGO=${CARGO:-cargo}
ACCESS_LOG=false

BENCH_NAME=tuning
# shellcheck source=benches/lib.sh
source "$ROOT/benches/lib.sh"

check_knobs ROUNDS DURATION WARMUP CONNS

# name | [server] lines that differ from the default. The first is the baseline.
VARIANTS=(
  "baseline: threads=1, other knobs at their defaults (work_stealing false)|"
  "threads=2|threads = 2"
  "work_stealing=true|work_stealing = true"
  "upstream_keepalive_pool_size=8|upstream_keepalive_pool_size = 8"
  "listener_tasks_per_fd=2|listener_tasks_per_fd = 2"
)
((${#VARIANTS[@]} < 20)) || die "too many variants"
BASE_PORT=18180
BASE_ADMIN=18280
UP_PORT=18179

bench_setup

log "building (release)"
"$CARGO" build --release --bin tokengate --example bench_upstream --example mint_tokens
BIN="$ROOT/target/release/tokengate"
"$ROOT/target/release/examples/mint_tokens" --count 1 --out "$TMP/token.txt" --jwks "$TMP/jwks.json" --lifetime 3600 >/dev/null

for ((i = 0; i < ${#VARIANTS[@]}; i++)); do
  ports_free $((BASE_PORT + i)) $((BASE_ADMIN + i))
done
ports_free $UP_PORT

start_bg upstream "${PIN_LOAD[@]}" "$ROOT/target/release/examples/bench_upstream" "127.0.0.1:$UP_PORT"
wait_http "http://127.0.0.1:$UP_PORT/" upstream "$LAST_PID"

GW_PIDS=()
for ((i = 0; i < ${#VARIANTS[@]}; i++)); do
  extra=${VARIANTS[i]#*|}
  line="token_cache_capacity = 1000"
  [ -z "$extra" ] || line="$line"$'\n'"$extra"
  make_conf "$TMP/gw-$i.toml" $((BASE_PORT + i)) $((BASE_ADMIN + i)) $UP_PORT "$line"
  "$BIN" check --config "$TMP/gw-$i.toml" >/dev/null || die "tokengate check failed for ${VARIANTS[i]%%|*}"
  start_bg "gw-$i" "${PIN_GW[@]}" "$BIN" run --config "$TMP/gw-$i.toml"
  GW_PIDS+=("$LAST_PID")
done
TOKEN=$(cat "$TMP/token.txt")
for ((i = 0; i < ${#VARIANTS[@]}; i++)); do
  wait_http "http://127.0.0.1:$((BASE_ADMIN + i))/readyz" "gw-$i" "${GW_PIDS[i]}"
  got=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$((BASE_PORT + i))/j")
  [ "$got" = 200 ] || die "${VARIANTS[i]%%|*}: /j answered $got"
done

export BENCH_PATH=/j BENCH_TOKENS="$TMP/token.txt"
RESULTS="$TMP/results.tsv"
printf 'variant\trps\tcpu_us\tp99_us\tfailures\n' >"$RESULTS"
for ((round = 1; round <= ROUNDS; round++)); do
  for ((i = 0; i < ${#VARIANTS[@]}; i++)); do
    port=$((BASE_PORT + i))
    wait_quiet
    "${PIN_LOAD[@]}" wrk -t1 -c"$CONNS" -d"${WARMUP}s" -s "$ROOT/benches/load/bench.lua" "http://127.0.0.1:$port" >/dev/null 2>&1
    c0=$(cpu_ticks "${GW_PIDS[i]}")
    "${PIN_LOAD[@]}" wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency -s "$ROOT/benches/load/bench.lua" "http://127.0.0.1:$port" >"$TMP/wrk.out" 2>&1 ||
      die "wrk failed: $(cat "$TMP/wrk.out")"
    c1=$(cpu_ticks "${GW_PIDS[i]}")
    res=$(grep '^RESULT ' "$TMP/wrk.out") || die "wrk printed no RESULT line"
    awk -v name="${VARIANTS[i]%%|*}" -v dt=$((c1 - c0)) -v hz="$CLK_TCK" -v r="$res" 'BEGIN {
      n = split(r, kv, " "); for (j = 2; j <= n; j++) { split(kv[j], p, "="); f[p[1]] = p[2] }
      printf "%s\t%.1f\t%.2f\t%d\t%d\n", name, f["rps"], dt * 1e6 / hz / f["requests"], f["p99_us"], f["non2xx"] + f["errors"]
    }' >>"$RESULTS"
    tail -n 1 "$RESULTS" | awk -F'\t' -v r=$round '{ printf "[tuning] round %d %-32s %8.0f req/s  cpu %6.1f us/req  p99 %.3f ms  failures %d\n", r, $1, $2, $3, $4 / 1000, $5 }' >&2
  done
done

med() { median "$RESULTS" "$1" "$2"; }
BASE=${VARIANTS[0]%%|*}
BASE_RPS=$(med "$BASE" 2)
BASE_CPU=$(med "$BASE" 3)
mkdir -p "$ROOT/target/bench"
{
  echo "# tokengate [server] tuning sweep"
  echo
  echo "- $(date -u '+%Y-%m-%d %H:%M UTC'), revision \`$(git describe --always --dirty 2>/dev/null || echo unknown)\`, $(nproc) CPUs: $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
  echo "- Command: \`ROUNDS=$ROUNDS DURATION=$DURATION WARMUP=$WARMUP CONNS=$CONNS IDLE_WAIT=$IDLE_WAIT bash benches/tuning.sh\`"
  echo "- Workload: J1 (GET /j, one cached RS256 token), \`wrk -t1 -c$CONNS -d${DURATION}s\`; every variant pinned to core 0, wrk and upstream to core 1; medians of $ROUNDS rounds"
  echo
  echo "| variant | req/s | vs baseline | CPU us/request | vs baseline | failures |"
  echo "|---|---:|---:|---:|---:|---:|"
  for v in "${VARIANTS[@]}"; do
    n=${v%%|*}
    rps=$(med "$n" 2)
    cpu=$(med "$n" 3)
    fails=$(awk -F'\t' -v s="$n" 'NR > 1 && $1 == s { t += $5 } END { print t + 0 }' "$RESULTS")
    awk -v n="$n" -v r="$rps" -v c="$cpu" -v br="$BASE_RPS" -v bc="$BASE_CPU" -v f="$fails" \
      'BEGIN { printf "| %s | %.0f | %.3f | %.1f | %.3f | %d |\n", n, r, r / br, c, c / bc, f }'
  done
} | tee "$ROOT/target/bench/tuning-report.md"
