#!/usr/bin/env bash
# Load benchmark for tokengate: what does bearer-JWT verification cost a proxied request?
#
#   make bench-load                          # or: bash benches/load.sh
#   ROUNDS=2 DURATION=3 bash benches/load.sh # quicker
#
# Environment (defaults in brackets): ROUNDS [3], DURATION seconds per measurement [5], WARMUP
# seconds before each measurement [1], CONNS wrk connections [50], POOL distinct tokens for J10k
# [10000], FILL_COUNT distinct tokens sent once for the memory figure [100000], FILL_TIMEOUT
# seconds bounding that fill run [180], ACCESS_LOG gateway access log on/off [false], IDLE_WAIT
# seconds to wait before each measurement for other load on the machine to settle [30; 0 = off],
# KEEP_TMP=1 keeps the work directory (configs, tokens, logs, raw wrk output).
#
# Setup, all on 127.0.0.1: an upstream (examples/bench_upstream, hyper, one thread), the gateway
# (`threads = 1`, default token cache), a second gateway with `token_cache_capacity = 0` for the
# uncached scenario, and a bare pingora 0.9 passthrough (examples/bare_pingora: pingora's
# defaults, system allocator, built with cargo's default release settings) as the reference.
# The three proxies are pinned to core 0, wrk and the upstream to core 1.
#
# Scenarios, each measured with `wrk -t1 -c$CONNS -d${DURATION}s --latency`:
#   P     GET /p with J1's token, route auth = "none" forwarding Authorization: the same request
#         as J1 through the same binary, without the JWT work (the passthrough limit)
#   J1    GET /j, one token repeated (verified-token cache hit every time)
#   J10k  GET /j, $POOL distinct tokens round-robin
#   JU    GET /j, the same $POOL tokens on the gateway whose cache is disabled (every request
#         parses and verifies an RS256 signature)
#   B     GET /p with J1's token through the bare pingora passthrough
#   P0    GET /p without a token (what a tokenless request costs the gateway)
# ROUNDS rounds of P J1 P J10k P JU P B P0 (alternating, so drift hits every scenario alike); the
# report gives medians per scenario, the ratios to P and to B, and PASS/MISS against the targets.
# Then the main gateway gets $FILL_COUNT distinct tokens once each and its VmRSS is read.
#
# Output: a markdown report on stdout and in target/bench/load-report.md; the per-round raw
# figures in target/bench/load-results.tsv.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
CONNS=${CONNS:-50}
POOL=${POOL:-10000}
FILL_COUNT=${FILL_COUNT:-100000}
FILL_TIMEOUT=${FILL_TIMEOUT:-180}
ACCESS_LOG=${ACCESS_LOG:-false}
IDLE_WAIT=${IDLE_WAIT:-30}
CARGO=${CARGO:-cargo}

GW_PORT=18080
GW_ADMIN=19090
UP_PORT=18081
GWU_PORT=18082
GWU_ADMIN=19091
BARE_PORT=18083
CACHE_CAPACITY=100000

REPORT_DIR="$ROOT/target/bench"
REPORT="$REPORT_DIR/load-report.md"
RESULTS_OUT="$REPORT_DIR/load-results.tsv"
LUA_DIR="$ROOT/benches/load"

BENCH_NAME=load
# shellcheck source=benches/lib.sh
source "$ROOT/benches/lib.sh"

check_knobs ROUNDS DURATION WARMUP CONNS POOL FILL_COUNT FILL_TIMEOUT
[[ $ACCESS_LOG == true || $ACCESS_LOG == false ]] || die "ACCESS_LOG must be true or false"
((FILL_COUNT >= POOL)) || die "FILL_COUNT ($FILL_COUNT) must be at least POOL ($POOL)"
bench_setup

COMMAND="ROUNDS=$ROUNDS DURATION=$DURATION WARMUP=$WARMUP CONNS=$CONNS POOL=$POOL FILL_COUNT=$FILL_COUNT ACCESS_LOG=$ACCESS_LOG IDLE_WAIT=$IDLE_WAIT bash benches/load.sh"
REV=$(bench_revision)

