#!/usr/bin/env bash
# Install everything (including Chromium, PostgreSQL and Redis for the tests), lint, then run the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
TVING_FOR_TESTS=1 scripts/setup.sh
export HF_HUB_OFFLINE=1
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/python -m pytest "$@"
