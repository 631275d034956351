#!/usr/bin/env bash
# Runs every test on a fresh machine, installing what is missing first:
# formatting and lints, Rust unit/property/integration tests (PostgreSQL at
# 127.0.0.1:5432), the conformance suite (real phoenix.js against our server), and the
# browser end-to-end tests (Debian's chromium driven by playwright-core).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

step() { printf '\n==> %s\n' "$*"; }

step "system packages"
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "chromium is missing: install Debian's chromium package (apt-get install chromium)" >&2
    exit 1
  fi
fi
command -v node >/dev/null || { echo "node not found: install Node.js 20+" >&2; exit 1; }

step "services"
if ! (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null; then
  echo "PostgreSQL is not reachable on 127.0.0.1:5432." >&2
  echo "Start it with: pg_ctlcluster --skip-systemctl-redirect \$(ls /etc/postgresql) main start" >&2
  exit 1
fi

step "npm packages"
(cd conformance-tests && npm ci --no-audit --no-fund --loglevel=error)
(cd js-client && npm ci --no-audit --no-fund --loglevel=error)

step "format and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings

step "phx-protocol stays sans-IO"
if cargo tree -p phx-protocol -e normal --prefix none | grep -E '^(tokio|hyper|fastwebsockets) '; then
  echo "phx-protocol must not depend on tokio, hyper or fastwebsockets" >&2
  exit 1
fi

step "Rust tests"
cargo build --workspace --locked
cargo test --workspace --locked

step "conformance suite (phoenix.js against examples/conformance-server)"
(cd conformance-tests && npm test)

step "chat app: browser end-to-end and server tests"
(cd js-client && npm test)
