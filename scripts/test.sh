#!/usr/bin/env bash
# Runs every test on a fresh machine, installing what is missing first:
# formatting and lints, module layers (phx-server, the chat app), the docs (rustdoc; the
# README's length and example; no work-item numbers; no stale item names), Rust
# unit/property/integration tests and doctests (PostgreSQL at 127.0.0.1:5432), the
# crates' packaging, the examples and the conformance suite through real
# phoenix.js (a Redis cluster of real nodes included: Debian's redis-server; beside
# Phoenix nodes, with messages made and read by Debian's erlang-base), phx-gateway (its
# own suite, and the conformance suite through it and a Node backend), the browser
# end-to-end tests (Debian's chromium driven by playwright-core), and the abuse suite
# (hostile clients against a running server, with RSS/thread/service bounds).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

# Each step prints how long the one before it took.
step_name=""
step_started=$SECONDS
step() {
  if [ -n "$step_name" ]; then
    printf '    (%s: %d s)\n' "$step_name" $((SECONDS - step_started))
  fi
  step_name="$*"
  step_started=$SECONDS
  [ "$*" = "done" ] || printf '\n==> %s\n' "$*"
}

step "system packages"
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "chromium is missing: install Debian's chromium package (apt-get install chromium)" >&2
    exit 1
  fi
fi
# Emoji in the page's screenshots (reactions, messages); no test depends on the font.
if ! dpkg -s fonts-noto-color-emoji >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fonts-noto-color-emoji >/dev/null ||
    echo "fonts-noto-color-emoji not installed: emoji in screenshots will show as boxes" >&2
fi
# The conformance suite's cluster tests start their own redis-server on a free port.
if ! command -v redis-server >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
  else
    echo "redis-server is missing: install Debian's redis-server package (apt-get install redis-server)" >&2
    exit 1
  fi
fi
# examples/gateway/python (tests/gateway) makes a virtual environment for psycopg.
if ! python3 -c "import venv, ensurepip" >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
  else
    echo "python3 with venv is missing: install Debian's python3-venv package (apt-get install python3-venv)" >&2
    exit 1
  fi
fi
# The Phoenix.PubSub.Redis interop tests make and read messages with Erlang's own codec.
if ! command -v erl >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq erlang-base >/dev/null
  else
    echo "erl is missing: install Debian's erlang-base package (apt-get install erlang-base)" >&2
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
(cd examples/hello && npm ci --no-audit --no-fund --loglevel=error)
(cd examples/token-auth && npm ci --no-audit --no-fund --loglevel=error)
(cd tests/abuse && npm ci --no-audit --no-fund --loglevel=error)
(cd tests/gateway && npm ci --no-audit --no-fund --loglevel=error)

step "format and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings

step "module layers (phx-server's floors; no import circles between files in phx-server and the chat app)"
python3 scripts/check-layers.py crates/phx-server/src
python3 scripts/check-layers.py --files-only crates/chat-app/src

step "docs: rustdoc with -D warnings, README length, no work-item numbers, no stale item names, the README's example is examples/hello"
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --locked -p phx-protocol -p phx-server
python3 scripts/check-docs.py
python3 scripts/check-readme-example.py

step "phx-protocol stays sans-IO"
if cargo tree -p phx-protocol -e normal --prefix none | grep -E '^(tokio|hyper|fastwebsockets) '; then
  echo "phx-protocol must not depend on tokio, hyper or fastwebsockets" >&2
  exit 1
fi

step "Rust tests (doctests included: the guide's snippets)"
cargo build --workspace --locked
cargo test --workspace --locked

step "publishable crates (cargo package phx-protocol, phx-server; every file their build reads is packaged)"
# --allow-dirty: this checks the packaging of the tree as it is, committed or not.
# --no-verify: the verification build compiles the same sources again with every
# dependency (two minutes here); what a package can lose is files, which the script checks.
cargo package --no-verify --locked --allow-dirty -p phx-protocol -p phx-server
python3 scripts/check-package.py phx-protocol phx-server

step "examples through phoenix.js (examples/hello, examples/token-auth)"
(cd examples/hello && npm test)
(cd examples/token-auth && npm test)

step "conformance suite (phoenix.js against examples/conformance-server, one node and clustered on Redis)"
(cd conformance-tests && npm test)

step "beside a Phoenix cluster (Erlang's term_to_binary/binary_to_term through Redis, phoenix.js)"
(cd conformance-tests && npm run test:phoenix-pubsub)

step "phx-gateway: backend failures, auth, channel rules, operations, TLS, beside Phoenix PubSub, the Python chat example (tests/gateway), and the conformance suite through the gateway and the Node contract backend"
(cd tests/gateway && npm test)
(cd conformance-tests && npm run test:gateway)

step "chat app: browser end-to-end and server tests"
(cd js-client && npm test)

step "abuse suite (attacks with memory, thread and service bounds: tests/abuse)"
node tests/abuse/run.js

step "done"
