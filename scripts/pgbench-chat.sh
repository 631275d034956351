#!/usr/bin/env bash
# PostgreSQL's own limit for the chat app's rows on this machine: pgbench against a
# database of its own (the chat schema, 10 rooms), one row per transaction and 100 rows
# per statement, 8 clients on 2 threads for 10 s each. Usage:
#   bash scripts/pgbench-chat.sh [admin URL, default postgres://postgres@127.0.0.1:5432/postgres]
set -euo pipefail
admin=${1:-postgres://postgres@127.0.0.1:5432/postgres}
here=$(cd "$(dirname "$0")/.." && pwd)
db=phx_pgbench_$$
base=${admin%/*}
psql -q "$admin" -c "CREATE DATABASE $db"
trap 'psql -q "$admin" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)"' EXIT
psql -q "$base/$db" -f "$here/migrations/0001_create_rooms_and_messages.sql"
psql -q "$base/$db" -c "INSERT INTO rooms (name) SELECT 'r' || g FROM generate_series(0, 9) g"
for script in insert_one insert_batch; do
  echo "== $script"
  pgbench -n -f "$here/crates/phx-bench/pgbench/$script.sql" -c 8 -j 2 -T 10 "$base/$db" \
    | grep -E '^(tps|latency average|number of transactions actually processed)'
done
psql -qAt "$base/$db" -c "SELECT count(*) || ' rows stored' FROM messages"
