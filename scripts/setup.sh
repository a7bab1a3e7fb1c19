#!/usr/bin/env bash
# Installs what mnemo needs on Debian 12 (as root or through sudo), only if missing.
# Idempotent and quiet when everything is present, so re-running is fast.
set -euo pipefail

PKGS=(build-essential pkg-config git meson ninja-build check
      libopenblas-openmp-dev libjansson-dev zlib1g-dev dataset-fashion-mnist
      graphviz fortunes-min)
PKGS+=("${MNEMO_EXTRA_PKGS[@]:-}")

missing=()
for p in "${PKGS[@]}"; do
  [ -n "$p" ] || continue
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "setup: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
