"""Checks for tests/slurm/run-slurm-test.sh: what ran as SLURM jobs, and equal results.

    python tests/slurm/check_runs.py submitted LOG...        SLURM job ids Snakemake submitted
    python tests/slurm/check_runs.py executed PLAN_LOG SLURM_LOGS   every planned job ran in SLURM
    python tests/slurm/check_runs.py jobcomp JOBCOMP WORKDIR IDS...   those ids in SLURM's record
    python tests/slurm/check_runs.py compare LOCAL_DIR SLURM_DIR      metrics.json must match
    python tests/slurm/check_runs.py resumed METRICS_JSON             resumed from a checkpoint?

Each prints one line per finding and exits 1 on a failed check.
"""

from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path
from typing import Any

SUBMITTED = re.compile(
    r"Job (?P<job>\S+) has been submitted with SLURM jobid (?P<id>\d+) "
    r"\(log: (?P<log>\S+?)\)\.?$",
    re.M,
)
# metrics.json keys that depend on the machine, the load or the interruption, not the model
MACHINE_DEPENDENT = re.compile(r"time|_per_s|memory|environment|resumed|hostname|date")


def submitted_jobs(log_text: str) -> dict[int, str]:
    """SLURM job id -> what it ran ('rule_train', 'group_report', ...), from Snakemake's log."""
    jobs = {}
    for m in SUBMITTED.finditer(log_text):
        parts = Path(m["log"]).parts
        where = next((p for p in parts if p.startswith(("rule_", "group_"))), "?")
        jobs[int(m["id"])] = where
    return jobs


def planned_jobs(log_text: str) -> dict[str, int]:
    """Rule -> job count from the first 'Job stats' table of a Snakemake log."""
    table = log_text.split("Job stats:", 1)[1].split("\n\n", 1)[0]
    return {
        m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M) if m[1] != "total"
    }


def executed_in_slurm(slurm_logs: Path) -> dict[int, list[str]]:
    """SLURM job id -> the rules Snakemake executed inside it, from the plugin's job logs
    (.snakemake/slurm_logs/**/<jobid>.log; inside a SLURM job each rule runs as 'localrule')."""
    return {
        int(log.stem): re.findall(r"^localrule (\w+):$", log.read_text(errors="replace"), re.M)
        for log in sorted(slurm_logs.rglob("*.log"))
        if log.stem.isdigit()
    }


def jobcomp_records(path: Path) -> dict[int, dict[str, str]]:
    """SLURM's jobcomp/filetxt log: job id -> its last record (key=value fields)."""
    records = {}
    for line in path.read_text().splitlines():
        fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
        if "JobId" in fields:
            records[int(fields["JobId"])] = fields
    return records


def comparable(metrics: dict[str, Any]) -> dict[str, Any]:
    """The part of a metrics.json that must be identical between two runs of the same job."""
    out = {}
    for key, value in metrics.items():
        if MACHINE_DEPENDENT.search(key):
            continue
        if key == "history":
            value = [
                {k: v for k, v in rec.items() if not MACHINE_DEPENDENT.search(k)} for rec in value
            ]
        out[key] = value
    return out


def differences(a: Any, b: Any, where: str = "") -> list[str]:
    """Exact comparison (NaN equals NaN), listing every differing leaf."""
    if isinstance(a, dict) and isinstance(b, dict):
        diffs = [f"{where}.{k}: only in one run" for k in sorted(set(a) ^ set(b))]
        for k in sorted(set(a) & set(b)):
            diffs += differences(a[k], b[k], f"{where}.{k}")
        return diffs
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{where}: {len(a)} vs {len(b)} items"]
        return [
            d
            for i, (x, y) in enumerate(zip(a, b, strict=True))
            for d in differences(x, y, f"{where}[{i}]")
        ]
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return []
    return [] if a == b else [f"{where}: {a!r} vs {b!r}"]


def compare_runs(local: Path, slurm: Path) -> list[str]:
    """Every metrics.json under local/results/runs against the same path under slurm/."""
    problems = []
    files = sorted((local / "results" / "runs").rglob("metrics.json"))
    if not files:
        return [f"no metrics.json under {local}/results/runs"]
    for path in files:
        rel = path.relative_to(local)
        other = slurm / rel
        if not other.exists():
            problems.append(f"{rel}: missing from the SLURM run")
            continue
        a = comparable(json.loads(path.read_text()))
        b = comparable(json.loads(other.read_text()))
        diffs = differences(a, b)
        pred, other_pred = path.with_name("predictions.csv"), other.with_name("predictions.csv")
        if pred.exists() and pred.read_bytes() != other_pred.read_bytes():
            diffs.append(" predictions.csv differs")
        problems += [f"{rel}{d}" for d in diffs]
        if not diffs:
            shown = {k: a[k] for k in ("accuracy", "macro_f1") if k in a}
            print(f"equal  {rel}  {json.dumps(shown)}")
    return problems


def main(argv: list[str]) -> int:
    cmd, args = argv[0], argv[1:]
    if cmd == "submitted":
        jobs: dict[int, str] = {}
        for log in args:
            jobs.update(submitted_jobs(Path(log).read_text(errors="replace")))
        for jobid, what in sorted(jobs.items()):
            print(jobid, what)
        return 0 if jobs else 1
    if cmd == "executed":
        planned = planned_jobs(Path(args[0]).read_text(errors="replace"))
        inside = executed_in_slurm(Path(args[1]))
        for jobid, rules in sorted(inside.items()):
            print(f"slurm job {jobid} ran: {', '.join(rules) or 'nothing'}")
        missing = {
            rule: n - sum(r.count(rule) for r in inside.values()) for rule, n in planned.items()
        }
        missing = {rule: n for rule, n in missing.items() if n > 0}
        for rule, n in missing.items():
            print(f"BAD {n} planned {rule} job(s) never ran inside a SLURM job")
        return 1 if missing or not planned else 0
    if cmd == "jobcomp":
        records = jobcomp_records(Path(args[0]))
        workdir, ids = args[1], [int(i) for i in args[2:]]
        bad = 0
        for jobid in ids:
            rec = records.get(jobid)
            ok = rec is not None and rec.get("WorkDir") == workdir
            bad += not ok
            state = rec.get("JobState", "?") if rec else "no record"
            node = rec.get("NodeList", "?") if rec else "?"
            tres = rec.get("Tres", "?") if rec else "?"
            print(f"{'ok ' if ok else 'BAD'} slurm job {jobid}: {state} on {node} ({tres})")
        return 1 if bad or not ids else 0
    if cmd == "compare":
        problems = compare_runs(Path(args[0]), Path(args[1]))
        for p in problems:
            print("DIFF  ", p)
        return 1 if problems else 0
    if cmd == "resumed":
        metrics = json.loads(Path(args[0]).read_text())
        epoch = metrics.get("resumed_from_epoch")
        print(f"{args[0]}: resumed_from_epoch={epoch}, epochs_run={metrics.get('epochs_run')}")
        return 0 if isinstance(epoch, int) and epoch >= 1 else 1
    raise SystemExit(f"unknown command {cmd!r}; see {__file__}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
