"""The answer first: a short Markdown summary written from the tables, which the report
opens with and ``results/summary.md`` keeps for people who read Markdown.

It states, per dataset, the best graph model (chosen on validation) against the dense
Transformer and against the simple baseline, with the accuracy difference and the time and
memory ratios; then every claim's verdict with its effect and the CI its test matches
(90% two-sided at alpha 0.05: the one-sided 95% bound); then what was left out (collapsed
runs, untestable claims).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from scgraphbench.io import read_json, write_text
from scgraphbench.plan.comparisons import GRAPH_MODEL_GROUPS, METRIC_OF_TASK, Arm
from scgraphbench.report.arms import Units, main_settings, paired, usable
from scgraphbench.report.studies import tuned

VERDICT_MARK = {"supported": "✅ supported", "contradicted": "❌ contradicted",
                "inconclusive": "➖ inconclusive", "not testable": "∅ not testable"}
BASELINE_OF_TASK = {"annotation": "logreg", "perturbation": "mean_baseline"}


def _num(v: Any, spec: str = "+.3f") -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def _ratio(a: dict, b: dict) -> float:
    x, y, _ = paired(a, b)
    return float((x / y).mean()) if len(x) else math.nan


def dataset_lines(runs: pd.DataFrame, plan: dict[str, Any]) -> list[str]:
    units = Units(usable(main_settings(runs, tuned(plan)))[0])
    models = plan.get("models", {})
    baseline = plan.get("report", {}).get("baseline", "transformer")
    lines = []
    for dataset, info in plan.get("datasets", {}).items():
        if not info.get("main", True):
            continue
        task = info["task"]
        metric = METRIC_OF_TASK[task]
        graph_pairs = tuple((m, g) for m, spec in models.items()
                            if spec["group"] in GRAPH_MODEL_GROUPS and task in spec["tasks"]
                            for g in spec["graphs"]
                            if plan["graphs"].get(g, {}).get("kind") != "random")
        best = units.resolve(Arm("best graph model", graph_pairs), metric, (dataset,))
        if not best.values:
            here = runs[(runs["dataset"] == dataset) & runs["model"].isin(
                [m for m, _ in graph_pairs])]
            n_bad = int(here["collapsed"].astype(bool).sum()) if "collapsed" in here else 0
            lines.append(f"- **{dataset}** ({task}): no usable graph-model run"
                         + (f" ({n_bad} collapsed)." if n_bad else "."))
            continue
        chosen = best.chosen[dataset]
        model, _, graph = chosen.partition(" · ")
        parts = [f"- **{dataset}** ({task}): best graph model on validation is **{chosen}**, "
                 f"test {metric} {_num(best.mean(), '.3f')}"]
        for other in (baseline, next((m for m, s in models.items()
                                      if s["family"] == BASELINE_OF_TASK[task]), None)):
            if other is None or other not in models:
                continue
            ref = units.resolve(Arm(other, ((other, "none"),)), metric, (dataset,))
            x, y, _ = paired(best.values, ref.values)
            if not len(x):
                continue
            text = f"{_num((x - y).mean())} vs {other}"
            if other == baseline:
                t = _ratio(units.resolve(Arm("", ((model, graph or "none"),)),
                                       "time_per_step_s", (dataset,)).values,
                           units.resolve(Arm("", ((other, "none"),)), "time_per_step_s",
                                       (dataset,)).values)
                mem = _ratio(units.resolve(Arm("", ((model, graph or "none"),)),
                                         "peak_memory_mb", (dataset,)).values,
                             units.resolve(Arm("", ((other, "none"),)), "peak_memory_mb",
                                         (dataset,)).values)
                text += f" (time per step {_num(t, '.2f')}×, peak memory {_num(mem, '.2f')}×)"
            parts.append(text)
        lines.append("; ".join(parts) + f" — over {len(best.values)} replicates.")
    return lines


def claim_lines(claims: pd.DataFrame, alpha: float = 0.05) -> list[str]:
    """One line per claim: its verdict, effect and the (1 - 2 alpha) CI that its one-sided
    (or TOST) test matches, so that a supported claim's interval excludes no effect."""
    lines = []
    heads = claims[claims["comparison"] == claims["family"]]
    lo_col, hi_col = (("test_ci_low", "test_ci_high") if "test_ci_low" in claims
                      else ("ci_low", "ci_high"))
    level = 1 - 2 * alpha if lo_col == "test_ci_low" else 1 - alpha
    for _, r in heads.iterrows():
        effect = ("" if isinstance(r["estimate"], float) and math.isnan(r["estimate"]) else
                  f" — effect {_num(r['estimate'], '+.4f')} "
                  f"[{level:.0%} CI {_num(r[lo_col], '+.4f')}, {_num(r[hi_col], '+.4f')}]")
        paper = f" (paper: {r['paper_value']})" if isinstance(r["paper_value"], str) and \
            r["paper_value"] else ""
        lines.append(f"- {VERDICT_MARK.get(r['verdict'], r['verdict'])}: {r['claim']}"
                     f"{effect}{paper}")
    return lines


