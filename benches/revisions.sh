#!/usr/bin/env bash
# Two revisions of tokengate side by side: what a change costs or saves, per scenario.
#
#   BASE=886acad make bench-revisions          # or: BASE=886acad bash benches/revisions.sh
#   BASE=HEAD~1 ROUNDS=5 bash benches/revisions.sh
#   BASE=HEAD BASE_ENV="MIMALLOC_PAGE_FULL_RETAIN=2" bash benches/revisions.sh   # one binary, two environments
#
# A change of a microsecond or two per request is below what the alternating load.sh resolves on
# a drifting machine (its calibration spans 0.92-1.02). Here the gateway built from BASE and the
# one built from the working tree run at the same moment, sharing core 0, each under its own wrk
# on core 1 (the method of benches/sidebyside.sh, in benches/pairs.sh), for each scenario.
# Two references for "no difference": a calibration pair of two working-tree gateways, and the
# scenarios a change cannot touch, measured on the same two processes (P, for a change to
# verification). Two processes of one binary can differ by a few % (the calibration pair has
# shown medians from 0.96 to 0.99), so an effect is read against both: the last column divides
# each scenario's ratio by P's.
#
# BASE is exported with `git archive` into the work directory (no worktree or other repository
# state to clean up) and built into a target directory of its own, `target/revisions-base`, so
# after the first run only the tokengate crate is compiled for each side (with the release
# profile's fat LTO, each side still pays a whole-program link of a few minutes). Not into this
# checkout's `target`: cargo fingerprints a workspace's own package by its path relative to the
# workspace root, so BASE's tokengate and the working tree's share one fingerprint there, and
# `git archive` gives BASE's files their commit time. Built that way (until 2026-12-03), the
# second build was found up to date without compiling and both sides ran the same binary, except
# when BASE and the working tree depended on different crates. The two binaries are now compared:
# identical binaries from different sources stop the run.
#
# Both sides are built with the working tree's `[profile.*]` sections, so that a pair measures the
# code and not the build: a BASE from before 50413b8 (fat LTO) would otherwise be compiled with
# cargo's defaults and look about 10% slower. BASE_PROFILE=own builds BASE with its own profiles
# instead, which is how a change to the profiles themselves is measured.
#
# BASE_ENV and HEAD_ENV give BASE's and the working tree's gateways settings of their own in their
# environment (on top of bench_setup's): with BASE=HEAD and a clean tree both sides run the same
# binary, so a pair measures a setting the process reads only from its environment at start, such
# as an allocator option. The calibration pair runs with HEAD_ENV.
#
# Pairs (A / B = BASE / working tree, the same requests to both):
#   cal   working tree / working tree, on P
#   P     GET /p (auth = "none", token carried)      J1   GET /j, one cached token
#   J10k  GET /j, 10,000 cached tokens round-robin   JU   GET /j, the same tokens, cache disabled
#
# Environment: BASE (required: a commit, tag or branch), BASE_PROFILE [tree; own], BASE_ENV and
# HEAD_ENV [none; NAME=VALUE settings separated by spaces], ROUNDS [5],
# DURATION seconds [4], WARMUP [1], CONNS per side [25], POOL [10000], IDLE_WAIT [10; 0 = off],
# KEEP_TMP=1.
# Output: a markdown report on stdout and in target/bench/revisions-report.md; raw rows in
# target/bench/revisions-results.tsv.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

BASE=${BASE:-}
BASE_PROFILE=${BASE_PROFILE:-tree}
BASE_ENV=${BASE_ENV:-}
HEAD_ENV=${HEAD_ENV:-}
BENCH_NAME=revisions
# shellcheck source=benches/lib.sh
source "$ROOT/benches/lib.sh"
# shellcheck source=benches/pairs.sh
source "$ROOT/benches/pairs.sh"
pairs_defaults 4 10

UP_PORT=18191
BASE_PORT=18192
HEAD_PORT=18193
HEAD2_PORT=18194
BASEU_PORT=18195
HEADU_PORT=18196
REPORT_DIR="$ROOT/target/bench"
REPORT="$REPORT_DIR/revisions-report.md"
RESULTS_OUT="$REPORT_DIR/revisions-results.tsv"
LUA="$ROOT/benches/load/bench.lua"