# CHILD_MS = user + system CPU of this shell's waited-for children, in ms (second line of bash
# `times`). Call it directly, never in $(...): a subshell has no children times of its own.
children_ms() {
  times >"$TMP/times"
  CHILD_MS=$(awk 'NR == 2 { t = 0; for (i = 1; i <= 2; i++) { split($i, p, /[ms]/); t += p[1] * 60 + p[2] } printf "%d\n", t * 1000 }' "$TMP/times")
}
vmrss_kib() { awk '$1 == "VmRSS:" { print $2 }' "/proc/$1/status"; }
# sum of tokengate_requests_total over the samples of route "jwt"
jwt_requests() {
  curl -fsS --max-time 2 "http://127.0.0.1:$1/metrics" |
    awk '/^tokengate_requests_total\{/ && /route="jwt"/ { t += $NF } END { printf "%d\n", t }'
}
metric() {
  curl -fsS --max-time 2 "http://127.0.0.1:$1/metrics" | awk -v m="$2" '$1 == m { print $2 }'
}

ports_free $GW_PORT $GW_ADMIN $UP_PORT $GWU_PORT $GWU_ADMIN $BARE_PORT

# ---------------------------------------------------------------------------------------------
# Build, keys, tokens, configs.

build_release
UPSTREAM_BIN="$EX/bench_upstream"
MINT_BIN="$EX/mint_tokens"

log "minting $FILL_COUNT RS256 tokens"
mint_start=$SECONDS
"$MINT_BIN" --count "$FILL_COUNT" --out "$TMP/tokens-all.txt" --jwks "$TMP/jwks.json" --lifetime 3600
log "minted in $((SECONDS - mint_start)) s"
head -n 1 "$TMP/tokens-all.txt" >"$TMP/tokens-1.txt"
head -n "$POOL" "$TMP/tokens-all.txt" >"$TMP/tokens-pool.txt"
[ "$(wc -l <"$TMP/tokens-pool.txt")" -eq "$POOL" ] || die "token pool is short"

make_conf "$TMP/gateway.toml" $GW_PORT $GW_ADMIN $UP_PORT "token_cache_capacity = $CACHE_CAPACITY"
make_conf "$TMP/gateway-nocache.toml" $GWU_PORT $GWU_ADMIN $UP_PORT "token_cache_capacity = 0"
for conf in gateway gateway-nocache; do
  "$BIN" check --config "$TMP/$conf.toml" >"$TMP/check.log" 2>&1 || {
    cat "$TMP/check.log" >&2
    die "tokengate check failed on $TMP/$conf.toml"
  }
done

# ---------------------------------------------------------------------------------------------
# Start upstream and both gateways; sanity-check the routes.

start_bg upstream "${PIN_LOAD[@]}" "$UPSTREAM_BIN" "127.0.0.1:$UP_PORT"
UP_PID=$LAST_PID
wait_http "http://127.0.0.1:$UP_PORT/" upstream "$UP_PID"

start_bg gateway "${PIN_GW[@]}" "$BIN" run --config "$TMP/gateway.toml"
GW_PID=$LAST_PID
start_bg gateway-nocache "${PIN_GW[@]}" "$BIN" run --config "$TMP/gateway-nocache.toml"
GWU_PID=$LAST_PID
wait_http "http://127.0.0.1:$GW_ADMIN/readyz" gateway "$GW_PID"
wait_http "http://127.0.0.1:$GWU_ADMIN/readyz" gateway-nocache "$GWU_PID"
start_bg bare-pingora "${PIN_GW[@]}" "$BARE_BIN" "127.0.0.1:$BARE_PORT" "127.0.0.1:$UP_PORT"
BARE_PID=$LAST_PID
wait_http "http://127.0.0.1:$BARE_PORT/p" bare-pingora "$BARE_PID"
# Every process pinned to core 0, for telling their CPU apart from other load there.
CORE0_PIDS=("$GW_PID" "$GWU_PID" "$BARE_PID")
RSS_IDLE_KIB=$(vmrss_kib "$GW_PID")

TOKEN1=$(cat "$TMP/tokens-1.txt")
expect_status 200 "http://127.0.0.1:$GW_PORT/p"
expect_status 200 "http://127.0.0.1:$GW_PORT/p" "$TOKEN1"
expect_status 200 "http://127.0.0.1:$BARE_PORT/p" "$TOKEN1"
expect_status 401 "http://127.0.0.1:$GW_PORT/j"
expect_status 200 "http://127.0.0.1:$GW_PORT/j" "$TOKEN1"
expect_status 401 "http://127.0.0.1:$GW_PORT/j" "${TOKEN1%?????}AAAAA"
expect_status 200 "http://127.0.0.1:$GWU_PORT/j" "$TOKEN1"
log "sanity checks passed (200 /p, 401 without token, 200 with token, 401 tampered)"

