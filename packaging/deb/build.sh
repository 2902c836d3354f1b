#!/usr/bin/env bash
# Builds rdpfleet-agent_VERSION_amd64.deb and rdpfleet-server_VERSION_amd64.deb with dpkg-deb
# from already built binaries (no extra tool to install):
#   cargo build --release -p rdpfleet-server -p rdpfleet-agent
#   packaging/deb/build.sh target/release dist
# VERSION is the workspace's version (Cargo.toml) unless given as a third argument;
# DEB_COMPRESSION (default "-Zxz") is passed to dpkg-deb (tests use "-Zgzip -z1").
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
bin_dir="${1:?usage: build.sh BIN_DIR OUT_DIR [VERSION]}"
out_dir="${2:?usage: build.sh BIN_DIR OUT_DIR [VERSION]}"
version="${3:-$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -n1)}"
[ -n "$version" ] || { echo "no version found in Cargo.toml" >&2; exit 2; }
for b in rdpfleet-agent rdpfleet-server; do
    [ -x "$bin_dir/$b" ] || { echo "$bin_dir/$b is missing: build it first" >&2; exit 2; }
done
mkdir -p "$out_dir"
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT

# package NAME DESCRIPTION DEPENDS: lays out $stage/NAME as the package's root first.
package() {
    local name="$1" description="$2" depends="$3" dir="$stage/$1"
    local size
    size="$(du -sk "$dir" | cut -f1)"
    mkdir -p "$dir/DEBIAN"
    cat > "$dir/DEBIAN/control" <<CONTROL
Package: $name
Version: $version
Architecture: amd64
Maintainer: rdpfleet <rdpfleet@example.invalid>
Installed-Size: $size
Depends: $depends
Section: admin
Priority: optional
Description: $description
CONTROL
    find "$dir/etc" -type f | sed "s|^$dir||" > "$dir/DEBIAN/conffiles"
    local short="${name#rdpfleet-}"
    for script in postinst prerm postrm; do
        install -m 0755 "$here/$short.$script" "$dir/DEBIAN/$script"
    done
    # shellcheck disable=SC2086 # the options are words
    dpkg-deb ${DEB_COMPRESSION:--Zxz} --root-owner-group --build "$dir" "$out_dir/${name}_${version}_amd64.deb" >/dev/null
    echo "$out_dir/${name}_${version}_amd64.deb"
}

a="$stage/rdpfleet-agent"
install -D -m 0755 "$bin_dir/rdpfleet-agent" "$a/usr/bin/rdpfleet-agent"
install -D -m 0644 "$here/agent.toml" "$a/etc/rdpfleet/agent.toml"
sed 's|/usr/local/bin/rdpfleet-agent|/usr/bin/rdpfleet-agent|; s|^# Install: .*|# Installed by the rdpfleet-agent .deb: enroll once as root, then `systemctl enable --now rdpfleet-agent`.|' \
    "$root/agent/packaging/rdpfleet-agent.service" | grep -v '^# /etc/rdpfleet/agent.toml, run\|^# `systemctl enable --now' \
    > "$stage/agent.service"
install -D -m 0644 "$stage/agent.service" "$a/lib/systemd/system/rdpfleet-agent.service"
package rdpfleet-agent "rdpfleet agent: RDP connection checks, reports and fixes" "libc6, libgcc-s1, libssl3"

s="$stage/rdpfleet-server"
install -D -m 0755 "$bin_dir/rdpfleet-server" "$s/usr/bin/rdpfleet-server"
install -D -m 0644 "$here/server.toml" "$s/etc/rdpfleet/server.toml"
install -D -m 0644 "$here/rdpfleet-server.service" "$s/lib/systemd/system/rdpfleet-server.service"
package rdpfleet-server "rdpfleet server: agent API, dashboard, correlation and rollouts" "libc6, libgcc-s1, adduser"
