# Shared by the benchmark scripts in benches/ (sourced, not run): tools, pinning, process
# bookkeeping, waiting, /proc readings and the gateway config template. The caller sets
# BENCH_NAME (log prefix), ROOT and CARGO before sourcing, and IDLE_WAIT and ACCESS_LOG before
# calling wait_quiet and make_conf; bench_setup does the side effects, everything else here only
# defines functions.

log() { echo "[$BENCH_NAME] $*" >&2; }
die() {
  log "error: $*"
  exit 1
}

# require_positive VAR...: each must hold a positive integer.
require_positive() {
  local v
  for v in "$@"; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer (got '${!v}')"
  done
}

# check_knobs VAR...: each VAR a positive integer, and the knobs every script shares in range:
# IDLE_WAIT 0..600, ROUNDS <= 50, DURATION <= 600 (a typo must not start an hour-long run).
check_knobs() {
  require_positive "$@"
  [[ $IDLE_WAIT =~ ^[0-9]+$ ]] && ((IDLE_WAIT <= 600)) || die "IDLE_WAIT must be 0..600 (got '$IDLE_WAIT')"
  ((ROUNDS <= 50 && DURATION <= 600)) || die "ROUNDS <= 50 and DURATION <= 600, please"
}

# ports_free PORT...: die unless every PORT on 127.0.0.1 is free.
ports_free() {
  local p
  for p in "$@"; do
    ! port_busy "$p" || die "127.0.0.1:$p is already in use"
  done
}

# ---------------------------------------------------------------------------------------------
# Tools: wrk (and curl) are installed with apt-get when missing; taskset comes with util-linux,
# cmake is pingora's native build dependency.

SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
apt_install() {
  log "installing $* with apt-get"
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# bench_setup: installs what is missing, decides the pinning, sets the gateway's allocator
# setting, makes the work directory TMP and arms the cleanup. Every process started with start_bg is stopped on exit, and so is a wrk whose
# pid is in WRK_PID.
bench_setup() {
  local missing=() t
  command -v wrk >/dev/null 2>&1 || missing+=(wrk)
  command -v curl >/dev/null 2>&1 || missing+=(curl)
  command -v taskset >/dev/null 2>&1 && command -v flock >/dev/null 2>&1 || missing+=(util-linux)
  command -v cmake >/dev/null 2>&1 || missing+=(cmake)
  ((${#missing[@]} == 0)) || apt_install "${missing[@]}"
  for t in wrk curl taskset flock getconf awk sed sort; do
    command -v "$t" >/dev/null 2>&1 || die "$t not found"
  done
  command -v "$CARGO" >/dev/null 2>&1 || die "cargo not found: install a Rust toolchain (rustup)"

  # Every gateway runs with the allocator setting its systemd unit ships
  # (systemd/tokengate.service: mimalloc retains 16 emptied pages per size class);
  # MIMALLOC_PAGE_FULL_RETAIN=2 measures mimalloc's default. Bare pingora uses the system
  # allocator, which ignores it.
  export MIMALLOC_PAGE_FULL_RETAIN=${MIMALLOC_PAGE_FULL_RETAIN:-16}

  NPROC=$(nproc)
  CLK_TCK=$(getconf CLK_TCK)
  if ((NPROC >= 2)); then
    PIN_GW=(taskset -c 0)
    PIN_LOAD=(taskset -c 1)
    PINNING="proxies on core 0; wrk and upstream on core 1 (taskset)"
  else
    PIN_GW=()
    PIN_LOAD=()
    PINNING="NOT pinned: only $NPROC CPU (proxies, wrk and upstream share it)"
    log "warning: $PINNING"
  fi

  # One benchmark at a time: two would share core 0 and each would measure the other.
  exec 9>"${TMPDIR:-/tmp}/tokengate-bench.lock"
  flock -n 9 || die "another tokengate benchmark is running (lock ${TMPDIR:-/tmp}/tokengate-bench.lock)"

  TMP=$(mktemp -d "${TMPDIR:-/tmp}/tokengate-$BENCH_NAME.XXXXXX")
  PIDS=()
  WRK_PID=""
  LAST_PID=""
  trap cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}

# build_release [bare-lto]: the release binaries the load scripts run. tokengate and the bench
# tools with the shipped release profile (Cargo.toml: fat LTO, one codegen unit), and bare pingora
# with cargo's default release settings (profile release-default), the reference issue #6 states
# ("bare pingora 0.9, default settings"). With bare-lto, bare pingora also with tokengate's profile
# (BARE_LTO_BIN), so that a report can show the two built alike. Sets BIN, EX and BARE_BIN.
build_release() {
  local tools=(--bin tokengate --example bench_upstream --example mint_tokens)
  [ "${1:-}" != bare-lto ] || tools+=(--example bare_pingora)
  log "building (release): ${tools[*]}; bare_pingora with cargo's default release settings"
  "$CARGO" build --release "${tools[@]}"
  "$CARGO" build --profile release-default --example bare_pingora
  BIN="$ROOT/target/release/tokengate"
  EX="$ROOT/target/release/examples"
  BARE_BIN="$ROOT/target/release-default/examples/bare_pingora"
  # Only when built now: target/release may hold a bare pingora from an older build.
  [ "${1:-}" != bare-lto ] || BARE_LTO_BIN="$EX/bare_pingora"
}

# use_gw_bin: after build_release, when GW_BIN names another tokengate build, BIN is that one and
# REVISION (the tree's, which the scripts and tools come from) says so too: the scripts that
# measure one gateway at a time can then measure any build. The caller has made a relative GW_BIN
# absolute before its `cd "$ROOT"`.
use_gw_bin() {
  [ -n "${GW_BIN:-}" ] || return 0
  [ -x "$GW_BIN" ] || die "GW_BIN $GW_BIN is not an executable"
  BIN=$GW_BIN
  REVISION="$REVISION; the gateway measured is GW_BIN $GW_BIN"
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  [ -z "$WRK_PID" ] || kill -TERM "$WRK_PID" 2>/dev/null || true
  local pid
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}" $WRK_PID; do
    local i
    for ((i = 0; i < 50; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    ! kill -0 "$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if ((rc != 0)); then
    local f
    for f in "$TMP"/*.log; do
      [ -e "$f" ] || continue
      log "---- last lines of $(basename "$f")"
      tail -n 15 "$f" >&2 || true
    done
  fi
  if [ "${KEEP_TMP:-0}" = 1 ]; then
    log "work directory kept: $TMP"
  else
    rm -rf "$TMP"
  fi
  exit "$rc"
}
# start_bg NAME CMD... : runs CMD in the background, output in $TMP/NAME.log; pid in LAST_PID.
start_bg() {
  local name=$1
  shift
  "$@" >"$TMP/$name.log" 2>&1 &
  LAST_PID=$!
  PIDS+=("$LAST_PID")
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# wait_http URL WHAT PID : until URL answers 2xx, at most STARTUP_WAIT seconds (default 10), and
# only while PID lives.
wait_http() {
  local url=$1 what=$2 pid=$3 limit=${STARTUP_WAIT:-10}
  local deadline=$((SECONDS + limit))
  until curl -fsS -o /dev/null --max-time 1 "$url" 2>/dev/null; do
    kill -0 "$pid" 2>/dev/null || die "$what exited while starting (log: $TMP/$what.log)"
    ((SECONDS < deadline)) || die "$what did not answer $url within $limit s"
    sleep 0.1
  done
}

# utime + stime of the whole process (all threads), in clock ticks: /proc/PID/stat fields 14, 15.
# Field 2 (comm) may contain spaces, so count from after its closing parenthesis.
cpu_ticks() { sed 's/^.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; }
# busy and total jiffies of CPU N from /proc/stat
core_jiffies() {
  awk -v c="cpu$1" '$1 == c { t = 0; for (i = 2; i <= NF; i++) t += $i; print t - $5 - $6, t }' /proc/stat
}

# wait_quiet: before a measurement, wait (at most IDLE_WAIT seconds) until neither core is more
# than 10% busy while the benchmark is idle, so that other work on the machine does not land in
# the figures. Proceeds anyway after the deadline; such measurements show up as disturbed.
wait_quiet() {
  ((IDLE_WAIT > 0)) || return 0
  local deadline=$((SECONDS + IDLE_WAIT)) a0 a1 said=0
  while :; do
    read -r -a a0 <<<"$(core_jiffies 0) $(core_jiffies 1)"
    sleep 0.5
    read -r -a a1 <<<"$(core_jiffies 0) $(core_jiffies 1)"
    if awk -v b0="$((a1[0] - a0[0]))" -v t0="$((a1[1] - a0[1]))" -v b1="$((a1[2] - a0[2]))" -v t1="$((a1[3] - a0[3]))" \
      'BEGIN { exit !((t0 == 0 || b0 <= 0.1 * t0) && (t1 == 0 || b1 <= 0.1 * t1)) }'; then
      return 0
    fi
    if ((SECONDS >= deadline)); then
      log "other load did not settle within ${IDLE_WAIT}s; measuring anyway"
      return 0
    fi
    ((said)) || log "other processes are using the CPUs; waiting up to ${IDLE_WAIT}s for them to settle"
    said=1
  done
}

# make_conf OUT LISTEN_PORT ADMIN_PORT UPSTREAM_PORT SERVER_LINES: the gateway config from
# benches/load/gateway.toml.in. SERVER_LINES (newline-separated [server] settings) replace the
# @SERVER_LINES@ line; when they set `threads`, the template's `threads = 1` goes.
make_conf() {
  local drop_threads=0
  grep -q '^threads' <<<"$5" && drop_threads=1
  sed -e "s|@LISTEN@|127.0.0.1:$2|" \
    -e "s|@ADMIN@|127.0.0.1:$3|" \
    -e "s|@UPGRADE_SOCK@|$TMP/upgrade-$2.sock|" \
    -e "s|@ACCESS_LOG@|$ACCESS_LOG|" \
    -e "s|@JWKS@|$TMP/jwks.json|" \
    -e "s|@UPSTREAM@|127.0.0.1:$4|" \
    "$ROOT/benches/load/gateway.toml.in" |
    awk -v lines="$5" -v drop="$drop_threads" '
      $0 == "@SERVER_LINES@" { print lines; next }
      drop && $0 == "threads = 1" { next }
      { print }' >"$1"
}

# expect_status WANT URL [TOKEN]: URL answers WANT (with TOKEN as the bearer token, if given), or
# the run stops.
expect_status() {
  local want=$1 url=$2 token=${3:-} got
  if [ -n "$token" ]; then
    got=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -H "Authorization: Bearer $token" "$url")
  else
    got=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$url")
  fi
  [ "$got" = "$want" ] || die "sanity: $url answered $got, expected $want"
}

# tree_revision PATH...: HEAD's short hash, with " + uncommitted changes" when the working tree
# differs from it under any PATH (git pathspecs; untracked files count).
tree_revision() {
  local rev
  rev=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
  [ -z "$(git -C "$ROOT" status --porcelain -- "$@" 2>/dev/null)" ] || rev+=" + uncommitted changes"
  echo "$rev"
}

# bench_revision: tree_revision of what a benchmark run depends on: the gateway's code and build,
# and the scripts and configs under benches/ (not the saved reports). Read it when the run starts:
# a commit made during the run must not relabel it.
bench_revision() { tree_revision src examples benches ':!benches/results' build.rs Cargo.toml Cargo.lock; }

# field NAME FILE: the value of NAME=... on the RESULT line that benches/load/bench.lua prints.
field() { grep '^RESULT ' "$2" | tr ' ' '\n' | awk -F= -v k="$1" '$1 == k { print $2 }'; }
# calc FORMAT EXPR: EXPR evaluated by awk, printed with FORMAT.
calc() { awk "BEGIN { printf \"$1\", $2 }"; }
# verdict CONDITION (awk expression): PASS or MISS
verdict() { awk "BEGIN { print (($1) ? \"PASS\" : \"MISS\") }"; }

# median FILE SCENARIO COLUMN: median of COLUMN over the rows of SCENARIO (column 1) in a TSV
# with a header line.
median() {
  awk -F'\t' -v s="$2" -v c="$3" 'NR > 1 && $1 == s { print $c }' "$1" | sort -g |
    awk '{ a[NR] = $1 } END { if (NR == 0) print "nan"; else if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
