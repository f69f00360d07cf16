# tokengate: the two commands a new user needs are `make demo` and `make test`.
# Both install what they need (cmake for pingora's native dependencies) when it is missing.

CARGO ?= cargo
PREFIX ?= /usr/local
DESTDIR ?=
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: deps demo test fmt lint unit check-conf bench build release install clean

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
test: deps fmt lint unit check-conf

fmt:
	$(CARGO) fmt --all -- --check

lint:
	$(CARGO) clippy --locked --all-targets -- -D warnings

unit:
	$(CARGO) test --locked --all-targets
	$(CARGO) test --locked --doc

check-conf: build
	@set -e; for f in conf/*.toml; do $(CARGO) run --locked --quiet -- check --config "$$f"; done

bench: deps
	$(CARGO) bench --locked --bench core

install: release
	install -D -m 0755 target/release/tokengate $(DESTDIR)$(PREFIX)/bin/tokengate
	install -D -m 0644 systemd/tokengate.service $(DESTDIR)/etc/systemd/system/tokengate.service
	@if [ -e $(DESTDIR)/etc/tokengate/tokengate.toml ]; then \
	  echo "keeping existing $(DESTDIR)/etc/tokengate/tokengate.toml"; \
	else \
	  install -D -m 0644 conf/tokengate.toml $(DESTDIR)/etc/tokengate/tokengate.toml; \
	fi

clean:
	$(CARGO) clean
