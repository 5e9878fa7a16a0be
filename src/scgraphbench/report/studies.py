"""One function per study: (runs table, plan) -> (summary table, markdown, figure).

Every number comes from ``runs.csv``; the plan says what each table compares. Spreads are
over replicates (train/val/test splits), after averaging the seeds inside a replicate;
comparisons are paired by replicate (two-sided paired t-test, Holm-adjusted within each
declared family); collapsed runs are left out of every number and counted in a column.
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

from scgraphbench.data.gears import SUBGROUPS  # noqa: E402
from scgraphbench.errors import ScgbError  # noqa: E402
from scgraphbench.io import atomic_path, write_table  # noqa: E402
from scgraphbench.plan.comparisons import comparison_from_dict  # noqa: E402
from scgraphbench.report.arms import UNIT, Units, main_settings, paired, usable  # noqa: E402
from scgraphbench.report.formatting import format_mean_std, format_p  # noqa: E402
from scgraphbench.report.inference import holm, two_sided  # noqa: E402

ANNOTATION = ["accuracy", "macro_f1"]
COST = ["time_per_step_s", "peak_memory_mb", "n_parameters", "train_time_s",
        "inference_cells_per_s"]
PERTURBATION = ["pearson_delta", "pearson_delta_de", "mse_de", "pearson_de", "pearson", "mse"]
Result = tuple[pd.DataFrame, str, plt.Figure]


def label(df: pd.DataFrame) -> pd.Series:
    return pd.Series(np.where(df["graph"].astype(str) == "none", df["model"].astype(str),
                              df["model"].astype(str) + " · " + df["graph"].astype(str)),
                     index=df.index)


def summarise(runs: pd.DataFrame, metrics: list[str], group: list[str]) -> pd.DataFrame:
    """One row per group: ``<metric>_mean`` and ``<metric>_std`` over replicates (seeds
    averaged within each replicate first), ``n_replicates``, ``n_runs``."""
    metrics = [m for m in metrics if m in runs.columns]
    if runs.empty:
        return pd.DataFrame(columns=group)
    units = runs.groupby(group + [c for c in UNIT if c not in group], dropna=False)[
        metrics].mean().reset_index()
    g = units.groupby(group, dropna=False, sort=True)
    out = g[metrics].agg(["mean", "std"])
    out.columns = [f"{m}_{stat}" for m, stat in out.columns]
    out["n_replicates"] = g.size()
    out["n_runs"] = runs.groupby(group, dropna=False).size()
    return out.reset_index()


def collapsed_counts(runs: pd.DataFrame, group: list[str]) -> pd.Series:
    if runs.empty:
        return pd.Series(dtype=int)
    return runs.groupby(group, dropna=False)["collapsed"].sum().astype(int)


def markdown(table: pd.DataFrame, keys: list[str], metrics: list[str],
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
    for col in ("n_replicates", "collapsed"):
        if col in table:
            md[col.replace("n_", "")] = table[col]
    return md.to_markdown(index=False) + "\n"


def save_figure(fig: plt.Figure, png: Path) -> None:
    """PNG (for the report) and PDF (for a paper) side by side."""
    for suffix in (".png", ".pdf"):
        with atomic_path(png.with_suffix(suffix), suffix=suffix) as tmp:
            fig.savefig(tmp, dpi=150, bbox_inches="tight", format=suffix[1:])
    plt.close(fig)


def log_axis(ax: plt.Axes, axis: str = "x") -> None:
    """Log scale with plain major labels only (minor labels overlap on short ranges)."""
    getattr(ax, f"set_{axis}scale")("log")
    target = ax.xaxis if axis == "x" else ax.yaxis
    target.set_minor_formatter(matplotlib.ticker.NullFormatter())
    target.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))


def empty_figure(message: str) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(6, 1.5))
    ax.axis("off")
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True)
    return fig


def tuned(plan: dict[str, Any]) -> bool:
    return any(s["study"] == "tuning" for s in plan.get("settings", {}).values())


def main_runs(runs: pd.DataFrame, plan: dict[str, Any], task: str | None = None
              ) -> pd.DataFrame:
    """The main comparison's runs (collapsed ones included: callers count them)."""
    sel = main_settings(runs, tuned(plan))
    main = [d for d, s in plan.get("datasets", {}).items() if s.get("main", True)]
    sel = sel[sel["dataset"].isin(main)] if main else sel
    return sel if task is None else sel[sel["task"] == task]


