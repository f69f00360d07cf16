#!/usr/bin/env bash
# System calls per request: benches/load.sh's scenarios with the kernel counting the proxy's calls.
#
#   make bench-syscalls                        # or: bash benches/syscalls.sh
#   GW_BIN=/tmp/tokengate-old bash benches/syscalls.sh   # count another build, to compare
#
# Why a counting benchmark: like benches/instructions.sh, it counts instead of timing, so two
# builds can be compared without the few percent a timed ratio moves by on this VM. It sees what
# callgrind cannot, the kernel entries: each request should cost the proxy two receives and two
# sends, and whatever else shows up per request (a `write` to the runtime's wake-up eventfd, a
# `getpeername`, an `epoll_wait` each time the worker runs out of work) is work the timed scripts
# can only guess at.
# How: `perf stat` on the kernel's syscall tracepoints, which count in the kernel without stopping
# the proxy (strace would stop it at every call and slow it many times over, changing how many
# requests share a wake-up); each call only passes a tracepoint. What it cannot see: what a call
# costs. A run's ends are in its counts (connections opened and closed, the reads that see them
# close, requests cut off when wrk stops), about CONNS requests' worth: hence recvfrom a little
# above 2.
#
# Proxies pinned to core 0 (upstream and wrk on core 1): gateway g (token cache on) for P and J1,
# gateway gu (cache off) for JU, and bare pingora (cargo's default release build) for B. Per
# scenario: a warm-up, then `wrk -t1 -c$CONNS -d$DURATION` run under `perf stat -p` on the proxy
# (every thread). Calls per request = (the calls counted - the proxy's idle rate x the time
# counted, perf's own duration_time) / the requests wrk completed, per system call. The idle rate
# (pingora's timer threads, background tasks) is counted first, over IDLE_SECS with no load.
#
# Environment: ROUNDS [3], DURATION seconds per scenario [5], WARMUP [1], CONNS [25], POOL tokens
# JU cycles through [100], IDLE_SECS [3], GW_BIN (a tokengate binary to count instead of the one built now), KEEP_TMP=1. Needs root
# (or a perf_event_paranoid and tracefs that let perf read tracepoints); installs linux-perf with
# apt-get if perf is missing.
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
ROUNDS=${ROUNDS:-3}
IDLE_SECS=${IDLE_SECS:-3}
# J1 sends the pool's first token; JU cycles through all of them, on a gateway that caches none,
# so their number does not matter.
POOL=${POOL:-100}
pairs_defaults 5 0

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
command -v perf >/dev/null 2>&1 || apt_install linux-perf
perf stat -e raw_syscalls:sys_enter -o /dev/null -- true >/dev/null 2>&1 ||
  die "perf cannot count the kernel's syscall tracepoints here: run as root, with tracefs available"
COMMAND="ROUNDS=$ROUNDS DURATION=$DURATION WARMUP=$WARMUP CONNS=$CONNS POOL=$POOL IDLE_SECS=$IDLE_SECS${GW_BIN:+ GW_BIN=$GW_BIN} bash benches/syscalls.sh"
ports_free $UP_PORT $G_PORT $GU_PORT $BARE_PORT $((G_PORT + 100)) $((GU_PORT + 100))

REVISION=$(bench_revision)
STARTED=$(date -u '+%Y-%m-%d %H:%M UTC')
build_release
use_gw_bin

pairs_start "$EX"
single_proxies "$BIN" "$BARE_BIN"

# The system calls counted by name, each where this kernel has its tracepoint; every other call
# is counted together as "other", from the raw_syscalls tracepoint that fires for them all.
NAMED=()
for c in recvfrom sendto read write readv writev epoll_wait epoll_pwait epoll_ctl getpeername \
  getsockopt setsockopt accept4 close futex sched_yield clock_nanosleep nanosleep madvise mmap munmap mprotect; do
  perf stat -e "syscalls:sys_enter_$c" -o /dev/null -- true >/dev/null 2>&1 && NAMED+=("$c")
done
# duration_time: how long the counters were enabled, the window the idle rate is scaled by (perf's
# own start-up and teardown, outside it, take about a second with two dozen tracepoints).
EVENTS=(-e duration_time -e raw_syscalls:sys_enter)
for c in "${NAMED[@]}"; do EVENTS+=(-e "syscalls:sys_enter_$c"); done

