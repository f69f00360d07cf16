#!/usr/bin/env bash
# Where a request's CPU goes: benches/load.sh's scenarios sampled by `perf record`, one at a time,
# and each scenario's profile set against P's, symbol by symbol, in µs per request.
#
#   make bench-profile                              # or: bash benches/profile.sh
#   SCENARIOS="P J10k" DURATION=8 bash benches/profile.sh
#   GW_BIN=/tmp/tokengate-old bash benches/profile.sh  # profile another build
#
# Why: the timed scripts say how much a scenario costs against P, the instruction count
# (benches/instructions.sh) where its instructions go, but callgrind sees neither the kernel nor
# the time spent waiting on memory. This samples the gateway's real time, kernel and stalls
# included, while wrk drives it, and so shows what a pool of 10,000 tokens costs beyond one token.
# It cannot say why a function is slow: this VM has no hardware counters, so a cache miss shows
# only as time in the function that waited for it.
#
# Setup as in benches/load.sh: the gateway (`threads = 1`, token cache on) for P, J1 and J10k, a
# second one with `token_cache_capacity = 0` for JU, both on core 0; the upstream
# (examples/bench_upstream) and wrk on core 1. With J10k listed, its pool of POOL tokens is sent
# until the cache holds them all, before the first round. Per scenario and round: wrk starts, and
# after WARMUP seconds `perf record -e cpu-clock -F $FREQ -p <gateway>` samples for DURATION
# seconds. The command perf runs reads the gateway's request counters (`tokengate_requests_total`)
# and its CPU time from /proc at the start and the end of that window, so µs per request = the
# CPU time the samples stand for / the requests served, per symbol, in all and in the kernel, with
# /proc's figure beside it as a check. The rounds take the scenarios in the listed order and then
# reversed, in turn.
# A sampling profile is a measurement like any other: a symbol under about 0.05 µs per request
# moves with the run, and the whole profile moves with the machine's speed at that moment (README
# BENCHMARKS). Read the differences between scenarios, measured minutes apart, accordingly: the
# report gives each round's total.
#
# Environment: SCENARIOS [P J1 J10k JU], ROUNDS [2], DURATION seconds
# sampled [8], WARMUP [3], CONNS [50], POOL [10000], FREQ samples per second [4000], TOP rows
# per table [20], IDLE_WAIT [10], GW_BIN, KEEP_TMP=1.
# Output: a markdown report on stdout and in target/bench/profile-report.md.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# A relative GW_BIN names a file from where the script was started, not from ROOT.
[ -z "${GW_BIN:-}" ] || GW_BIN=$(realpath -m -- "$GW_BIN")
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
# For its gateway, token and cache-filling helpers (pairs_start, gateway, fill_cache).
# shellcheck source=benches/pairs.sh
source "$ROOT/benches/pairs.sh"

check_knobs ROUNDS DURATION WARMUP CONNS POOL FREQ TOP
for sc in $SCENARIOS; do
  [[ $sc =~ ^(P|J1|J10k|JU)$ ]] || die "unknown scenario '$sc' (P, J1, J10k, JU)"
  (($(tr ' ' '\n' <<<"$SCENARIOS" | grep -cx "$sc") == 1)) || die "scenario $sc is listed twice"
done
[[ " $SCENARIOS " == *" P "* ]] || die "SCENARIOS must include P: every profile is read against it"
bench_setup
command -v perf >/dev/null 2>&1 || apt_install linux-perf
perf record -e cpu-clock -o /dev/null -- true >/dev/null 2>&1 || die "perf cannot sample here (perf_event_paranoid?)"
# The kernel's share is part of the answer: without root, perf_event_paranoid >= 2 samples user
# space only, and the profile would silently leave it out.
[ "$(id -u)" = 0 ] || (($(cat /proc/sys/kernel/perf_event_paranoid) < 2)) ||
  die "perf would sample user space only: run as root or set kernel.perf_event_paranoid below 2"
ports_free $UP_PORT $G_PORT $GU_PORT $((G_PORT + 100)) $((GU_PORT + 100))

COMMAND="SCENARIOS=\"$SCENARIOS\" ROUNDS=$ROUNDS DURATION=$DURATION WARMUP=$WARMUP CONNS=$CONNS POOL=$POOL FREQ=$FREQ TOP=$TOP IDLE_WAIT=$IDLE_WAIT${GW_BIN:+ GW_BIN=$GW_BIN} bash benches/profile.sh"
REVISION=$(bench_revision)
STARTED=$(date -u '+%Y-%m-%d %H:%M UTC')
build_release
use_gw_bin

