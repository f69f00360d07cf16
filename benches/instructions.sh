#!/usr/bin/env bash
# Instructions per request: benches/load.sh's scenarios counted by valgrind's callgrind, not timed.
#
#   make bench-instructions                    # or: bash benches/instructions.sh
#   GW_BIN=/tmp/tokengate-old bash benches/instructions.sh   # count another build, to compare
#
# Why a counting benchmark: on the 2-core VM this project is measured on, timed ratios move by a
# few percent between runs (README BENCHMARKS), more than most single changes to the hot path.
# callgrind counts the user-space instructions a proxy executes, and the same binary given the
# same requests executes the same instructions whatever else the machine is doing, so two runs (or
# two builds) can be compared to a fraction of a percent, and the report names the functions where
# J1's instructions go beyond P's.
# What it cannot see: kernel time, cache misses and how many instructions a cycle retires. The
# issue's targets are therefore judged by the timed scripts; this one locates and confirms costs.
# One blind spot is known: valgrind does not emulate the SHA extensions, so aws-lc runs its AVX
# SHA-256 under callgrind, not the SHA-NI code it runs natively on this CPU, and the count says
# nothing about the native cost. That function gets its own column, and the ratios are also given
# without it. Since the cache key became a keyed AES-256-GCM-SIV tag (2026-12-03), a cache hit runs no SHA-256
# (the column is 0 for J1 and JN); an uncached RS256 request still hashes its signing input.
#
# Proxies, each under callgrind and pinned to core 0 (upstream and wrk on core 1): gateway g
# (token cache on) for P, J1 and JN (POOL distinct tokens round-robin, after all are cached),
# gateway gu (cache off) for JU, and bare pingora (cargo's default release build) for B; the
# scenarios are load.sh's, except that JN's pool is 1,000 tokens by default, not 10,000: callgrind
# models no CPU cache, so the pool's size shows only in moka's own bookkeeping, and every token
# must first be verified under callgrind, some fifty times slower than natively. Per
# scenario: a warm-up, counters zeroed, `wrk -t1 -c$CONNS -d$DURATION`, counters dumped.
# Instructions per request = (the dump's total - the proxy's idle rate x the elapsed time) / the
# requests wrk completed. The idle rate (pingora's timer thread, background tasks) is counted
# first, over IDLE_SECS with no load. A request cut off when wrk stops is counted in part, so a
# figure is exact to within CONNS requests' worth; the rounds show the agreement.
#
# Environment: ROUNDS [2], DURATION seconds per scenario [5], WARMUP [1], CONNS [10], POOL
# [1000], IDLE_SECS [3], GW_BIN (a tokengate binary to count instead of the one built now),
# KEEP_TMP=1.
# Output: a markdown report on stdout and in target/bench/instructions-report.md; raw rows in
# target/bench/instructions-results.tsv.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# A relative GW_BIN names a file from where the script was started, not from ROOT.
[ -z "${GW_BIN:-}" ] || GW_BIN=$(realpath -m -- "$GW_BIN")
cd "$ROOT"

BENCH_NAME=instructions
# shellcheck source=benches/lib.sh
source "$ROOT/benches/lib.sh"
# shellcheck source=benches/pairs.sh
source "$ROOT/benches/pairs.sh"
ROUNDS=${ROUNDS:-2}
CONNS=${CONNS:-10}
POOL=${POOL:-1000}
IDLE_SECS=${IDLE_SECS:-3}
pairs_defaults 5 0
# Under callgrind a proxy is some fifty times slower: it starts, and fills its cache, that much
# slower too.
STARTUP_WAIT=60
FILL_WAIT=600

UP_PORT=18281
G_PORT=18282
GU_PORT=18283
BARE_PORT=18284
REPORT_DIR="$ROOT/target/bench"
REPORT="$REPORT_DIR/instructions-report.md"
RESULTS_OUT="$REPORT_DIR/instructions-results.tsv"
LUA="$ROOT/benches/load/bench.lua"

check_knobs ROUNDS DURATION WARMUP CONNS POOL IDLE_SECS
bench_setup
command -v valgrind >/dev/null 2>&1 && command -v callgrind_control >/dev/null 2>&1 || apt_install valgrind
for t in valgrind callgrind_control callgrind_annotate; do
  command -v "$t" >/dev/null 2>&1 || die "$t not found"
done
COMMAND="ROUNDS=$ROUNDS DURATION=$DURATION WARMUP=$WARMUP CONNS=$CONNS POOL=$POOL IDLE_SECS=$IDLE_SECS${GW_BIN:+ GW_BIN=$GW_BIN} bash benches/instructions.sh"
ports_free $UP_PORT $G_PORT $GU_PORT $BARE_PORT $((G_PORT + 100)) $((GU_PORT + 100))

REVISION=$(bench_revision)
STARTED=$(date -u '+%Y-%m-%d %H:%M UTC')
build_release
use_gw_bin

