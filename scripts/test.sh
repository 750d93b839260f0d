#!/usr/bin/env bash
# Install what the tests need on a fresh machine, then run lint, type checks and the suite.
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m pip install --quiet --disable-pip-version-check -e '.[test]'

lint_dirs=(qualify drivers sim_instruments tests)
[ -d benchmarks ] && lint_dirs+=(benchmarks)
python3 -m ruff check "${lint_dirs[@]}"
python3 -m ruff format --check "${lint_dirs[@]}"
python3 -m mypy

set +e
python3 -m pytest "$@"
code=$?
set -e
if [ "$code" -eq 5 ]; then
  echo "pytest collected no tests: the suite is missing" >&2
  exit 1
fi
exit "$code"
