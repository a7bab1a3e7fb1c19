#!/usr/bin/env bash
# The demo from a fresh Debian 12 machine: installs what is missing, builds,
# and runs the main job: `mnemo train` with no arguments, a character-level
# LSTM on the King James Bible for about two minutes on 2 cores, which
# saves lstm.safetensors and prints samples. Extra arguments go to train.
# The demo is re-runnable: it replaces the checkpoint it wrote before
# (--force; `mnemo train` itself refuses to replace a checkpoint it did not
# create).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
exec "${MNEMO_BUILD:-build}/mnemo" train --force "$@"
