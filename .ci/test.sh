#!/usr/bin/env bash
# The project's test command (run by `make test`): fails on the first problem.
set -euo pipefail
cd "$(dirname "$0")/.."

snapshot() { find nbs hydra_nb -type f \( -name '*.ipynb' -o -name '*.py' \) -not -path '*/.ipynb_checkpoints/*' -print0 | sort -z | xargs -0 sha256sum; }

# tests/test_reports.py opens the rendered reports in headless Chromium: Debian's package, installed here when missing
if [ ! -x /usr/bin/chromium ]; then
  echo "== installing Debian's chromium for the report tests"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q chromium
fi

echo "== 1/4 nbdev-clean leaves no change"
before=$(snapshot); nbdev-clean; after=$(snapshot)
if [ "$before" != "$after" ]; then
  diff <(echo "$before") <(echo "$after") || true
  echo "FAIL: nbdev-clean changed the notebooks above: run nbdev-clean and commit"; exit 1
fi

echo "== 2/4 nbdev-export leaves no change"
before=$(snapshot); nbdev-export; after=$(snapshot)
if [ "$before" != "$after" ]; then
  diff <(echo "$before") <(echo "$after") || true
  echo "FAIL: notebooks and package out of sync: run nbdev-export and commit"; exit 1
fi

echo "== 3/4 nbdev-test"
nbdev-test --n-workers 2

echo "== 4/4 pytest"
set +e
python -m pytest "$@"
rc=$?
set -e
if [ $rc -eq 5 ]; then echo "FAIL: pytest collected no tests"; exit 1; fi
exit $rc
