#!/usr/bin/env bash
# Runs the benchmark scenarios (connections, fanout vs the floor, storm, chat with
# PostgreSQL) and writes bench-results/<timestamp>/{results.json,results.md,latency.svg}.
#   bash scripts/bench.sh              # small: a few minutes on 2 cores
#   bash scripts/bench.sh --size full  # the acceptance figures (50 000 sockets, ...)
# Extra arguments go to `phx-bench all`. Needs root (or a high hard limit) for the
# open-file limit of the large sizes, and PostgreSQL on 127.0.0.1:5432.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -p conformance-server -p floor-server -p chat-app -p phx-bench
exec target/release/phx-bench all "$@"