# busy_pct SECONDS: how busy each core is while the benchmark itself is idle (other load on the box)
busy_pct() {
  local a0 a1
  read -r -a a0 <<<"$(core_jiffies 0) $(core_jiffies 1)"
  sleep "$1"
  read -r -a a1 <<<"$(core_jiffies 0) $(core_jiffies 1)"
  awk -v b0="$((a1[0] - a0[0]))" -v t0="$((a1[1] - a0[1]))" -v b1="$((a1[2] - a0[2]))" -v t1="$((a1[3] - a0[3]))" \
    'BEGIN { printf "core 0 %.0f%%, core 1 %.0f%%", (t0 ? 100 * b0 / t0 : 0), (t1 ? 100 * b1 / t1 : 0) }'
}

# ---------------------------------------------------------------------------------------------
# Measurements.

LOADAVG_START=$(cut -d' ' -f1-3 /proc/loadavg)
IDLE_BEFORE=$(busy_pct 2)
log "other load before the rounds (benchmark idle, 2 s): $IDLE_BEFORE; loadavg $LOADAVG_START"

RESULTS="$TMP/results.tsv"
printf 'scenario\tround\trps\tp50_us\tp99_us\tcpu_us_per_req\tnon2xx\terrors\trequests\tgw_cpu_pct\tcore0_pct\tcore1_pct\tcore0_other_pct\tcore1_other_pct\n' >"$RESULTS"
EXTRA_NON2XX=0 # warm-ups and the fill run
EXTRA_ERRORS=0

# run_wrk SCRIPT SECONDS PORT OUT (env BENCH_PATH / BENCH_TOKENS set by the caller)
run_wrk() {
  "${PIN_LOAD[@]}" wrk -t1 -c"$CONNS" -d"$2s" --latency -s "$1" "http://127.0.0.1:$3" >"$4" 2>&1 &
  WRK_PID=$!
  local rc=0
  wait "$WRK_PID" || rc=$?
  WRK_PID=""
  ((rc == 0)) || {
    cat "$4" >&2
    die "wrk failed (exit $rc)"
  }
  grep -q '^RESULT ' "$4" || {
    cat "$4" >&2
    die "wrk printed no RESULT line"
  }
}

# core0_ticks: CPU ticks of every benchmark process pinned to core 0
core0_ticks() {
  local t=0 p
  for p in "${CORE0_PIDS[@]}"; do t=$((t + $(cpu_ticks "$p"))); done
  echo "$t"
}

