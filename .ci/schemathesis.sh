#!/usr/bin/env bash
# API fuzzing with schemathesis against the OpenAPI document the real server serves: the agent
# API with an agent token, the JSON API with an admin's API token. No 5xx, responses conform to
# the documented schemas. Bounded (MAX_EXAMPLES per operation) so it fits in every CI run.
#   bash .ci/schemathesis.sh [BIN_DIR]     (default target/debug)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="$(cd "${1:-target/debug}" && pwd)"
MAX_EXAMPLES="${MAX_EXAMPLES:-40}"
command -v schemathesis >/dev/null || python3 -m pip install --quiet schemathesis
work="$(mktemp -d)"
trap 'kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; rm -rf "$work"' EXIT
db="sqlite://$work/st.db"
# In its own directory: first start writes the initial credentials and the signing key there.
(cd "$work" && exec "$BIN/rdpfleet-server" --database-url "$db" serve --listen 127.0.0.1:0 >"$work/out" 2>"$work/err") &
server_pid=$!
url=""
for _ in $(seq 1 100); do
    url="$(sed -n 's/^rdpfleet-server listening on //p' "$work/out" | head -n1)"
    [ -n "$url" ] && break
    sleep 0.1
done
[ -n "$url" ] || { cat "$work/err"; exit 1; }
admin() { (cd "$work" && "$BIN/rdpfleet-server" --database-url "$db" "$@"); }
enroll="$(admin enroll-token create --label schemathesis --max-uses 1000)"
api="$(admin user token --username admin)"
agent_json="$(curl -sf -H 'Content-Type: application/json' \
    -d "{\"token\":\"$enroll\",\"hostname\":\"st\",\"role\":\"both\",\"os\":\"linux\",\"agent_version\":\"1\"}" \
    "$url/api/agent/v1/enroll")"
agent_token="$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["agent_token"])' "$agent_json")"
machine_id="$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["machine_id"])' "$agent_json")"
# The agent's own machine id in its paths, so generated requests reach the handlers (another
# machine's id is a 403, which the authorization matrix covers).
printf '[parameters]\n"path.machine_id" = "%s"\n' "$machine_id" > "$work/agent.toml"
# One worker: with two, hypothesis's lambda-description cache races between threads and
# schemathesis reports "AST constructor recursion depth mismatch" as an error of its own.
common=(--checks not_a_server_error,response_schema_conformance,content_type_conformance
        --max-examples "$MAX_EXAMPLES" --seed 1 --workers 1 --request-timeout 35
        --suppress-health-check all)
status=0
echo "== agent API"
schemathesis --config-file "$work/agent.toml" run "$url/api/openapi.json" "${common[@]}" --include-path-regex '^/api/agent/v1/' \
    -H "Authorization: Bearer $agent_token" || status=1
echo "== JSON API"
schemathesis --config-file "$work/agent.toml" run "$url/api/openapi.json" "${common[@]}" --include-path-regex '^/api/v1/' \
    -H "Authorization: Bearer $api" || status=1
if grep -q ' ERROR ' "$work/err"; then echo "server logged errors:"; grep ' ERROR ' "$work/err" | head; status=1; fi
exit $status
