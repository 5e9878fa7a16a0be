"""Collect metrics.json files into the runs table, labelled from the plan.

``runs.csv`` has one row per run: the plan's labels (dataset, replicate, model, family,
graph, graph_kind, setting, setting_study, setting_key/value for one-key study settings,
seed), the scalar metrics (nested ones flattened to ``a/b`` keys), ``collapsed``, and the
path of its metrics.json. Every table and claim of the report is computed from it.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from scgraphbench.io import read_json, write_table

SCALAR = (int, float, str, bool, type(None))
LABELS = ("task", "dataset", "replicate", "model", "family", "graph", "setting", "seed")


def flatten_metrics(m: dict, prefix: str = "") -> dict:
    """Scalar metrics, with nested dicts (e.g. per-subgroup scores) flattened to a/b keys;
    lists (history, per-class arrays) stay in metrics.json only."""
    flat = {}
    for key, value in m.items():
        if key in ("history", "environment", "params", "train"):
            continue
        if isinstance(value, dict):
            flat.update(flatten_metrics(value, f"{prefix}{key}/"))
        elif isinstance(value, SCALAR):
            flat[f"{prefix}{key}"] = value
    return flat


def load_runs(paths: list[str], plan: dict[str, Any] | None = None) -> pd.DataFrame:
    rows = []
    for p in paths:
        m = read_json(p)
        row = flatten_metrics(m)
        row["params"] = json.dumps(m.get("params", {}), sort_keys=True)
        row["device"] = (m.get("environment") or {}).get("device", "")
        row["metrics_path"] = str(p)
        rows.append(row)
    runs = pd.DataFrame(rows)
    # runs made by hand may lack the labels the workflow passes: fill what can be derived
    for column, default in (("model", None), ("graph", "none"), ("setting", "default"),
                            ("dataset", "unnamed"), ("replicate", 0)):
        if column not in runs:
            runs[column] = runs["family"] if column == "model" else default
        runs[column] = runs[column].fillna(runs["family"] if column == "model" else default)
    runs["replicate"] = runs["replicate"].astype(int)
    if "collapsed" not in runs:
        runs["collapsed"] = False
    runs["collapsed"] = runs["collapsed"].fillna(False).astype(bool)
    label_runs(runs, plan)
    first = [c for c in LABELS if c in runs]
    return runs[first + [c for c in runs.columns if c not in first]].sort_values(first)


def label_runs(runs: pd.DataFrame, plan: dict[str, Any] | None) -> None:
    """setting_study, setting_key, setting_value, graph_kind: from the plan (never parsed
    from names); runs outside any plan count as the main study's default."""
    settings = (plan or {}).get("settings", {})
    kinds = {g: v["kind"] for g, v in ((plan or {}).get("graphs") or {}).items()}
    study, key, value = [], [], []
    for model, name in zip(runs["model"], runs["setting"], strict=True):
        s = settings.get(f"{model}/{name}") or {"study": "main", "overrides": []}
        study.append(s["study"])
        single = len(s["overrides"]) == 1 and s["study"] != "tuning"
        key.append(s["overrides"][0][1] if single else "")
        value.append(s["overrides"][0][2] if single else None)
    runs["setting_study"], runs["setting_key"], runs["setting_value"] = study, key, value
    runs["graph_kind"] = runs["graph"].map(kinds).fillna(
        runs["graph"].where(runs["graph"] == "none", "unknown"))


def aggregate(metrics_paths: list[str], out_csv: str, plan: dict[str, Any] | None = None
              ) -> pd.DataFrame:
    """All runs, one row each, into ``runs.csv``: what every study table is computed from."""
    runs = load_runs(metrics_paths, plan)
    write_table(runs, out_csv)
    return runs
