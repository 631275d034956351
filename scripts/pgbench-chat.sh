#!/usr/bin/env bash
# PostgreSQL's own limit for the chat app's rows on this machine: pgbench against a
# database of its own (every migration applied, 500 rooms), one row per transaction and
# 40 rows per statement shaped as the group commit's, 4 clients (the app's 4 writers)
# on 2 threads for 10 s each. When PostgreSQL runs on this machine (its data directory
# readable), also PostgreSQL's CPU time per row: its postmaster and every backend, from
# /proc. Usage:
#   bash scripts/pgbench-chat.sh [admin URL, default postgres://postgres@127.0.0.1:5432/postgres]
set -euo pipefail
admin=${1:-postgres://postgres@127.0.0.1:5432/postgres}
here=$(cd "$(dirname "$0")/.." && pwd)
db=phx_pgbench_$$
base=${admin%/*}
psql -q "$admin" -c "CREATE DATABASE $db"
trap 'psql -q "$admin" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)"' EXIT
for migration in "$here"/migrations/*.sql; do
  psql -q "$base/$db" -f "$migration"
done
psql -q "$base/$db" -c "INSERT INTO rooms (name) SELECT 'room:' || g FROM generate_series(0, 499) g"
# The postmaster, if its pid file is readable here; its CPU with its children's
# (utime + stime + cutime + cstime, then every live child's utime + stime), in ticks.
postmaster=$(head -1 "$(psql -qAt "$admin" -c 'SHOW data_directory')/postmaster.pid" 2>/dev/null || true)
ticks() {
  local total
  # Let the backends of the last run exit and be reaped first: a child read live and
  # then reaped before its parent's cutime is read would be counted twice.
  sleep 1
  total=$(awk '{print $14 + $15 + $16 + $17}' "/proc/$postmaster/stat")
  for child in $(cat "/proc/$postmaster/task/$postmaster/children"); do
    total=$((total + $(awk '{print $14 + $15}' "/proc/$child/stat" 2>/dev/null || echo 0)))
  done
  echo "$total"
}
for script in insert_one:1 insert_batch:40; do
  name=${script%:*} rows=${script#*:}
  echo "== $name"
  [ -n "$postmaster" ] && before=$(ticks)
  out=$(pgbench -n -f "$here/crates/phx-bench/pgbench/$name.sql" -c 4 -j 2 -T 10 "$base/$db")
  echo "$out" | grep -E '^(tps|latency average|number of transactions actually processed)'
  if [ -n "$postmaster" ]; then
    done_tx=$(echo "$out" | awk -F': ' '/actually processed/ {split($2, a, "/"); print a[1]}')
    awk -v t=$(( $(ticks) - before )) -v hz="$(getconf CLK_TCK)" -v n=$((done_tx * rows)) \
      'BEGIN { printf "PostgreSQL CPU: %.1f s for %d rows, %.1f µs per row\n", t / hz, n, t / hz * 1e6 / (n > 0 ? n : 1) }'
  fi
done
psql -qAt "$base/$db" -c "SELECT count(*) || ' rows stored' FROM messages"
