#!/usr/bin/env bash
# Builds the agent's MSI on Linux with wixl (Debian package wixl/msitools):
#   packaging/msi/build.sh AGENT_EXE OUT_DIR [VERSION]
# and prints the MSI's path.
# VERSION defaults to the agent crate's; it must be major.minor.patch (Windows Installer
# compares the first three fields). The product code is derived from the version, so one
# version always has the same product code and a newer one upgrades it.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
exe="${1:?usage: build.sh AGENT_EXE OUT_DIR [VERSION]}"
out="${2:?usage: build.sh AGENT_EXE OUT_DIR [VERSION]}"
version="${3:-$(sed -n 's/^version = "\(.*\)"/\1/p' "$here/../../agent/Cargo.toml" | head -n1)}"
if [ -z "$version" ]; then
    version="$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' "$here/../../Cargo.toml" | head -n1)"
fi
[[ "$version" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || { echo "version must be major.minor.patch, not '$version'" >&2; exit 2; }
[ -f "$exe" ] || { echo "no agent executable at $exe" >&2; exit 2; }
command -v wixl >/dev/null || { echo "wixl is missing (apt-get install wixl)" >&2; exit 2; }
product_code="$(python3 -c 'import sys, uuid; print(str(uuid.uuid5(uuid.UUID("91ABC1A0-EA2D-4EB7-96E2-BB3D0031CD88"), "rdpfleet-agent " + sys.argv[1])).upper())' "$version")"
mkdir -p "$out"
msi="$(readlink -f "$out")/rdpfleet-agent-$version-x64.msi"
# wixl takes sources relative to the .wxs only: build in a scratch folder.
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp "$here/rdpfleet-agent.wxs" "$work/"
cp "$exe" "$work/rdpfleet-agent.exe"
(cd "$work" && wixl --arch x64 -D "Version=$version" -D "ProductCode=$product_code" -o "$msi" rdpfleet-agent.wxs)
echo "$msi"
