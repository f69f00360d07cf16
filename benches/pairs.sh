# Shared by benches/sidebyside.sh, benches/revisions.sh and benches/peers.sh (sourced after
# benches/lib.sh, not run), and its helpers by benches/instructions.sh and benches/profile.sh:
# measuring two proxies at the same moment. Each side of a pair is a
# proxy process pinned to core 0 under its own wrk on core 1, so whatever the machine does during
# the measurement it does to both, and B/A of their CPU per request is what one costs against the
# other.
# The caller calls pairs_defaults, sets LUA and UP_PORT, calls pairs_start once its release
# binaries are built, and pairs_init before the first pair.

# pairs_defaults DURATION IDLE_WAIT: the knobs every side-by-side script reads from the
# environment, with the caller's defaults for DURATION and IDLE_WAIT (ROUNDS 5, WARMUP 1, CONNS 25,
# POOL 10000 for all), the access log off, and the cargo to build with.
pairs_defaults() {
  ROUNDS=${ROUNDS:-5}
  DURATION=${DURATION:-$1}
  WARMUP=${WARMUP:-1}
  CONNS=${CONNS:-25}
  POOL=${POOL:-10000}
  IDLE_WAIT=${IDLE_WAIT:-$2}
  ACCESS_LOG=false
  CARGO=${CARGO:-cargo}
}

# pairs_start EXAMPLES_DIR: mints POOL tokens (T1: the first alone, TP: all of them; the issuer's
# key set in $TMP/jwks.json) and starts the upstream on UP_PORT.
pairs_start() {
  "$1/mint_tokens" --count "$POOL" --out "$TMP/tokens-pool.txt" --jwks "$TMP/jwks.json" --lifetime 3600
  head -n 1 "$TMP/tokens-pool.txt" >"$TMP/tokens-1.txt"
  T1="$TMP/tokens-1.txt"
  TP="$TMP/tokens-pool.txt"
  start_bg upstream "${PIN_LOAD[@]}" "$1/bench_upstream" "127.0.0.1:$UP_PORT"
  wait_http "http://127.0.0.1:$UP_PORT/" upstream "$LAST_PID"
}

# expect_200 PORT/PATH...: each answers 200 to a request with T1's token, or the run stops.
expect_200() {
  local url token
  token=$(cat "$T1")
  for url in "$@"; do expect_status 200 "http://127.0.0.1:$url" "$token"; done
}

# gateway NAME BIN PORT SERVER_LINES [NAME=VALUE...]: checks and starts one gateway binary on
# PORT (admin on PORT + 100) with the benchmark config, and with the NAME=VALUE settings in its
# environment only (an allocator setting, which the process reads only at start, can so differ
# between the two sides of a pair); its pid lands in LAST_PID.
gateway() {
  local name=$1 bin=$2 port=$3 lines=$4
  shift 4
  make_conf "$TMP/$name.toml" "$port" $((port + 100)) "$UP_PORT" "$lines"
  "$bin" check --config "$TMP/$name.toml" >"$TMP/check.log" 2>&1 || die "tokengate check failed: $(cat "$TMP/check.log")"
  start_bg "$name" "${PIN_GW[@]}" env "$@" "$bin" run --config "$TMP/$name.toml"
  wait_http "http://127.0.0.1:$((port + 100))/readyz" "$name" "$LAST_PID"
  local setting
  for setting in "$@"; do
    # Not a pipe: under pipefail, grep -q leaving early could fail a tr still writing.
    grep -qxF -- "$setting" < <(tr '\0' '\n' <"/proc/$LAST_PID/environ") || die "$name's environment lacks $setting"
  done
}

# env_settings KNOB VALUE: checks that VALUE (a knob's value) is a space-separated list of
# NAME=VALUE environment settings and puts them, one per element, in ENV_SETTINGS.
env_settings() {
  local s
  read -r -a ENV_SETTINGS <<<"$2"
  for s in "${ENV_SETTINGS[@]}"; do
    [[ $s =~ ^[A-Za-z_][A-Za-z0-9_]*=[^[:space:]]*$ ]] || die "$1 must be NAME=VALUE settings separated by spaces, not '$s'"
  done
}

# pairs_proxies BIN BARE_BIN: the proxies of benches/sidebyside.sh and benches/peers.sh, on the
# caller's G1_PORT, G2_PORT, GU_PORT and BARE_PORT: gateways g1 and g2 with the token cache (P and
# J1 / J10k), gu without it (JU), and bare pingora; their pids in G1_PID, G2_PID, GU_PID and
# BARE_PID.
pairs_proxies() {
  gateway g1 "$1" "$G1_PORT" "token_cache_capacity = 100000"
  G1_PID=$LAST_PID
  gateway g2 "$1" "$G2_PORT" "token_cache_capacity = 100000"
  G2_PID=$LAST_PID
  gateway gu "$1" "$GU_PORT" "token_cache_capacity = 0"
  GU_PID=$LAST_PID
  bare bare "$2" "$BARE_PORT"
  BARE_PID=$LAST_PID
}

