"""The whole config is checked before any job runs: schema, then the plan (families,
parameters of every family, graph variants, studies, baselines). Every error names the key
path; no mutation of a valid config may escape as another exception."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scgraphbench.cli import main
from scgraphbench.config import validate_config
from scgraphbench.errors import ScgbError
from scgraphbench.plan import build_plan

REPO = Path(__file__).resolve().parents[1]
TINY = yaml.safe_load((REPO / "tests/configs/tiny.yaml").read_text())


def check(config: dict[str, Any]) -> Any:
    return build_plan(validate_config(copy.deepcopy(config)))


def with_(path: str, value: Any, config: dict[str, Any] | None = None) -> dict[str, Any]:
    """A copy of the tiny config with the dotted ``path`` set to ``value``."""
    cfg = copy.deepcopy(config or TINY)
    *parents, last = path.split(".")
    node = cfg
    for key in parents:
        node = node.setdefault(key, {}) if isinstance(node, dict) else node
    node[last] = value
    return cfg


@pytest.mark.parametrize(
    "path, value, field, words",
    [
        # a typo in an array family's parameter (issue 14: logreg swallowed it)
        ("models.logreg.params", {"CC": 0.1}, "models.logreg.params", "no parameter"),
        ("models.logreg.params", {"C": -1}, "models.logreg.params.C", "C = -1"),
        ("models.transformer.params.n_heads", "four", "models.transformer.params.n_heads",
         "'four'"),
        ("models.transformer.family", "transfomer", "models.transformer.family",
         "unknown model family 'transfomer'"),
        ("models.genohoption_ppr.graphs", ["coexpr", "nope"], "models.genohoption_ppr.graphs",
         "['nope'] not defined"),
        ("models.genohoption_ppr.graphs", [], "models.genohoption_ppr.graphs",
         "needs a gene graph"),
        ("models.transformer.graphs", ["coexpr"], "models.transformer.graphs",
         "uses no gene graph"),
        ("studies.sensitivity.grid", {"nomodel": {"alpha": [0.5]}}, "studies.sensitivity.grid",
         "not defined"),
        ("studies.sensitivity.grid", {"genohoption_ppr": {"alpha": [1.5]}}, "alpha", "1.5"),
        ("studies.ablation.arms", {"full": {"model": "genohoption_ppr", "graph": "knn"},
                                   "random": {"model": "genohoption_ppr", "graph": "coexpr"}},
         "studies.ablation.arms.full.graph", "not defined"),
        ("report.baseline", "performer", "report.baseline", "not a configured model"),
    ],
)
def test_plan_errors_name_the_key(path, value, field, words):
    with pytest.raises(ScgbError) as e:
        check(with_(path, value))
    assert e.value.field is not None and field in e.value.field
    assert words in str(e.value) and e.value.fix


@pytest.mark.parametrize(
    "path, value, field",
    [
        ("models.transformer.train", {"lr": -0.001}, "models.transformer.train.lr"),
        ("models.transformer.train", {"lr": 1e-3, "epoch": 3}, "models.transformer.train"),
        ("train.lr", 0, "train.lr"),
        ("train.weight_decay", -1, "train.weight_decay"),
        ("train.grad_clip", -0.5, "train.grad_clip"),
        ("graphs.coexpr.max_degree", 0, "graphs.coexpr.max_degree"),
        ("datasets.pbmc68k.n_top_genes", 5, "datasets.pbmc68k.n_top_genes"),
        ("replicates", 0, "replicates"),
        ("seeds", [], "seeds"),
    ],
)
def test_schema_errors_name_the_key(path, value, field):
    with pytest.raises(ScgbError) as e:
        check(with_(path, value))
    assert e.value.field == field or e.value.field.startswith(field)


def test_every_comparison_carries_the_simple_baselines():
    cfg = copy.deepcopy(TINY)
    del cfg["models"]["logreg"]
    cfg["studies"]["few_shot"]["models"] = ["transformer"]
    cfg["studies"]["scaling"]["models"] = ["transformer"]
    with pytest.raises(ScgbError, match="no 'logreg' model") as e:
        check(cfg)
    assert e.value.field == "models"


def test_graph_free_configs_are_valid():
    cfg = copy.deepcopy(TINY)
    cfg["models"] = {"logreg": {"params": {"C": 0.1}}, "transformer": {}}
    cfg["studies"] = {}
    plan = check(cfg)
    assert plan.graph_builds() == [] and {r.graph for r in plan.runs} == {"none"}


def test_validate_config_cli(tmp_path, capsys):
    assert main(["validate-config", str(REPO / "config/config.yaml")]) == 0
    assert "valid" in capsys.readouterr().out
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(with_("models.logreg.params", {"CC": 0.1})))
    assert main(["validate-config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "models.logreg.params" in err and "fix:" in err
    assert "Traceback" not in err
    bad.write_text("datasets: [unclosed")
    assert main(["validate-config", str(bad)]) == 2
    assert "not valid YAML" in capsys.readouterr().err


@pytest.mark.slow
def test_snakemake_stops_before_any_job(tmp_path):
    """A bad config fails the dry run at parse time with the key path, not at train time."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(with_("models.transformer.family", "transfomer")))
    res = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"),
                          "--configfile", str(bad), "-n", "--cores", "1"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=300)
    out = res.stdout + res.stderr
    assert res.returncode != 0
    assert "models.transformer.family" in out and "transfomer" in out
    assert not (tmp_path / "results").exists()


