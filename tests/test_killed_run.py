"""A Snakemake killed with SIGKILL leaves its lock: the rerun stops with a message naming
--unlock, and `snakemake --unlock`, then the rerun, finish the work (README, docs/cluster.md).

A two-rule workflow stands in for the pipeline: the lock is Snakemake's, not a rule's, and
the tiny workflow keeps this to seconds.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

SNAKEFILE = """
rule all:
    input: "out.txt"

rule slow:
    output: "out.txt"
    shell: "if [ -e go ]; then echo done > {output}; else sleep 120; fi"
"""


def snakemake(wd: Path, *args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "snakemake", "--cores", "1", *args], cwd=wd,
                          capture_output=True, text=True, timeout=120, **kw)


def test_killed_run_needs_unlock_then_reruns(tmp_path):
    (tmp_path / "Snakefile").write_text(SNAKEFILE)
    run = subprocess.Popen([sys.executable, "-m", "snakemake", "--cores", "1"], cwd=tmp_path,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           start_new_session=True)
    locks = tmp_path / ".snakemake" / "locks"
    try:
        deadline = time.monotonic() + 60
        while not (locks.is_dir() and any(locks.iterdir())):
            assert run.poll() is None and time.monotonic() < deadline, "no lock appeared"
            time.sleep(0.2)
    finally:  # SIGKILL Snakemake and its job (its own process group), as an OOM kill would
        os.killpg(run.pid, signal.SIGKILL)
        run.wait(timeout=30)
    assert any(locks.iterdir()), "the killed run left no lock"

    rerun = snakemake(tmp_path)
    out = rerun.stdout + rerun.stderr
    assert rerun.returncode != 0
    assert "LockException" in out and "--unlock" in out, out[-2000:]

    assert snakemake(tmp_path, "--unlock").returncode == 0
    (tmp_path / "go").touch()
    done = snakemake(tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "out.txt").read_text() == "done\n"
