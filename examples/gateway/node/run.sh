#!/usr/bin/env bash
# PORT=<port> bash examples/gateway/node/run.sh
#
# Builds phx-gateway if needed (or uses $PHX_GATEWAY_BIN), starts the Node contract
# backend (server.js) on a free port and the gateway on $PORT (socket at /socket, and the
# conformance mounts /ws, /ws/limited, /ws/open), and stops both on SIGTERM or SIGINT.
# Secrets are generated per run unless PHX_GATEWAY_SECRET / PHX_GATEWAY_API_KEY are set.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
export PORT="${PORT:-4000}"

command -v node >/dev/null || { echo "run.sh: node not found: install Node.js 20+" >&2; exit 1; }
bin="${PHX_GATEWAY_BIN:-}"
if [ -z "$bin" ]; then
  (cd "$root" && cargo build --quiet -p phx-gateway)
  bin="$root/target/debug/phx-gateway"
fi

random() { od -An -N32 -tx1 /dev/urandom | tr -d ' \n'; }
export PHX_GATEWAY_SECRET="${PHX_GATEWAY_SECRET:-$(random)}"
export PHX_GATEWAY_API_KEY="${PHX_GATEWAY_API_KEY:-$(random)}"
export GATEWAY_URL="http://127.0.0.1:$PORT"

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
PORT=0 node "$here/server.js" >"$fifo" &
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
# Either process ending ends the pair.
wait -n "$backend_pid" "$gateway_pid" || true
stop
