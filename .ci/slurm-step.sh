#!/usr/bin/env bash
# CI step: the real one-node SLURM test (tests/slurm/run-slurm-test.sh).
#
# Prints exactly one verdict line:
#   SLURM TEST: PASS
#   SLURM TEST: SKIPPED (<reason>)   no root, no apt/dpkg, the packages would not install,
#                                    or the daemons did not start: exit 0, CI carries on
#   SLURM TEST: FAIL (exit N)        the test itself failed: exit N, CI fails
# The cluster is stopped afterwards whatever happened (only the daemons it started).
# Needs `python` to be scgraphbench's environment (or PYTHON=...).
set -uo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LOG_DIR=${SCGB_CI_LOGS:-$REPO/.ci-logs}
mkdir -p "$LOG_DIR"
START=$(date +%s)

skip() {
  echo "================================================================"
  echo "SLURM TEST: SKIPPED ($*)"
  echo "================================================================"
  exit 0
}

[[ $(id -u) -eq 0 ]] || skip "not root: starting a SLURM cluster needs root"
command -v apt-get >/dev/null && command -v dpkg-query >/dev/null ||
  skip "no apt-get/dpkg: the test installs Debian's slurm-wlm packages"

stopped=0
stop_cluster() {
  ((stopped)) && return
  stopped=1
  bash "$REPO/tests/slurm/stop-cluster.sh" >>"$LOG_DIR/slurm-stop.log" 2>&1 || true
}
trap stop_cluster EXIT

echo "[ci] starting a one-node SLURM cluster (log: $LOG_DIR/slurm-start.log)"
if ! timeout 900 bash "$REPO/tests/slurm/start-cluster.sh" >"$LOG_DIR/slurm-start.log" 2>&1; then
  tail -n 15 "$LOG_DIR/slurm-start.log"
  reason=$(grep -m1 -iE "^E:|error|did not become ready|unable|cannot" "$LOG_DIR/slurm-start.log" |
    cut -c1-160)
  skip "the cluster could not be installed or started: ${reason:-see $LOG_DIR/slurm-start.log}"
fi
echo "[ci] cluster up after $(($(date +%s) - START)) s; running tests/slurm/run-slurm-test.sh"

rc=0
SCGB_SLURM_NO_START=1 PYTHON=${PYTHON:-$(command -v python)} \
  bash "$REPO/tests/slurm/run-slurm-test.sh" 2>&1 | tee "$LOG_DIR/slurm-test.log" || rc=$?
# (pipefail: rc is the test's exit code, not tee's); a PASS line without a zero exit (or the reverse) is a failure too
if ((rc == 0)) && ! grep -q "\] PASS in" "$LOG_DIR/slurm-test.log"; then
  rc=1
fi
stop_cluster
echo "================================================================"
if ((rc == 0)); then
  echo "SLURM TEST: PASS"
  echo "(cluster start and test: $(($(date +%s) - START)) s)"
else
  echo "SLURM TEST: FAIL (exit $rc; log $LOG_DIR/slurm-test.log)"
fi
echo "================================================================"
exit "$rc"
