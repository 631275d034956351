#!/usr/bin/env bash
# Mutation testing: how many injected bugs the Rust tests catch, one module group at a
# time (cargo-mutants, https://mutants.rs). Too slow for scripts/test.sh; run it after
# changing a module or its tests, and update the scores in docs/contributing.md.
#
#   bash scripts/mutants.sh                  # every group
#   bash scripts/mutants.sh protocol socket  # only these groups
#
# Environment: JOBS (parallel builds, default 1), NICE (default 19), TIMEOUT (seconds per
# mutant's test run, default 60), OUT (results, default target/mutants), IN_PLACE=1
# (mutate this checkout itself and reuse its target/ instead of building a copy from
# scratch: only in a scratch clone, never in a tree you are editing), ITERATE=1 (test only
# the mutants the last run in OUT missed or has not reached).
# Per group the results are in $OUT/<group>/mutants.out/{caught,missed,timeout,unviable}.txt.
# Mutants that cannot change behaviour are excluded in .cargo/mutants.toml, each with
# its reason.
set -euo pipefail
cd "$(dirname "$0")/.."

# The groups: name | package | file globs (paths from the workspace root) | the test
# targets run against each mutant. When a file is renamed or moved, update its glob here.
# The last three groups build and run the unit tests and only the integration tests
# that reach their modules (cargo-mutants builds every test target otherwise, ~20 binaries
# of phx-server per mutant: hours per group here). Fewer tests can only lower a score.
MUTANT_GROUPS=(
  "protocol|phx-protocol|crates/phx-protocol/src/**|--tests"
  "socket|phx-server|crates/phx-server/src/socket/** crates/phx-server/src/channel/** crates/phx-server/src/outcome.rs|--tests"
  "pubsub-outbox|phx-server|crates/phx-server/src/pubsub/mod.rs crates/phx-server/src/pubsub/wire.rs crates/phx-server/src/outbox/**|--tests"
  "presence|phx-server|crates/phx-server/src/presence/tracker.rs crates/phx-server/src/presence/burst.rs crates/phx-server/src/presence/replica.rs|--lib --test cluster_in_process"
  "longpoll-token|phx-server|crates/phx-server/src/transport/longpoll/**|--lib --test longpoll --test longpoll_buffer_limits --test longpoll_session_limits --test origin --test request_limits"
  "origin-params|phx-server|crates/phx-server/src/origin.rs crates/phx-server/src/params.rs crates/phx-server/src/rate_limit.rs|--lib"
)

JOBS="${JOBS:-1}"
NICE="${NICE:-19}"
TIMEOUT="${TIMEOUT:-60}"
OUT="${OUT:-target/mutants}"
export CARGO_TERM_COLOR=never
# No debug info: mutants are built and linked once each, and nobody debugs them.
export CARGO_PROFILE_DEV_DEBUG=0 CARGO_PROFILE_TEST_DEBUG=0

if ! cargo mutants --version >/dev/null 2>&1; then
  echo "==> installing cargo-mutants"
  cargo install cargo-mutants --locked
fi

wanted=("$@")
is_wanted() {
  [ ${#wanted[@]} -eq 0 ] && return 0
  local w
  for w in "${wanted[@]}"; do [ "$w" = "$1" ] && return 0; done
  return 1
}

count() { # lines of a result file, 0 when absent
  if [ -f "$1" ]; then grep -c . "$1" || true; else echo 0; fi
}

# In place, cargo-mutants restores each mutated file with its old modification time, so
# cargo could take the last mutant's build for up to date: make every source newer.
if [ -n "${IN_PLACE:-}" ]; then
  find crates examples -name '*.rs' -exec touch {} +
fi

rows=()
for group in "${MUTANT_GROUPS[@]}"; do
  IFS='|' read -r name package globs targets <<<"$group"
  is_wanted "$name" || continue
  files=()
  set -f # the globs are cargo-mutants', not the shell's
  for glob in $globs; do files+=(--file "$glob"); done
  set +f
  dir="$OUT/$name"
  mkdir -p "$dir"
  echo "==> $name ($package: $globs)"
  started=$SECONDS
  # Only the crate's own Rust tests (unit and integration, no doctests): the Node
  # suites are not what a contributor runs in seconds. Exit codes 2 (missed) and 3
  # (timeouts) are results, not failures of the run.
  set +e
  nice -n "$NICE" cargo mutants \
    --package "$package" "${files[@]}" \
    --test-tool cargo $(for t in $targets; do printf -- '--cargo-arg=%s ' "$t"; done) \
    $([ -n "${IN_PLACE:-}" ] || printf -- '--jobs %s' "$JOBS") --timeout "$TIMEOUT" \
    --output "$dir" --no-shuffle ${IN_PLACE:+--in-place} ${ITERATE:+--iterate}
  status=$?
  set -e
  if [ "$status" -ne 0 ] && [ "$status" -ne 2 ] && [ "$status" -ne 3 ]; then
    echo "cargo mutants failed for group $name (exit $status)" >&2
    exit "$status"
  fi
  results="$dir/mutants.out"
  caught=$(count "$results/caught.txt")
  missed=$(count "$results/missed.txt")
  timeout=$(count "$results/timeout.txt")
  unviable=$(count "$results/unviable.txt")
  rows+=("$name $caught $missed $unviable $timeout $((SECONDS - started))")
done

# Score: detected (caught, or made the tests hang) over all viable mutants.
echo
printf '%-16s %7s %7s %9s %8s %7s %7s\n' group caught missed unviable timeout score time
for row in "${rows[@]}"; do
  read -r name caught missed unviable timeout secs <<<"$row"
  viable=$((caught + missed + timeout))
  if [ "$viable" -gt 0 ]; then
    score=$(awk -v d=$((caught + timeout)) -v v="$viable" 'BEGIN { printf "%.1f%%", 100 * d / v }')
  else
    score="-"
  fi
  printf '%-16s %7s %7s %9s %8s %7s %6sm\n' "$name" "$caught" "$missed" "$unviable" "$timeout" "$score" $(((secs + 59) / 60))
done
for row in "${rows[@]}"; do
  read -r name _ missed _ <<<"$row"
  if [ "$missed" -gt 0 ]; then
    echo
    echo "missed in $name:"
    sed 's/^/  /' "$OUT/$name/mutants.out/missed.txt"
  fi
done
