#!/usr/bin/env bash
# The demo from a fresh Debian 12 machine: installs what is missing, builds,
# and trains a 784-256-10 MLP on Fashion-MNIST, printing its test accuracy.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
exec "${MNEMO_BUILD:-build}/mnemo" train --model mlp --train-limit 10000 --epochs 5 "$@"