# traced PID OUT WOUT CMD...: runs CMD, its output in WOUT, while perf counts PID's system calls
# (every thread) in the kernel's syscall tracepoints, the counts in OUT (perf's CSV); TRACED_NS is
# how long the counters were enabled. perf's own messages go to $TMP/perf.log, which cleanup shows
# if the run stops. (Not a command substitution: a `die` in a subshell would not stop the script.)
traced() {
  local pid=$1 out=$2 wout=$3
  shift 3
  # shellcheck disable=SC2016 # $1 is the inner shell's
  perf stat -x, -o "$out" -p "$pid" "${EVENTS[@]}" -- sh -c 'o=$1; shift; exec "$@" >"$o" 2>&1' sh "$wout" "$@" \
    2>>"$TMP/perf.log" || die "perf stat or its workload failed on pid $pid (exit $?): $(tail -n 3 "$TMP/perf.log")"
  TRACED_NS=$(awk -F, '$3 == "duration_time" && $1 ~ /^[0-9]+$/ { print $1 }' "$out")
  [ -n "$TRACED_NS" ] || die "perf counted no duration_time on pid $pid: $(cat "$out")"
}

# calls FILE: "SYSCALL<TAB>CALLS" per named call of a traced() count, and "other" for the rest. A
# count perf could not take (<not counted>, <not supported>) stops the run: taken as 0, it would
# move calls into "other" or hide them.
calls() {
  awk -F, '/^#/ { next }
    $3 == "raw_syscalls:sys_enter" || $3 ~ /^syscalls:sys_enter_/ { if ($1 !~ /^[0-9]+$/) { bad = bad " " $3; next } }
    $3 == "raw_syscalls:sys_enter" { all = $1 + 0; seen = 1 }
    $3 ~ /^syscalls:sys_enter_/ { n = $3; sub(/^syscalls:sys_enter_/, "", n); named += $1; printf "%s\t%s\n", n, $1 + 0 }
    END { if (bad != "" || !seen) { print "uncounted:" bad > "/dev/stderr"; exit 1 }
      o = all - named; printf "other\t%d\n", (o > 0 ? o : 0) }' "$1" || die "perf's counts in $1 are incomplete"
}

# Idle rates: calls per second per system call with no load.
declare -A IDLE
for pid in "$G_PID" "$GU_PID" "$BARE_PID"; do
  traced "$pid" "$TMP/idle-$pid.txt" /dev/null sleep "$IDLE_SECS"
  IDLE[$pid]=$(calls "$TMP/idle-$pid.txt" | awk -F'\t' -v ns="$TRACED_NS" '$2 > 0 { printf "%s%s=%.3f", sep, $1, $2 / (ns / 1e9); sep = " " }')
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
  wrk_argv "$DURATION" "$4" "$5" "$6"
  traced "$pid" "$TMP/trace.txt" "$TMP/wrk.out" "${WRK_ARGV[@]}"
  requests=$(must_field requests "$TMP/wrk.out")
  non2xx=$(must_field non2xx "$TMP/wrk.out")
  count_errors "$TMP/wrk.out"
  ((requests > 0)) || die "$name: no requests completed"
  calls "$TMP/trace.txt" |
    awk -F'\t' -v OFS='\t' -v s="$name" -v r="$round" -v n="$requests" -v x="$non2xx" -v ns="$TRACED_NS" -v idle="${IDLE[$pid]}" '
      BEGIN { k = split(idle, kv, " "); for (i = 1; i <= k; i++) { split(kv[i], p, "="); rate[p[1]] = p[2] } }
      { quiet = rate[$1] * ns / 1e9; print s, r, n, x, $1, $2, sprintf("%.0f", quiet), sprintf("%.5f", ($2 - quiet) / n) }' >>"$RESULTS"
  log "round $round $name: $requests requests, $(round_total "$name" "$round") calls/request"
}
# round_total SCENARIO ROUND: every call per request in that round, listed in the report or not.
round_total() { awk -F'\t' -v s="$1" -v r="$2" '$1 == s && $2 == r { t += $8 } END { printf "%.5f", t }' "$RESULTS"; }

