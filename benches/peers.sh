#!/usr/bin/env bash
# tokengate against the proxies of issue #6's reference table, side by side on one machine:
# HAProxy 2.6 with `jwt_verify` (RS256, iss, aud, exp, lifetime and scope ACLs, claims forwarded),
# HAProxy and nginx 1.22 as plain passthroughs, and bare pingora 0.9.
#
#   make bench-peers                           # or: bash benches/peers.sh
#   ROUNDS=3 DURATION=3 bash benches/peers.sh
#
# The method is benches/sidebyside.sh's (benches/pairs.sh): both proxies of a pair run at the same
# moment, pinned to core 0, each under its own wrk on core 1, so the ratio of their req/s and of
# their CPU per request is what one costs against the other, whatever the machine does meanwhile.
# HAProxy and nginx come from Debian's packages (installed with apt-get when missing; on a host
# booted with systemd the packages' own services start too: Debian's nginx site on port 80,
# HAProxy's default config listening nowhere), run with
# one thread each, as every tokengate gateway here does, and talk to the same upstream. Both add
# X-Forwarded-For and X-Forwarded-Proto, as tokengate does on every route.
#
# Pairs (A / B), the same requests to both sides:
#   cal     P / P                 two identical tokengate gateways: the method's own noise
#   B-P     bare pingora / P      N-P   nginx / P      HP-P  HAProxy passthrough / P
#   BL-P    bare pingora built like tokengate (fat LTO, one codegen unit) / P
#   B-J1    bare pingora / J1     B-J10k  bare pingora / J10k: the target "CPU within 10% of a
#                                 bare pingora passthrough", measured directly
#   H-J1    HAProxy JWT / J1      one token repeated (tokengate: a cache hit every time)
#   H-J10k  HAProxy JWT / J10k    10,000 tokens round-robin (tokengate: all cached)
#   H-JU    HAProxy JWT / JU      the same tokens, tokengate's cache disabled: both verify every
#                                 request, the like-for-like comparison of the verification itself
# HAProxy caches no verification, so its JWT side verifies an RS256 signature on every request in
# all three H pairs. Targets (issue #6): J at more than 1.5 x HAProxy's JWT req/s, and at most
# 1.10 x bare pingora's CPU per request. Bare pingora (B) is the issue's reference, pingora's
# default settings built with cargo's default release settings; BL shows what the build alone is
# worth.
#
# Before the rounds every JWT side must answer 200 to a valid token, and 401 both to the same
# token with its signature altered and to a validly signed token that lives longer than the
# route's 2 h: a peer config that skipped the signature or the claim rules would stop the run.
#
# Environment: ROUNDS [5], DURATION seconds per pair [4], WARMUP [1], CONNS wrk connections per
# side [25], POOL [10000], IDLE_WAIT [10; 0 = off], KEEP_TMP=1.
# Output: a markdown report on stdout and in target/bench/peers-report.md; raw rows in
# target/bench/peers-results.tsv.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

BENCH_NAME=peers
# shellcheck source=benches/lib.sh
source "$ROOT/benches/lib.sh"
# shellcheck source=benches/pairs.sh
source "$ROOT/benches/pairs.sh"
pairs_defaults 4 10

UP_PORT=18481
G1_PORT=18482
G2_PORT=18483
GU_PORT=18484
BARE_PORT=18485
HJ_PORT=18486
HP_PORT=18487
NG_PORT=18488
BL_PORT=18489
REPORT_DIR="$ROOT/target/bench"
REPORT="$REPORT_DIR/peers-report.md"
RESULTS_OUT="$REPORT_DIR/peers-results.tsv"
LUA="$ROOT/benches/load/bench.lua"

