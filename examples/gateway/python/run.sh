#!/usr/bin/env bash
# PORT=<port> DATABASE_URL=postgres://… bash examples/gateway/python/run.sh
#
# The chat app's guest protocol with a Python backend behind phx-gateway:
#  - builds phx-gateway if needed (or uses $PHX_GATEWAY_BIN);
#  - makes a virtual environment in examples/gateway/python/.venv with psycopg (once);
#  - installs the phoenix npm package for the chat page if js-client has none yet;
#  - creates the database (if missing) and its table;
#  - starts server.py on a free port and the gateway on $PORT (socket at /socket, the
#    chat page at /), and stops both on SIGTERM or SIGINT.
# Without DATABASE_URL it uses postgres://postgres@127.0.0.1:5432/phx_gateway_chat.
# The hook secret is generated per run unless PHX_GATEWAY_SECRET is set.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
export PORT="${PORT:-4000}"

if [ -z "${DATABASE_URL:-}" ]; then
  export DATABASE_URL="postgres://postgres@127.0.0.1:5432/phx_gateway_chat"
  echo "run.sh: DATABASE_URL is not set: using $DATABASE_URL (created if missing)"
fi

command -v python3 >/dev/null || { echo "run.sh: python3 not found: install Python 3.10+" >&2; exit 1; }
venv="$here/.venv"
if ! "$venv/bin/python" -c "import psycopg" 2>/dev/null; then
  echo "run.sh: installing psycopg into $venv"
  python3 -m venv "$venv" || { echo "run.sh: python3 -m venv failed: install your system's venv package (Debian: python3-venv)" >&2; exit 1; }
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$here/requirements.txt"
fi

phoenix_mjs="$root/js-client/node_modules/phoenix/priv/static/phoenix.mjs"
if [ -z "${PHOENIX_MJS:-}" ] && [ ! -f "$phoenix_mjs" ]; then
  command -v npm >/dev/null || { echo "run.sh: npm not found: the chat page needs the phoenix npm package (install Node.js 20+)" >&2; exit 1; }
  echo "run.sh: installing the phoenix npm package in js-client (for the chat page)"
  (cd "$root/js-client" && npm ci --omit=dev --no-audit --no-fund --loglevel=error)
fi

bin="${PHX_GATEWAY_BIN:-}"
if [ -z "$bin" ]; then
  (cd "$root" && cargo build --quiet -p phx-gateway)
  bin="$root/target/debug/phx-gateway"
fi

"$venv/bin/python" "$here/server.py" setup

random() { od -An -N32 -tx1 /dev/urandom | tr -d ' \n'; }
export PHX_GATEWAY_SECRET="${PHX_GATEWAY_SECRET:-$(random)}"

backend_pid=""
gateway_pid=""
stop() {
  trap - TERM INT EXIT
  [ -n "$gateway_pid" ] && kill -TERM "$gateway_pid" 2>/dev/null || true
  [ -n "$backend_pid" ] && kill -TERM "$backend_pid" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap 'stop; exit 0' TERM INT
trap stop EXIT

# The backend picks a free port (PORT=0) and prints it.
fifo="$(mktemp -u)"
mkfifo "$fifo"
PORT=0 "$venv/bin/python" -u "$here/server.py" >"$fifo" &
backend_pid=$!
exec 3<"$fifo"
rm -f "$fifo"
backend_url=""
while IFS= read -r -t 60 line <&3; do
  echo "$line"
  if [[ "$line" =~ (http://[^[:space:]]+) ]]; then
    backend_url="${BASH_REMATCH[1]}"
    break
  fi
done
if [ -z "$backend_url" ]; then
  echo "run.sh: the backend did not start" >&2
  exit 1
fi
# Keep draining the backend's output so it never blocks on a full pipe.
cat <&3 &
export BACKEND_URL="$backend_url"

"$bin" --config "$here/gateway.toml" &
gateway_pid=$!
echo "run.sh: the chat page is at http://localhost:$PORT/ (guests: pick a name and a room)"
# Either process ending ends the pair.
wait -n "$backend_pid" "$gateway_pid" || true
stop