# measure SCENARIO ROUND PORT PID PATH TOKENS_FILE
measure() {
  local sc=$1 round=$2 port=$3 pid=$4 path=$5 tokens=$6
  local out="$TMP/wrk-$sc-$round.out"
  export BENCH_PATH=$path BENCH_TOKENS=$tokens
  wait_quiet
  run_wrk "$LUA_DIR/bench.lua" "$WARMUP" "$port" "$TMP/warmup.out"
  EXTRA_NON2XX=$((EXTRA_NON2XX + $(field non2xx "$TMP/warmup.out")))
  EXTRA_ERRORS=$((EXTRA_ERRORS + $(field errors "$TMP/warmup.out")))

  # Gateway CPU from /proc/PID/stat; per-core busy time from /proc/stat; what else ran on each
  # core = busy - (the three proxies) on core 0, busy - (wrk + upstream) on core 1. wrk's CPU comes from
  # the shell's children times (`times`, counted when wrk is waited for).
  local c0 c1 o0 o1 u0 u1 w0 w1 a0 a1
  read -r -a a0 <<<"$(core_jiffies 0) $(core_jiffies 1)"
  c0=$(cpu_ticks "$pid")
  o0=$(core0_ticks)
  u0=$(cpu_ticks "$UP_PID")
  children_ms
  w0=$CHILD_MS
  run_wrk "$LUA_DIR/bench.lua" "$DURATION" "$port" "$out"
  children_ms
  w1=$CHILD_MS
  c1=$(cpu_ticks "$pid")
  o1=$(core0_ticks)
  u1=$(cpu_ticks "$UP_PID")
  read -r -a a1 <<<"$(core_jiffies 0) $(core_jiffies 1)"

  local req dur
  req=$(field requests "$out")
  dur=$(field duration_us "$out")
  ((req > 0)) || die "$sc: no requests completed"
  awk -v sc="$sc" -v r="$round" -v rps="$(field rps "$out")" -v p50="$(field p50_us "$out")" \
    -v p99="$(field p99_us "$out")" -v n2="$(field non2xx "$out")" -v er="$(field errors "$out")" \
    -v req="$req" -v dur="$dur" -v dt="$((c1 - c0))" -v dcore0="$((o1 - o0))" -v hz="$CLK_TCK" \
    -v dup="$((u1 - u0))" -v dwrk_ms="$((w1 - w0))" \
    -v b0="$((a1[0] - a0[0]))" -v t0="$((a1[1] - a0[1]))" -v b1="$((a1[2] - a0[2]))" -v t1="$((a1[3] - a0[3]))" \
    'BEGIN {
      secs = t0 / hz  # the sampled window, a little longer than wrk duration
      core0 = (t0 > 0 ? 100 * b0 / t0 : 0)
      core1 = (t1 > 0 ? 100 * b1 / t1 : 0)
      other0 = core0 - (secs > 0 ? 100 * dcore0 / hz / secs : 0)
      other1 = core1 - (secs > 0 ? 100 * (dup / hz + dwrk_ms / 1000) / secs : 0)
      printf "%s\t%s\t%.1f\t%d\t%d\t%.2f\t%d\t%d\t%d\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\n", sc, r, rps, p50, p99,
        dt * 1e6 / hz / req, n2, er, req, 100 * dt / hz / (dur / 1e6), core0, core1,
        (other0 > 0 ? other0 : 0), (other1 > 0 ? other1 : 0)
    }' >>"$RESULTS"
  tail -n 1 "$RESULTS" | awk -F'\t' '{
    printf "[load] round %s %-5s %9.0f req/s  p50 %6.3f ms  p99 %6.3f ms  cpu %6.1f us/req  gw %3.0f%%  core0 %3.0f%% (other %3.0f%%)  core1 %3.0f%% (other %3.0f%%)  non2xx %d errors %d\n",
      $2, $1, $3, $4 / 1000, $5 / 1000, $6, $10, $11, $13, $12, $14, $7, $8 }' >&2
}

log "rounds: $ROUNDS x (P J1 P J10k P JU P B P0), ${DURATION}s each after ${WARMUP}s warm-up, wrk -t1 -c$CONNS"
for ((round = 1; round <= ROUNDS; round++)); do
  measure P "$round" $GW_PORT "$GW_PID" /p "$TMP/tokens-1.txt"
  measure J1 "$round" $GW_PORT "$GW_PID" /j "$TMP/tokens-1.txt"
  measure P "$round" $GW_PORT "$GW_PID" /p "$TMP/tokens-1.txt"
  measure J10k "$round" $GW_PORT "$GW_PID" /j "$TMP/tokens-pool.txt"
  measure P "$round" $GW_PORT "$GW_PID" /p "$TMP/tokens-1.txt"
  measure JU "$round" $GWU_PORT "$GWU_PID" /j "$TMP/tokens-pool.txt"
  measure P "$round" $GW_PORT "$GW_PID" /p "$TMP/tokens-1.txt"
  measure B "$round" $BARE_PORT "$BARE_PID" /p "$TMP/tokens-1.txt"
  measure P0 "$round" $GW_PORT "$GW_PID" /p ""
done
ENTRIES_BEFORE_FILL=$(metric $GW_ADMIN tokengate_token_cache_entries || echo "?")
JU_ENTRIES=$(metric $GWU_ADMIN tokengate_token_cache_entries || echo "?")

# ---------------------------------------------------------------------------------------------
# Memory: every one of FILL_COUNT distinct tokens once through the main gateway, then VmRSS.

log "memory: sending $FILL_COUNT distinct tokens once each (bounded by ${FILL_TIMEOUT}s)"
# fill.lua stops sending after FILL_COUNT responses, but wrk itself only exits at the end of -d or
# on SIGINT: watch the gateway's request counter and interrupt wrk once every token went through.
FILL_BASE=$(jwt_requests $GW_ADMIN)
export BENCH_PATH=/j BENCH_TOKENS="$TMP/tokens-all.txt"
"${PIN_LOAD[@]}" wrk -t1 -c"$CONNS" -d"${FILL_TIMEOUT}s" --latency -s "$LUA_DIR/fill.lua" \
  "http://127.0.0.1:$GW_PORT" >"$TMP/fill.out" 2>&1 &
