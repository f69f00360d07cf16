#!/usr/bin/env bash
# Where a request's CPU goes: benches/load.sh's scenarios sampled by `perf record`, one at a time,
# and each scenario's profile set against P's, symbol by symbol, in µs per request.
#
#   make bench-profile                              # or: bash benches/profile.sh
#   SCENARIOS="P J10k" DURATION=8 bash benches/profile.sh
#   GW_BIN=/tmp/tokengate-old bash benches/profile.sh  # profile another build
#
# Why: the timed scripts say how much a scenario costs against P, the instruction count
# (benches/instructions.sh) where its instructions go, but neither sees CPU-cache misses or the
# kernel. This samples the gateway's real time, kernel included, while wrk drives it, and so
# shows what a pool of 10,000 tokens costs beyond one token, which callgrind cannot.
#
# Setup as in benches/load.sh: the gateway (`threads = 1`, token cache on) for P, J1 and J10k, a
# second one with `token_cache_capacity = 0` for JU, both on core 0; the upstream
# (examples/bench_upstream) and wrk on core 1. Per scenario: wrk starts, and after WARMUP seconds
# (for J10k, after every token of the pool has been sent once, so the cache holds them all)
# `perf record -e cpu-clock -F $FREQ -p <gateway>` samples for DURATION seconds. The requests the
# gateway served in that window come from its own counters (`tokengate_requests_total`: their rate
# over the window times DURATION), so µs per request = samples / FREQ / requests, per symbol and
# in all.
# A sampling profile is a measurement like any other: a symbol under about 0.05 µs per request
# moves with the run, and the whole profile moves with the machine's speed at that moment (README
# BENCHMARKS). Read the differences between scenarios, measured minutes apart, accordingly.
#
# Environment: SCENARIOS [P J1 J10k JU], ROUNDS of them all in turn [2], DURATION seconds
# sampled [8], WARMUP [3], CONNS [50], POOL [10000], FREQ samples per second [4000], TOP rows
# per table [20], IDLE_WAIT [10], GW_BIN, KEEP_TMP=1.
# Output: a markdown report on stdout and in target/bench/profile-report.md.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

SCENARIOS=${SCENARIOS:-P J1 J10k JU}
DURATION=${DURATION:-8}
WARMUP=${WARMUP:-3}
CONNS=${CONNS:-50}
POOL=${POOL:-10000}
FREQ=${FREQ:-4000}
TOP=${TOP:-20}
IDLE_WAIT=${IDLE_WAIT:-10}
ROUNDS=${ROUNDS:-2}
ACCESS_LOG=false
CARGO=${CARGO:-cargo}

UP_PORT=18381
G_PORT=18382
GU_PORT=18383
REPORT_DIR="$ROOT/target/bench"
REPORT="$REPORT_DIR/profile-report.md"
LUA="$ROOT/benches/load/bench.lua"

BENCH_NAME=profile
# shellcheck source=benches/lib.sh
source "$ROOT/benches/lib.sh"

check_knobs ROUNDS DURATION WARMUP CONNS POOL FREQ TOP
for sc in $SCENARIOS; do
  [[ $sc =~ ^(P|J1|J10k|JU)$ ]] || die "unknown scenario '$sc' (P, J1, J10k, JU)"
done
[[ " $SCENARIOS " == *" P "* ]] || die "SCENARIOS must include P: every profile is read against it"
bench_setup
command -v perf >/dev/null 2>&1 || apt_install linux-perf
perf record -e cpu-clock -o /dev/null -- true >/dev/null 2>&1 || die "perf cannot sample here (perf_event_paranoid?)"
ports_free $UP_PORT $G_PORT $GU_PORT $((G_PORT + 100)) $((GU_PORT + 100))

COMMAND="SCENARIOS=\"$SCENARIOS\" ROUNDS=$ROUNDS DURATION=$DURATION WARMUP=$WARMUP CONNS=$CONNS POOL=$POOL FREQ=$FREQ TOP=$TOP${GW_BIN:+ GW_BIN=$GW_BIN} bash benches/profile.sh"
REVISION=$(bench_revision)
STARTED=$(date -u '+%Y-%m-%d %H:%M UTC')
build_release
use_gw_bin

"$EX/mint_tokens" --count "$POOL" --out "$TMP/tokens-pool.txt" --jwks "$TMP/jwks.json" --lifetime 3600
head -n 1 "$TMP/tokens-pool.txt" >"$TMP/tokens-1.txt"
start_bg upstream "${PIN_LOAD[@]}" "$EX/bench_upstream" "127.0.0.1:$UP_PORT"
wait_http "http://127.0.0.1:$UP_PORT/" upstream "$LAST_PID"

