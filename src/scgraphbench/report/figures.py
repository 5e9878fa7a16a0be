"""The three figures the report leads with.

- **frontier**: accuracy against cost per dataset (time per training step and peak memory,
  log axes), one colour per family, one marker per graph kind, every point labelled, the
  Pareto frontier (no other point is both cheaper and better) drawn, the simple baseline's
  score as a dashed line.
- **crossover**: time and memory of a training step against genes per cell for each
  family (the scaling study; the kernel benchmark's attention layers beside it when it
  ran), with the point from which each family is cheaper than dense attention marked.
- **verdicts**: each claim's effect with its (1 - alpha) CI, and thick the (1 - 2 alpha)
  CI its one-sided test matches, against the paper's value, coloured by verdict.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from scgraphbench.io import read_json, write_table  # noqa: E402
from scgraphbench.plan.comparisons import METRIC_OF_TASK  # noqa: E402
from scgraphbench.report.studies import (  # noqa: E402
    empty_figure,
    log_axis,
    main_runs,
    save_figure,
    summarise,
    usable,
)

MARKERS = {"none": "o", "coexpr": "s", "grn": "^", "both": "D", "knn": "P", "random": "X"}
VERDICT_COLOURS = {"supported": "#1a9850", "contradicted": "#d73027",
                   "inconclusive": "#7f7f7f", "not testable": "#bdbdbd"}
BASELINE_OF_TASK = {"annotation": "logreg", "perturbation": "mean_baseline"}
CROSSOVER_COLUMNS = ["measurement", "cost", "family", "reference", "cheaper_from_genes"]
COSTS = (("time_per_step_s", "time per training step (s)"),
         ("peak_memory_mb", "peak memory above baseline (MB)"))


def pareto(points: pd.DataFrame, cost: str, score: str) -> pd.DataFrame:
    """The points no other point beats on both: cost lower-or-equal and score higher."""
    ordered = points.sort_values([cost, score], ascending=[True, False])
    best, keep = -np.inf, []
    for i, s in zip(ordered.index, ordered[score], strict=True):
        if s > best:
            keep.append(i)
            best = s
    return ordered.loc[keep]


def family_palette(families: list[str]) -> dict[str, Any]:
    colours = sns.color_palette("tab20", n_colors=max(len(families), 1))
    return dict(zip(sorted(families), colours, strict=False))


def frontier_table(runs: pd.DataFrame, plan: dict[str, Any]) -> pd.DataFrame:
    good, _ = usable(main_runs(runs, plan))
    if good.empty:
        return pd.DataFrame()
    frames = []
    for task, metric in METRIC_OF_TASK.items():
        sel = good[good["task"] == task]
        if sel.empty or metric not in sel:
            continue
        t = summarise(sel, [metric, "time_per_step_s", "peak_memory_mb"],
                      ["dataset", "model", "family", "graph", "graph_kind"])
        t = t.rename(columns={f"{metric}_mean": "score_mean", f"{metric}_std": "score_std"})
        t["task"], t["metric"] = task, metric
        frames.append(t)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def frontier_figure(table: pd.DataFrame) -> plt.Figure:
    if table.empty:
        return empty_figure("no trained runs to place on the accuracy-cost frontier")
    datasets = list(dict.fromkeys(table["dataset"]))
    palette = family_palette(list(table["family"].unique()))
    fig, axes = plt.subplots(len(datasets), 2, figsize=(12, 4.6 * len(datasets)),
                             squeeze=False)
    for row, dataset in zip(axes, datasets, strict=True):
        data = table[table["dataset"] == dataset]
        metric, task = data["metric"].iloc[0], data["task"].iloc[0]
        for ax, (cost, name) in zip(row, COSTS, strict=True):
            pts = data.dropna(subset=[f"{cost}_mean", "score_mean"])
            pts = pts[pts[f"{cost}_mean"] > 0]
            front = pareto(pts, f"{cost}_mean", "score_mean")
            base = data[data["family"] == BASELINE_OF_TASK[task]]
            # names only on the frontier (the baseline is named on its line): the rest sit
            # in a cluster where names overlap; colour, marker and the tables identify them
            named = set(front.index) - set(base.index)
            for i, p in pts.iterrows():
                ax.errorbar(p[f"{cost}_mean"], p["score_mean"],
                            yerr=0 if math.isnan(p["score_std"]) else p["score_std"],
                            fmt=MARKERS.get(p["graph_kind"], "o"), ms=8, capsize=2,
                            color=palette[p["family"]], mec="black", mew=0.5)
                if i in named:
                    short = (p["model"] if p["graph"] == "none"
                             else f"{p['model']}·{p['graph']}")
                    ax.annotate(short, (p[f"{cost}_mean"], p["score_mean"]), fontsize=6.5,
                                xytext=(4, 3), textcoords="offset points")
            if len(front) > 1:
                ax.step(front[f"{cost}_mean"], front["score_mean"], where="post", color="k",
                        lw=1, ls="-", alpha=0.6, label="Pareto frontier")
            log_axis(ax)
            for _, b in base.iterrows():
                ax.axhline(b["score_mean"], color="k", ls="--", lw=0.8, alpha=0.7)
                ax.text(ax.get_xlim()[0], b["score_mean"], f" {b['model']} (baseline)",
                        fontsize=7, va="bottom")
            ax.set_xlabel(f"{name}, log scale")
            ax.set_ylabel(f"test {metric}, mean ± std over replicates")
            ax.set_title(f"{dataset}: {metric} against {name.split(' (')[0]}", fontsize=9)
    handles = [plt.Line2D([], [], ls="", marker="o", color=c, mec="black", label=f)
               for f, c in palette.items()]
    handles += [plt.Line2D([], [], ls="", marker=m, color="white", mec="black",
                           label=f"graph: {k}") for k, m in MARKERS.items()
                if k in set(table["graph_kind"])]
    handles.append(plt.Line2D([], [], color="k", alpha=0.6, label="Pareto frontier"))
    fig.legend(handles=handles, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=7,
               title="family / graph kind")
    fig.tight_layout()
    return fig


def crossovers(points: pd.DataFrame, reference: str, x: str, y: str, group: str
               ) -> dict[str, float]:
    """Per group: the smallest x (log-log interpolated) from which its y stays below the
    reference group's y at the same x; NaN when it never does within the measured range."""
    ref = points[points[group] == reference].groupby(x)[y].median()
    out = {}
    for name, part in points[points[group] != reference].groupby(group):
        mine = part.groupby(x)[y].median()
        common = sorted(set(mine.index) & set(ref.index))
        if len(common) < 1:
            continue
        ratio = np.log(np.array([mine[n] / ref[n] for n in common]))
        below = ratio < 0
        if not below.any() or not below[-1]:
            out[name] = math.nan
            continue
        first = len(below) - 1
        while first > 0 and below[first - 1]:
            first -= 1
        if first == 0:
            out[name] = float(common[0])  # already cheaper at the smallest size measured
            continue
        n0, n1, r0, r1 = common[first - 1], common[first], ratio[first - 1], ratio[first]
        out[name] = float(math.exp(math.log(n0) + (math.log(n1) - math.log(n0))
                                   * (-r0) / (r1 - r0)))
    return out