def comparison_columns(runs: pd.DataFrame, plan: dict[str, Any], table: str
                       ) -> pd.DataFrame:
    """The plan's two-sided comparisons of one table: delta, p and Holm-adjusted p per row
    (model, graph), one column set per kind (vs baseline, vs random, vs the full arm)."""
    units = Units(usable(runs)[0])
    rows = []
    for c in map(comparison_from_dict, plan.get("comparisons", [])):
        if c.table != table:
            continue
        a = units.resolve(c.a, c.metric, c.datasets).values
        b = units.resolve(c.b, c.metric, c.datasets).values
        x, y, pairs = paired(a, b)
        test = two_sided(x, y)
        tail = c.id.rsplit(":", 1)[-1]
        rows.append({"family": c.family, "kind": tail if tail.startswith("vs_") else "vs_full",
                     "dataset": c.datasets[0], "model": c.a.candidates[0][0],
                     "graph": c.a.candidates[0][1], "arm": c.a.label, "delta": test.estimate,
                     "p": test.p_value, "n_pairs": len(pairs)})
    if not rows:
        return pd.DataFrame(columns=["dataset", "model", "graph"])
    df = pd.DataFrame(rows)
    df["p_holm"] = np.nan
    for _, idx in df.groupby("family").groups.items():
        df.loc[idx, "p_holm"] = holm(df.loc[idx, "p"].to_numpy(float))
    wide = []
    for kind, part in df.groupby("kind"):
        part = part.set_index(["dataset", "model", "graph"])[["delta", "p", "p_holm"]]
        part.columns = [f"{col}_{kind}" for col in part.columns]
        wide.append(part)
    return pd.concat(wide, axis=1).reset_index()


def comparison_table(runs: pd.DataFrame, plan: dict[str, Any], task: str, metrics: list[str],
                     table_name: str) -> pd.DataFrame:
    sel = main_runs(runs, plan, task)
    if sel.empty:
        return pd.DataFrame()
    keys = ["dataset", "model", "family", "graph"]
    good, _ = usable(sel)
    table = summarise(good, metrics, keys)
    counts = collapsed_counts(sel, keys).rename("collapsed").reset_index()
    table = counts.merge(table, on=keys, how="left")
    comp = comparison_columns(sel, plan, table_name)
    return table.merge(comp, on=["dataset", "model", "graph"], how="left")


def bar(data: pd.DataFrame, metric: str, xlabel: str, hue: str = "dataset") -> plt.Figure:
    units = data.groupby(["model", "graph", *UNIT])[metric].mean().reset_index()
    units["label"] = label(units)
    order = units.groupby("label")[metric].mean().sort_values(ascending=False).index
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(order) * max(1, units[hue].nunique()) + 1.2))
    sns.barplot(data=units, y="label", x=metric, hue=hue, order=order, errorbar="sd",
                capsize=0.15, ax=ax)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("model · gene graph")
    return fig


# -- studies -----------------------------------------------------------------------------
def study_main(runs: pd.DataFrame, plan: dict[str, Any]) -> Result:
    table = comparison_table(runs, plan, "annotation", ANNOTATION + ["time_per_step_s",
                                                                     "peak_memory_mb"], "main")
    if table.empty:
        return table, "no annotation runs\n", empty_figure("no annotation runs")
    extra = [c for c in table.columns if c.startswith(("delta_", "p_"))]
    md = markdown(table, ["dataset", "model", "graph"], ANNOTATION, extra)
    good, _ = usable(main_runs(runs, plan, "annotation"))
    fig = bar(good, "macro_f1", "test macro-F1, mean ± std over replicates")
    return table, md, fig


