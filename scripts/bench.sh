#!/usr/bin/env bash
# Runs the benchmark scenarios (connections, fanout vs the floor, storm, chat with
# PostgreSQL, latency at a fixed offered load) and writes
# bench-results/<date>-<commit>[-dirty]-<size>/{results.json,results.md,latency.svg}, then
# compares the run with the newest earlier results.json of the same size measured on the
# same kind of machine (CPU model and cores; results.json records them, and the PostgreSQL
# version and settings of the chat scenario) (or
# `--compare bench-results/<dir>`): old, new and change in % per figure, marked **worse**
# past `--threshold` % (default 10) the bad way; also saved as comparison.md.
#   bash scripts/bench.sh                # small: about two minutes on 2 cores
#   bash scripts/bench.sh --size large   # the most a 20 000 open-file hard limit allows
#   bash scripts/bench.sh --size full    # the acceptance figures (50 000 sockets, ...)
#   bash scripts/bench.sh --runs 9       # more floor/phx-rs fan-out pairs (median ratio)
# Extra arguments go to `phx-bench all` (see `target/release/phx-bench all --help`; each
# scenario is also a subcommand: connections, fanout, storm, chat, cluster, latency,
# gateway).
# phx-gateway with the Node contract backend against phx-rs (round trips, fan-out ratio;
# needs Node.js 20+, about a minute and a half on 2 cores; docs/benchmarks.md, "Gateway"):
#   target/release/phx-bench gateway
# The cluster (3 nodes on a private redis-server, Debian's redis-server package):
#   target/release/phx-bench cluster --hold 51000   # cost vs one node, 51 000 sockets
# `--size full` needs an open-file hard limit above 51 000 (root or CAP_SYS_RESOURCE); chat needs PostgreSQL on
# 127.0.0.1:5432 (`--postgres URL` to change it).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -p conformance-server -p floor-server -p chat-app -p phx-gateway -p phx-bench
exec target/release/phx-bench all "$@"