# gateway NAME PORT SERVER_LINES: starts a checked gateway (admin on PORT + 100); pid in LAST_PID
gateway() {
  make_conf "$TMP/$1.toml" "$2" $(($2 + 100)) "$UP_PORT" "$3"
  "$BIN" check --config "$TMP/$1.toml" >"$TMP/check.log" 2>&1 || die "tokengate check failed: $(cat "$TMP/check.log")"
  start_bg "$1" "${PIN_GW[@]}" "$BIN" run --config "$TMP/$1.toml"
  wait_http "http://127.0.0.1:$(($2 + 100))/readyz" "$1" "$LAST_PID"
}
gateway g $G_PORT "token_cache_capacity = 100000"
G_PID=$LAST_PID
gateway gu $GU_PORT "token_cache_capacity = 0"
GU_PID=$LAST_PID
TOKEN1=$(cat "$TMP/tokens-1.txt")
expect_status 200 "http://127.0.0.1:$G_PORT/p" "$TOKEN1"
expect_status 200 "http://127.0.0.1:$G_PORT/j" "$TOKEN1"
expect_status 200 "http://127.0.0.1:$GU_PORT/j" "$TOKEN1"
expect_status 401 "http://127.0.0.1:$G_PORT/j"

# served ADMIN_PORT: every request the gateway has counted, all routes and outcomes
served() {
  curl -fsS --max-time 2 "http://127.0.0.1:$1/metrics" |
    awk '/^tokengate_requests_total\{/ { t += $NF } END { printf "%d\n", t }'
}

# profile SCENARIO ROUND PORT PID PATH TOKENS: one sampled window under load; writes
# $TMP/SCENARIO-ROUND.samples (samples, then the symbol) and appends "ROUND requests µs" to
# $TMP/SCENARIO.rounds.
profile() {
  local sc=$1 round=$2 port=$3 pid=$4 path=$5 tokens=$6 warm=$WARMUP
  # J10k: the pool once through the cache first, at the rate J1 runs, with room to spare
  [ "$sc" != J10k ] || warm=$((WARMUP + POOL / 5000 + 1))
  export BENCH_PATH=$path BENCH_TOKENS=$tokens
  wait_quiet
  "${PIN_LOAD[@]}" wrk -t1 -c"$CONNS" -d"$((warm + DURATION + 2))s" -s "$LUA" "http://127.0.0.1:$port" >"$TMP/wrk-$sc.out" 2>&1 &
  WRK_PID=$!
  sleep "$warm"
  # The counters are read just before perf starts and just after it ends, about a second outside
  # the DURATION seconds it samples: the requests sampled are the rate between the two readings
  # times DURATION, not their difference.
  local n0 n1 t0 t1 data="$TMP/$sc-$round.data"
  t0=$(date +%s.%N)
  n0=$(served $((port + 100)))
  "${PIN_LOAD[@]}" perf record -q -e cpu-clock -F "$FREQ" -p "$pid" -o "$data" -- sleep "$DURATION" 2>"$TMP/perf-$sc.log"
  n1=$(served $((port + 100)))
  t1=$(date +%s.%N)
  wait "$WRK_PID" || die "wrk failed in $sc: $(cat "$TMP/wrk-$sc.out")"
  WRK_PID=""
  [ "$(field non2xx "$TMP/wrk-$sc.out")" = 0 ] && [ "$(field errors "$TMP/wrk-$sc.out")" = 0 ] ||
    die "$sc: non-2xx responses or socket errors: $(grep '^RESULT' "$TMP/wrk-$sc.out")"
  local req
  req=$(calc '%.0f' "($n1 - $n0) / ($t1 - $t0) * $DURATION")
  ((req > 0)) || die "$sc: no requests served while sampling"
  perf report -i "$data" --no-children --sort sym -F sample,sym --stdio -t $'\t' 2>/dev/null |
    awk -F'\t' '
      /^#/ || NF < 2 { next }
      { s = $1 + 0; sym = $2; sub(/^ *\[[.kug]\] */, "", sym); gsub(/^ +| +$/, "", sym)
        if (s > 0) printf "%d\t%s\n", s, sym }' >"$TMP/$sc-$round.samples"
  rm -f "$data"
  local us
  us=$(awk -F'\t' -v f="$FREQ" -v n="$req" '{ t += $1 } END { printf "%.2f", t / f / n * 1e6 }' "$TMP/$sc-$round.samples")
  echo "$round $req $us" >>"$TMP/$sc.rounds"
  log "round $round $sc: $us µs per request sampled, $req requests in ${DURATION}s"
}

