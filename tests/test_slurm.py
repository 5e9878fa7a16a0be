"""The real-SLURM end-to-end test (tests/slurm/run-slurm-test.sh), opt-in.

It installs and starts a one-node SLURM (root, Debian/Ubuntu packages), so it runs only with
SCGB_SLURM_TEST=1: `SCGB_SLURM_TEST=1 pytest -m slurm tests/test_slurm.py`. Several minutes.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "tests" / "slurm" / "run-slurm-test.sh"


@pytest.mark.slurm
@pytest.mark.slow
@pytest.mark.skipif(
    os.environ.get("SCGB_SLURM_TEST") != "1",
    reason="starts a real SLURM cluster (root, apt packages, minutes): set SCGB_SLURM_TEST=1",
)
def test_profile_runs_on_a_real_slurm_cluster() -> None:
    env = {**os.environ, "PYTHON": sys.executable}
    res = subprocess.run(
        ["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=3600
    )
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-6000:]
    assert "PASS" in out and "resumed_from_epoch=" in out
