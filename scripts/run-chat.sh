#!/usr/bin/env bash
# Runs the chat app on a fresh machine: installs the page's npm package (phoenix.js as
# published) unless the version the lockfile names is already there, builds in release
# mode, starts on $PORT (default 4000).
# Without DATABASE_URL history is kept in memory (the app says so); with it, PostgreSQL.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo >/dev/null || { echo "cargo not found: install Rust (rustup)" >&2; exit 1; }
command -v node >/dev/null || { echo "node not found: install Node.js 20+" >&2; exit 1; }
# The page needs phoenix.js only: skip npm when node_modules already holds the version
# package-lock.json pins (npm ci would delete node_modules and need the registry).
if ! (cd js-client && node -e '
  const want = require("./package-lock.json").packages["node_modules/phoenix"].version;
  const have = require("./node_modules/phoenix/package.json").version;
  process.exit(have === want ? 0 : 1);' 2>/dev/null); then
  command -v npm >/dev/null || { echo "npm not found: install Node.js 20+" >&2; exit 1; }
  (cd js-client && npm ci --omit=dev --no-audit --no-fund --loglevel=error)
fi
exec cargo run --release --locked -p chat-app -- "$@"
