"""Seaborn figures from the runs table: error bars are the std over seeds."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from scgraphbench.io import atomic_path  # noqa: E402


def save(fig: plt.Figure, path: Path) -> None:
    for suffix in (".png", ".pdf"):
        with atomic_path(path.with_suffix(suffix), suffix=suffix) as tmp:
            fig.savefig(tmp, dpi=150, bbox_inches="tight", format=suffix[1:])
    plt.close(fig)


def annotation_figures(runs_csv: str, out_dir: str) -> list[Path]:
    out = Path(out_dir)
    runs = pd.read_csv(runs_csv)
    runs = runs[runs["task"] == "annotation"].copy()
    runs["model"] = runs["family"] + " / " + runs["graph"].fillna("none")
    order = runs.groupby("model")["macro_f1"].mean().sort_values(ascending=False).index
    sns.set_theme(style="whitegrid", context="paper")

    n_data = runs["dataset"].nunique()
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(order) * max(1, n_data) + 1.5))
    sns.barplot(data=runs, y="model", x="macro_f1", hue="dataset", order=order,
                errorbar="sd", capsize=0.2, ax=ax)
    ax.set_xlabel("test macro-F1 (mean ± std over seeds)")
    ax.set_ylabel("model family / gene graph")
    ax.set_xlim(0, 1)
    f1 = out / "macro_f1_by_model"
    save(fig, f1)

    agg = runs.groupby(["dataset", "model"], as_index=False)[
        ["macro_f1", "train_time_s", "peak_memory_mb"]].agg(["mean", "std"])
    agg.columns = ["_".join(c).rstrip("_") for c in agg.columns]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), sharey=True)
    for ax, (col, label) in zip(axes, [("train_time_s", "training time (s)"),
                                       ("peak_memory_mb", "peak memory above baseline (MB)")],
                                strict=True):
        sns.scatterplot(data=agg, x=f"{col}_mean", y="macro_f1_mean", hue="model", style="dataset",
                        s=70, ax=ax, legend=ax is axes[-1])
        ax.errorbar(agg[f"{col}_mean"], agg["macro_f1_mean"], xerr=agg[f"{col}_std"].fillna(0),
                    yerr=agg["macro_f1_std"].fillna(0), fmt="none", ecolor="grey", alpha=0.6)
        ax.set_xscale("log")
        ax.set_xlabel(f"{label}, log scale")
        ax.set_ylabel("test macro-F1")
    axes[-1].legend(bbox_to_anchor=(1.02, 1), loc="upper left", fontsize=7)
    f2 = out / "macro_f1_vs_cost"
    save(fig, f2)
    return [f1.with_suffix(".png"), f2.with_suffix(".png")]