def crossover_lines(crossover_csv: str | None, plan: dict[str, Any]) -> list[str]:
    """Where each graph or efficient-attention model's step gets cheaper than dense."""
    if not crossover_csv:
        return []
    table = pd.read_csv(crossover_csv)
    groups = {m: s["group"] for m, s in plan.get("models", {}).items()}
    keep = table["family"].map(groups).isin([*GRAPH_MODEL_GROUPS, "efficient"])
    lines = []
    for _, r in table[keep & (table["cost"] == "time_per_step_s")].iterrows():
        n = r["cheaper_from_genes"]
        where = (f"from about {n:.0f} genes per cell on" if not math.isnan(n) else
                 "at no size measured")
        lines.append(f"- {r['family']}: a training step is cheaper than {r['reference']}'s "
                     f"{where} ({r['measurement']}).")
    return lines


def summary_sections(plan: dict[str, Any], claims: pd.DataFrame, runs: pd.DataFrame,
                     crossover_csv: str | None = None) -> list[tuple[str, list[str]]]:
    """(heading, paragraphs and bullet lines) of the summary, in reading order."""
    single = claims.groupby("family")["comparison"].transform("size") == 1
    claims = claims.copy()
    claims.loc[single, "family"] = claims.loc[single, "comparison"]
    paper = claims[claims["table"] == "claims"]
    checks = claims[claims["table"] == "engine_check"]
    collapsed = (runs["collapsed"].astype(bool) if "collapsed" in runs
                 else pd.Series(False, index=runs.index))
    # the positional study's no-encoding arm on order-dependent labels is meant to stay at
    # the prior: counted apart, it is that study's result, not a failure to train
    by_design = collapsed & (runs.get("setting_study", pd.Series("", index=runs.index))
                             == "positional")
    n_collapsed, n_by_design = int((collapsed & ~by_design).sum()), int(by_design.sum())
    reps = sorted({int(v["replicates"]) for v in plan.get("datasets", {}).values()})
    alpha = float((plan.get("report") or {}).get("alpha", 0.05))
    sections = [
        ("scgraphbench: the answer",
         ["Do gene-graph models match the dense Transformer, at what cost, and does the "
          "gene-graph prior beat a random graph of the same degrees? Numbers are test "
          "metrics averaged over replicates (train/val/test splits: "
          f"{', '.join(map(str, reps))} per dataset); anything chosen was chosen on "
          "validation."]),
        ("The papers' claims", claim_lines(paper, alpha)),
        ("Per dataset", dataset_lines(runs, plan)),
    ]
    cross = crossover_lines(crossover_csv, plan)
    if cross:
        sections.append(("Where graph models get cheaper", cross))
    if not checks.empty:
        sections.append(("Engine checks (planted data)",
                         ["A planted regulatory prior must come out `supported`, a shuffled "
                          "one must not:", *claim_lines(checks, alpha)]))
    sections.append(("Read with care", [
        f"- {n_collapsed} run(s) collapsed (never trained) and were left out of every "
        "number." + (f" {n_by_design} positional-study run(s) without positional encoding "
                     "stayed at the class prior, as they must on order-dependent labels "
                     "(kept in positional.md)." if n_by_design else ""),
        "- `inconclusive` means the replicates could not tell; it is not a refutation. "
        "See `claims.md` for p-values (raw and Holm-adjusted), the smallest detectable "
        "effect and each rule in words."]))
    return sections


def as_markdown(sections: list[tuple[str, list[str]]]) -> str:
    out = []
    for i, (head, lines) in enumerate(sections):
        out += [("# " if i == 0 else "## ") + head, ""]
        for line in lines:
            out += [line] if line.startswith("- ") else [line, ""]
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def as_rst(sections: list[tuple[str, list[str]]], intro: str = "") -> str:
    """The same summary as reStructuredText, for the Snakemake report's front page."""
    out = []
    for i, (head, lines) in enumerate(sections):
        out += [head, ("=" if i == 0 else "-") * len(head), ""]
        if i == 0 and intro:
            out += [intro.strip(), ""]
        for line in lines:
            text = line.replace("`", "``")
            out += [text] if text.startswith("- ") else [text, ""]
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def write_summary(plan_json: str, claims_csv: str, runs_csv: str, out: str,
                  crossover_csv: str | None = None, rst_out: str | None = None,
                  intro: str | None = None) -> str:
    """``out`` (Markdown) and, with ``rst_out``, the report's front page (``intro``: the
    workflow's own description, kept under the answer)."""
    sections = summary_sections(read_json(plan_json), pd.read_csv(claims_csv),
                                pd.read_csv(runs_csv), crossover_csv)
    md = as_markdown(sections)
    write_text(out, md)
    if rst_out:
        write_text(rst_out, as_rst(sections, Path(intro).read_text() if intro else ""))
    return md
