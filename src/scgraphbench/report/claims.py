"""The source papers' headline claims, each checked against our runs by a stated rule.

Verdicts are computed, never typed: ``reproduced`` when the rule holds, ``not reproduced``
when it does not, ``not testable`` when the runs it needs are absent (or have fewer than
two paired seeds, so no test is possible).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from scgraphbench.io import atomic_path, write_text
from scgraphbench.report.stats import paired_test

NOT_TESTABLE = "not testable"


def _paired(runs: pd.DataFrame, metric: str, a: dict[str, Any], b: dict[str, Any],
            task: str) -> tuple[float, float, int]:
    """Mean difference a - b and paired t-test p over (dataset, seed) pairs."""
    sel = runs[(runs["task"] == task) & (runs["setting"] == "default")]
    if metric not in sel:
        return math.nan, math.nan, 0

    def pick(where: dict[str, Any]) -> pd.Series:
        mask = np.ones(len(sel), dtype=bool)
        for k, v in where.items():
            mask &= sel[k].isin(v if isinstance(v, list) else [v]).to_numpy()
        return sel[mask].groupby(["dataset", "seed"])[metric].mean()

    t = paired_test(pick(a), pick(b))
    return t.mean_difference, t.p_ttest, t.n_pairs


def _best_model(runs: pd.DataFrame, task: str, metric: str,
                families: list[str]) -> dict[str, str] | None:
    """The (model, graph) of the given families with the best mean metric."""
    sel = runs[(runs["task"] == task) & (runs["family"].isin(families))
               & (runs["setting"] == "default")]
    if sel.empty or metric not in sel:
        return None
    model, graph = sel.groupby(["model", "graph"])[metric].mean().idxmax()
    return {"model": str(model), "graph": str(graph)}


def _ratio(runs: pd.DataFrame, metric: str, which: dict[str, str] | None, baseline: str) -> float:
    sel = runs[runs["setting"] == "default"]
    if which is None or metric not in sel:
        return math.nan
    mine = sel[(sel["model"] == which["model"]) & (sel["graph"] == which["graph"])].groupby(
        "dataset")[metric].mean()
    base = sel[(sel["model"] == baseline) & (sel["graph"] == "none")].groupby("dataset")[
        metric].mean()
    ratios = (mine / base).dropna()
    return float(ratios.mean()) if len(ratios) else math.nan


def compute_claims(runs: pd.DataFrame, settings: dict[str, Any]) -> pd.DataFrame:
    alpha = float(settings.get("alpha", 0.05))
    baseline = settings.get("baseline", "transformer")
    families = settings.get("families", {})
    gnn_families = sorted({f for f in families.values() if f.startswith("gnn_")})
    rows = []

    def row(claim: str, source: str, paper: str, measured: float, unit: str, rule: str,
            holds: bool | None, n: int | None = None, p: float = math.nan) -> None:
        testable = holds is not None and not (isinstance(measured, float) and math.isnan(measured))
        if n is not None and n < 2:
            testable = False
        verdict = NOT_TESTABLE if not testable else ("reproduced" if holds else "not reproduced")
        rows.append({"claim": claim, "source": source, "paper_value": paper,
                     "measured_value": measured, "unit": unit, "p_value": p,
                     "paired_seeds": n if n is not None else "", "rule": rule,
                     "verdict": verdict})

    gnn_run = _best_model(runs, "annotation", "macro_f1", gnn_families)
    gnn = f"{gnn_run['model']} on {gnn_run['graph']}" if gnn_run else None
    d, p, n = _paired(runs, "macro_f1", gnn_run, {"model": baseline, "graph": "none"},
                      "annotation") if gnn_run else (math.nan, math.nan, 0)
    row("GNNs are competitive with dense Transformers on annotation", "arXiv 2507.04125",
        "comparable accuracy", d, f"Δ macro-F1 ({gnn or 'no GNN run'} − {baseline})",
        "Δ ≥ −0.02 (within two macro-F1 points)", None if gnn is None else d >= -0.02, n, p)

    time_ratio = _ratio(runs, "time_per_step_s", gnn_run, baseline)
    row("GNNs need 1/4–1/2 of the Transformer's compute", "arXiv 2507.04125", "0.25–0.5",
        time_ratio, f"time per step ratio ({gnn or 'no GNN run'} / {baseline})", "ratio ≤ 0.5",
        None if math.isnan(time_ratio) else time_ratio <= 0.5)
    mem_ratio = _ratio(runs, "peak_memory_mb", gnn_run, baseline)
    row("GNNs need 1/8 of the Transformer's memory", "arXiv 2507.04125", "0.125", mem_ratio,
        f"peak memory ratio ({gnn or 'no GNN run'} / {baseline})", "ratio ≤ 0.125",
        None if math.isnan(mem_ratio) else mem_ratio <= 0.125)

    geno = [m for m, f in families.items() if f.startswith("genohoption_")]
    d, p, n = _paired(runs, "accuracy", {"model": geno}, {"model": baseline, "graph": "none"},
                      "annotation") if geno else (math.nan, math.nan, 0)
    row("GenoHoption improves annotation accuracy by 1.27%", "GenoHoption", "+0.0127", d,
        f"Δ accuracy (GenoHoption models − {baseline})", f"Δ > 0 and paired p < {alpha}",
        None if not geno else bool(d > 0 and p < alpha), n, p)
    d, p, n = _paired(runs, "pearson_delta", {"model": geno}, {"model": baseline,
                                                                "graph": "none"},
                      "perturbation") if geno else (math.nan, math.nan, 0)
    row("GenoHoption improves perturbation prediction by 3.86%", "GenoHoption", "+0.0386", d,
        f"Δ Pearson on deltas (GenoHoption models − {baseline})",
        f"Δ > 0 and paired p < {alpha}", None if not geno or n == 0 else bool(d > 0 and p < alpha),
        n, p)

    pairs = [(g, r) for g, r in (settings.get("random_control") or {}).items()]
    deltas, ps, ns = [], [], []
    for graph, rnd in pairs:
        for model in runs.loc[runs["graph"] == graph, "model"].unique():
            d, p, n = _paired(runs, "macro_f1", {"model": model, "graph": graph},
                              {"model": model, "graph": rnd}, "annotation")
            if n:
                deltas.append(d)
                ps.append(p)
                ns.append(n)
    d = float(np.mean(deltas)) if deltas else math.nan
    p = float(np.nanmin(ps)) if ps and not all(math.isnan(x) for x in ps) else math.nan
    row("A regulatory/co-expression graph prior beats a random graph of equal density",
        "scTransformer referee; GenoHoption", "prior > random", d,
        "mean Δ macro-F1 (graph − degree-matched random), over models and graphs",
        f"mean Δ > 0 and the smallest paired p < {alpha}",
        None if not deltas else bool(d > 0 and p < alpha), min(ns) if ns else 0, p)

    d, p, n = _paired(runs, "macro_f1", {"family": "logreg"}, {"model": baseline, "graph": "none"},
                      "annotation")
    row("Logistic regression beats Transformers on small data", "scrna_longformer baseline",
        "logreg > Transformer", d, f"Δ macro-F1 (logreg − {baseline})",
        f"Δ > 0 and paired p < {alpha}", None if n == 0 else bool(d > 0 and p < alpha), n, p)
    return pd.DataFrame(rows)


def write_claims(runs_csv: str, settings: dict[str, Any], out: str) -> pd.DataFrame:
    table = compute_claims(pd.read_csv(runs_csv), settings)
    with atomic_path(out) as tmp:
        table.to_csv(tmp, index=False)
    md = table.copy()
    md["measured_value"] = [f"{v:+.4f}" if isinstance(v, float) and not math.isnan(v) else "n/a"
                            for v in md["measured_value"]]
    md["p_value"] = [f"{v:.3g}" if isinstance(v, float) and not math.isnan(v) else "n/a"
                     for v in md["p_value"]]
    write_text(out.rsplit(".", 1)[0] + ".md", md.to_markdown(index=False) + "\n")
    return table