WRK_PID=$!
fill_deadline=$((SECONDS + FILL_TIMEOUT + 10))
while kill -0 "$WRK_PID" 2>/dev/null && ((SECONDS < fill_deadline)); do
  if (($(jwt_requests $GW_ADMIN) - FILL_BASE >= FILL_COUNT)); then
    kill -INT "$WRK_PID" 2>/dev/null || true
    break
  fi
  sleep 0.2
done
fill_rc=0
wait "$WRK_PID" || fill_rc=$?
WRK_PID=""
grep -q '^RESULT ' "$TMP/fill.out" || {
  cat "$TMP/fill.out" >&2
  die "the fill run failed (wrk exit $fill_rc)"
}
FILL_REQUESTS=$(field requests "$TMP/fill.out")
FILL_RPS=$(field rps "$TMP/fill.out")
FILL_SENT=$(($(jwt_requests $GW_ADMIN) - FILL_BASE))
EXTRA_NON2XX=$((EXTRA_NON2XX + $(field non2xx "$TMP/fill.out")))
EXTRA_ERRORS=$((EXTRA_ERRORS + $(field errors "$TMP/fill.out")))
sleep 1
ENTRIES_AFTER_FILL=$(metric $GW_ADMIN tokengate_token_cache_entries || echo "?")
RSS_FILL_KIB=$(vmrss_kib "$GW_PID")
HWM_KIB=$(awk '$1 == "VmHWM:" { print $2 }' "/proc/$GW_PID/status")
log "fill: $FILL_REQUESTS requests at $FILL_RPS req/s; cache entries $ENTRIES_AFTER_FILL; VmRSS $((RSS_FILL_KIB / 1024)) MiB"
((FILL_SENT >= FILL_COUNT)) || log "WARNING: the fill run ended after $FILL_SENT of $FILL_COUNT requests (FILL_TIMEOUT)"

IDLE_AFTER=$(busy_pct 2)
LOADAVG_END=$(cut -d' ' -f1-3 /proc/loadavg)
log "other load after the runs (benchmark idle, 2 s): $IDLE_AFTER; loadavg $LOADAVG_END"

# ---------------------------------------------------------------------------------------------
# Report.

mkdir -p "$REPORT_DIR"
cp "$RESULTS" "$RESULTS_OUT"

med() { median "$RESULTS" "$1" "$2"; }
# range SCENARIO COLUMN: "min-max" over rounds, rounded
range() { awk -F'\t' -v s="$1" -v c="$2" 'NR > 1 && $1 == s { if (n++ == 0 || $c < lo) lo = $c; if ($c > hi) hi = $c } END { printf "%.0f-%.0f", lo, hi }' "$RESULTS"; }
sum() { awk -F'\t' -v s="$1" -v c="$2" 'NR > 1 && $1 == s { t += $c } END { print t + 0 }' "$RESULTS"; }

# paired RESULTS: each measurement's ratio to the P measured beside it in the same round (the mean
# of the P just before and just after it, or the one before when none follows), median over the
# rounds; one line per scenario: name, rounds, req/s ratio, CPU ratio. Slow drift of the machine
# (seen here as minutes-long phases of +-20%) cancels in these, unlike in a ratio of medians.
paired() {
  awk '
BEGIN { FS = "\t" }
NR == 1 { next }
{ sc[NR] = $1; rd[NR] = $2; rps[NR] = $3; cpu[NR] = $6; n = NR }
END {
  for (i = 2; i <= n; i++) {
    if (sc[i] == "P") continue
    pr = 0; pc = 0; k = 0
    for (j = i - 1; j >= 2 && rd[j] == rd[i]; j--) if (sc[j] == "P") { pr += rps[j]; pc += cpu[j]; k++; break }
    for (j = i + 1; j <= n && rd[j] == rd[i]; j++) if (sc[j] == "P") { pr += rps[j]; pc += cpu[j]; k++; break }
    if (k == 0) continue
    m = ++cnt[sc[i]]
    rr[sc[i], m] = rps[i] / (pr / k); cr[sc[i], m] = cpu[i] / (pc / k)
  }
  for (s in cnt) {
    m = cnt[s]
    for (a = 1; a <= m; a++) { x[a] = rr[s, a]; y[a] = cr[s, a] }
    for (a = 1; a <= m; a++) for (b = a + 1; b <= m; b++) { if (x[b] < x[a]) { t = x[a]; x[a] = x[b]; x[b] = t } if (y[b] < y[a]) { t = y[a]; y[a] = y[b]; y[b] = t } }
    mr = (m % 2) ? x[(m + 1) / 2] : (x[m / 2] + x[m / 2 + 1]) / 2
    mc = (m % 2) ? y[(m + 1) / 2] : (y[m / 2] + y[m / 2 + 1]) / 2
    printf "%s\t%d\t%.3f\t%.3f\n", s, m, mr, mc
  }
}
' "$1" | sort
}