def subgroup_metrics(runs: pd.DataFrame, metric: str = "pearson_delta") -> dict[str, str]:
    """GEARS subgroup -> its ``subgroups/<g>/<metric>`` column in runs.csv, for the
    subgroups the runs have, in GEARS order."""
    return {g: f"subgroups/{g}/{metric}" for g in SUBGROUPS
            if f"subgroups/{g}/{metric}" in runs.columns}


def fallback_note(runs: pd.DataFrame) -> str:
    """What the additive baseline predicted with the train mean (its ``report()``), per
    dataset: mean over replicates of the test perturbations and combinations that fell back."""
    cols = ["additive_baseline/n_fallback", "additive_baseline/n_fallback_combinations",
            "additive_baseline/n_conditions"]
    sel = runs[runs["family"] == "additive_baseline"]
    if sel.empty or not set(cols) <= set(sel.columns):
        return ""
    lines = [f"- {d}: {part[cols[0]].mean():.1f} of {part[cols[2]].mean():.1f} test "
             f"perturbations ({part[cols[1]].mean():.1f} combinations) per replicate"
             for d, part in sel.groupby("dataset")]
    return ("\nThe additive baseline predicts a perturbation with a gene whose single "
            "perturbation has no training cells with the train mean (as `mean_baseline`):\n\n"
            + "\n".join(lines) + "\n")


def subgroup_figure(good: pd.DataFrame, groups: dict[str, str]) -> plt.Figure:
    """pearson_delta per model, one panel per GEARS subgroup (and overall); bars are the
    mean over replicates, error bars the std."""
    cols = {"overall": "pearson_delta", **groups}
    units = good.groupby(["model", "graph", *UNIT])[list(cols.values())].mean().reset_index()
    units["label"] = label(units)
    long = units.rename(columns={v: k for k, v in cols.items()}).melt(
        id_vars=["label", *UNIT], value_vars=list(cols), var_name="subgroup",
        value_name="value").dropna()
    order = units.groupby("label")["pearson_delta"].mean().sort_values(ascending=False).index
    grid = sns.catplot(data=long, kind="bar", y="label", x="value", hue="dataset",
                       col="subgroup", col_order=[c for c in cols if c in set(long["subgroup"])],
                       col_wrap=3,
                       order=order, errorbar="sd", capsize=0.15, sharex=True,
                       height=0.35 * len(order) + 1.5, aspect=0.9)
    grid.set_titles("{col_name}")
    grid.set_axis_labels("pearson_delta on test perturbations", "model · gene graph")
    return grid.figure


def study_perturbation(runs: pd.DataFrame, plan: dict[str, Any]) -> Result:
    """Every model on every perturbation dataset: the GEARS metrics overall and the
    pearson_delta per GEARS subgroup (combo_seen0/1/2, unseen_single), the simple baselines
    (train mean, control, additive, linear) beside the graph models."""
    groups = subgroup_metrics(runs)
    counts = {g: f"subgroups/{g}/n_perturbations" for g in groups}
    table = comparison_table(runs, plan, "perturbation",
                             PERTURBATION + ["time_per_step_s"] + list(groups.values())
                             + [c for c in counts.values() if c in runs.columns],
                             "perturbation")
    if table.empty:
        return table, "no perturbation runs\n", empty_figure("no perturbation runs")
    extra = [c for c in table.columns if c.startswith(("delta_", "p_"))]
    md = markdown(table, ["dataset", "model", "graph"], PERTURBATION, extra)
    if groups:
        named = {}
        for g, col in groups.items():
            n = table.get(f"{counts[g]}_mean")
            name = f"{g} (n={n.max():.3g})" if n is not None and n.notna().any() else g
            named.update({f"{col}_mean": f"{name}_mean", f"{col}_std": f"{name}_std"})
        per = markdown(table.rename(columns=named), ["dataset", "model", "graph"],
                       [v[:-len("_mean")] for v in named.values() if v.endswith("_mean")])
        md += ("\npearson_delta per GEARS subgroup, mean ± std over replicates (n: test "
               "perturbations in the subgroup per replicate, the mean; the largest over datasets):\n\n" + per)
    md += fallback_note(runs)
    good, _ = usable(main_runs(runs, plan, "perturbation"))
    if groups:
        return table, md, subgroup_figure(good, groups)
    metric = "pearson_delta_de" if "pearson_delta_de" in good else "pearson_delta"
    fig = bar(good, metric, f"{metric} on test perturbations, mean ± std over replicates")
    return table, md, fig


