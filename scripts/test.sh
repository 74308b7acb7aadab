#!/usr/bin/env bash
# Install everything (including Chromium, PostgreSQL and Redis for the tests), lint, then run the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
TVING_FOR_TESTS=1 scripts/setup.sh
export HF_HUB_OFFLINE=1
.venv/bin/ruff check .
.venv/bin/ruff format --check .
# the layers (command line > dev tools > code location > query app > library), no circles (pyproject.toml)
.venv/bin/lint-imports --no-cache
# tests/test_eval.py measures search quality on the project's labelled set; its figures are printed last
export TVING_EVAL_SUMMARY="${TVING_EVAL_SUMMARY:-$(mktemp -t tving-eval-XXXXXX.txt)}"
# the browser tests' screenshots (the Korean search and library pages among them) are kept here
export TVING_TEST_ARTIFACTS="${TVING_TEST_ARTIFACTS:-$PWD/test-artifacts}"
status=0
.venv/bin/python -m pytest "$@" || status=$?
if [ -s "$TVING_EVAL_SUMMARY" ]; then
  echo "==> search quality (tving eval --build, test half):"
  cat "$TVING_EVAL_SUMMARY"
fi
if [ -d "$TVING_TEST_ARTIFACTS" ]; then
  echo "==> screenshots of the browser tests: $TVING_TEST_ARTIFACTS"
  ls "$TVING_TEST_ARTIFACTS"
fi
exit $status