def crossover_figure(scaling: pd.DataFrame | None, kernel: pd.DataFrame | None,
                     dense: str) -> tuple[plt.Figure, pd.DataFrame]:
    panels = []
    if scaling is not None and not scaling.empty and (scaling["status"] == "ok").any():
        ok = scaling[scaling["status"] == "ok"]
        panels += [("training step (scaling study)", ok, "n_genes", col, name, "model", dense)
                   for col, name in COSTS]
    if kernel is not None and not kernel.empty and (kernel["status"] == "ok").any():
        ok = kernel[kernel["status"] == "ok"]
        ok = ok[ok["degree"] == ok["degree"].median()] if "degree" in ok else ok
        panels += [("attention layer (kernel benchmark)", ok, "n", "time_s",
                    "time per forward+backward (s)", "variant", "sdpa"),
                   ("attention layer (kernel benchmark)", ok, "n", "peak_mem_mb",
                    "peak memory (MB)", "variant", "sdpa")]
    if not panels:
        return (empty_figure("no scaling or kernel measurements"),
                pd.DataFrame(columns=CROSSOVER_COLUMNS))
    fig, axes = plt.subplots(len(panels) // 2, 2, figsize=(12, 4.3 * (len(panels) // 2)),
                             squeeze=False)
    rows = []
    for ax, (title, data, x, y, name, group, ref) in zip(axes.ravel(), panels, strict=True):
        sns.lineplot(data=data, x=x, y=y, hue=group, marker="o", errorbar=None, ax=ax)
        for model, n in crossovers(data, ref, x, y, group).items():
            rows.append({"measurement": title, "cost": y, "family": model, "reference": ref,
                         "cheaper_from_genes": n})
            if not math.isnan(n):
                ax.axvline(n, ls=":", lw=0.8, color="grey")
                ax.annotate(f"{model} < {ref}\nfrom ~{n:.0f}", (n, ax.get_ylim()[0]),
                            fontsize=6, rotation=90, va="bottom", ha="right")
        log_axis(ax, "x")
        log_axis(ax, "y")
        ax.set_xlabel("genes per cell (sequence length), log scale")
        ax.set_ylabel(f"{name}, log scale")
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=6)
    fig.tight_layout()
    return fig, pd.DataFrame(rows, columns=CROSSOVER_COLUMNS)


