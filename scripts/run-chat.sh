#!/usr/bin/env bash
# Runs the chat app on a fresh machine: installs the page's npm packages (phoenix.js as
# published), builds in release mode, starts on $PORT (default 4000).
# Without DATABASE_URL history is kept in memory (the app says so); with it, PostgreSQL.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo >/dev/null || { echo "cargo not found: install Rust (rustup)" >&2; exit 1; }
command -v npm >/dev/null || { echo "npm not found: install Node.js 20+" >&2; exit 1; }
(cd js-client && npm ci --no-audit --no-fund --loglevel=error)
exec cargo run --release --locked -p chat-app -- "$@"