def study_cost(runs: pd.DataFrame, plan: dict[str, Any]) -> Result:
    sel, _ = usable(main_runs(runs, plan))
    keys = ["task", "dataset", "model", "family", "graph"]
    table = summarise(sel, COST + ANNOTATION + ["pearson_delta"], keys)
    b = plan.get("report", {}).get("baseline", "transformer")
    for metric in ("time_per_step_s", "peak_memory_mb", "n_parameters"):
        if f"{metric}_mean" not in table:
            continue
        base = table[(table["model"] == b) & (table["graph"] == "none")].set_index("dataset")[
            f"{metric}_mean"]
        table[f"{metric}_ratio_vs_{b}"] = table[f"{metric}_mean"] / table["dataset"].map(base)
    ratios = [c for c in table.columns if "_ratio_vs_" in c]
    md = markdown(table, ["task", "dataset", "model", "graph"], COST[:3])
    md += (f"\nRatios to the dense {b} (mean over replicates):\n\n"
           + table[["dataset", "model", "graph"] + ratios].round(3).to_markdown(index=False)
           + "\n")
    ann = sel[sel["task"] == "annotation"]
    if ann.empty:
        return table, md, empty_figure("no annotation runs for the cost figure")
    agg = summarise(ann, ["macro_f1", "time_per_step_s", "peak_memory_mb"],
                    ["dataset", "model", "graph"])
    agg["label"] = label(agg)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), sharey=True)
    for ax, (col, name) in zip(axes, [("time_per_step_s", "time per training step (s)"),
                                      ("peak_memory_mb", "peak memory above baseline (MB)")],
                               strict=True):
        sns.scatterplot(data=agg, x=f"{col}_mean", y="macro_f1_mean", hue="label",
                        style="dataset", s=70, ax=ax, legend=ax is axes[-1])
        ax.errorbar(agg[f"{col}_mean"], agg["macro_f1_mean"], xerr=agg[f"{col}_std"].fillna(0),
                    yerr=agg["macro_f1_std"].fillna(0), fmt="none", ecolor="grey", alpha=0.6)
        log_axis(ax)
        ax.set_xlabel(f"{name}, log scale")
        ax.set_ylabel("test macro-F1")
    axes[-1].legend(bbox_to_anchor=(1.02, 1), loc="upper left", fontsize=7,
                    title="model · graph / dataset")
    return table, md, fig


def varied(runs: pd.DataFrame, plan: dict[str, Any], study: str, key: str, models: list[str]
           ) -> pd.DataFrame:
    """A study's runs that vary ``key``, plus the same models' default runs on the same
    graph and replicates at the default value (read from the model's resolved params)."""
    sel = runs[(runs["setting_study"] == study) & (runs["setting_key"] == key)
               & runs["model"].isin(models)].copy()
    if sel.empty:
        return sel
    sel["value"] = sel["setting_value"]
    frames = [sel]
    for (model, graph), part in sel.groupby(["model", "graph"]):
        params = plan.get("models", {}).get(model, {}).get("params", {})
        default = 1.0 if key == "train_fraction" else params.get(key)
        base = runs[(runs["model"] == model) & (runs["graph"] == graph)
                    & (runs["setting"] == "default")
                    & runs["replicate"].isin(part["replicate"].unique())
                    & runs["dataset"].isin(part["dataset"].unique())].copy()
        base["value"] = default
        frames.append(base)
    out = pd.concat(frames)
    out["parameter"] = key
    return out