log "rounds: $ROUNDS x (P J1 JU B), ${DURATION}s each after ${WARMUP}s warm-up, wrk -t1 -c$CONNS, under perf stat"
for ((round = 1; round <= ROUNDS; round++)); do
  measure P "$round" "$G_PID" $G_PORT /p "$T1"
  measure J1 "$round" "$G_PID" $G_PORT /j "$T1"
  measure JU "$round" "$GU_PID" $GU_PORT /j "$TP"
  measure B "$round" "$BARE_PID" $BARE_PORT /p "$T1"
done

mkdir -p "$REPORT_DIR"
cp "$RESULTS" "$RESULTS_OUT"
SCENARIOS=(P J1 JU B)
# Tables keyed as lib.sh's `median` reads them (key in column 1): calls per request by
# SCENARIO/SYSCALL (every named call and "other" has a row in every round, 0 included), and each
# round's total by scenario.
BY_CALL="$TMP/by-call.tsv"
TOTALS="$TMP/totals.tsv"
awk -F'\t' -v OFS='\t' 'NR == 1 { print "key", "per_request"; next } { print $1 "/" $5, $8 }' "$RESULTS" >"$BY_CALL"
{
  printf 'scenario\tround\ttotal\n'
  for s in "${SCENARIOS[@]}"; do
    for ((r = 1; r <= ROUNDS; r++)); do printf '%s\t%s\t%s\n' "$s" "$r" "$(round_total "$s" "$r")"; done
  done
} >"$TOTALS"
# per_call SCENARIO SYSCALL: the median over rounds of SYSCALL's calls per request.
per_call() { calc %.4f "$(median "$BY_CALL" "$1/$2" 2)"; }
# per_total SCENARIO: the median over rounds of every call per request, listed or not.
per_total() { calc %.4f "$(median "$TOTALS" "$1" 3)"; }
# Every call seen at 0.0005 per request or more in some round, most frequent first (by its sum
# over every scenario and round).
mapfile -t SYSCALLS < <(awk -F'\t' 'NR > 1 { t[$5] += $8; if ($8 >= 0.0005) keep[$5] = 1 }
  END { for (c in keep) printf "%s\t%f\n", c, t[c] }' "$RESULTS" | sort -t$'\t' -k2,2gr | cut -f1)

{
  echo "## tokengate: system calls per request"
  echo
  echo "- Command: \`$COMMAND\` (started $STARTED)"
  echo "- Revision: $REVISION"
  echo "- Machine: $NPROC CPUs, $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo); $PINNING"
  echo "- Each scenario: \`wrk -t1 -c$CONNS -d${DURATION}s\` under \`perf stat -p\` on the proxy (the kernel's syscall tracepoints, every thread; the proxy is not stopped, each call passes a tracepoint); calls per request less the proxy's idle rate; medians over $ROUNDS rounds"
  echo "- Counted by name: ${NAMED[*]}; \"other\" is every other call (raw_syscalls:sys_enter less the named)"
  echo "- Rows: every call made 0.0005 times per request or more in some round; \"every call\" is the median of each round's total, the rarer calls included"
  echo "- Idle rates subtracted (calls per second): g ${IDLE[$G_PID]:-none}; gu ${IDLE[$GU_PID]:-none}; bare pingora ${IDLE[$BARE_PID]:-none}"
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
  printf '| every call |'
  for s in "${SCENARIOS[@]}"; do printf ' %s |' "$(per_total "$s")"; done
  echo
  echo
  printf 'Requests per round:'
  for s in "${SCENARIOS[@]}"; do
    printf ' %s %s;' "$s" "$(awk -F'\t' -v s="$s" '$1 == s && !seen[$2]++ { printf "%s%s", sep, $3; sep = "/" }' "$RESULTS")"
  done
  echo
  echo "Non-2xx responses in the measurements: $(awk -F'\t' 'NR > 1 && !seen[$1 FS $2]++ { t += $4 } END { print t + 0 }' "$RESULTS"); socket errors and warm-up non-2xx over every wrk run: $ERRORS."
} | tee "$REPORT"