# single_proxies BIN BARE_BIN: the proxies of benches/instructions.sh and benches/syscalls.sh, which
# measure one scenario at a time, on the caller's G_PORT, GU_PORT and BARE_PORT: gateway g with the
# token cache (P, J1, JN), gu without it (JU) and bare pingora (B), each answering 200 before it is
# measured; their pids in G_PID, GU_PID and BARE_PID.
single_proxies() {
  gateway g "$1" "$G_PORT" "token_cache_capacity = 100000"
  G_PID=$LAST_PID
  gateway gu "$1" "$GU_PORT" "token_cache_capacity = 0"
  GU_PID=$LAST_PID
  bare bare "$2" "$BARE_PORT"
  BARE_PID=$LAST_PID
  expect_200 "$G_PORT/p" "$G_PORT/j" "$GU_PORT/j" "$BARE_PORT/p"
}

# bare NAME BIN PORT: starts a bare pingora binary on PORT in front of the upstream; its pid lands
# in LAST_PID.
bare() {
  start_bg "$1" "${PIN_GW[@]}" "$2" "127.0.0.1:$3" "127.0.0.1:$UP_PORT"
  wait_http "http://127.0.0.1:$3/p" "$1" "$LAST_PID"
}

# wrk_argv SECONDS PORT PATH TOKENS: in WRK_ARGV, the command of one wrk run (pinned, CONNS
# connections, the bench script on PATH with TOKENS), for a caller that runs it itself.
wrk_argv() {
  WRK_ARGV=(env BENCH_PATH="$3" BENCH_TOKENS="$4" "${PIN_LOAD[@]}" wrk -t1 -c"$CONNS" -d"$1s" -s "$LUA" "http://127.0.0.1:$2")
}

# wrk_bg OUT SECONDS PORT PATH TOKENS: one wrk in the background, its pid appended to WRKS.
WRKS=()
wrk_bg() {
  wrk_argv "$2" "$3" "$4" "$5"
  "${WRK_ARGV[@]}" >"$1" 2>&1 &
  WRKS+=($!)
  PIDS+=($!) # stopped by cleanup if the script dies while it runs
}
wait_wrks() {
  local pid w keep=()
  for pid in "${WRKS[@]}"; do wait "$pid" || die "wrk failed (exit $?)"; done
  # Reaped now, so their pids may be reused: cleanup must not signal them at exit.
  for pid in "${PIDS[@]}"; do
    for w in "${WRKS[@]}"; do [ "$pid" != "$w" ] || continue 2; done
    keep+=("$pid")
  done
  PIDS=("${keep[@]}")
  WRKS=()
}
# the RESULT field NAME of FILE, or die naming the file
must_field() {
  local v
  v=$(field "$1" "$2")
  [ -n "$v" ] || die "no $1 in a RESULT line of $2: $(tail -n 3 "$2")"
  echo "$v"
}
# count_errors FILE [FIELD...]: adds the socket errors (and each FIELD) of FILE's RESULT to ERRORS.
count_errors() {
  local file=$1 f v
  shift
  for f in errors "$@"; do
    v=$(must_field "$f" "$file")
    ERRORS=$((ERRORS + v))
  done
}

# pairs_init: start the results table (one row per pair and round) in $PAIR_RESULTS.
pairs_init() {
  PAIR_RESULTS="$TMP/results.tsv"
  ERRORS=0 # socket errors and warm-up non-2xx, over every wrk run
  printf 'pair\tround\ta_us_per_req\tb_us_per_req\tb_over_a_cpu\tb_over_a_rps\ta_non2xx\tb_non2xx\n' >"$PAIR_RESULTS"
}