# -- property: any mutation is either accepted or refused with a key path ----------------
def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


PATHS = _paths(TINY)
WEIRD = st.one_of(st.none(), st.booleans(), st.integers(-5, 10**6), st.floats(allow_nan=True),
                  st.text(max_size=8), st.lists(st.integers(-2, 3), max_size=3),
                  st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
                  st.sampled_from(["coexpr", "logreg", "transformer", "pbmc68k", "ppr", "auto",
                                   "none", "balanced", "random", "-1", "1e-3"]))


def _mutate(config: dict, path: tuple, op: str, value: Any) -> dict:
    cfg = copy.deepcopy(config)
    node = cfg
    for key in path[:-1]:
        node = node[key]
    last = path[-1]
    if op == "delete":
        del node[last]
    elif op == "rename" and isinstance(node, dict):
        node[f"{last}x"] = node.pop(last)
    else:
        node[last] = value
    return cfg


@settings(max_examples=300, deadline=None, derandomize=True,  # the same examples in CI as here
          suppress_health_check=[HealthCheck.too_slow])
@given(mutations=st.lists(st.tuples(st.sampled_from(PATHS),
                                    st.sampled_from(["delete", "rename", "set"]), WEIRD),
                          min_size=1, max_size=3))
def test_mutated_configs_are_accepted_or_refused_with_a_key_path(mutations):
    cfg = TINY
    for path, op, value in mutations:
        try:
            cfg = _mutate(cfg, path, op, value)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation removed or retyped this path's parents
    try:
        check(cfg)
    except ScgbError as e:
        assert e.field, f"no key path in: {e}"


def test_engine_check_config_restricts_models_and_graphs_to_the_planted_data():
    cfg = yaml.safe_load((REPO / "config/engine_check.yaml").read_text())
    cfg["datasets"]["pbmc"] = {"source": "scanpy_pbmc68k_reduced", "label_key": "bulk_labels",
                               "models": ["logreg"]}
    plan = check(cfg)
    on = {(r.dataset, r.model, r.graph) for r in plan.runs}
    assert {(m, g) for d, m, g in on if d == "pbmc"} == {("logreg", "none")}
    # the random controls inherit their base's datasets: none runs on pbmc
    assert not any(d == "pbmc" and "random" in g for d, _, g in on)
    assert ("planted", "gnn_gcn", "random_planted_grn") in on
    checks = [c for c in plan.comparisons if c.table == "engine_check"]
    assert {c.family for c in checks} == {"engine_positive:planted", "engine_negative:planted"}
    assert {c.id for c in checks} == {f"engine_{role}:planted:{m}:{g}"
                                      for role, g in (("positive", "planted_grn"),
                                                      ("negative", "shuffled_grn"))
                                      for m in ("gnn_value", "gnn_gcn", "genohoption_ppr")}
    # engine-check data stays out of the paper claims
    assert all("planted" not in c.datasets for c in plan.comparisons if c.table == "claims")

    cfg["datasets"]["pbmc"]["models"] = ["logreg", "nomodel"]
    with pytest.raises(ScgbError, match="not defined") as e:
        check(cfg)
    assert e.value.field == "datasets.pbmc.models"
    cfg["datasets"]["pbmc"]["models"] = ["gnn_gcn"]
    with pytest.raises(ScgbError, match="no 'logreg' model"):
        check(cfg)


def test_graph_free_config_dry_runs_and_its_graph_table_is_empty(tmp_path):
    """Issue 14: a config whose models are all graph-free stopped in graph-table with
    'argument --stats: expected at least one argument'."""
    import pandas as pd

    cfg = copy.deepcopy(TINY)
    cfg["models"] = {"logreg": {"params": {"C": 0.1}}, "transformer": {}}
    cfg["studies"] = {}
    path = tmp_path / "graph_free.yaml"
    path.write_text(yaml.safe_dump(cfg))
    from conftest import snakemake

    res = snakemake(tmp_path, "-n", configfile=path)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "graph_table" in res.stdout and "build_graph" not in res.stdout
    # the shell command the rule runs when there are no graphs
    out = tmp_path / "graphs.csv"
    assert main(["graph-table", "--stats", "--graphs", "--overlap",
                 str(tmp_path / "overlap.csv"), "--out", str(out)]) == 0
    assert pd.read_csv(out).empty