for s in P J1 J10k JU B P0; do
  declare "RPS_$s=$(med "$s" 3)" "P50_$s=$(med "$s" 4)" "P99_$s=$(med "$s" 5)" \
    "CPU_$s=$(med "$s" 6)" "GWPCT_$s=$(med "$s" 10)" "OTH0_$s=$(med "$s" 13)" "OTH1_$s=$(med "$s" 14)" \
    "N2_$s=$(sum "$s" 7)" "ER_$s=$(sum "$s" 8)" "REQ_$s=$(sum "$s" 9)"
done
# A measurement is "disturbed" when something outside the benchmark used more than 15% of core 0
# or core 1 during it (loopback softirq alone accounts for up to ~10%): its figures say more
# about the neighbours than about the gateway.
DISTURBED=$(awk -F'\t' 'NR > 1 && ($13 > 15 || $14 > 15) { n++ } END { print n + 0 }' "$RESULTS")
MEASUREMENTS=$(($(wc -l <"$RESULTS") - 1))
TOTAL_NON2XX=$((N2_P + N2_J1 + N2_J10k + N2_JU + N2_B + N2_P0 + EXTRA_NON2XX))
TOTAL_ERRORS=$((ER_P + ER_J1 + ER_J10k + ER_JU + ER_B + ER_P0 + EXTRA_ERRORS))
RSS_FILL_MIB=$(calc "%.1f" "$RSS_FILL_KIB / 1024")
P99_DELTA_MS=$(calc "%.3f" "($P99_J10k - $P99_P) / 1000")

CPU_MODEL=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
KERNEL=$(uname -srm)
if grep -qw hypervisor /proc/cpuinfo; then CPU_MODEL="$CPU_MODEL (virtual machine: hypervisor flag set)"; fi
JU_HOW="second gateway instance with \`token_cache_capacity = 0\` (cache disabled), same $POOL-token pool as J10k"

row() { # scenario description
  local s=$1 d=$2 rps p50 p99 cpu gw o0 o1 n2 er
  eval "rps=\$RPS_$s p50=\$P50_$s p99=\$P99_$s cpu=\$CPU_$s gw=\$GWPCT_$s o0=\$OTH0_$s o1=\$OTH1_$s n2=\$N2_$s er=\$ER_$s"
  printf '| %s | %s | %.0f | %s | %.3f | %.3f | %.1f | %.0f%% | %.0f%% / %.0f%% | %d | %d |\n' \
    "$s" "$d" "$rps" "$(range "$s" 3)" "$(calc %.6f "$p50/1000")" "$(calc %.6f "$p99/1000")" "$cpu" "$gw" "$o0" "$o1" "$n2" "$er"
}
# A verdict on throughput, latency or CPU from a disturbed run, or from a run where the gateway
# was not the bottleneck, carries a caveat: it may be a PASS only because the gateway was never
# pushed to its limit.
CAVEAT=""
((DISTURBED == 0)) || CAVEAT=" (disturbed run)"
if awk "BEGIN { exit !($GWPCT_P < 90) }"; then CAVEAT="$CAVEAT (gateway not CPU-bound in P)"; fi
target() { # label measured target condition [nocaveat]
  local c=$CAVEAT
  [ -z "${5:-}" ] || c=""
  printf '| %s | %s | %s | **%s**%s |\n' "$1" "$2" "$3" "$(verdict "$4")" "$c"
}

