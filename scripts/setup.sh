#!/usr/bin/env bash
# Installs what Chorus needs on Debian 12 (idempotent) and builds it in release mode.
# Needs the Swift toolchain on PATH; installs Debian packages with apt-get when run as root
# (or through sudo when available), and only the ones that are missing.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(libnng-dev libopenblas-dev pkg-config)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "setup: installing Debian packages: ${missing[*]}"
    if [[ $(id -u) -eq 0 ]]; then sudo=(); elif command -v sudo >/dev/null; then sudo=(sudo); else
        echo "setup: need root (or sudo) to install: ${missing[*]}" >&2
        exit 1
    fi
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${missing[@]}"
else
    echo "setup: Debian packages present: ${packages[*]}"
fi

command -v swift >/dev/null || { echo "setup: swift not found on PATH (install the Swift 6 toolchain)" >&2; exit 1; }
echo "setup: building (release)…"
swift build -c release
echo "setup: done. Try: swift run -c release chorus --help"
