"""Collect metrics.json files into a runs table and mean ± std summary tables."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from scgraphbench.io import atomic_path, read_json, write_text

SCALAR = (int, float, str, bool, type(None))


def flatten_metrics(m: dict, prefix: str = "") -> dict:
    """Scalar metrics, with nested dicts (e.g. per-subgroup scores) flattened to a/b keys;
    lists (history, per-class arrays) stay in metrics.json only."""
    flat = {}
    for key, value in m.items():
        if key in ("history", "environment", "params"):
            continue
        if isinstance(value, dict):
            flat.update(flatten_metrics(value, f"{prefix}{key}/"))
        elif isinstance(value, SCALAR):
            flat[f"{prefix}{key}"] = value
    return flat


def load_runs(paths: list[str]) -> pd.DataFrame:
    rows = []
    for p in paths:
        m = read_json(p)
        row = flatten_metrics(m)
        row["params"] = json.dumps(m.get("params", {}), sort_keys=True)
        row["device"] = (m.get("environment") or {}).get("device", "")
        row["metrics_path"] = str(p)
        rows.append(row)
    runs = pd.DataFrame(rows)
    # runs made by hand may lack the labels Snakemake passes: fill what can be derived
    for column, default in (("model", runs.get("family")), ("graph", "none"),
                            ("setting", "default"), ("dataset", "unnamed")):
        if column not in runs:
            runs[column] = default
        runs[column] = runs[column].fillna(runs["family"] if column == "model" else default)
    parts = runs["setting"].fillna("default").str.partition("-")
    runs["setting_key"] = parts[0].where(parts[2] != "", "")
    runs["setting_value"] = parts[2]
    first = [c for c in ("task", "dataset", "model", "family", "graph", "setting", "seed")
             if c in runs]
    return runs[first + [c for c in runs.columns if c not in first]].sort_values(first)


def write_table(df: pd.DataFrame, path: Path, markdown: str | None = None) -> None:
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)
    if markdown is not None:
        write_text(path.with_suffix(".md"), markdown)


def aggregate(metrics_paths: list[str], out_csv: str) -> pd.DataFrame:
    """All runs, one row each, into ``runs.csv``: what every study table is computed from."""
    runs = load_runs(metrics_paths)
    write_table(runs, Path(out_csv))
    return runs


def graph_table(stats_paths: list[str], out: str, graph_paths: list[str] | None = None,
                overlap_out: str | None = None) -> pd.DataFrame:
    """One row per (dataset, variant) from the stats.json files of build_graph.

    Nested fields become dotted columns (``databases.<db>.hvg_fraction``, ``overlap.base``,
    ``params.top_h``); lists are left out. GenoHoption's reported mean degree stands beside
    ours for the datasets it reports (ms, myeloid, pancreas). With ``graph_paths`` and
    ``overlap_out``, the pairwise edge Jaccard between each dataset's variants is written too.
    """
    from scgraphbench.graphs.build import GENOHOPTION_PAPER_MEAN_DEGREE, overlap_table

    rows = []
    for p in stats_paths:
        st = read_json(p)
        st.setdefault("dataset", Path(p).parent.name)
        flat = pd.json_normalize(st, sep=".").iloc[0].to_dict()
        rows.append({k: v for k, v in flat.items() if not isinstance(v, (dict, list))})
    df = pd.DataFrame(rows)
    df["genohoption_paper_mean_degree"] = (
        df["dataset"].astype(str).str.lower().map(GENOHOPTION_PAPER_MEAN_DEGREE))
    first = [c for c in ("dataset", "variant", "kind", "nodes", "edges", "mean_degree",
                         "genohoption_paper_mean_degree") if c in df]
    df = df[first + [c for c in df.columns if c not in first]].sort_values(["dataset", "variant"])
    write_table(df, Path(out), df.to_markdown(index=False) + "\n")
    if graph_paths and overlap_out:
        ov = overlap_table(graph_paths)
        write_table(ov, Path(overlap_out), ov.to_markdown(index=False) + "\n")
    return df
