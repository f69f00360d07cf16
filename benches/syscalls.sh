#!/usr/bin/env bash
# System calls per request: benches/load.sh's scenarios with strace counting the proxy's calls.
#
#   make bench-syscalls                        # or: bash benches/syscalls.sh
#   GW_BIN=/tmp/tokengate-old bash benches/syscalls.sh   # count another build, to compare
#
# Why a counting benchmark: like benches/instructions.sh, it counts instead of timing, so two
# builds can be compared without the few percent a timed ratio moves by on this VM. It sees what
# callgrind cannot, the kernel entries: each request should cost the proxy two receives and two
# sends, and whatever else shows up per request (a `write` to the runtime's wake-up eventfd, a
# `getpeername`, an `epoll_wait` per event) is work the timed scripts can only guess at.
# What it cannot see: the cost of a call. strace stops the proxy at every call, so the proxy runs
# many times slower and more requests queue per wake-up than natively; the counts per request are
# therefore a lower bound on the wake-ups a native run makes, and comparable only between runs of
# this script with the same knobs.
#
# Proxies pinned to core 0 (upstream and wrk on core 1): gateway g (token cache on) for P and J1,
# gateway gu (cache off) for JU, and bare pingora (cargo's default release build) for B. Per
# scenario: a warm-up, then `strace -c -f` attached to every thread of the proxy while
# `wrk -t1 -c$CONNS -d$DURATION` runs, then detached. Calls per request = (the calls counted - the
# proxy's idle rate x the time attached) / the requests wrk completed, per system call. The idle
# rate (pingora's timer threads, background tasks) is counted first, over IDLE_SECS with no load.
#
# Environment: ROUNDS [2], DURATION seconds per scenario [3], WARMUP [1], CONNS [25], IDLE_SECS
# [3], GW_BIN (a tokengate binary to count instead of the one built now), KEEP_TMP=1.
# Output: a markdown report on stdout and in target/bench/syscalls-report.md; raw rows in
# target/bench/syscalls-results.tsv.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# A relative GW_BIN names a file from where the script was started, not from ROOT.
[ -z "${GW_BIN:-}" ] || GW_BIN=$(realpath -m -- "$GW_BIN")
cd "$ROOT"

BENCH_NAME=syscalls
# shellcheck source=benches/lib.sh
source "$ROOT/benches/lib.sh"
# shellcheck source=benches/pairs.sh
source "$ROOT/benches/pairs.sh"
ROUNDS=${ROUNDS:-2}
IDLE_SECS=${IDLE_SECS:-3}
# Only the first token of the pool is used (J1, and JU's tokens, all uncached there).
POOL=${POOL:-100}
pairs_defaults 3 0

UP_PORT=18581
G_PORT=18582
GU_PORT=18583
BARE_PORT=18584
REPORT_DIR="$ROOT/target/bench"
REPORT="$REPORT_DIR/syscalls-report.md"
RESULTS_OUT="$REPORT_DIR/syscalls-results.tsv"
LUA="$ROOT/benches/load/bench.lua"

check_knobs ROUNDS DURATION WARMUP CONNS POOL IDLE_SECS
bench_setup
command -v strace >/dev/null 2>&1 || apt_install strace
command -v strace >/dev/null 2>&1 || die "strace not found"
COMMAND="ROUNDS=$ROUNDS DURATION=$DURATION WARMUP=$WARMUP CONNS=$CONNS IDLE_SECS=$IDLE_SECS${GW_BIN:+ GW_BIN=$GW_BIN} bash benches/syscalls.sh"
ports_free $UP_PORT $G_PORT $GU_PORT $BARE_PORT $((G_PORT + 100)) $((GU_PORT + 100))

REVISION=$(bench_revision)
STARTED=$(date -u '+%Y-%m-%d %H:%M UTC')
build_release
use_gw_bin