check_knobs ROUNDS DURATION WARMUP CONNS POOL
# Debian installs both in /usr/sbin, which a non-root user's PATH may lack.
HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
missing=()
[ -x "$HAPROXY" ] || missing+=(haproxy)
[ -x "$NGINX" ] || missing+=(nginx)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
((${#missing[@]} == 0)) || apt_install "${missing[@]}"
bench_setup
COMMAND="ROUNDS=$ROUNDS DURATION=$DURATION WARMUP=$WARMUP CONNS=$CONNS POOL=$POOL IDLE_WAIT=$IDLE_WAIT bash benches/peers.sh"
ports_free $UP_PORT $G1_PORT $G2_PORT $GU_PORT $BARE_PORT $HJ_PORT $HP_PORT $NG_PORT $BL_PORT \
  $((G1_PORT + 100)) $((G2_PORT + 100)) $((GU_PORT + 100))

REVISION=$(bench_revision)
STARTED=$(date -u '+%Y-%m-%d %H:%M UTC')
HAPROXY_VERSION=$("$HAPROXY" -v | awk 'NR == 1 { print $3 }')
# HAProxy verifies with the OpenSSL it runs on, tokengate with aws-lc: part of what differs.
HAPROXY_SSL=$("$HAPROXY" -vv | sed -n 's/^Running on OpenSSL version : //p' | head -n 1)
NGINX_VERSION=$("$NGINX" -v 2>&1 | sed 's|.*nginx/||')
build_release bare-lto

pairs_start "$EX"
# HAProxy verifies with the public half of the key mint_tokens signs with.
openssl pkey -in "$ROOT/tests/fixtures/rsa_a.pem" -pubout -out "$TMP/bench-pub.pem" 2>"$TMP/openssl.log" ||
  die "openssl could not derive the public key: $(cat "$TMP/openssl.log")"

pairs_proxies "$BIN" "$BARE_BIN"
bare bare-lto "$BARE_LTO_BIN" "$BL_PORT"
BL_PID=$LAST_PID

sed -e "s|@JWT_PORT@|$HJ_PORT|" -e "s|@PASS_PORT@|$HP_PORT|" -e "s|@PUBKEY@|$TMP/bench-pub.pem|" \
  -e "s|@UPSTREAM@|127.0.0.1:$UP_PORT|" "$ROOT/benches/load/haproxy.cfg.in" >"$TMP/haproxy.cfg"
"$HAPROXY" -c -q -f "$TMP/haproxy.cfg" >"$TMP/haproxy-check.log" 2>&1 ||
  die "haproxy -c failed: $(cat "$TMP/haproxy-check.log")"
start_bg haproxy "${PIN_GW[@]}" "$HAPROXY" -db -f "$TMP/haproxy.cfg"
HAP_PID=$LAST_PID
wait_http "http://127.0.0.1:$HP_PORT/p" haproxy "$HAP_PID"

mkdir -p "$TMP/nginx"
sed -e "s|@DIR@|$TMP/nginx|g" -e "s|@PORT@|$NG_PORT|" -e "s|@UPSTREAM@|127.0.0.1:$UP_PORT|" \
  "$ROOT/benches/load/nginx.conf.in" >"$TMP/nginx.conf"
"$NGINX" -t -q -c "$TMP/nginx.conf" -p "$TMP/nginx" >"$TMP/nginx-check.log" 2>&1 ||
  die "nginx -t failed: $(cat "$TMP/nginx-check.log")"
start_bg nginx "${PIN_GW[@]}" "$NGINX" -c "$TMP/nginx.conf" -p "$TMP/nginx"
NG_PID=$LAST_PID
wait_http "http://127.0.0.1:$NG_PORT/p" nginx "$NG_PID"

expect_200 "$G1_PORT/j" "$G2_PORT/j" "$GU_PORT/j" "$HJ_PORT/j" "$G1_PORT/p" "$BARE_PORT/p" "$HP_PORT/p" "$NG_PORT/p" "$BL_PORT/p"

pairs_init
# J10k measures cache hits: verify the whole pool on g2 once before the rounds.
fill_cache $((G2_PORT + 100)) $G2_PORT "$TP" "$POOL"
log "g2 holds all $POOL tokens"
# Every JWT side refuses T1 with its signature altered, and a token signed by the same key whose
# exp - iat is 2 h + 1 s, over the route's max_token_lifetime (minted after the fill: g2 caches
# its verification before the route refuses it).
"$EX/mint_tokens" --count 1 --out "$TMP/long-lived.txt" --lifetime 7201 >/dev/null
T1_TEXT=$(cat "$T1")
for token in "${T1_TEXT%?????}AAAAA" "$(cat "$TMP/long-lived.txt")"; do
  for url in "$G2_PORT/j" "$GU_PORT/j" "$HJ_PORT/j"; do expect_status 401 "http://127.0.0.1:$url" "$token"; done
done
log "rounds: $ROUNDS x (cal B-P BL-P B-J1 B-J10k N-P HP-P H-J1 H-J10k H-JU), ${DURATION}s each after ${WARMUP}s warm-up, wrk -t1 -c$CONNS per side"
for ((round = 1; round <= ROUNDS; round++)); do
  pair cal "$round" "$G1_PID" $G1_PORT /p "$T1" "$G2_PID" $G2_PORT /p "$T1"
  pair B-P "$round" "$BARE_PID" $BARE_PORT /p "$T1" "$G1_PID" $G1_PORT /p "$T1"
  pair BL-P "$round" "$BL_PID" $BL_PORT /p "$T1" "$G1_PID" $G1_PORT /p "$T1"
  pair B-J1 "$round" "$BARE_PID" $BARE_PORT /p "$T1" "$G2_PID" $G2_PORT /j "$T1"
  pair B-J10k "$round" "$BARE_PID" $BARE_PORT /p "$TP" "$G2_PID" $G2_PORT /j "$TP"
  pair N-P "$round" "$NG_PID" $NG_PORT /p "$T1" "$G1_PID" $G1_PORT /p "$T1"
  pair HP-P "$round" "$HAP_PID" $HP_PORT /p "$T1" "$G1_PID" $G1_PORT /p "$T1"
  pair H-J1 "$round" "$HAP_PID" $HJ_PORT /j "$T1" "$G2_PID" $G2_PORT /j "$T1"
  pair H-J10k "$round" "$HAP_PID" $HJ_PORT /j "$TP" "$G2_PID" $G2_PORT /j "$TP"
  pair H-JU "$round" "$HAP_PID" $HJ_PORT /j "$TP" "$GU_PID" $GU_PORT /j "$TP"
done

mkdir -p "$REPORT_DIR"
cp "$PAIR_RESULTS" "$RESULTS_OUT"
NON2XX=$(pair_non2xx)
{
  echo "## tokengate against HAProxy, nginx and bare pingora, side by side"
  echo
  echo "- Command: \`$COMMAND\` (revision $REVISION, started $STARTED)"
  echo "- Peers: HAProxy $HAPROXY_VERSION (\`nbthread 1\`, on $HAPROXY_SSL), nginx $NGINX_VERSION (one worker), bare pingora 0.9 (\`examples/bare_pingora.rs\`, built with cargo's default release settings, and as BL with tokengate's fat LTO), all from this machine's packages and this checkout"
  pairs_report_header
  echo
  pair_table_header
  pair_row cal "P / P (calibration)" "1.000 within noise"
  pair_row B-P "bare pingora / P" "-"
  pair_row BL-P "bare pingora, fat LTO / P" "-"
  pair_row B-J1 "bare pingora / J1" "CPU <= 1.10" "cpu <= 1.10"
  pair_row B-J10k "bare pingora / J10k" "CPU <= 1.10" "cpu <= 1.10"
  pair_row N-P "nginx / P" "-"
  pair_row HP-P "HAProxy passthrough / P" "-"
  pair_row H-J1 "HAProxy JWT / J1" "req/s > 1.5" "rps > 1.5"
  pair_row H-J10k "HAProxy JWT / J10k" "req/s > 1.5" "rps > 1.5"
  pair_row H-JU "HAProxy JWT / JU (both verify every request)" "-"
  echo
  echo "Non-2xx responses in the measurements: $NON2XX; socket errors and warm-up non-2xx over every wrk run: $ERRORS (target 0 and 0). Calibration spread (min-max B/A req/s of P / P): $(pair_spread cal 6)."
} | tee "$REPORT"
log "report: $REPORT; raw rows: $RESULTS_OUT"
