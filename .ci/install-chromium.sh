#!/usr/bin/env bash
# CI step: install Debian's Chromium for tests/test_report_browser.py (the report opened in
# a real browser). Never fails: without Chromium that test skips, and this prints why:
#   BROWSER TEST: chromium ready (<version>)
#   BROWSER TEST: SKIPPED (<reason>)
set -uo pipefail

skip() {
  echo "================================================================"
  echo "BROWSER TEST: SKIPPED ($*)"
  echo "================================================================"
  exit 0
}
ready() { echo "BROWSER TEST: chromium ready ($(chromium --version 2>/dev/null | head -1))"; exit 0; }

command -v chromium >/dev/null && ready
[[ $(id -u) -eq 0 ]] || skip "no chromium on PATH and not root, so it cannot be installed"
command -v apt-get >/dev/null || skip "no chromium on PATH and no apt-get to install it"
export DEBIAN_FRONTEND=noninteractive
if ! out=$(timeout 600 apt-get -o DPkg::Lock::Timeout=300 update -qq 2>&1); then
  skip "apt-get update failed: $(tail -n1 <<<"$out" | cut -c1-160)"
fi
if ! out=$(timeout 900 apt-get -o DPkg::Lock::Timeout=300 install -y -qq \
  --no-install-recommends chromium 2>&1); then
  skip "apt-get install chromium failed: $(grep -m1 '^E:' <<<"$out" | cut -c1-160)"
fi
command -v chromium >/dev/null || skip "chromium installed but not on PATH"
ready
