"""End to end: the Snakemake workflow on the tiny config, in a temporary working directory."""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import TINY, snakemake


def planned_jobs(dry_run_output: str) -> dict[str, int]:
    """Rule -> job count from the 'Job stats' table of a dry run."""
    table = dry_run_output.split("Job stats:")[1].split("\n\n")[0]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)
            if m.group(1) != "total"}


@pytest.mark.slow
def test_pipeline_produces_tables_figures_and_report(tiny_run: Path, tiny_report: Path) -> None:
    wd = tiny_run
    table = pd.read_csv(wd / "results/tables/main.csv")
    cfg = yaml.safe_load(TINY.read_text())
    assert set(table["model"]) == set(cfg["models"])
    trained = table["collapsed"] == 0  # collapsed runs are counted, not averaged
    assert trained.any() and (table.loc[trained, "n_replicates"] == cfg["replicates"]).all()
    assert table.loc[trained, "accuracy_mean"].between(0, 1).all()
    assert (wd / "results/tables/main.md").read_text().count("±") >= len(cfg["models"])
    graphs = pd.read_csv(wd / "results/tables/graphs.csv")
    assert graphs.loc[0, "edges"] > 0
    runs = pd.read_csv(wd / "results/tables/runs.csv")
    assert {"frac-0.5", "alpha-0.5", "default"} <= set(runs["setting"])
    assert set(runs["replicate"]) == set(range(cfg["replicates"]))
    claims = pd.read_csv(wd / "results/tables/claims.csv")
    assert set(claims["verdict"]) <= {"supported", "contradicted", "inconclusive",
                                      "not testable"}
    assert (wd / "results/summary.md").read_text().startswith("# scgraphbench")
    for study in ("main", "cost", "few_shot", "sensitivity", "scaling", "ablation"):
        assert (wd / f"results/tables/{study}.csv").exists()
        assert (wd / f"results/tables/{study}.md").exists()
        assert (wd / f"results/figures/{study}.png").stat().st_size > 10_000
        assert (wd / f"results/figures/{study}.pdf").exists()
    # every rule logged and benchmarked
    assert list((wd / "logs/train").rglob("*.log"))
    assert list((wd / "results/benchmarks/rules/train").rglob("*.tsv"))
    html = tiny_report.read_text(errors="ignore")
    assert "few_shot.png" in html and "claims.csv" in html


@pytest.mark.slow
def test_jobs_fork_from_the_server_with_their_own_thread_counts(tiny_run: Path) -> None:
    """The run's fork server took the training jobs (all but those that started while it
    was importing), and each ran with its rule's one thread, torch and BLAS alike."""
    import json

    assert (tiny_run / "logs/forkserver.log").exists()
    envs = [json.loads(p.read_text())["environment"]
            for p in (tiny_run / "results/runs").rglob("metrics.json")]
    assert sum(e["forked_from_server"] for e in envs) >= len(envs) // 2, envs[:3]
    assert {(e["threads"], e["blas_threads"]) for e in envs} == {(1, 1)}


@pytest.mark.slow
def test_rerun_does_nothing_and_param_change_reruns_only_that_model(tiny_run: Path,
                                                                   tmp_path: Path) -> None:
    wd = tiny_run
    res = snakemake(wd, "-n")
    assert res.returncode == 0, res.stderr[-3000:]
    assert "Nothing to be done" in res.stdout + res.stderr

    cfg = yaml.safe_load(TINY.read_text())
    cfg["models"]["logreg"]["params"]["C"] = 0.5
    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump(cfg))
    res = snakemake(wd, "-n", configfile=changed)
    assert res.returncode == 0, res.stderr[-3000:]
    jobs = planned_jobs(res.stdout + res.stderr)
    # logreg's runs only: every replicate x seed of the main comparison and the few-shot study
    fractions = [f for f in cfg["studies"]["few_shot"]["fractions"] if f != 1]
    assert "logreg" in cfg["studies"]["few_shot"]["models"]
    assert jobs.pop("train") == cfg["replicates"] * len(cfg["seeds"]) * (1 + len(fractions))
    # the scaling study measures logreg with its params, so it re-runs too; the plan and the
    # report follow; nothing is prepared or built again
    report_rules = {"plan", "aggregate", "claims", "summary", "figures", "all", "scaling"}
    tables = {"main", "cost", "perturbation", *cfg["studies"]}  # one study_* rule per table
    assert set(jobs) - report_rules <= {f"study_{name}" for name in tables}
    train_lines = re.findall(r"output: (results/runs/\S+?)/metrics.json", res.stdout + res.stderr)
    assert train_lines and all("/logreg/" in p for p in train_lines)


def test_config_schema_error_names_the_key(tmp_path: Path) -> None:
    cfg = yaml.safe_load(TINY.read_text())
    cfg["train"]["epoch"] = 3  # typo for 'epochs'
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(cfg))
    res = snakemake(tmp_path, "-n", configfile=bad)
    assert res.returncode != 0
    out = res.stdout + res.stderr
    assert "'epoch' was unexpected" in out and "['train']" in out


def test_every_stage_runs_outside_snakemake(tiny_annotation: Path, tmp_path: Path) -> None:
    from scgraphbench.cli import main

    graph = tmp_path / "coexpr.npz"
    assert main(["build-graph", "--prepared", str(tiny_annotation), "--variant", "coexpr",
                 "--params", '{"top_h": 5, "sigma": 0.1}', "--out", str(graph),
                 "--stats", str(tmp_path / "stats.json")]) == 0
    out = tmp_path / "run"
    assert main(["train", "--prepared", str(tiny_annotation), "--family", "logreg",
                 "--seed", "0", "--meta", '{"dataset": "tiny", "graph": "none"}',
                 "--out-dir", str(out)]) == 0
    assert (out / "metrics.json").exists()
    runs = tmp_path / "tables/runs.csv"
    assert main(["aggregate", "--metrics", str(out / "metrics.json"), "--out", str(runs)]) == 0
    assert main(["study", "--name", "main", "--runs", str(runs), "--table",
                 str(tmp_path / "tables/main.csv"), "--figure", str(tmp_path / "main.png")]) == 0
    assert (tmp_path / "tables/main.md").exists() and (tmp_path / "main.pdf").exists()


def test_cli_reports_user_errors_without_traceback(tmp_path: Path, capsys) -> None:
    from scgraphbench.cli import main

    code = main(["train", "--prepared", str(tmp_path / "missing.h5ad"), "--family", "logreg",
                 "--out-dir", str(tmp_path / "run")])
    assert code == 2
    err = capsys.readouterr().err
    assert "missing.h5ad" in err and "fix:" in err
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_snakemake_available() -> None:
    assert shutil.which("snakemake", path=str(Path(sys.executable).parent)) is not None
