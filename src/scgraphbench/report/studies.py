"""One function per study: runs table -> (summary table, markdown, figure).

Every number comes from ``runs.csv`` (one row per run); error bars are the standard
deviation over seeds; p-values are paired across seeds (see :mod:`.stats`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from scgraphbench.errors import ScgbError  # noqa: E402
from scgraphbench.io import atomic_path, write_text  # noqa: E402
from scgraphbench.report.stats import (  # noqa: E402
    by_seed,
    format_mean_std,
    format_p,
    paired_test,
    summarise,
)

ANNOTATION = ["accuracy", "macro_f1"]
COST = ["time_per_step_s", "peak_memory_mb", "n_parameters", "train_time_s",
        "inference_cells_per_s"]
PERTURBATION = ["pearson_delta", "pearson_delta_de", "mse_de", "pearson_de", "pearson", "mse"]


def _label(df: pd.DataFrame) -> pd.Series:
    return np.where(df["graph"].astype(str) == "none", df["model"].astype(str),
                    df["model"].astype(str) + " · " + df["graph"].astype(str))


def _markdown(table: pd.DataFrame, keys: list[str], metrics: list[str],
              extra: list[str] = ()) -> str:
    md = table[keys].copy()
    for m in metrics:
        if f"{m}_mean" in table:
            md[m] = [format_mean_std(a, b) for a, b in zip(table[f"{m}_mean"], table[f"{m}_std"],
                                                           strict=True)]
    for col in extra:
        if col in table:
            md[col] = [format_p(v) if col.startswith("p_") else
                       (f"{v:+.4f}" if isinstance(v, float) and not np.isnan(v) else
                        ("n/a" if isinstance(v, float) else v)) for v in table[col]]
    if "n_seeds" in table:
        md["seeds"] = table["n_seeds"]
    return md.to_markdown(index=False) + "\n"


def save_figure(fig: plt.Figure, png: Path) -> None:
    """PNG (for the report) and PDF (for a paper) side by side."""
    for suffix in (".png", ".pdf"):
        with atomic_path(png.with_suffix(suffix), suffix=suffix) as tmp:
            fig.savefig(tmp, dpi=150, bbox_inches="tight", format=suffix[1:])
    plt.close(fig)


def _log_axis(ax: plt.Axes, axis: str = "x") -> None:
    """Log scale with plain major labels only (minor labels overlap on short ranges)."""
    getattr(ax, f"set_{axis}scale")("log")
    target = ax.xaxis if axis == "x" else ax.yaxis
    target.set_minor_formatter(matplotlib.ticker.NullFormatter())
    target.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))


def _empty_figure(message: str) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(6, 1.5))
    ax.axis("off")
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True)
    return fig


def _default(runs: pd.DataFrame, task: str) -> pd.DataFrame:
    return runs[(runs["task"] == task) & (runs["setting"] == "default")]


def _compare(runs: pd.DataFrame, row: pd.Series, metric: str, other: dict[str, Any]) -> dict:
    mine = by_seed(runs, metric, dataset=row["dataset"], model=row["model"], graph=row["graph"],
                   setting="default")
    theirs = by_seed(runs, metric, dataset=row["dataset"], setting="default", **other)
    t = paired_test(mine, theirs)
    return {"delta": t.mean_difference, "p_ttest": t.p_ttest, "p_wilcoxon": t.p_wilcoxon}


def _comparison_table(runs: pd.DataFrame, task: str, metrics: list[str], key_metric: str,
                      settings: dict[str, Any]) -> pd.DataFrame:
    sel = _default(runs, task)
    if sel.empty:
        return pd.DataFrame()
    table = summarise(sel, metrics, ["dataset", "model", "family", "graph"])
    baseline = settings.get("baseline", "transformer")
    random_of = settings.get("random_control", {})
    rows = []
    for _, row in table.iterrows():
        res = {}
        if row["model"] != baseline:
            c = _compare(sel, row, key_metric, {"model": baseline, "graph": "none"})
            res.update({f"{k}_vs_{baseline}": v for k, v in c.items()})
        rnd = random_of.get(row["graph"])
        if rnd:
            c = _compare(sel, row, key_metric, {"model": row["model"], "graph": rnd})
            res.update({f"{k}_vs_random": v for k, v in c.items()})
        rows.append(res)
    return pd.concat([table, pd.DataFrame(rows, index=table.index)], axis=1)


def _bar(data: pd.DataFrame, metric: str, xlabel: str, hue: str = "dataset") -> plt.Figure:
    data = data.assign(label=_label(data))
    order = data.groupby("label")[metric].mean().sort_values(ascending=False).index
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(order) * max(1, data[hue].nunique()) + 1.2))
    sns.barplot(data=data, y="label", x=metric, hue=hue, order=order, errorbar="sd",
                capsize=0.15, ax=ax)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("model · gene graph")
    return fig


# -- studies -----------------------------------------------------------------------------
def study_main(runs: pd.DataFrame, settings: dict[str, Any]) -> tuple[pd.DataFrame, str, plt.Figure]:
    table = _comparison_table(runs, "annotation", ANNOTATION + ["time_per_step_s",
                                                               "peak_memory_mb"],
                              "macro_f1", settings)
    if table.empty:
        return table, "no annotation runs\n", _empty_figure("no annotation runs")
    b = settings.get("baseline", "transformer")
    extra = [c for c in table.columns if c.startswith(("delta_", "p_"))]
    md = _markdown(table, ["dataset", "model", "graph"], ANNOTATION, extra)
    fig = _bar(_default(runs, "annotation"), "macro_f1",
               f"test macro-F1, mean ± std over seeds (p-values vs {b} in the table)")
    return table, md, fig


def study_perturbation(runs: pd.DataFrame, settings: dict[str, Any]
                       ) -> tuple[pd.DataFrame, str, plt.Figure]:
    table = _comparison_table(runs, "perturbation", PERTURBATION + ["time_per_step_s"],
                              "pearson_delta", settings)
    if table.empty:
        return table, "no perturbation runs\n", _empty_figure("no perturbation runs")
    extra = [c for c in table.columns if c.startswith(("delta_", "p_"))]
    md = _markdown(table, ["dataset", "model", "graph"], PERTURBATION, extra)
    sel = _default(runs, "perturbation")
    metric = "pearson_delta_de" if "pearson_delta_de" in sel else "pearson_delta"
    fig = _bar(sel, metric, f"{metric} on test perturbations, mean ± std over seeds")
    return table, md, fig


def study_cost(runs: pd.DataFrame, settings: dict[str, Any]) -> tuple[pd.DataFrame, str, plt.Figure]:
    sel = runs[runs["setting"] == "default"]
    table = summarise(sel, COST + ANNOTATION + ["pearson_delta"],
                      ["task", "dataset", "model", "family", "graph"])
    b = settings.get("baseline", "transformer")
    for metric in ("time_per_step_s", "peak_memory_mb", "n_parameters"):
        base = table[(table["model"] == b) & (table["graph"] == "none")].set_index("dataset")[
            f"{metric}_mean"]
        table[f"{metric}_ratio_vs_{b}"] = table[f"{metric}_mean"] / table["dataset"].map(base)
    ratios = [c for c in table.columns if "_ratio_vs_" in c]
    md = _markdown(table, ["task", "dataset", "model", "graph"], COST[:3], [])
    md_ratios = table[["dataset", "model", "graph"] + ratios].round(3).to_markdown(index=False)
    md = md + "\nRatios to the dense " + b + " (mean over seeds):\n\n" + md_ratios + "\n"
    ann = sel[sel["task"] == "annotation"]
    if ann.empty:
        return table, md, _empty_figure("no annotation runs for the cost figure")
    agg = summarise(ann, ["macro_f1", "time_per_step_s", "peak_memory_mb"],
                    ["dataset", "model", "graph"])
    agg["label"] = _label(agg)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), sharey=True)
    for ax, (col, name) in zip(axes, [("time_per_step_s", "time per training step (s)"),
                                      ("peak_memory_mb", "peak memory above baseline (MB)")],
                               strict=True):
        sns.scatterplot(data=agg, x=f"{col}_mean", y="macro_f1_mean", hue="label",
                        style="dataset", s=70, ax=ax, legend=ax is axes[-1])
        ax.errorbar(agg[f"{col}_mean"], agg["macro_f1_mean"], xerr=agg[f"{col}_std"].fillna(0),
                    yerr=agg["macro_f1_std"].fillna(0), fmt="none", ecolor="grey", alpha=0.6)
        _log_axis(ax)
        ax.set_xlabel(f"{name}, log scale")
        ax.set_ylabel("test macro-F1")
    axes[-1].legend(bbox_to_anchor=(1.02, 1), loc="upper left", fontsize=7,
                    title="model · graph / dataset")
    return table, md, fig


def _setting_study(runs: pd.DataFrame, keys: list[str], default_values: dict[str, float],
                   models: list[str] | None) -> pd.DataFrame:
    """Runs of a study whose settings vary one key; the default setting counts at its default."""
    frames = []
    for key in keys:
        sel = runs[runs["setting_key"] == key].copy()
        sel["value"] = pd.to_numeric(sel["setting_value"], errors="coerce")
        if key in default_values:
            base = runs[(runs["setting"] == "default")].copy()
            if models is not None:
                base = base[base["model"].isin(sel["model"].unique())]
            base["value"] = default_values[key]
            sel = pd.concat([sel, base])
        sel["parameter"] = key
        frames.append(sel)
    out = pd.concat(frames) if frames else pd.DataFrame()
    if models is not None and not out.empty:
        out = out[out["model"].isin(models)]
    return out


def study_few_shot(runs: pd.DataFrame, settings: dict[str, Any]
                   ) -> tuple[pd.DataFrame, str, plt.Figure]:
    section = settings["studies"].get("few_shot") or {}
    data = _setting_study(runs[runs["task"] == "annotation"], ["frac"], {"frac": 1.0},
                          section.get("models"))
    if data.empty:
        return pd.DataFrame(), "no few-shot runs\n", _empty_figure("no few-shot runs")
    data = data[data["value"].isin(section.get("fractions", data["value"].unique()))]
    data = data.rename(columns={"value": "train_fraction"})
    table = summarise(data, ANNOTATION, ["dataset", "model", "graph", "train_fraction"])
    md = _markdown(table, ["dataset", "model", "graph", "train_fraction"], ANNOTATION)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, metric in zip(axes, ANNOTATION, strict=True):
        sns.lineplot(data=data.assign(label=_label(data)), x="train_fraction", y=metric,
                     hue="label", style="dataset", marker="o", errorbar="sd", ax=ax,
                     legend=ax is axes[-1])
        _log_axis(ax)
        ax.set_xlabel("fraction of training cells (stratified), log scale")
        ax.set_ylabel(f"test {metric.replace('_', '-')}")
    axes[-1].legend(bbox_to_anchor=(1.02, 1), loc="upper left", fontsize=7)
    return table, md, fig


def study_sensitivity(runs: pd.DataFrame, settings: dict[str, Any]
                      ) -> tuple[pd.DataFrame, str, plt.Figure]:
    section = settings["studies"].get("sensitivity") or {}
    frames = []
    for model, grid in (section.get("grid") or {}).items():
        defaults = {k: v for k, v in (section.get("defaults", {}).get(model) or
                                      {"alpha": 0.25, "t": 5.0, "steps": 6}).items()
                    if k in grid}
        frames.append(_setting_study(runs, list(grid), defaults, [model]))
    data = pd.concat(frames) if frames else pd.DataFrame()
    if data.empty:
        return pd.DataFrame(), "no sensitivity runs\n", _empty_figure("no sensitivity runs")
    metric = "macro_f1" if (data["task"] == "annotation").any() else "pearson_delta"
    table = summarise(data, [metric, "accuracy"], ["dataset", "model", "parameter", "value"])
    md = _markdown(table, ["dataset", "model", "parameter", "value"], [metric, "accuracy"])
    params = list(dict.fromkeys(data["parameter"]))
    fig, axes = plt.subplots(1, len(params), figsize=(4.2 * len(params), 3.8), squeeze=False)
    for ax, p in zip(axes[0], params, strict=True):
        d = data[data["parameter"] == p]
        sns.lineplot(data=d, x="value", y=metric, hue="model", style="dataset", marker="o",
                     errorbar="sd", ax=ax)
        ax.set_xlabel({"alpha": "PPR teleport α", "t": "heat-kernel time t",
                       "steps": "diffusion steps K"}.get(p, p))
        ax.set_ylabel(f"test {metric}")
    return table, md, fig


def study_ablation(runs: pd.DataFrame, settings: dict[str, Any]
                   ) -> tuple[pd.DataFrame, str, plt.Figure]:
    section = settings["studies"].get("ablation") or {}
    arms = section.get("arms") or {}
    frames = []
    for label, arm in arms.items():
        sel = runs[(runs["model"] == arm["model"]) & (runs["graph"] == arm["graph"])
                   & (runs["setting"] == "default")].copy()
        sel["arm"] = label
        frames.append(sel)
    data = pd.concat(frames) if frames else pd.DataFrame()
    if data.empty:
        return pd.DataFrame(), "no ablation runs\n", _empty_figure("no ablation runs")
    metric = "macro_f1" if (data["task"] == "annotation").any() else "pearson_delta"
    table = summarise(data, [metric, "accuracy"], ["dataset", "arm", "model", "graph"])
    full = next(iter(arms))
    deltas = []
    for _, row in table.iterrows():
        a = by_seed(data, metric, dataset=row["dataset"], arm=row["arm"])
        b = by_seed(data, metric, dataset=row["dataset"], arm=full)
        t = paired_test(a, b)
        deltas.append({f"delta_vs_{full}": t.mean_difference, f"p_ttest_vs_{full}": t.p_ttest})
    table = pd.concat([table, pd.DataFrame(deltas, index=table.index)], axis=1)
    md = _markdown(table, ["dataset", "arm", "model", "graph"], [metric, "accuracy"],
                   [f"delta_vs_{full}", f"p_ttest_vs_{full}"])
    fig, ax = plt.subplots(figsize=(7, 0.5 * len(arms) * data["dataset"].nunique() + 1.2))
    sns.barplot(data=data, y="arm", x=metric, hue="dataset", order=list(arms), errorbar="sd",
                capsize=0.15, ax=ax)
    ax.set_xlabel(f"test {metric}, mean ± std over seeds")
    ax.set_ylabel("ablation arm")
    return table, md, fig


def study_positional(runs: pd.DataFrame, settings: dict[str, Any]
                     ) -> tuple[pd.DataFrame, str, plt.Figure]:
    section = settings["studies"].get("positional") or {}
    data = runs[runs["dataset"].isin(list(section.get("datasets", {})))
                & (runs["setting_key"] == "pe")].copy()
    if data.empty:
        return pd.DataFrame(), "no positional runs\n", _empty_figure("no positional runs")
    data["positional_encoding"] = data["setting_value"]
    table = summarise(data, ANNOTATION, ["dataset", "model", "positional_encoding"])
    md = _markdown(table, ["dataset", "model", "positional_encoding"], ANNOTATION)
    g = sns.catplot(data=data, x="accuracy", y="model", hue="positional_encoding",
                    col="dataset", kind="bar", errorbar="sd", capsize=0.15, height=3.5,
                    aspect=1.3)
    g.set_axis_labels("test accuracy, mean ± std over seeds", "model")
    return table, md, g.figure


def study_scaling(runs: pd.DataFrame, settings: dict[str, Any], scaling: pd.DataFrame | None
                  ) -> tuple[pd.DataFrame, str, plt.Figure]:
    if scaling is None or scaling.empty:
        return pd.DataFrame(), "no scaling measurements\n", _empty_figure("no scaling data")
    ok = scaling[scaling["status"] == "ok"]
    table = ok.groupby(["model", "n_genes"], as_index=False)[
        ["time_per_step_s", "peak_memory_mb"]].agg(["median", "std"])
    table.columns = ["_".join(c).rstrip("_") for c in table.columns]
    md = table.round(4).to_markdown(index=False) + "\n"
    skipped = scaling[scaling["status"] != "ok"]
    if len(skipped):
        md += "\nSkipped points:\n\n" + skipped[["model", "n_genes", "status"]].to_markdown(
            index=False) + "\n"
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, (col, name) in zip(axes, [("time_per_step_s", "time per training step (s)"),
                                      ("peak_memory_mb", "peak memory above baseline (MB)")],
                               strict=True):
        sns.lineplot(data=ok, x="n_genes", y=col, hue="model", marker="o", errorbar="sd",
                     ax=ax, legend=ax is axes[-1])
        _log_axis(ax, "x")
        _log_axis(ax, "y")
        ax.set_xlabel("genes per cell (sequence length), log scale")
        ax.set_ylabel(f"{name}, log scale")
    axes[-1].legend(bbox_to_anchor=(1.02, 1), loc="upper left", fontsize=7)
    return table, md, fig


STUDIES: dict[str, Callable[..., tuple[pd.DataFrame, str, plt.Figure]]] = {
    "main": study_main, "perturbation": study_perturbation, "cost": study_cost,
    "few_shot": study_few_shot, "sensitivity": study_sensitivity, "ablation": study_ablation,
    "positional": study_positional, "scaling": study_scaling,
}


def run_study(name: str, runs_csv: str, settings: dict[str, Any], table_out: str,
              figure_out: str, scaling_csv: str | None = None) -> pd.DataFrame:
    if name not in STUDIES:
        raise ScgbError(f"unknown study '{name}'", field="studies",
                        fix=f"use one of: {', '.join(STUDIES)}")
    runs = pd.read_csv(runs_csv)
    sns.set_theme(style="whitegrid", context="paper")
    if name == "scaling":
        scaling = pd.read_csv(scaling_csv) if scaling_csv else None
        table, md, fig = study_scaling(runs, settings, scaling)
    else:
        table, md, fig = STUDIES[name](runs, settings)
    out = Path(table_out)
    with atomic_path(out) as tmp:
        table.to_csv(tmp, index=False)
    write_text(out.with_suffix(".md"), md)
    save_figure(fig, Path(figure_out))
    return table