# pair NAME ROUND A_PID A_PORT A_PATH A_TOKENS B_PID B_PORT B_PATH B_TOKENS: one measurement of
# both sides at once, appended to the results table.
pair() {
  local name=$1 round=$2 a_pid=$3 b_pid=$7 phase
  local -a a_load=("$4" "$5" "$6") b_load=("$8" "$9" "${10}")
  wait_quiet
  for phase in warm wrk; do
    local secs=$DURATION
    [ $phase = warm ] && secs=$WARMUP
    if [ $phase = wrk ]; then
      local a0 b0
      a0=$(cpu_ticks "$a_pid")
      b0=$(cpu_ticks "$b_pid")
    fi
    # Odd rounds start A's wrk first, even rounds B's: the order must not be a bias.
    if ((round % 2)); then
      wrk_bg "$TMP/$phase-a.out" "$secs" "${a_load[@]}"
      wrk_bg "$TMP/$phase-b.out" "$secs" "${b_load[@]}"
    else
      wrk_bg "$TMP/$phase-b.out" "$secs" "${b_load[@]}"
      wrk_bg "$TMP/$phase-a.out" "$secs" "${a_load[@]}"
    fi
    wait_wrks
    if [ $phase = warm ]; then
      count_errors "$TMP/warm-a.out" non2xx
      count_errors "$TMP/warm-b.out" non2xx
    fi
  done
  local a1 b1 ra rb na nb
  a1=$(cpu_ticks "$a_pid")
  b1=$(cpu_ticks "$b_pid")
  # One assignment per field: a failing `$(...)` stops the script only when it is the whole
  # right-hand side of an assignment, not inside arithmetic or an argument list.
  ra=$(must_field requests "$TMP/wrk-a.out")
  rb=$(must_field requests "$TMP/wrk-b.out")
  na=$(must_field non2xx "$TMP/wrk-a.out")
  nb=$(must_field non2xx "$TMP/wrk-b.out")
  count_errors "$TMP/wrk-a.out"
  count_errors "$TMP/wrk-b.out"
  ((ra > 0 && rb > 0)) || die "$name: no requests completed"
  awk -v n="$name" -v r="$round" -v ra="$ra" -v rb="$rb" -v ta="$((a1 - a0))" -v tb="$((b1 - b0))" -v hz="$CLK_TCK" \
    -v na="$na" -v nb="$nb" \
    'BEGIN { ca = ta * 1e6 / hz / ra; cb = tb * 1e6 / hz / rb
             printf "%s\t%s\t%.2f\t%.2f\t%.4f\t%.4f\t%d\t%d\n", n, r, ca, cb, cb / ca, rb / ra, na, nb }' >>"$PAIR_RESULTS"
  tail -n 1 "$PAIR_RESULTS" | awk -F'\t' -v b="$BENCH_NAME" '{ printf "[%s] round %s %-7s A %6.1f us/req  B %6.1f us/req  B/A cpu %.3f  B/A req/s %.3f  non2xx %d %d\n", b, $2, $1, $3, $4, $5, $6, $7, $8 }' >&2
}

# fill_cache ADMIN_PORT PORT TOKENS COUNT: sends the tokens until the gateway on PORT caches COUNT
# of them (at most FILL_WAIT seconds, default 60), so that a J10k measurement is all cache hits
# from its first round.
fill_cache() {
  local limit=${FILL_WAIT:-60}
  local deadline=$((SECONDS + limit))
  until [ "$(curl -fsS --max-time 2 "http://127.0.0.1:$1/metrics" |
    awk '$1 == "tokengate_token_cache_entries" { print $2 }')" = "$4" ]; do
    ((SECONDS < deadline)) || die "127.0.0.1:$2 did not cache all $4 tokens within $limit s"
    wrk_bg "$TMP/fill.out" 2 "$2" /j "$3"
    wait_wrks
  done
}

# pair_median NAME COLUMN: the median over the rounds of one pair (columns as in pairs_init).
pair_median() { median "$PAIR_RESULTS" "$1" "$2"; }
# pair_spread NAME COLUMN: min-max of COLUMN over the rounds of one pair.
pair_spread() {
  awk -F'\t' -v n="$1" -v c="$2" '$1 == n { if (mn == "" || $c < mn) mn = $c; if ($c > mx) mx = $c }
    END { printf "%.3f-%.3f", mn, mx }' "$PAIR_RESULTS"
}
# pair_non2xx: non-2xx responses over every measurement in the table.
pair_non2xx() { awk -F'\t' 'NR > 1 { t += $7 + $8 } END { print t + 0 }' "$PAIR_RESULTS"; }
# pair_table_header, then pair_row PAIR LABEL TARGET_TEXT [CONDITION] per pair: the report table
# of benches/sidebyside.sh and benches/peers.sh. A row gives a pair's medians over its rounds (the
# rounds' range in brackets) and, with CONDITION (an awk expression over cpu, the median B/A CPU
# per request, and rps, the median B/A req/s), PASS or MISS.
pair_table_header() {
  echo "| pair (A / B) | A µs/req | B µs/req | B/A CPU per request (rounds) | B/A req/s (rounds) | target | result |"
  echo "|---|---:|---:|---:|---:|---|---|"
}
pair_row() {
  local cpu rps result=-
  cpu=$(pair_median "$1" 5)
  rps=$(pair_median "$1" 6)
  [ -z "${4:-}" ] || result=$(awk -v cpu="$cpu" -v rps="$rps" "BEGIN { print (($4) ? \"PASS\" : \"MISS\") }")
  printf '| %s | %.1f | %.1f | %.4f (%s) | %.4f (%s) | %s | %s |\n' "$2" "$(pair_median "$1" 3)" \
    "$(pair_median "$1" 4)" "$cpu" "$(pair_spread "$1" 5)" "$rps" "$(pair_spread "$1" 6)" "$3" "$result"
}
# pairs_report_header: the machine and method lines every side-by-side report starts with.
pairs_report_header() {
  echo "- Machine: $(nproc) CPUs, $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo); $PINNING"
  echo "- Each pair: two proxy processes on core 0 at once, each under \`wrk -t1 -c$CONNS -d${DURATION}s\`; CPU per request from /proc/PID/stat; medians over $ROUNDS rounds"
}
