#!/usr/bin/env bash
# Everything Stria needs on a Debian/Ubuntu host, idempotent: system packages
# (as root, via apt when missing), npm ci when node_modules is missing or stale,
# the native FUSE binding and the TypeScript build.
set -euo pipefail
cd "$(dirname "$0")/.."

# libfuse3-dev + g++/make/python3: the native binding; fuse3: fusermount3;
# libfuse2: the optional fuse-native fallback (before npm ci, or npm drops it);
# fio, attr (setfattr/getfattr): the tests and benchmarks.
# sqlite3, util-linux (flock): the cross-mount locking tests use them as users would;
# redis-server: the Redis metadata backend is tested against a real one; docker-compose: lints docker/.
PACKAGES=(libfuse3-dev fuse3 libfuse2 pkg-config g++ make python3 fio attr sqlite3 util-linux redis-server docker-compose)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "stria setup: missing system packages: ${missing[*]} (run as root, or: sudo apt-get install ${missing[*]})" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
[ -f native/build/Release/stria_fuse.node ] || npm run --silent build:native
npm run --silent build