[ -n "$BASE" ] || die "set BASE to the revision to compare against, e.g. BASE=HEAD~1"
BASE_REV=$(git -C "$ROOT" rev-parse --verify --quiet "$BASE^{commit}") || die "BASE '$BASE' is not a commit"
check_knobs ROUNDS DURATION WARMUP CONNS POOL
case $BASE_PROFILE in tree | own) ;; *) die "BASE_PROFILE must be tree or own, not '$BASE_PROFILE'" ;; esac
env_settings BASE_ENV "$BASE_ENV"
BASE_SETTINGS=("${ENV_SETTINGS[@]}")
env_settings HEAD_ENV "$HEAD_ENV"
HEAD_SETTINGS=("${ENV_SETTINGS[@]}")
bench_setup
# What goes into the gateway binary; untracked files count (a new module is one).
GATEWAY_SOURCES=(src examples build.rs Cargo.toml Cargo.lock)
HEAD_DESC=$(tree_revision "${GATEWAY_SOURCES[@]}")
STARTED=$(date -u '+%Y-%m-%d %H:%M UTC')
ENV_KNOBS=""
[ -z "$BASE_ENV" ] || ENV_KNOBS+="BASE_ENV=\"$BASE_ENV\" "
[ -z "$HEAD_ENV" ] || ENV_KNOBS+="HEAD_ENV=\"$HEAD_ENV\" "
COMMAND="BASE=$BASE BASE_PROFILE=$BASE_PROFILE ${ENV_KNOBS}ROUNDS=$ROUNDS DURATION=$DURATION WARMUP=$WARMUP CONNS=$CONNS POOL=$POOL IDLE_WAIT=$IDLE_WAIT bash benches/revisions.sh"
for p in $BASE_PORT $HEAD_PORT $HEAD2_PORT $BASEU_PORT $HEADU_PORT; do ports_free "$p" $((p + 100)); done
ports_free $UP_PORT

# The base first: both builds write target/release/tokengate, so each is copied out in turn.
log "building BASE $(git -C "$ROOT" rev-parse --short "$BASE_REV") (release) from git archive"
mkdir "$TMP/base"
git -C "$ROOT" archive "$BASE_REV" | tar -x -C "$TMP/base" || die "git archive of $BASE_REV failed"
if [ "$BASE_PROFILE" = tree ]; then
  # BASE's manifest without its [profile.*] tables, then the working tree's: a table runs from its
  # header to the next one.
  {
    awk 'BEGIN { keep = 1 } /^\[/ { keep = ($0 !~ /^\[profile\./) } keep' "$TMP/base/Cargo.toml"
    awk '/^\[/ { keep = ($0 ~ /^\[profile\./) } keep' "$ROOT/Cargo.toml"
  } >"$TMP/base-manifest.toml"
  mv "$TMP/base-manifest.toml" "$TMP/base/Cargo.toml"
fi
"$CARGO" build --release --bin tokengate --manifest-path "$TMP/base/Cargo.toml" --target-dir "$ROOT/target/revisions-base" ||
  die "BASE does not build"
cp "$ROOT/target/revisions-base/release/tokengate" "$TMP/tokengate-base"
log "building the working tree ($HEAD_DESC): tokengate, bench_upstream, mint_tokens"
"$CARGO" build --release --bin tokengate --example bench_upstream --example mint_tokens
cp "$ROOT/target/release/tokengate" "$TMP/tokengate-head"
# Different sources must give different binaries; the same sources (BASE=HEAD with a clean tree)
# give a calibration-only run, which is allowed.
if cmp -s "$TMP/tokengate-base" "$TMP/tokengate-head"; then
  if git -C "$ROOT" diff --quiet "$BASE_REV" -- "${GATEWAY_SOURCES[@]}" &&
    [ -z "$(git -C "$ROOT" ls-files --others --exclude-standard -- "${GATEWAY_SOURCES[@]}")" ]; then
    log "BASE and the working tree have the same sources: both sides run the same binary"
  else
    die "BASE and the working tree differ but built to the same binary: a stale build"
  fi
fi
EX="$ROOT/target/release/examples"

