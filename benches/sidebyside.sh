#!/usr/bin/env bash
# Side-by-side benchmark: two proxies measured at the same moment, sharing one core.
#
#   make bench-sidebyside                      # or: bash benches/sidebyside.sh
#   ROUNDS=3 DURATION=3 bash benches/sidebyside.sh
#
# Why a second load benchmark: benches/load.sh measures one scenario after another, and on the
# 2-core VM this project is measured on the same process drifts by +-20% within minutes, so a
# ratio of two measurements taken seconds apart still moves by about 5% between runs. Here both
# sides of a ratio run at once: two proxy processes pinned to core 0, each under its own wrk on
# core 1. The scheduler gives each half of the core, so whatever the machine does at that moment
# it does to both, and the ratio of their CPU per request is what one costs against the other.
# It is not immune: two runs 20 minutes apart differed by up to 4% in a ratio (README BENCHMARKS),
# so the calibration pair is reported beside the others.
# Sharing a core makes each side's caches colder than in load.sh, which inflates the cost of
# memory-bound work (J10k) a little; the figures are ratios, not absolute costs.
#
# Pairs (A / B), each a separate process on the same upstream and requests:
#   cal   P / P: two identical gateways. Its ratio is the method's own bias and noise floor.
#   B-P   bare pingora (built with cargo's default release settings) / P
#   P-J1  P / J1        P-J10k  P / J10k        P-JU  P / JU (on a gateway with the cache off)
# The scenarios are load.sh's (see there). Each round measures every pair once; which side's wrk
# starts first alternates between rounds.
#
# Environment: ROUNDS [5], DURATION seconds per pair [5], WARMUP [1], CONNS wrk connections per
# side [25], POOL [10000], IDLE_WAIT [30; 0 = off], KEEP_TMP=1.
# Output: a markdown report on stdout and in target/bench/sidebyside-report.md; raw rows in
# target/bench/sidebyside-results.tsv.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

BENCH_NAME=sidebyside
# shellcheck source=benches/lib.sh
source "$ROOT/benches/lib.sh"
# shellcheck source=benches/pairs.sh
source "$ROOT/benches/pairs.sh"
pairs_defaults 5 30

UP_PORT=18181
G1_PORT=18182
G2_PORT=18183
GU_PORT=18184
BARE_PORT=18185
REPORT_DIR="$ROOT/target/bench"
REPORT="$REPORT_DIR/sidebyside-report.md"
RESULTS_OUT="$REPORT_DIR/sidebyside-results.tsv"
LUA="$ROOT/benches/load/bench.lua"

check_knobs ROUNDS DURATION WARMUP CONNS POOL
bench_setup
COMMAND="ROUNDS=$ROUNDS DURATION=$DURATION WARMUP=$WARMUP CONNS=$CONNS POOL=$POOL IDLE_WAIT=$IDLE_WAIT bash benches/sidebyside.sh"
ports_free $UP_PORT $G1_PORT $G2_PORT $GU_PORT $BARE_PORT $((G1_PORT + 100)) $((G2_PORT + 100)) $((GU_PORT + 100))

REVISION=$(bench_revision)
STARTED=$(date -u '+%Y-%m-%d %H:%M UTC')
build_release

pairs_start "$EX"
pairs_proxies "$BIN" "$BARE_BIN"
expect_200 "$G1_PORT/j" "$G2_PORT/j" "$GU_PORT/j" "$G1_PORT/p" "$BARE_PORT/p"

pairs_init
P1=/p
# J10k measures cache hits: verify the whole pool on g2 once before the rounds.
fill_cache $((G2_PORT + 100)) $G2_PORT "$TP" "$POOL"
log "g2 holds all $POOL tokens"
log "rounds: $ROUNDS x (cal B-P P-J1 P-J10k P-JU), ${DURATION}s each after ${WARMUP}s warm-up, wrk -t1 -c$CONNS per side"
for ((round = 1; round <= ROUNDS; round++)); do
  pair cal "$round" "$G1_PID" $G1_PORT $P1 "$T1" "$G2_PID" $G2_PORT $P1 "$T1"
  pair B-P "$round" "$BARE_PID" $BARE_PORT $P1 "$T1" "$G1_PID" $G1_PORT $P1 "$T1"
  pair P-J1 "$round" "$G1_PID" $G1_PORT $P1 "$T1" "$G2_PID" $G2_PORT /j "$T1"
  pair P-J10k "$round" "$G1_PID" $G1_PORT $P1 "$T1" "$G2_PID" $G2_PORT /j "$TP"
  pair P-JU "$round" "$G1_PID" $G1_PORT $P1 "$T1" "$GU_PID" $GU_PORT /j "$TP"
done

mkdir -p "$REPORT_DIR"
cp "$PAIR_RESULTS" "$RESULTS_OUT"
NON2XX=$(pair_non2xx)
{
  echo "## tokengate side-by-side benchmark"
  echo
  echo "- Command: \`$COMMAND\` (revision $REVISION, started $STARTED)"
  pairs_report_header
  echo
  pair_table_header
  pair_row cal "P / P (calibration)" "1.000 within noise"
  pair_row B-P "B (bare pingora, cargo's default release build) / P" "(reference for the chained ratios below)"
  pair_row P-J1 "P / J1" "CPU <= 1.10, req/s >= 0.95" "cpu <= 1.10 && rps >= 0.95"
  pair_row P-J10k "P / J10k" "CPU <= 1.10, req/s >= 0.95" "cpu <= 1.10 && rps >= 0.95"
  pair_row P-JU "P / JU" "req/s >= 0.60" "rps >= 0.60"
  echo
  chained() {
    local v
    v=$(calc %.4f "$(pair_median B-P 5) * $(pair_median "$1" 5)")
    echo "$v ($(verdict "$v <= 1.10"))"
  }
  echo "J against bare pingora, CPU per request, by chaining the pairs (B-P x P-J, medians; target <= 1.10): J1 $(chained P-J1), J10k $(chained P-J10k)."
  echo "Non-2xx responses in the measurements: $NON2XX; socket errors and warm-up non-2xx over every wrk run: $ERRORS (target 0 and 0). Calibration spread (min-max B/A CPU of P / P): $(pair_spread cal 5)."
} | tee "$REPORT"
log "report: $REPORT; raw rows: $RESULTS_OUT"