{
  echo "# tokengate load benchmark"
  echo
  echo "- Date: $(date -u '+%Y-%m-%d %H:%M UTC'); tokengate revision \`$REV\`"
  echo "- Machine: $NPROC CPUs, $CPU_MODEL; kernel $KERNEL"
  echo "- Command: \`$COMMAND\` (from \`$ROOT\`)"
  echo "- Each measurement: \`wrk -t1 -c$CONNS -d${DURATION}s --latency -s benches/load/bench.lua\` after a ${WARMUP}s warm-up; $ROUNDS rounds of P J1 P J10k P JU P B P0; figures are medians over the measurements of each scenario (P is measured 4 times per round)"
  echo "- B: examples/bare_pingora, a pingora 0.9 passthrough with pingora's default settings and the system allocator, built with cargo's default release settings (tokengate: fat LTO), on the same core, upstream and requests as P"
  echo "- Pinning: $PINNING. Gateway \`threads = 1\`, access log \`$ACCESS_LOG\` (ACCESS_LOG=true includes it; it costs P and J alike, so leaving it out gives the stricter ratios), upstream: examples/bench_upstream (hyper, 1 thread, 200 with a 3-byte body)"
  echo "- Tokens: RS256 (2048-bit fixture key), minted by examples/mint_tokens; route /j checks \`scopes_all\`, \`max_token_lifetime\` and forwards two claims"
  echo "- JU: $JU_HOW"
  echo "- Other load on the machine, sampled for 2 s while the benchmark was idle: before the rounds $IDLE_BEFORE busy (loadavg $LOADAVG_START); after the fill $IDLE_AFTER busy (loadavg $LOADAVG_END)"
  echo "- Other load: per core, busy time (/proc/stat) minus what the benchmark's own processes used there (core 0: both gateways; core 1: wrk and the upstream); it includes kernel softirq work for the loopback traffic, so a few % is normal, more means something else competed for the core"
  echo "- CPU/request: delta of utime+stime of the gateway process (/proc/PID/stat, $CLK_TCK ticks/s) over the measurement, divided by completed requests"
  echo
  if ((DISTURBED > 0)); then
    echo "**Warning: $DISTURBED of $MEASUREMENTS measurements were disturbed (other load > 15% on core 0 or core 1, marked \\* below): other processes competed for the CPUs, so the figures are noisier and the ratios less reliable than on an idle machine. The medians include them.**"
    echo
  fi
  if awk "BEGIN { exit !($GWPCT_P < 90) }"; then
    echo "**Warning: the gateway used only $(calc %.0f "$GWPCT_P")% of its core in P (median): the load generator side (wrk + upstream on core 1), not the gateway, limited throughput, so the req/s ratios understate what JWT work costs.**"
    echo
  fi
  echo "| scenario | what | req/s | req/s range | p50 ms | p99 ms | gateway CPU us/req | gateway CPU | other load core 0 / core 1 | non-2xx | socket errors |"
  echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  row P "GET /p with J1's token, auth none"
  row J1 "GET /j, 1 token repeated"
  row J10k "GET /j, $POOL tokens round-robin"
  row JU "GET /j, cache disabled"
  row B "bare pingora, GET /p with J1's token"
  row P0 "GET /p, auth none, no token"
  echo
  echo "| ratio | req/s | CPU/request |"
  echo "|---|---:|---:|"
  for s in J1 J10k JU B P0; do
    eval "r=\$RPS_$s c=\$CPU_$s"
    printf '| %s/P | %.3f | %.3f |\n' "$s" "$(calc %.6f "$r/$RPS_P")" "$(calc %.6f "$c/$CPU_P")"
  done
  for s in P J1 J10k JU; do
    eval "r=\$RPS_$s c=\$CPU_$s"
    printf '| %s/B | %.3f | %.3f |\n' "$s" "$(calc %.6f "$r/$RPS_B")" "$(calc %.6f "$c/$CPU_B")"
  done
  printf '| p99(J10k) - p99(P) | %s ms | |\n' "$P99_DELTA_MS"
  echo
  echo "Paired ratios (each measurement against the P measured beside it, median over rounds; robust to the machine's slow drift):"
  echo
  echo "| scenario | rounds | req/s vs P | CPU/request vs P |"
  echo "|---|---:|---:|---:|"
  paired "$RESULTS" | awk -F'\t' '{ printf "| %s | %d | %.3f | %.3f |\n", $1, $2, $3, $4 }'
  echo
  echo "Memory: VmRSS of the gateway $(calc %.1f "$RSS_IDLE_KIB/1024") MiB after start; **$RSS_FILL_MIB MiB** after $FILL_SENT requests carrying $FILL_COUNT distinct tokens (once each, at $(calc %.0f "$FILL_RPS") req/s), VmHWM $(calc %.1f "$HWM_KIB/1024") MiB; \`tokengate_token_cache_entries\` $ENTRIES_BEFORE_FILL before the fill, $ENTRIES_AFTER_FILL after (capacity $CACHE_CAPACITY). The JU gateway reports $JU_ENTRIES entries."
  echo
  echo "| target | measured | target | result |"
  echo "|---|---:|---:|---|"
  target "J1 req/s vs P" "$(calc %.3f "$RPS_J1/$RPS_P")" ">= 0.95" "$RPS_J1 >= 0.95 * $RPS_P"
  target "J10k req/s vs P" "$(calc %.3f "$RPS_J10k/$RPS_P")" ">= 0.95" "$RPS_J10k >= 0.95 * $RPS_P"
  target "J1 CPU/request vs P" "$(calc %.3f "$CPU_J1/$CPU_P")" "<= 1.10" "$CPU_J1 <= 1.10 * $CPU_P"
  target "J10k CPU/request vs P" "$(calc %.3f "$CPU_J10k/$CPU_P")" "<= 1.10" "$CPU_J10k <= 1.10 * $CPU_P"
  target "JU req/s vs P" "$(calc %.3f "$RPS_JU/$RPS_P")" ">= 0.60" "$RPS_JU >= 0.6 * $RPS_P"
  target "p99(J10k) - p99(P)" "$P99_DELTA_MS ms" "<= 0.3 ms" "$P99_DELTA_MS <= 0.3"
  target "J1 CPU/request vs bare pingora (B)" "$(calc %.3f "$CPU_J1/$CPU_B")" "<= 1.10" "$CPU_J1 <= 1.10 * $CPU_B"
  target "J10k CPU/request vs bare pingora (B)" "$(calc %.3f "$CPU_J10k/$CPU_B")" "<= 1.10" "$CPU_J10k <= 1.10 * $CPU_B"
  target "VmRSS with $FILL_COUNT tokens cached" "$RSS_FILL_MIB MiB" "<= 150 MiB" "$RSS_FILL_MIB <= 150" nocaveat
  target "non-2xx + socket errors (all runs, warm-ups and fill included)" "$TOTAL_NON2XX + $TOTAL_ERRORS" "0" "$TOTAL_NON2XX + $TOTAL_ERRORS == 0" nocaveat
  echo
  echo "Reading the figures:"
  echo
  echo "- Closed loop at saturation: wrk keeps $CONNS requests in flight and the gateway's core runs at ~100%, so latency is mostly queueing (about $CONNS / throughput): p50/p99 differences between scenarios mirror their req/s differences rather than the added service time of one request. The service time added by JWT work is better read from the CPU/request column."
  echo "- CPU/request comes from $CLK_TCK Hz tick counts: a ${DURATION}s measurement at 100% is about $((DURATION * CLK_TCK)) ticks, so each figure is good to about $(calc %.1f "100 / ($DURATION * $CLK_TCK)")%."
  echo "- P, J and B requests carry the same bearer token of $(head -n 1 "$TMP/tokens-1.txt" | tr -d "\n" | wc -c) bytes, and all three forward it upstream (\`strip_authorization\` is off): J over P is the JWT work alone (extraction, cache or verification, policy, two identity headers). P0 over P is what carrying the token costs any proxy."
  echo "- One gateway worker thread on one core; how the figures scale with \`threads\` is not measured here. Everything runs on loopback, so network cost is absent and the gateway's share of the work is larger than in production."
  echo "- The machine is a VM: neighbours on the host are invisible here (no steal time reported), which is why each scenario's req/s range is shown."
  echo
  echo "Per measurement (raw, also in target/bench/load-results.tsv):"
  echo
  echo "| scenario | round | req/s | p50 ms | p99 ms | CPU us/req | gateway CPU | core 0 busy (other) | core 1 busy (other) | non-2xx | errors |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  awk -F'\t' 'NR > 1 { printf "| %s%s | %s | %.0f | %.3f | %.3f | %.1f | %.0f%% | %.0f%% (%.0f%%) | %.0f%% (%.0f%%) | %d | %d |\n",
    $1, (($13 > 15 || $14 > 15) ? " \\*" : ""), $2, $3, $4 / 1000, $5 / 1000, $6, $10, $11, $13, $12, $14, $7, $8 }' "$RESULTS"
} >"$REPORT"

echo
cat "$REPORT"
echo
((DISTURBED == 0)) || log "WARNING: $DISTURBED of $MEASUREMENTS measurements were disturbed by other load (see the report)"
log "report written to $REPORT"