# cg_wrap OUT BIN [run]: a script that runs BIN under callgrind (with `run`: only `BIN run ...`,
# so that `tokengate check` runs natively). Each process writes $TMP/cg-PID.out.N, one per dump.
cg_wrap() {
  local only=${3:-}
  {
    echo '#!/bin/sh'
    [ -z "$only" ] || echo "[ \"\$1\" = $only ] || exec '$2' \"\$@\""
    echo "exec valgrind --tool=callgrind --dump-instr=no --callgrind-out-file='$TMP/cg-%p.out' '$2' \"\$@\""
  } >"$1"
  chmod +x "$1"
}
cg_wrap "$TMP/tokengate-cg" "$BIN" run
cg_wrap "$TMP/bare-cg" "$BARE_BIN"

pairs_start "$EX"
single_proxies "$TMP/tokengate-cg" "$TMP/bare-cg"
log "filling g's cache with $POOL tokens (every one verified under callgrind: minutes)"
fill_cache $((G_PORT + 100)) $G_PORT "$TP" "$POOL"

# dump PID LABEL: dumps PID's counters and prints the dump's file.
DUMPS=0
dump() {
  callgrind_control -d "$2" "$1" >/dev/null || die "callgrind_control could not dump pid $1"
  DUMPS=$((DUMPS + 1))
  local deadline=$((SECONDS + 30)) f
  while :; do
    f=$(grep -lx "desc: Trigger: dump $2" "$TMP"/cg-"$1".out.* 2>/dev/null | head -n 1 || true)
    [ -z "$f" ] || break
    ((SECONDS < deadline)) || die "no callgrind dump '$2' from pid $1 within 30 s"
    sleep 0.2
  done
  echo "$f"
}
# total FILE: the instructions in a dump.
total() { awk '$1 == "totals:" { print $2 }' "$1"; }
# functions FILE: a dump's self instructions per function, one per line ("COUNT NAME [OBJECT]"),
# with the thousands separators taken out of the counts.
functions() {
  callgrind_annotate --threshold=100 --show-percs=no --auto=no --inclusive=no "$1" 2>/dev/null |
    sed -E ":a; s/([0-9]),([0-9]{3})/\1\2/; ta"
}
# sha FILE: the instructions of aws-lc's SHA-256 block functions in a dump.
sha() { functions "$1" | awk '/sha256_block_data_order/ { t += $1 } END { print t + 0 }'; }
now_ns() { date +%s%N; }

# Idle rates: instructions per second with no load.
declare -A IDLE_RATE
for pid in "$G_PID" "$GU_PID" "$BARE_PID"; do
  callgrind_control -z "$pid" >/dev/null
  t0=$(now_ns)
  sleep "$IDLE_SECS"
  f=$(dump "$pid" "idle-$pid")
  t1=$(now_ns)
  IDLE_RATE[$pid]=$(calc %.0f "$(total "$f") / (($t1 - $t0) / 1e9)")
  log "pid $pid idle: ${IDLE_RATE[$pid]} instructions/s"
done

RESULTS="$TMP/results.tsv"
printf 'scenario\tround\trequests\tnon2xx\tinstructions\tidle\tsha256\tper_request\tsha256_per_request\n' >"$RESULTS"
ERRORS=0
# measure NAME ROUND PID PORT PATH TOKENS
measure() {
  local name=$1 round=$2 pid=$3 f t0 t1 requests non2xx ir idle sh
  wrk_bg "$TMP/warm.out" "$WARMUP" "$4" "$5" "$6"
  wait_wrks
  count_errors "$TMP/warm.out" non2xx
  callgrind_control -z "$pid" >/dev/null
  t0=$(now_ns)
  wrk_bg "$TMP/wrk.out" "$DURATION" "$4" "$5" "$6"
  wait_wrks
  f=$(dump "$pid" "$name-$round")
  t1=$(now_ns)
  requests=$(must_field requests "$TMP/wrk.out")
  non2xx=$(must_field non2xx "$TMP/wrk.out")
  count_errors "$TMP/wrk.out"
  ((requests > 0)) || die "$name: no requests completed"
  ir=$(total "$f")
  idle=$(calc %.0f "${IDLE_RATE[$pid]} * ($t1 - $t0) / 1e9")
  sh=$(sha "$f")
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%.0f\t%.0f\n' "$name" "$round" "$requests" "$non2xx" "$ir" "$idle" "$sh" \
    "$(calc %.1f "($ir - $idle) / $requests")" "$(calc %.1f "$sh / $requests")" >>"$RESULTS"
  tail -n 1 "$RESULTS" | awk -F'\t' -v b="$BENCH_NAME" '{ printf "[%s] round %s %-5s %6d requests  %8d instructions/request (SHA-256 %d)\n", b, $2, $1, $3, $8, $9 }' >&2
  cp "$f" "$TMP/last-$name.cg"
}

