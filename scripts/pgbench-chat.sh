#!/usr/bin/env bash
# PostgreSQL's own limit for the chat app's rows on this machine: pgbench against a
# database of its own (every migration applied, 500 rooms), one row per transaction and
# 40 rows per statement shaped as the group commit's, 4 clients (the app's 4 writers)
# on 2 threads for 10 s each. Usage:
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
for script in insert_one insert_batch; do
  echo "== $script"
  pgbench -n -f "$here/crates/phx-bench/pgbench/$script.sql" -c 4 -j 2 -T 10 "$base/$db" \
    | grep -E '^(tps|latency average|number of transactions actually processed)'
done
psql -qAt "$base/$db" -c "SELECT count(*) || ' rows stored' FROM messages"