def study_few_shot(runs: pd.DataFrame, plan: dict[str, Any]) -> Result:
    section = plan.get("studies", {}).get("few_shot") or {}
    models = section.get("models") or list(plan.get("models", {}))
    data = varied(runs[runs["task"] == "annotation"], plan, "few_shot", "train_fraction", models)
    good, _ = usable(data)
    if good.empty:
        return pd.DataFrame(), "no few-shot runs\n", empty_figure("no few-shot runs")
    good = good.rename(columns={"value": "train_fraction"})
    good["train_fraction"] = good["train_fraction"].astype(float)
    keys = ["dataset", "model", "graph", "train_fraction"]
    table = summarise(good, ANNOTATION, keys)
    md = markdown(table, keys, ANNOTATION)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    units = good.groupby([*keys, "replicate"])[ANNOTATION].mean().reset_index()
    units["label"] = label(units)
    for ax, metric in zip(axes, ANNOTATION, strict=True):
        sns.lineplot(data=units, x="train_fraction", y=metric, hue="label", style="dataset",
                     marker="o", errorbar="sd", ax=ax, legend=ax is axes[-1])
        log_axis(ax)
        ax.set_xlabel("fraction of training cells (stratified), log scale")
        ax.set_ylabel(f"test {metric.replace('_', '-')}")
    axes[-1].legend(bbox_to_anchor=(1.02, 1), loc="upper left", fontsize=7)
    return table, md, fig


SENSITIVITY_LABELS = {"alpha": "PPR teleport α", "t": "heat-kernel time t",
                      "steps": "diffusion steps K"}


def study_sensitivity(runs: pd.DataFrame, plan: dict[str, Any]) -> Result:
    section = plan.get("studies", {}).get("sensitivity") or {}
    frames = [varied(runs, plan, "sensitivity", key, [model])
              for model, grid in (section.get("grid") or {}).items() for key in grid]
    frames = [f for f in frames if not f.empty]
    data = usable(pd.concat(frames))[0] if frames else pd.DataFrame()
    if data.empty:
        return pd.DataFrame(), "no sensitivity runs\n", empty_figure("no sensitivity runs")
    metric = "macro_f1" if (data["task"] == "annotation").any() else "pearson_delta"
    data["value"] = data["value"].astype(float)
    keys = ["dataset", "model", "graph", "parameter", "value"]
    table = summarise(data, [metric, "accuracy"], keys)
    md = markdown(table, keys, [metric, "accuracy"])
    params = list(dict.fromkeys(data["parameter"]))
    fig, axes = plt.subplots(1, len(params), figsize=(4.2 * len(params), 3.8), squeeze=False)
    units = data.groupby([*keys, "replicate"])[metric].mean().reset_index()
    units["label"] = label(units)
    for ax, p in zip(axes[0], params, strict=True):
        sns.lineplot(data=units[units["parameter"] == p], x="value", y=metric, hue="label",
                     style="dataset", marker="o", errorbar="sd", ax=ax)
        ax.set_xlabel(SENSITIVITY_LABELS.get(p, p))
        ax.set_ylabel(f"test {metric}")
    return table, md, fig


def study_ablation(runs: pd.DataFrame, plan: dict[str, Any]) -> Result:
    section = plan.get("studies", {}).get("ablation") or {}
    arms = section.get("arms") or {}
    frames = []
    for name, arm in arms.items():
        sel = runs[(runs["model"] == arm["model"]) & (runs["graph"] == arm["graph"])
                   & (runs["setting"] == "default")].copy()
        sel["arm"] = name
        frames.append(sel)
    data = pd.concat(frames) if frames else pd.DataFrame()
    if data.empty:
        return pd.DataFrame(), "no ablation runs\n", empty_figure("no ablation runs")
    if section.get("datasets"):
        data = data[data["dataset"].isin(section["datasets"])]
    metric = "macro_f1" if (data["task"] == "annotation").any() else "pearson_delta"
    keys = ["dataset", "arm", "model", "graph"]
    good, _ = usable(data)
    table = summarise(good, [metric, "accuracy"], keys)
    table = collapsed_counts(data, keys).rename("collapsed").reset_index().merge(
        table, on=keys, how="left")
    comp = comparison_columns(data, plan, "ablation")
    table = table.merge(comp, on=["dataset", "model", "graph"], how="left")
    extra = [c for c in table.columns if c.startswith(("delta_", "p_"))]
    md = markdown(table, keys, [metric, "accuracy"], extra)
    units = good.groupby([*keys, "replicate"])[metric].mean().reset_index()
    fig, ax = plt.subplots(figsize=(7, 0.5 * len(arms) * units["dataset"].nunique() + 1.2))
    sns.barplot(data=units, y="arm", x=metric, hue="dataset", order=list(arms),
                errorbar="sd", capsize=0.15, ax=ax)
    ax.set_xlabel(f"test {metric}, mean ± std over replicates")
    ax.set_ylabel("ablation arm")
    return table, md, fig