pairs_start "$EX"
gateway g "$BIN" $G_PORT "token_cache_capacity = 100000"
G_PID=$LAST_PID
gateway gu "$BIN" $GU_PORT "token_cache_capacity = 0"
GU_PID=$LAST_PID
bare bare "$BARE_BIN" $BARE_PORT
BARE_PID=$LAST_PID
expect_200 "$G_PORT/p" "$G_PORT/j" "$GU_PORT/j" "$BARE_PORT/p"

now_ns() { date +%s%N; }

# traced PID OUT CMD...: runs CMD with strace counting PID's calls (every thread) meanwhile, the
# summary in OUT; TRACED_NS is how long CMD ran with strace attached. (Not a command substitution:
# a `die` in a subshell would not stop the script.)
traced() {
  local pid=$1 out=$2 strace_pid t0 t1 deadline
  shift 2
  strace -c -f -q -o "$out" -p "$pid" 2>"$TMP/strace.log" &
  strace_pid=$!
  PIDS+=("$strace_pid")
  # strace announces nothing with -q: wait until the proxy's status says it is traced.
  deadline=$((SECONDS + 10))
  until awk '$1 == "TracerPid:" && $2 != 0 { found = 1 } END { exit !found }' "/proc/$pid/status"; do
    ((SECONDS < deadline)) || die "strace did not attach to pid $pid within 10 s: $(cat "$TMP/strace.log")"
    sleep 0.05
  done
  t0=$(now_ns)
  "$@"
  t1=$(now_ns)
  kill -INT "$strace_pid"
  wait "$strace_pid" || true
  [ -s "$out" ] || die "strace wrote no summary for pid $pid: $(cat "$TMP/strace.log")"
  TRACED_NS=$((t1 - t0))
}

# calls FILE: "SYSCALL<TAB>CALLS" per line of an `strace -c` summary.
calls() {
  awk '$NF != "total" && $NF != "syscall" && $1 !~ /^-/ && NF >= 5 { printf "%s\t%s\n", $NF, $4 }' "$1"
}

# Idle rates: calls per second per system call with no load.
declare -A IDLE
for pid in "$G_PID" "$GU_PID" "$BARE_PID"; do
  traced "$pid" "$TMP/idle-$pid.txt" sleep "$IDLE_SECS"
  IDLE[$pid]=$(calls "$TMP/idle-$pid.txt" | awk -F'\t' -v ns="$TRACED_NS" '{ printf "%s%s=%.3f", sep, $1, $2 / (ns / 1e9); sep = " " }')
  log "pid $pid idle: ${IDLE[$pid]:-no calls}"
done

RESULTS="$TMP/results.tsv"
printf 'scenario\tround\trequests\tnon2xx\tsyscall\tcalls\tidle_calls\tper_request\n' >"$RESULTS"
ERRORS=0
# measure NAME ROUND PID PORT PATH TOKENS
measure() {
  local name=$1 round=$2 pid=$3 requests non2xx
  wrk_bg "$TMP/warm.out" "$WARMUP" "$4" "$5" "$6"
  wait_wrks
  count_errors "$TMP/warm.out" non2xx
  traced "$pid" "$TMP/trace.txt" run_wrk "$4" "$5" "$6"
  requests=$(must_field requests "$TMP/wrk.out")
  non2xx=$(must_field non2xx "$TMP/wrk.out")
  count_errors "$TMP/wrk.out"
  ((requests > 0)) || die "$name: no requests completed"
  calls "$TMP/trace.txt" |
    awk -F'\t' -v OFS='\t' -v s="$name" -v r="$round" -v n="$requests" -v x="$non2xx" -v ns="$TRACED_NS" -v idle="${IDLE[$pid]}" '
      BEGIN { k = split(idle, kv, " "); for (i = 1; i <= k; i++) { split(kv[i], p, "="); rate[p[1]] = p[2] } }
      { quiet = rate[$1] * ns / 1e9; print s, r, n, x, $1, $2, sprintf("%.0f", quiet), sprintf("%.3f", ($2 - quiet) / n) }' >>"$RESULTS"
  log "round $round $name: $requests requests, $(awk -F'\t' -v s="$name" -v r="$round" '$1 == s && $2 == r { t += $8 } END { printf "%.2f", t }' "$RESULTS") calls/request"
}
run_wrk() {
  wrk_bg "$TMP/wrk.out" "$DURATION" "$1" "$2" "$3"
  wait_wrks
}

