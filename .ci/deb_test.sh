#!/usr/bin/env bash
# The .deb packages on this machine: build them from the debug binaries the tests built, install
# them with dpkg, check what they laid out (user, modes, conffiles, units), run the packaged
# server as its system user with the packaged configuration and the packaged agent against it
# (systemd is not PID 1 here, so the units are verified, not started), then remove and purge.
# Needs root (dpkg). Usage: .ci/deb_test.sh [BIN_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
bin_dir="${1:-${CARGO_TARGET_DIR:-target}/debug}"
out="$(mktemp -d)"
work="$(mktemp -d)"
server_pid=""
cleanup() {
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
    dpkg --purge rdpfleet-agent rdpfleet-server >/dev/null 2>&1 || true
    rm -rf "$out" "$work"
}
trap cleanup EXIT
fail() { echo "deb test: $*" >&2; exit 1; }

DEB_COMPRESSION="-Zgzip -z1" packaging/deb/build.sh "$bin_dir" "$out" >/dev/null
version="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)"
server_deb="$out/rdpfleet-server_${version}_amd64.deb"
agent_deb="$out/rdpfleet-agent_${version}_amd64.deb"
# Read whole before matching: `grep -q` stops early, and under pipefail the writer's SIGPIPE
# would fail the check at random.
info="$(dpkg-deb --info "$server_deb")"
grep -q "Package: rdpfleet-server" <<<"$info" || fail "server package metadata"
contents="$(dpkg-deb --contents "$agent_deb")"
grep -q "./usr/bin/rdpfleet-agent" <<<"$contents" || fail "agent binary not in the package"

# A stale previous test's packages would hide a broken install.
dpkg --purge rdpfleet-agent rdpfleet-server >/dev/null 2>&1 || true
DEBIAN_FRONTEND=noninteractive dpkg -i "$server_deb" "$agent_deb" >/dev/null

getent passwd rdpfleet >/dev/null || fail "no rdpfleet system user"
[ "$(stat -c '%U %a' /var/lib/rdpfleet)" = "rdpfleet 750" ] || fail "server state dir: $(stat -c '%U %a' /var/lib/rdpfleet)"
[ "$(stat -c '%U:%G %a' /etc/rdpfleet/server.toml)" = "root:rdpfleet 640" ] || fail "server.toml mode"
[ "$(stat -c '%U %a' /var/lib/rdpfleet-agent)" = "root 700" ] || fail "agent state dir"
[ "$(stat -c '%a' /etc/rdpfleet/agent.toml)" = "600" ] || fail "agent.toml mode"
conffiles="$(dpkg-query -W -f='${Conffiles}\n' rdpfleet-server)"
grep -q /etc/rdpfleet/server.toml <<<"$conffiles" || fail "server.toml is not a conffile"
grep -q '^ExecStart=/usr/bin/rdpfleet-agent --config /etc/rdpfleet/agent.toml run' /lib/systemd/system/rdpfleet-agent.service \
    || fail "agent unit does not run the packaged binary"
if command -v systemd-analyze >/dev/null; then
    systemd-analyze verify /lib/systemd/system/rdpfleet-server.service /lib/systemd/system/rdpfleet-agent.service \
        || fail "systemd-analyze rejects a unit"
fi

# The packaged server, as its user, with its configuration, on a free port.
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
cd /var/lib/rdpfleet
runuser -u rdpfleet -- env RDPFLEET_CONFIG=/etc/rdpfleet/server.toml RDPFLEET_LISTEN="127.0.0.1:$port" \
    /usr/bin/rdpfleet-server > "$work/server.out" 2> "$work/server.err" &
server_pid=$!
cd - >/dev/null
for _ in $(seq 1 120); do
    grep -q "listening on" "$work/server.out" 2>/dev/null && break
    kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.err" >&2; fail "the packaged server exited"; }
    sleep 0.5
done
grep -q "listening on" "$work/server.out" || fail "the packaged server did not listen"
[ "$(stat -c '%U %a' /var/lib/rdpfleet/rdpfleet.db)" = "rdpfleet 600" ] || fail "database file: $(stat -c '%U %a' /var/lib/rdpfleet/rdpfleet.db)"
[ -f /var/lib/rdpfleet/initial-credentials.txt ] || fail "no first-start credentials in the state directory"
token="$(sed -n 's/^enrollment_token=//p' /var/lib/rdpfleet/initial-credentials.txt)"

# The packaged agent enrolls with the packaged configuration and reports once.
/usr/bin/rdpfleet-agent --config /etc/rdpfleet/agent.toml enroll --server "http://127.0.0.1:$port" --token "$token" \
    --hostname deb-test >/dev/null 2>"$work/enroll.err" || { cat "$work/enroll.err" >&2; fail "enroll"; }
[ "$(stat -c '%a' /var/lib/rdpfleet-agent/credential.json)" = "600" ] || fail "agent credential mode"
api="$(cd /var/lib/rdpfleet && runuser -u rdpfleet -- env RDPFLEET_CONFIG=/etc/rdpfleet/server.toml /usr/bin/rdpfleet-server user token --username admin 2>/dev/null)"
timeout 60 /usr/bin/rdpfleet-agent --config /etc/rdpfleet/agent.toml run > /dev/null 2>&1 &
agent_pid=$!
seen=""
for _ in $(seq 1 120); do
    if curl -fsS -H "Authorization: Bearer $api" "http://127.0.0.1:$port/api/v1/fleet/machines?q=deb-test" \
        | python3 -c 'import json,sys; m=json.load(sys.stdin)["machines"]; sys.exit(0 if m and m[0]["health"] != "unknown" else 1)'; then
        seen=1; break
    fi
    sleep 0.5
done
kill "$agent_pid" 2>/dev/null || true
[ -n "$seen" ] || fail "the packaged agent's report did not arrive"

# Remove keeps state; purge deletes it and the user.
kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=""
dpkg -r rdpfleet-agent rdpfleet-server >/dev/null
[ ! -e /usr/bin/rdpfleet-server ] && [ ! -e /usr/bin/rdpfleet-agent ] || fail "binaries left after remove"
[ -f /var/lib/rdpfleet/rdpfleet.db ] && [ -f /var/lib/rdpfleet-agent/credential.json ] || fail "remove deleted state"
dpkg --purge rdpfleet-agent rdpfleet-server >/dev/null
[ ! -e /var/lib/rdpfleet ] && [ ! -e /var/lib/rdpfleet-agent ] && [ ! -e /etc/rdpfleet/server.toml ] || fail "purge left state"
getent passwd rdpfleet >/dev/null && fail "purge left the system user"
echo "deb packages: built, installed, served, enrolled, reported, removed and purged"