# ROUNDS rounds of every scenario in turn, so that the machine's drift spreads over all of them;
# each scenario's profile is then the sum of its rounds' samples over the sum of their requests.
for ((round = 1; round <= ROUNDS; round++)); do
  for sc in $SCENARIOS; do
    case $sc in
      P) profile P "$round" $G_PORT "$G_PID" /p "$TMP/tokens-1.txt" ;;
      J1) profile J1 "$round" $G_PORT "$G_PID" /j "$TMP/tokens-1.txt" ;;
      J10k) profile J10k "$round" $G_PORT "$G_PID" /j "$TMP/tokens-pool.txt" ;;
      JU) profile JU "$round" $GU_PORT "$GU_PID" /j "$TMP/tokens-pool.txt" ;;
    esac
  done
done
: >"$TMP/totals"
for sc in $SCENARIOS; do
  req=$(awk '{ t += $2 } END { print t }' "$TMP/$sc.rounds")
  cat "$TMP/$sc"-*.samples |
    awk -F'\t' -v f="$FREQ" -v n="$req" '{ s[$2] += $1 } END { for (k in s) printf "%.4f\t%s\n", s[k] / f / n * 1e6, k }' >"$TMP/$sc.syms"
  echo "$sc $(awk -F'\t' '{ t += $1 } END { printf "%.2f", t }' "$TMP/$sc.syms") $req $(awk '{ printf "%s%s", (NR > 1 ? " / " : ""), $3 }' "$TMP/$sc.rounds")" >>"$TMP/totals"
done

# diff A B: symbols by (B - A) µs per request, largest first, and the sum of the rest
diff_table() {
  awk -F'\t' -v top="$TOP" '
    FNR == NR { a[$2] = $1; seen[$2] = 1; next }
    { b[$2] = $1; seen[$2] = 1 }
    END {
      for (s in seen) { d = b[s] - a[s]; printf "%.4f\t%.4f\t%.4f\t%s\n", d, a[s] + 0, b[s] + 0, s }
    }' "$TMP/$1.syms" "$TMP/$2.syms" | sort -t$'\t' -k1,1gr |
    awk -F'\t' -v top="$TOP" -v a="$1" -v b="$2" '
      BEGIN { printf "| µs (%s − %s) | %s | %s | symbol |\n|---:|---:|---:|---|\n", b, a, a, b }
      NR <= top { sym = $4; gsub(/\|/, "\\|", sym); printf "| %+.3f | %.3f | %.3f | `%s` |\n", $1, $2, $3, sym; next }
      { rest += $1 }
      END { printf "| %+.3f | | | everything else |\n", rest }'
}

{
  echo "# Profiles per request ($STARTED)"
  echo
  echo "- Command: \`$COMMAND\`"
  echo "- Revision: $REVISION"
  echo "- Machine: $(nproc) CPUs, $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo); $PINNING"
  echo "- Per scenario: \`wrk -t1 -c$CONNS\`, $WARMUP s warm-up (J10k: until the pool of $POOL tokens is cached), then \`perf record -e cpu-clock -F $FREQ\` of the gateway for $DURATION s; $ROUNDS rounds of every scenario in turn, samples and requests summed over them; requests from the gateway's counters"
  echo
  echo "| scenario | µs per request (sampled, all rounds) | requests sampled | µs per request, each round |"
  echo "|---|---:|---:|---|"
  awk '{ r = $4; for (i = 5; i <= NF; i++) r = r " " $i; printf "| %s | %.2f | %d | %s |\n", $1, $2, $3, r }' "$TMP/totals"
  echo
  echo "## P: where a passthrough request goes"
  echo
  echo "| µs | symbol |"
  echo "|---:|---|"
  # awk, not head: head would close the pipe early, and under pipefail sort's SIGPIPE ends the run
  sort -t$'\t' -k1,1gr "$TMP/P.syms" |
    awk -F'\t' -v top="$TOP" 'NR <= top { sym = $2; gsub(/\|/, "\\|", sym); printf "| %.3f | `%s` |\n", $1, sym }'
  for sc in $SCENARIOS; do
    [ "$sc" != P ] || continue
    echo
    echo "## $sc against P"
    echo
    diff_table P "$sc"
  done
  if [[ " $SCENARIOS " == *" J1 "* && " $SCENARIOS " == *" J10k "* ]]; then
    echo
    echo "## J10k against J1: what a pool of $POOL cached tokens costs beyond one"
    echo
    diff_table J1 J10k
  fi
} >"$TMP/report.md"
mkdir -p "$REPORT_DIR"
cp "$TMP/report.md" "$REPORT"
cat "$REPORT"
log "report: $REPORT"
