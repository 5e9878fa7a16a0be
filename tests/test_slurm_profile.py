"""profiles/slurm without a cluster: what each job would ask SLURM for, and the test helpers.

The real-cluster run is tests/test_slurm.py (tests/slurm/run-slurm-test.sh).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
PROFILE = REPO / "profiles" / "slurm"
SLURM_CONFIG = REPO / "tests" / "slurm" / "config.yaml"
TARGETS = ["results/tables/runs.csv", "results/tables/graphs.csv"]

sys.path.insert(0, str(REPO / "tests" / "slurm"))
import check_runs  # noqa: E402


def dry_run(workdir: Path, config: dict) -> subprocess.CompletedProcess:
    cfg = workdir / "config.yaml"
    cfg.write_text(yaml.safe_dump(config))
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "-s",
        str(REPO / "Snakefile"),
        "--configfile",
        str(cfg),
        "--profile",
        str(PROFILE),
        "--dry-run",
        *TARGETS,
    ]
    return subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True, timeout=120)


def planned_resources(output: str) -> list[tuple[str, str, dict[str, str]]]:
    """(rule, wildcards, resources) of every job in a dry run's listing."""
    jobs = []
    blocks = re.split(r"^\s*(?:local)?rule (\w+):\s*$", output, flags=re.M)
    for rule, body in zip(blocks[1::2], blocks[2::2], strict=True):
        wildcards = re.search(r"^\s*wildcards: (.*)$", body, re.M)
        res = re.search(r"^\s*resources: (.*)$", body, re.M)
        resources = dict(kv.split("=", 1) for kv in res.group(1).split(", ")) if res else {}
        jobs.append((rule, wildcards.group(1) if wildcards else "", resources))
    return jobs


class Resources(dict):
    """The attribute-and-get access the plugin uses on job.resources."""

    __getattr__ = dict.__getitem__


def test_gpus_are_requested_only_for_the_listed_families(tmp_path: Path) -> None:
    from snakemake_executor_plugin_slurm.utils import set_gres_string

    config = yaml.safe_load(SLURM_CONFIG.read_text())
    config["cluster"] = {"gpu_families": ["genohoption_ppr"], "gpu": 2, "gpu_model": "a100"}
    res = dry_run(tmp_path, config)
    assert res.returncode == 0, res.stderr[-3000:]
    jobs = planned_resources(res.stdout + res.stderr)
    rules = {rule for rule, _, _ in jobs}
    assert {"prepare_dataset", "build_graph", "train", "aggregate", "graph_table"} <= rules
    for rule, wildcards, resources in jobs:
        assert "mem_mb" in resources and "runtime" in resources, (rule, resources)
        assert resources.get("cpus_per_task") == "1", (rule, resources)
        gpu_job = rule == "train" and "model=genohoption_ppr" in wildcards
        if gpu_job:
            assert resources["gpu"] == "2" and resources["gpu_model"] == "a100"
        else:
            assert resources.get("gpu", "0") == "0" and "gpu_model" not in resources
        # what the plugin adds to sbatch for these resources
        job = SimpleNamespace(
            resources=Resources({k: int(v) if v.isdigit() else v for k, v in resources.items()})
        )
        assert set_gres_string(job) == (" --gpus=a100:2" if gpu_job else "")
    assert sum(rule == "train" for rule, _, _ in jobs) == 3


def test_small_jobs_are_grouped(tmp_path: Path) -> None:
    res = dry_run(tmp_path, yaml.safe_load(SLURM_CONFIG.read_text()))
    assert res.returncode == 0, res.stderr[-3000:]
    out = res.stdout + res.stderr
    assert "Group job graphs" in out and "Group job report" in out
    profile = yaml.safe_load((PROFILE / "config.yaml").read_text())
    grouped = {c.split("=")[0] for c in profile["group-components"]}
    declared = set()
    for smk in (REPO / "workflow" / "rules").glob("*.smk"):
        declared |= set(re.findall(r"^\s+group:\n\s+\"(\w+)\"", smk.read_text(), re.M))
    assert grouped <= declared


def test_profile_settings_fit_a_cluster_without_accounting() -> None:
    profile = yaml.safe_load((PROFILE / "config.yaml").read_text())
    assert profile["executor"] == "slurm"
    assert profile["slurm-requeue"] is True
    assert profile["slurm-status-command"] == "squeue"
    # the plugin uses squeue only while MinJobAge >= 3 x the first status wait; SLURM's
    # default MinJobAge is 300 s, the test cluster's is set in start-cluster.sh
    cluster_script = (REPO / "tests/slurm/start-cluster.sh").read_text()
    min_job_age = int(re.search(r"^MinJobAge=(\d+)$", cluster_script, re.M)[1])
    assert 3 * profile["slurm-init-seconds-before-status-checks"] <= min(300, min_job_age)
    defaults = profile["default-resources"]
    assert {"mem_mb", "runtime", "cpus_per_task"} <= set(defaults)
    # a placeholder account would fail the plugin's sacctmgr check: documented, not set
    assert "slurm_account" not in defaults and "slurm_partition" not in defaults
    # profiles/default is also applied (as the workflow profile) and wins key by key
    local = yaml.safe_load((REPO / "profiles/default/config.yaml").read_text())
    assert not {"executor", "jobs", "default-resources", "set-resources", "retries"} & set(local)
    assert local["cores"] == "all"