def verdict_figure(claims: pd.DataFrame, alpha: float = 0.05) -> plt.Figure:
    rows = claims[(claims["comparison"] == claims["family"]) | (claims["family"].map(
        claims["family"].value_counts()) == 1)]
    rows = rows[rows["estimate"].notna()]
    if rows.empty:
        return empty_figure("no claim could be tested on these runs")
    ratio = rows["comparison"].str.contains("compute|memory")
    groups = [(False, "effect (A − B)", 0.0), (True, "ratio A / B (log scale)", 1.0)]
    groups = [g for g in groups if (ratio == g[0]).any()]
    fig, axes = plt.subplots(1, len(groups), figsize=(6.5 * len(groups), 0.5 * len(rows) + 2),
                             squeeze=False)
    for ax, (is_ratio, xlabel, null) in zip(axes[0], groups, strict=True):
        part = rows[ratio == is_ratio].reset_index(drop=True)
        for i, r in part.iterrows():
            c = VERDICT_COLOURS.get(r["verdict"], "k")
            ax.errorbar(r["estimate"], i, xerr=[[r["estimate"] - r["ci_low"]],
                                                [r["ci_high"] - r["estimate"]]],
                        fmt="o", color=c, capsize=3, lw=0.8)
            if "test_ci_low" in r and np.isfinite(r["test_ci_low"]):
                # the interval of the test itself: thick, inside the thin 95% one
                ax.plot([r["test_ci_low"], r["test_ci_high"]], [i, i], color=c, lw=3.5,
                        solid_capstyle="butt")
            paper = _paper_number(r["paper_value"])
            for v in paper:
                ax.plot(v, i, marker="|", color="k", ms=14, mew=2)
        ax.axvline(null, color="k", lw=0.8, ls="--")
        ax.set_yticks(range(len(part)))
        ax.set_yticklabels([_wrap(c) for c in part["claim"]], fontsize=7)
        ax.invert_yaxis()
        if is_ratio:
            log_axis(ax)
        ax.set_xlabel(xlabel)
    handles = [plt.Line2D([], [], ls="", marker="o", color=c, label=v)
               for v, c in VERDICT_COLOURS.items()]
    fig.legend(handles=handles, loc="upper center", ncol=4, fontsize=8,
               bbox_to_anchor=(0.5, 1.02))
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    fig.text(0.5, 0.005, f"thin: {1 - alpha:.0%} CI; thick: {1 - 2 * alpha:.0%} CI, whose end "
             "on the claimed side is the one-sided bound the test uses; |: the paper's value",
             ha="center", va="bottom", fontsize=8)
    return fig


def _paper_number(text: Any) -> list[float]:
    """The paper's stated value(s) when they are numbers ('+0.0127', '0.25–0.5×')."""
    if not isinstance(text, str):
        return []
    out = []
    for part in text.replace("×", "").replace("–", " ").split():
        try:
            out.append(float(part))
        except ValueError:
            continue
    return out


def _wrap(text: str, width: int = 48) -> str:
    words, lines, line = text.split(), [], ""
    for w in words:
        if len(line) + len(w) + 1 > width:
            lines.append(line)
            line = w
        else:
            line = f"{line} {w}".strip()
    return "\n".join([*lines, line])


def write_figures(plan_json: str, runs_csv: str, claims_csv: str, out_dir: str,
                  crossover_csv: str, scaling_csv: str | None = None,
                  kernel_csv: str | None = None) -> None:
    """frontier.png, crossover.png and verdicts.png (+ PDFs) into ``out_dir``; the crossover
    points as a table (``crossover_csv`` and its .md)."""
    plan = read_json(plan_json)
    runs = pd.read_csv(runs_csv)
    sns.set_theme(style="whitegrid", context="paper")
    out = Path(out_dir)
    table = frontier_table(runs, plan)
    save_figure(frontier_figure(table), out / "frontier.png")
    scaling = pd.read_csv(scaling_csv) if scaling_csv else None
    kernel = pd.read_csv(kernel_csv) if kernel_csv else None
    fig, cross = crossover_figure(scaling, kernel, plan.get("report", {}).get("baseline",
                                                                              "transformer"))
    save_figure(fig, out / "crossover.png")
    write_table(cross, crossover_csv,
                (cross.to_markdown(index=False) if not cross.empty else "no crossover data")
                + "\n")
    alpha = float(plan.get("report", {}).get("alpha", 0.05))
    save_figure(verdict_figure(pd.read_csv(claims_csv), alpha), out / "verdicts.png")