def study_positional(runs: pd.DataFrame, plan: dict[str, Any]) -> Result:
    # collapsed runs are kept here: on order-dependent labels a model without positional
    # encoding cannot do better than the class prior, and that number is the study's result
    good = runs[(runs["setting_study"] == "positional")
                & (runs["setting_key"] == "positional")].copy()
    if good.empty:
        return pd.DataFrame(), "no positional runs\n", empty_figure("no positional runs")
    good["positional_encoding"] = np.where(good["setting_value"].astype(str) == "True", "on",
                                           "off")
    keys = ["dataset", "model", "positional_encoding"]
    table = summarise(good, ANNOTATION, keys)
    if "collapsed" in good:
        table = table.merge(collapsed_counts(good, keys).rename("at_prior").reset_index(),
                            on=keys, how="left")
    md = markdown(table, keys, ANNOTATION, extra=["at_prior"] if "at_prior" in table else ())
    md += ("\n`at_prior`: runs whose predictions stayed at the class prior (kept in the "
           "means: without positional encoding, order-dependent labels are not learnable).\n")
    units = good.groupby([*keys, "replicate"])["accuracy"].mean().reset_index()
    g = sns.catplot(data=units, x="accuracy", y="model", hue="positional_encoding",
                    col="dataset", kind="bar", errorbar="sd", capsize=0.15, height=3.5,
                    aspect=1.3)
    g.set_axis_labels("test accuracy, mean ± std over replicates", "model")
    return table, md, g.figure


def study_scaling(runs: pd.DataFrame, plan: dict[str, Any], scaling: pd.DataFrame | None
                  ) -> Result:
    if scaling is None or scaling.empty:
        return pd.DataFrame(), "no scaling measurements\n", empty_figure("no scaling data")
    ok = scaling[scaling["status"] == "ok"]
    if ok.empty:
        md = "no scaling point ran:\n\n" + scaling.to_markdown(index=False) + "\n"
        return scaling, md, empty_figure("no scaling point ran (see the table)")
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
        log_axis(ax, "x")
        log_axis(ax, "y")
        ax.set_xlabel("genes per cell (sequence length), log scale")
        ax.set_ylabel(f"{name}, log scale")
    axes[-1].legend(bbox_to_anchor=(1.02, 1), loc="upper left", fontsize=7)
    return table, md, fig


STUDIES: dict[str, Callable[..., Result]] = {
    "main": study_main, "perturbation": study_perturbation, "cost": study_cost,
    "few_shot": study_few_shot, "sensitivity": study_sensitivity, "ablation": study_ablation,
    "positional": study_positional, "scaling": study_scaling,
}


def run_study(name: str, runs_csv: str, plan: dict[str, Any], table_out: str,
              figure_out: str, scaling_csv: str | None = None) -> pd.DataFrame:
    if name not in STUDIES:
        raise ScgbError(f"unknown study '{name}'", field="studies",
                        fix=f"use one of: {', '.join(STUDIES)}")
    runs = pd.read_csv(runs_csv)
    sns.set_theme(style="whitegrid", context="paper")
    if name == "scaling":
        scaling = pd.read_csv(scaling_csv) if scaling_csv else None
        table, md, fig = study_scaling(runs, plan, scaling)
    else:
        table, md, fig = STUDIES[name](runs, plan)
    write_table(table, table_out, md)
    save_figure(fig, Path(figure_out))
    return table