log "rounds: $ROUNDS x (P J1 JU B), ${DURATION}s each after ${WARMUP}s warm-up, wrk -t1 -c$CONNS, under strace"
for ((round = 1; round <= ROUNDS; round++)); do
  measure P "$round" "$G_PID" $G_PORT /p "$T1"
  measure J1 "$round" "$G_PID" $G_PORT /j "$T1"
  measure JU "$round" "$GU_PID" $GU_PORT /j "$TP"
  measure B "$round" "$BARE_PID" $BARE_PORT /p "$T1"
done

mkdir -p "$REPORT_DIR"
cp "$RESULTS" "$RESULTS_OUT"
SCENARIOS=(P J1 JU B)
# per_call SCENARIO SYSCALL: the median over rounds of SYSCALL's calls per request (0 in a round
# without it).
per_call() {
  local r v vals=()
  for ((r = 1; r <= ROUNDS; r++)); do
    v=$(awk -F'\t' -v s="$1" -v r="$r" -v c="$2" '$1 == s && $2 == r && $5 == c { v = $8 } END { print v + 0 }' "$RESULTS")
    vals+=("$v")
  done
  printf '%s\n' "${vals[@]}" | sort -g | awk '{ v[NR] = $1 } END { printf "%.3f", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
# Every call seen at 0.01 per request or more in any scenario's rounds, most frequent first.
mapfile -t SYSCALLS < <(awk -F'\t' 'NR > 1 && $8 >= 0.01 { t[$5] += $8 } END { for (c in t) printf "%s\t%f\n", c, t[c] }' "$RESULTS" | sort -t$'\t' -k2,2gr | cut -f1)

{
  echo "## tokengate: system calls per request"
  echo
  echo "- Command: \`$COMMAND\` (started $STARTED)"
  echo "- Revision: $REVISION"
  echo "- Machine: $NPROC CPUs, $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo); $PINNING"
  echo "- Each scenario: \`wrk -t1 -c$CONNS -d${DURATION}s\` with \`strace -c -f\` attached to the proxy; calls per request less the proxy's idle rate; medians over $ROUNDS rounds"
  echo "- Under strace the proxy runs many times slower, so these are counts to compare between runs of this script, not a native profile"
  echo "- Rows: every call made 0.01 times per request or more in some round; \"all listed\" is their sum"
  echo
  printf '| system call |'
  for s in "${SCENARIOS[@]}"; do printf ' %s |' "$s"; done
  echo
  printf '|---|'
  for s in "${SCENARIOS[@]}"; do printf -- '---:|'; done
  echo
  for c in "${SYSCALLS[@]}"; do
    printf '| `%s` |' "$c"
    for s in "${SCENARIOS[@]}"; do printf ' %s |' "$(per_call "$s" "$c")"; done
    echo
  done
  printf '| all listed |'
  for s in "${SCENARIOS[@]}"; do
    t=0
    for c in "${SYSCALLS[@]}"; do t=$(calc %.3f "$t + $(per_call "$s" "$c")"); done
    printf ' %s |' "$t"
  done
  echo
  echo
  printf 'Requests per round:'
  for s in "${SCENARIOS[@]}"; do
    printf ' %s %s;' "$s" "$(awk -F'\t' -v s="$s" '$1 == s && !seen[$2]++ { printf "%s%s", sep, $3; sep = "/" }' "$RESULTS")"
  done
  echo
  echo "Non-2xx responses in the measurements: $(awk -F'\t' 'NR > 1 && !seen[$1 FS $2]++ { t += $4 } END { print t + 0 }' "$RESULTS"); socket errors and warm-up non-2xx over every wrk run: $ERRORS."
} | tee "$REPORT"