def test_schema_rejects_a_bad_gpu_model(tmp_path: Path) -> None:
    config = yaml.safe_load(SLURM_CONFIG.read_text())
    config["cluster"] = {"gpu_families": ["gnn_gcn"], "gpu_model": "'a100'"}
    res = dry_run(tmp_path, config)
    assert res.returncode != 0
    out = res.stdout + res.stderr
    assert "gpu_model" in out and "'a100'" in out


SNAKEMAKE_LOG = """\
Job 2 has been submitted with SLURM jobid 4 (log: /w/.snakemake/slurm_logs/rule_prepare_dataset/pbmc68k/4.log).
Job f25d-77 has been submitted with SLURM jobid 5 (log: /w/.snakemake/slurm_logs/group_graphs_build_graph/5.log).
"""


def test_submitted_jobs_and_jobcomp_records(tmp_path: Path) -> None:
    assert check_runs.submitted_jobs(SNAKEMAKE_LOG) == {
        4: "rule_prepare_dataset",
        5: "group_graphs_build_graph",
    }
    jobcomp = tmp_path / "jobcomp.log"
    jobcomp.write_text(
        "JobId=4 UserId=root(0) Name=x JobState=COMPLETED WorkDir=/w NodeList=vm ReservationName= \n"
        "JobId=5 UserId=root(0) Name=x JobState=PENDING WorkDir=/w NodeList=vm \n"
        "JobId=5 UserId=root(0) Name=x JobState=COMPLETED WorkDir=/w NodeList=vm \n"
    )
    records = check_runs.jobcomp_records(jobcomp)
    assert records[5]["JobState"] == "COMPLETED" and records[4]["WorkDir"] == "/w"
    assert check_runs.main(["jobcomp", str(jobcomp), "/w", "4", "5"]) == 0
    assert check_runs.main(["jobcomp", str(jobcomp), "/elsewhere", "4"]) == 1
    assert check_runs.main(["jobcomp", str(jobcomp), "/w", "6"]) == 1


def test_compare_ignores_timings_but_not_scores(tmp_path: Path) -> None:
    import json

    base = {
        "macro_f1": 0.5,
        "accuracy": 0.6,
        "train_time_s": 3.0,
        "resumed_from_epoch": None,
        "environment": {"host": "a"},
        "history": [{"epoch": 0, "train_loss": 1.0}],
        "peak_memory_mb": 10.0,
        "best_epoch": 0,
        "auroc": float("nan"),
    }
    for name, overrides in (
        ("local", {}),
        ("slurm", {"train_time_s": 9.0, "resumed_from_epoch": 1, "environment": {"host": "b"}}),
    ):
        run = tmp_path / name / "results/runs/d/m/none/seed0"
        run.mkdir(parents=True)
        (run / "metrics.json").write_text(json.dumps({**base, **overrides}))
        (run / "predictions.csv").write_text("cell,true,pred\nc1,a,a\n")
    assert check_runs.compare_runs(tmp_path / "local", tmp_path / "slurm") == []
    changed = tmp_path / "slurm/results/runs/d/m/none/seed0/metrics.json"
    changed.write_text(json.dumps({**base, "history": [{"epoch": 0, "train_loss": 1.0000001}]}))
    assert check_runs.compare_runs(tmp_path / "local", tmp_path / "slurm") == [
        "results/runs/d/m/none/seed0/metrics.json.history[0].train_loss: 1.0 vs 1.0000001"
    ]
    (changed.parent / "predictions.csv").write_text("cell,true,pred\nc1,a,b\n")
    assert (
        "predictions.csv differs"
        in check_runs.compare_runs(tmp_path / "local", tmp_path / "slurm")[-1]
    )


@pytest.mark.parametrize(("epoch", "code"), [(2, 0), (None, 1), (0, 1)])
def test_resumed_check(tmp_path: Path, epoch: int | None, code: int) -> None:
    import json

    path = tmp_path / "metrics.json"
    path.write_text(json.dumps({"resumed_from_epoch": epoch, "epochs_run": 5}))
    assert check_runs.main(["resumed", str(path)]) == code


def test_planned_jobs_must_all_run_inside_slurm(tmp_path: Path) -> None:
    plan = tmp_path / "local.log"
    plan.write_text(
        "Job stats:\njob      count\n-----  -------\ntrain        2\naggregate    1\n"
        "total        3\n\nSelect jobs to execute...\n"
    )
    logs = tmp_path / "slurm_logs"
    (logs / "rule_train" / "a").mkdir(parents=True)
    (logs / "rule_train" / "a" / "11.log").write_text("rule train:\nlocalrule train:\n")
    (logs / "group_report").mkdir()
    (logs / "group_report" / "12.log").write_text("localrule aggregate:\n")
    assert check_runs.planned_jobs(plan.read_text()) == {"train": 2, "aggregate": 1}
    assert check_runs.executed_in_slurm(logs) == {11: ["train"], 12: ["aggregate"]}
    assert check_runs.main(["executed", str(plan), str(logs)]) == 1  # one train job missing
    (logs / "rule_train" / "a" / "13.log").write_text("localrule train:\n")
    assert check_runs.main(["executed", str(plan), str(logs)]) == 0
