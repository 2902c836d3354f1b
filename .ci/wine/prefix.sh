#!/usr/bin/env bash
# Makes a Wine prefix that runs the Rust agent: .ci/wine/prefix.sh PREFIX
# Wine 8 lacks ProcessPrng, which Rust's std imports; processprng.c supplies it.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
prefix="${1:?usage: prefix.sh PREFIX}"
export WINEPREFIX="$prefix" WINEDEBUG=-all
mkdir -p "$prefix"
wine wineboot -i >/dev/null 2>&1 || true
x86_64-w64-mingw32-gcc -shared -O2 -o "$prefix/drive_c/windows/system32/bcryptprimitives.dll" \
    "$here/processprng.c" "$here/processprng.def" -lbcrypt
