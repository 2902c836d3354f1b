#!/usr/bin/env bash
# The scale benchmark in one run (issue "Scale"): the release server under a simulated fleet on
# SQLite and PostgreSQL — ingest ceiling, the real fleet's load with the dashboard watched, the
# bare batched insert baseline and its ratio — then the agent's own footprint.
#
#   bash bench/scale.sh                 # 100,000 agents, 120 s of fleet load per backend
#   AGENTS=20000 LOAD_SECS=60 bash bench/scale.sh
#
# PostgreSQL: RDPFLEET_TEST_PG_URL (default postgres://postgres@127.0.0.1:5432/postgres); the
# benchmark creates and drops its own database. The server is pinned to CPU 0 and the
# simulator to CPU 1 so they do not steal each other's time (PostgreSQL is not pinned).
set -euo pipefail
cd "$(dirname "$0")/.."
AGENTS="${AGENTS:-100000}"
LOAD_SECS="${LOAD_SECS:-120}"
CEILING_SECS="${CEILING_SECS:-20}"

cargo build --release --locked -p rdpfleet-server -p rdpfleet-e2e --bins
target_dir="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
export RDPFLEET_BIN_DIR="$target_dir/release"
# One file descriptor per simulated agent connection, on both sides.
ulimit -n 200000 2>/dev/null || ulimit -n "$(ulimit -Hn)"

echo "== server under the simulated fleet ($AGENTS agents)"
taskset -c 1 "$RDPFLEET_BIN_DIR/rdpfleet-scale" --agents "$AGENTS" --load-secs "$LOAD_SECS" \
    --ceiling-secs "$CEILING_SECS" --server-cpu 0 ${ONLY:+--only "$ONLY"}

echo "== agent footprint"
cargo bench --locked -p rdpfleet-agent --bench footprint
