# tokengate: the two commands a new user needs are `make demo` and `make test`.
# Both install what they need (cmake for pingora's native dependencies) when it is missing.

CARGO ?= cargo
PREFIX ?= /usr/local
DESTDIR ?=
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: deps demo test fmt lint unit check-conf bench bench-core bench-load bench-tuning bench-sidebyside bench-revisions bench-peers bench-instructions bench-syscalls bench-profile check-scripts build release install install-files clean

deps:
	@command -v cmake >/dev/null 2>&1 || { \
	  echo "installing cmake (needed to build pingora's native dependencies)"; \
	  $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq cmake >/dev/null; }
	@command -v cargo >/dev/null 2>&1 || { echo "cargo not found: install a Rust toolchain (rustup)"; exit 1; }

build: deps
	$(CARGO) build --locked

release: deps
	$(CARGO) build --locked --release

## Runs the gateway on the embedded demo config with an in-process demo issuer and echo upstream,
## and prints curl commands to try.
demo: build
	$(CARGO) run --locked --quiet -- demo

## The whole suite: formatting, lints, unit + integration + property tests, and `tokengate check`
## on every shipped config.
test: deps fmt lint unit check-conf check-scripts

fmt:
	$(CARGO) fmt --all -- --check

lint:
	$(CARGO) clippy --locked --all-targets -- -D warnings

unit:
	$(CARGO) test --locked --all-targets
	$(CARGO) test --locked --doc

## The benchmark scripts are not run by the suite (they need quiet cores and minutes); at least
## they must parse.
check-scripts:
	bash -n benches/lib.sh
	bash -n benches/load.sh
	bash -n benches/tuning.sh
	bash -n benches/sidebyside.sh
	bash -n benches/pairs.sh
	bash -n benches/revisions.sh
	bash -n benches/peers.sh
	bash -n benches/instructions.sh
	bash -n benches/profile.sh
	bash -n benches/syscalls.sh

check-conf: build
	@set -e; for f in conf/*.toml; do $(CARGO) run --locked --quiet -- check --config "$$f"; done

## Benchmarks: criterion micro-benchmarks of the hot path, then the end-to-end load benchmark
## (one after the other, even under make -j: they would skew each other's figures).
bench: bench-core
	$(MAKE) --no-print-directory bench-load

bench-core: deps
	$(CARGO) bench --locked --bench core

## wrk against the release gateway on loopback (installs wrk with apt-get if missing); writes
## target/bench/load-report.md. ROUNDS, DURATION and the other knobs are in benches/load.sh.
bench-load: deps
	CARGO="$(CARGO)" bash benches/load.sh

## Two proxies at the same moment on one core (benches/sidebyside.sh): ratios far less moved by
## the machine's drift, with a P / P calibration pair; writes target/bench/sidebyside-report.md.
bench-sidebyside: deps
	CARGO="$(CARGO)" bash benches/sidebyside.sh

## A change measured: the gateway built from BASE (a commit) against the working tree, side by
## side per scenario (benches/revisions.sh); writes target/bench/revisions-report.md.
bench-revisions: deps
	BASE="$(BASE)" CARGO="$(CARGO)" bash benches/revisions.sh

## tokengate against HAProxy 2.6 jwt_verify, HAProxy and nginx 1.22 passthroughs and bare pingora,
## side by side (benches/peers.sh; installs haproxy and nginx with apt-get if missing); writes
## target/bench/peers-report.md.
bench-peers: deps
	CARGO="$(CARGO)" bash benches/peers.sh

## Instructions per request, counted by valgrind's callgrind instead of timed (benches/instructions.sh;
## installs valgrind with apt-get if missing): repeatable to a fraction of a percent, for locating a
## cost and confirming a change; writes target/bench/instructions-report.md.
bench-instructions: deps
	CARGO="$(CARGO)" bash benches/instructions.sh

## System calls per request, counted by perf on the kernel's syscall tracepoints (benches/syscalls.sh;
## installs linux-perf with apt-get if missing): the kernel entries callgrind cannot see, such as
## the runtime's wake-ups; writes target/bench/syscalls-report.md.
bench-syscalls: deps
	CARGO="$(CARGO)" bash benches/syscalls.sh

## Where a request's CPU goes, kernel and memory stalls included: perf samples of each
## scenario set against P's, symbol by symbol (benches/profile.sh; installs linux-perf with
## apt-get if missing); writes target/bench/profile-report.md.
bench-profile: deps
	CARGO="$(CARGO)" bash benches/profile.sh

## The [server] tuning sweep (benches/tuning.sh): each pingora knob against the default, one run;
## writes target/bench/tuning-report.md.
bench-tuning: deps
	CARGO="$(CARGO)" bash benches/tuning.sh

install: release install-files

## The file-copying half of `install`, for a binary built elsewhere (BIN=...).
BIN ?= target/release/tokengate
install-files:
	install -D -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/tokengate
	install -D -m 0644 systemd/tokengate.service $(DESTDIR)/etc/systemd/system/tokengate.service
	@if [ -e $(DESTDIR)/etc/tokengate/tokengate.toml ]; then \
	  echo "keeping existing $(DESTDIR)/etc/tokengate/tokengate.toml"; \
	else \
	  install -D -m 0644 conf/tokengate.toml $(DESTDIR)/etc/tokengate/tokengate.toml; \
	fi

clean:
	$(CARGO) clean

## Fuzzes every target for FUZZ_SECONDS (default 60) each with cargo-fuzz on a stable toolchain
## (`--sanitizer none` needs no nightly); corpora grow in fuzz/corpus, crashes land in
## fuzz/artifacts. Installs cargo-fuzz from crates.io when missing. See fuzz/README.md.
FUZZ_TARGETS ?= token_verify path_normalise config_parse bearer_extract jwks_parse
.PHONY: fuzz
fuzz: deps
	@command -v cargo-fuzz >/dev/null 2>&1 || $(CARGO) install cargo-fuzz --locked
	cd fuzz && for t in $(FUZZ_TARGETS); do \
	  mkdir -p corpus/$$t && \
	  $(CARGO) fuzz run $$t corpus/$$t seeds/$$t --sanitizer none -- \
	    -max_total_time=$${FUZZ_SECONDS:-60} -print_final_stats=1 || exit 1; \
	done

## Dependency advisories (RustSec). Needs the advisory database from github.com, which this
## project's build machines cannot reach; run it where it can. Not part of `make test` for that
## reason (see the README).
.PHONY: audit
audit:
	@command -v cargo-audit >/dev/null 2>&1 || $(CARGO) install cargo-audit --locked
	$(CARGO) audit
