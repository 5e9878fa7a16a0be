"""Collect metrics.json files into a runs table and mean ± std summary tables."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from scgraphbench.io import atomic_path, read_json

GROUP = ["dataset", "graph", "family"]
ANNOTATION_METRICS = ["accuracy", "macro_f1", "time_per_step_s", "train_time_s",
                      "peak_memory_mb", "n_parameters"]


def load_runs(paths: list[str]) -> pd.DataFrame:
    rows = []
    for p in paths:
        m = read_json(p)
        m.pop("history", None)
        m.pop("environment", None)
        m["params"] = str(m.get("params", {}))
        m["metrics_path"] = str(p)
        rows.append(m)
    return pd.DataFrame(rows)


def mean_std(runs: pd.DataFrame, metrics: list[str], group: list[str]) -> pd.DataFrame:
    g = runs.groupby(group, dropna=False)
    out = g[metrics].agg(["mean", "std"])
    out.columns = [f"{m}_{stat}" for m, stat in out.columns]
    out["n_seeds"] = g.size()
    return out.reset_index()


def to_markdown(summary: pd.DataFrame, metrics: list[str], group: list[str]) -> str:
    """Markdown with one 'mean ± std' cell per metric."""
    table = summary[group].copy()
    for m in metrics:
        mean, std = summary[f"{m}_mean"], summary[f"{m}_std"].fillna(0.0)
        table[m] = [f"{a:.4g} ± {b:.2g}" for a, b in zip(mean, std, strict=True)]
    table["seeds"] = summary["n_seeds"]
    return table.to_markdown(index=False) + "\n"


def write_table(df: pd.DataFrame, path: Path, markdown: str | None = None) -> None:
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)
    if markdown is not None:
        with atomic_path(path.with_suffix(".md")) as tmp:
            tmp.write_text(markdown)


def aggregate(metrics_paths: list[str], out_dir: str) -> pd.DataFrame:
    out = Path(out_dir)
    runs = load_runs(metrics_paths)
    write_table(runs, out / "runs.csv")
    ann = runs[runs["task"] == "annotation"]
    if len(ann):
        summary = mean_std(ann, ANNOTATION_METRICS, GROUP)
        write_table(summary, out / "annotation.csv", to_markdown(summary, ANNOTATION_METRICS, GROUP))
    return runs


def graph_table(stats_paths: list[str], out: str) -> pd.DataFrame:
    """One row per (dataset, variant) from the stats.json files of build_graph."""
    rows = []
    for p in stats_paths:
        st = read_json(p)
        st.setdefault("dataset", Path(p).parent.name)
        rows.append({k: v for k, v in st.items() if not isinstance(v, (dict, list))})
    df = pd.DataFrame(rows)
    first = [c for c in ("dataset", "variant") if c in df]
    df = df[first + [c for c in df.columns if c not in first]].sort_values(first)
    write_table(df, Path(out), df.to_markdown(index=False) + "\n")
    return df