log "rounds: $ROUNDS x (P J1 JN JU B), JN with $POOL tokens, ${DURATION}s each after ${WARMUP}s warm-up, wrk -t1 -c$CONNS"
for ((round = 1; round <= ROUNDS; round++)); do
  measure P "$round" "$G_PID" $G_PORT /p "$T1"
  measure J1 "$round" "$G_PID" $G_PORT /j "$T1"
  measure JN "$round" "$G_PID" $G_PORT /j "$TP"
  measure JU "$round" "$GU_PID" $GU_PORT /j "$TP"
  measure B "$round" "$BARE_PID" $BARE_PORT /p "$T1"
done

# self instructions per function in a dump, per request: "NAME<TAB>VALUE" lines. Rows carrying
# (nearly) the whole program's count are thread entry points that callgrind_annotate lists with
# their callees' cost; they say nothing about where the work goes, so they are dropped.
per_function() {
  local all
  all=$(total "$1")
  functions "$1" |
    awk -v n="$2" -v all="$all" '/^ *[0-9]+ +[^ ]/ { v = $1; sub(/^ *[0-9]+ +/, ""); sub(/ \[.*$/, ""); sub(/^(\?\?\?|[./][^ :]*):/, "");
      if ($0 != "PROGRAM TOTALS" && v < all / 2) printf "%s\t%.1f\n", $0, v / n }'
}
last_requests() { awk -F'\t' -v s="$1" -v r="$ROUNDS" '$1 == s && $2 == r { print $3 }' "$RESULTS"; }

mkdir -p "$REPORT_DIR"
cp "$RESULTS" "$RESULTS_OUT"
med() { median "$RESULTS" "$1" "$2"; }
P_IR=$(med P 8)
P_SHA=$(med P 9)
B_IR=$(med B 8)
{
  echo "## tokengate: instructions per request (callgrind)"
  echo
  echo "- Command: \`$COMMAND\` (revision $REVISION, started $STARTED)"
  echo "- Machine: $(nproc) CPUs, $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo); $PINNING; valgrind $(valgrind --version | sed 's/^valgrind-//')"
  echo "- B is bare pingora built with cargo's default release settings, as in the timed scripts; tokengate is built with its own release profile (fat LTO)"
  echo "- Each scenario: \`wrk -t1 -c$CONNS -d${DURATION}s\` after ${WARMUP}s of warm-up; user-space instructions of the whole proxy process (all threads), less its idle rate; medians over $ROUNDS rounds"
  echo
  echo "JN: $POOL distinct cached tokens round-robin (load.sh's J10k, with a smaller pool: see the script)."
  echo
  echo "| scenario | instructions/request (rounds) | SHA-256 block function | ÷ P | ÷ P, both without SHA-256 | ÷ B |"
  echo "|---|---:|---:|---:|---:|---:|"
  for s in P J1 JN JU B; do
    ir=$(med $s 8)
    sh=$(med $s 9)
    rounds=$(awk -F'\t' -v s=$s '$1 == s { printf "%s%s", sep, $8; sep = ", " }' "$RESULTS")
    printf '| %s | %.0f (%s) | %.0f | %.4f | %.4f | %.4f |\n' "$s" "$ir" "$rounds" "$sh" \
      "$(calc %.6f "$ir / $P_IR")" "$(calc %.6f "($ir - $sh) / ($P_IR - $P_SHA)")" "$(calc %.6f "$ir / $B_IR")"
  done
  echo
  echo "Where J1's instructions go beyond P's (self instructions per request, last round, the 15 largest differences; SHA-256 is the AVX code valgrind runs):"
  echo
  echo "| J1 - P | P | J1 | function |"
  echo "|---:|---:|---:|---|"
  per_function "$TMP/last-P.cg" "$(last_requests P)" >"$TMP/fn-P.tsv"
  per_function "$TMP/last-J1.cg" "$(last_requests J1)" >"$TMP/fn-J1.tsv"
  awk -F'\t' 'FNR == NR { p[$1] = $2; next } { j[$1] = $2 }
    END { for (k in p) if (!(k in j)) j[k] = 0; for (k in j) printf "%.0f\t%.0f\t%.0f\t%s\n", j[k] - p[k], p[k], j[k], k }' \
    "$TMP/fn-P.tsv" "$TMP/fn-J1.tsv" | sort -t$'\t' -k1,1gr | awk 'NR <= 15' |
    awk -F'\t' '{ gsub(/\|/, "\\|", $4); printf "| %s | %s | %s | `%s` |\n", $1, $2, $3, substr($4, 1, 110) }'
  echo
  echo "Non-2xx responses in the measurements: $(awk -F'\t' 'NR > 1 { t += $4 } END { print t + 0 }' "$RESULTS"); socket errors and warm-up non-2xx over every wrk run: $ERRORS (target 0 and 0)."
} | tee "$REPORT"
log "report: $REPORT; raw rows: $RESULTS_OUT"
