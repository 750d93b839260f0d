#!/usr/bin/env bash
# Install what the tests need on a fresh machine, then run lint, type checks and the suite.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian tools the tests drive for real: workload and stress tools, nvme-cli, and Chromium for
# the report's browser test. Installed only when missing, so a prepared machine starts fast.
declare -A tools=([fio]=fio [memtester]=memtester [stressapptest]=stressapptest [nvme]=nvme-cli
                  [chromium]=chromium)
missing=()
for bin in "${!tools[@]}"; do
  command -v "$bin" >/dev/null 2>&1 || missing+=("${tools[$bin]}")
done
# The fleet database tests (tests/sync) start their own PostgreSQL server on loopback.
compgen -G "/usr/lib/postgresql/*/bin/pg_ctl" >/dev/null || missing+=(postgresql)
if [ "$(id -u)" -eq 0 ]; then export QUALIFY_PG_REQUIRED=1; fi
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
  else
    echo "warning: not root, cannot install: ${missing[*]} (their tests will say so)" >&2
  fi
fi

python3 -m pip install --quiet --disable-pip-version-check -e '.[test]'

# The QEMU NVMe proof (tests/tools/test_qemu_nvme.py) boots a Debian guest with QEMU's emulated
# NVMe controller; its image is built once into ${QUALIFY_QEMU_CACHE:-$HOME/.cache/qualify-qemu}.
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
  if ! command -v qemu-system-x86_64 >/dev/null || ! command -v debootstrap >/dev/null; then
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      qemu-system-x86 debootstrap e2fsprogs fdisk
  fi
  bash scripts/qemu/build-image.sh
  export QUALIFY_QEMU_REQUIRED=1
fi

lint_dirs=(qualify drivers sim_instruments tests scripts)
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
