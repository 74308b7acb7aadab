#!/usr/bin/env bash
# Install everything (including Chromium for the browser test), lint, then run the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
TVING_WITH_BROWSER=1 scripts/setup.sh
export HF_HUB_OFFLINE=1
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/python -m pytest "$@"
