#!/usr/bin/env bash
# Configures (once) and builds mnemo in $MNEMO_BUILD (default build/) with
# the OpenMP build of OpenBLAS. Extra arguments go to `meson setup`.
set -euo pipefail
cd "$(dirname "$0")/.."
export PKG_CONFIG_PATH=/usr/lib/x86_64-linux-gnu/openblas-openmp/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
build=${MNEMO_BUILD:-build}
if [ ! -f "$build/build.ninja" ]; then
  meson setup "$build" "$@" >/dev/null
fi
ninja -C "$build" >/dev/null