pairs_start "$EX"
CACHED="token_cache_capacity = 100000"
gateway base "$TMP/tokengate-base" $BASE_PORT "$CACHED" "${BASE_SETTINGS[@]}"
BASE_PID=$LAST_PID
gateway head "$TMP/tokengate-head" $HEAD_PORT "$CACHED" "${HEAD_SETTINGS[@]}"
HEAD_PID=$LAST_PID
gateway head2 "$TMP/tokengate-head" $HEAD2_PORT "$CACHED" "${HEAD_SETTINGS[@]}"
HEAD2_PID=$LAST_PID
gateway baseu "$TMP/tokengate-base" $BASEU_PORT "token_cache_capacity = 0" "${BASE_SETTINGS[@]}"
BASEU_PID=$LAST_PID
gateway headu "$TMP/tokengate-head" $HEADU_PORT "token_cache_capacity = 0" "${HEAD_SETTINGS[@]}"
HEADU_PID=$LAST_PID
for port in $BASE_PORT $HEAD_PORT $HEAD2_PORT $BASEU_PORT $HEADU_PORT; do expect_200 "$port/p" "$port/j"; done

pairs_init
fill_cache $((BASE_PORT + 100)) $BASE_PORT "$TP" "$POOL"
fill_cache $((HEAD_PORT + 100)) $HEAD_PORT "$TP" "$POOL"
log "both caches hold all $POOL tokens"
log "rounds: $ROUNDS x (cal P J1 J10k JU), ${DURATION}s each after ${WARMUP}s warm-up, wrk -t1 -c$CONNS per side"
for ((round = 1; round <= ROUNDS; round++)); do
  pair cal "$round" "$HEAD_PID" $HEAD_PORT /p "$T1" "$HEAD2_PID" $HEAD2_PORT /p "$T1"
  pair P "$round" "$BASE_PID" $BASE_PORT /p "$T1" "$HEAD_PID" $HEAD_PORT /p "$T1"
  pair J1 "$round" "$BASE_PID" $BASE_PORT /j "$T1" "$HEAD_PID" $HEAD_PORT /j "$T1"
  pair J10k "$round" "$BASE_PID" $BASE_PORT /j "$TP" "$HEAD_PID" $HEAD_PORT /j "$TP"
  pair JU "$round" "$BASEU_PID" $BASEU_PORT /j "$TP" "$HEADU_PID" $HEADU_PORT /j "$TP"
done

mkdir -p "$REPORT_DIR"
cp "$PAIR_RESULTS" "$RESULTS_OUT"
CAL_CPU=$(pair_spread cal 5)
CAL_RPS=$(pair_spread cal 6)
{
  echo "## tokengate: two revisions side by side"
  echo
  echo "- Command: \`$COMMAND\` (started $STARTED)"
  echo "- A = BASE $(git -C "$ROOT" rev-parse --short "$BASE_REV")${BASE_ENV:+ with $BASE_ENV}; B = working tree $HEAD_DESC${HEAD_ENV:+ with $HEAD_ENV}"
  echo "- Every gateway's environment also has bench_setup's MIMALLOC_PAGE_FULL_RETAIN=$MIMALLOC_PAGE_FULL_RETAIN unless a side sets its own"
  if [ "$BASE_PROFILE" = tree ]; then
    echo "- Both built with the working tree's [profile.*] tables (BASE_PROFILE=tree)"
  else
    echo "- Each built with its own [profile.*] tables (BASE_PROFILE=own)"
  fi
  pairs_report_header
  echo
  echo "| scenario | A µs/req | B µs/req | B/A CPU per request (rounds) | B/A req/s (rounds) | B/A CPU ÷ P's |"
  echo "|---|---:|---:|---:|---:|---:|"
  P_CPU=$(pair_median P 5)
  for s in cal P J1 J10k JU; do
    vs_p="-" # the calibration pair runs other processes than P's
    [ $s = cal ] || vs_p=$(calc %.4f "$(pair_median $s 5) / $P_CPU")
    printf '| %s | %.1f | %.1f | %.4f (%s) | %.4f (%s) | %s |\n' "$s" "$(pair_median $s 3)" "$(pair_median $s 4)" \
      "$(pair_median $s 5)" "$(pair_spread $s 5)" "$(pair_median $s 6)" "$(pair_spread $s 6)" "$vs_p"
  done
  echo
  echo "cal is the working tree against itself: its rounds ($CAL_CPU CPU, $CAL_RPS req/s) are what no difference looks like."
  echo "Non-2xx responses in the measurements: $(pair_non2xx); socket errors and warm-up non-2xx over every wrk run: $ERRORS."
} | tee "$REPORT"
log "report: $REPORT; raw rows: $RESULTS_OUT"