pairs_start "$EX"
gateway g "$BIN" $G_PORT "token_cache_capacity = 100000"
G_PID=$LAST_PID
gateway gu "$BIN" $GU_PORT "token_cache_capacity = 0"
GU_PID=$LAST_PID
TOKEN1=$(cat "$T1")
expect_status 200 "http://127.0.0.1:$G_PORT/p" "$TOKEN1"
expect_status 200 "http://127.0.0.1:$G_PORT/j" "$TOKEN1"
expect_status 200 "http://127.0.0.1:$GU_PORT/j" "$TOKEN1"
expect_status 401 "http://127.0.0.1:$G_PORT/j"

# served ADMIN_PORT: every request the gateway has counted, all routes and outcomes
served() {
  curl -fsS --max-time 2 "http://127.0.0.1:$1/metrics" |
    awk '/^tokengate_requests_total\{/ { t += $NF } END { printf "%d\n", t }'
}

# J10k's pool goes through the cache once before any round, so that every J10k window is all
# hits and every J1 window runs beside the same full cache.
[[ " $SCENARIOS " != *" J10k "* ]] || fill_cache $((G_PORT + 100)) $G_PORT "$TP" "$POOL"

# profile SCENARIO ROUND PORT PID PATH TOKENS: one sampled window under load; writes
# $TMP/SCENARIO-ROUND.samples (CPU ns sampled, k or u for kernel or user, the symbol) and appends
# "ROUND requests µs-sampled µs-by-/proc kernel-µs" to $TMP/SCENARIO.rounds.
profile() {
  local sc=$1 round=$2 port=$3 pid=$4 path=$5 tokens=$6
  export BENCH_PATH=$path BENCH_TOKENS=$tokens
  wait_quiet
  "${PIN_LOAD[@]}" wrk -t1 -c"$CONNS" -d"$((WARMUP + DURATION + 10))s" -s "$LUA" "http://127.0.0.1:$port" >"$TMP/wrk-$sc-$round.out" 2>&1 &
  WRK_PID=$!
  sleep "$WARMUP"
  # The command perf runs is the window: the request counters and the gateway's CPU time are read
  # at its start and end, so they cover what perf sampled and not perf's own start and end (about a
  # second here). No build ids: collecting them copies every binary on the first run.
  local win="$TMP/window-$sc-$round" data="$TMP/$sc-$round.data"
  "${PIN_LOAD[@]}" perf record -q --no-buildid -e cpu-clock -F "$FREQ" -p "$pid" -o "$data" -- \
    bash -c "$(declare -f served cpu_ticks); echo \$(served $((port + 100))) \$(cpu_ticks $pid) >$win; sleep $DURATION; echo \$(served $((port + 100))) \$(cpu_ticks $pid) >>$win" \
    2>"$TMP/perf-$sc-$round.log"
  kill -0 "$WRK_PID" 2>/dev/null || die "$sc: wrk ended before the sampled window did"
  wait "$WRK_PID" || die "wrk failed in $sc: $(cat "$TMP/wrk-$sc-$round.out")"
  WRK_PID=""
  [ "$(field non2xx "$TMP/wrk-$sc-$round.out")" = 0 ] && [ "$(field errors "$TMP/wrk-$sc-$round.out")" = 0 ] ||
    die "$sc: non-2xx responses or socket errors: $(grep '^RESULT' "$TMP/wrk-$sc-$round.out")"
  ! grep -qiE 'lost|throttl' "$TMP/perf-$sc-$round.log" || log "warning: perf in $sc round $round: $(cat "$TMP/perf-$sc-$round.log")"
  local req ticks
  read -r req ticks < <(awk 'NR == 1 { n = $1; t = $2 } NR == 2 { print $1 - n, $2 - t }' "$win")
  ((req > 0)) || die "$sc: no requests served while sampling"
  # The period of a cpu-clock sample is the CPU time it stands for, in ns: summing periods stays
  # right even if the kernel lowered the sampling rate (kernel.perf_event_max_sample_rate).
  perf report -i "$data" --no-children --sort sym -F period,sym --stdio -t $'\t' 2>"$TMP/report-$sc-$round.log" |
    awk -F'\t' '
      /^#/ || NF < 2 { next }
      { ns = $1 + 0; sym = $2; k = (sym ~ /^ *\[k\]/) ? "k" : "u"
        sub(/^ *\[[.kugH]\] */, "", sym); gsub(/^ +| +$/, "", sym)
        if (ns > 0) printf "%d\t%s\t%s\n", ns, k, sym }' >"$TMP/$sc-$round.samples"
  rm -f "$data"
  local line
  line=$(awk -F'\t' -v n="$req" -v dt="$ticks" -v hz="$CLK_TCK" '{ t += $1; if ($2 == "k") kt += $1 }
    END { if (t == 0) exit 1; printf "%.2f %.2f %.2f", t / n / 1e3, dt / hz / n * 1e6, kt / n / 1e3 }' "$TMP/$sc-$round.samples") ||
    die "$sc: perf recorded no samples (see $TMP/report-$sc-$round.log)"
  echo "$round $req $line" >>"$TMP/$sc.rounds"
  log "round $round $sc: $(cut -d' ' -f1 <<<"$line") µs per request sampled ($(cut -d' ' -f2 <<<"$line") by /proc), $req requests"
}

# ROUNDS rounds of every scenario, in the listed order and then reversed, so that slow drift of
# the machine lands on every scenario alike; each scenario's profile is the sum of its rounds'
# samples over the sum of their requests.
read -r -a ORDER <<<"$SCENARIOS"
for ((round = 1; round <= ROUNDS; round++)); do
  for ((k = 0; k < ${#ORDER[@]}; k++)); do
    if ((round % 2)); then sc=${ORDER[k]}; else sc=${ORDER[${#ORDER[@]} - 1 - k]}; fi
    case $sc in
      P) profile P "$round" $G_PORT "$G_PID" /p "$T1" ;;
      J1) profile J1 "$round" $G_PORT "$G_PID" /j "$T1" ;;
      J10k) profile J10k "$round" $G_PORT "$G_PID" /j "$TP" ;;
      JU) profile JU "$round" $GU_PORT "$GU_PID" /j "$TP" ;;
    esac
  done
done
: >"$TMP/totals"
for sc in $SCENARIOS; do
  req=$(awk '{ t += $2 } END { print t }' "$TMP/$sc.rounds")
  cat "$TMP/$sc"-*.samples |
    awk -F'\t' -v n="$req" '{ s[$3] += $1 } END { for (k in s) printf "%.4f\t%s\n", s[k] / n / 1e3, k }' >"$TMP/$sc.syms"
  # scenario, µs sampled, kernel µs, µs by /proc (request-weighted), requests, each round's µs
  awk -v sc="$sc" '{ n += $2; s += $2 * $3; p += $2 * $4; k += $2 * $5; r = r (NR > 1 ? " / " : "") $3 }
    END { printf "%s %.2f %.2f %.2f %d %s\n", sc, s / n, k / n, p / n, n, r }' "$TMP/$sc.rounds" >>"$TMP/totals"
done

# diff A B: symbols by (B - A) µs per request, the largest differences either way first, and the
# sum of the rest
diff_table() {
  awk -F'\t' -v top="$TOP" '
    FNR == NR { a[$2] = $1; seen[$2] = 1; next }
    { b[$2] = $1; seen[$2] = 1 }
    END {
      for (s in seen) { d = b[s] - a[s]; printf "%.4f\t%.4f\t%.4f\t%s\n", d, a[s] + 0, b[s] + 0, s }
    }' "$TMP/$1.syms" "$TMP/$2.syms" |
    awk -F'\t' '{ printf "%.4f\t%s\n", ($1 < 0 ? -$1 : $1), $0 }' | sort -t$'\t' -k1,1gr | cut -f2- |
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
  echo "- Per scenario: \`wrk -t1 -c$CONNS\`, $WARMUP s warm-up, then \`perf record -e cpu-clock -F $FREQ\` of the gateway for $DURATION s; $ROUNDS rounds, the scenarios in the listed order and reversed in turn, samples and requests summed over them; requests and /proc CPU read at the window's start and end; the pool of $POOL tokens cached before the first round"
  echo
  echo "| scenario | µs per request, sampled | of it in the kernel | µs per request by /proc | requests sampled | sampled, each round |"
  echo "|---|---:|---:|---:|---:|---|"
  awk '{ r = $6; for (i = 7; i <= NF; i++) r = r " " $i; printf "| %s | %.2f | %.2f | %.2f | %d | %s |\n", $1, $2, $3, $4, $5, r }' "$TMP/totals"
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
