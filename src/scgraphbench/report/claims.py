"""The claims table: each headline claim of the source papers, tested on the arms the plan
declared for it, with one of four verdicts.

Per comparison: the paired units are (dataset, replicate); collapsed runs are excluded and
counted; an arm with several candidates is chosen on validation (:mod:`.arms`). The test,
the Holm correction within the claim's family of comparisons and the verdict rules are
those of :mod:`.inference` (``supported`` / ``contradicted`` / ``inconclusive`` /
``not testable``); a claim made of several comparisons (a graph prior against its random
control, for every graph model) gets a headline row whose verdict summarises its rows.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from scgraphbench.io import read_json, write_table
from scgraphbench.plan.comparisons import Comparison, comparison_from_dict
from scgraphbench.report import inference
from scgraphbench.report.arms import Units, main_settings, paired, usable
from scgraphbench.report.studies import tuned

CLAIM_TABLES = ("claims", "engine_check")
COLUMNS = ["claim", "comparison", "source", "task", "metric", "arm_a", "arm_b", "chosen_a",
           "chosen_b", "n_pairs", "estimate", "ci_low", "ci_high", "test_ci_low", "test_ci_high",
           "paper_value", "p_raw",
           "p_adj", "m", "mde", "verdict", "reason", "rule", "excluded_collapsed", "table",
           "family"]


def hypothesis(c: Comparison) -> inference.Hypothesis:
    h = dict(c.hypothesis)
    pv = h.get("paper_value")
    return inference.Hypothesis(kind=h["kind"], direction=h.get("direction", "greater"),
                                margin=h.get("margin"),
                                paper_value=tuple(pv) if isinstance(pv, list) else pv,
                                alpha=float(h.get("alpha", 0.05)))


def compute_claims(runs: pd.DataFrame, plan: dict[str, Any]) -> pd.DataFrame:
    pool = main_settings(runs, tuned(plan))
    units = Units(usable(pool)[0])
    collapsed = pool[pool["collapsed"].astype(bool)] if "collapsed" in pool else pool.iloc[:0]
    comparisons = [comparison_from_dict(c) for c in plan.get("comparisons", [])
                   if c["table"] in CLAIM_TABLES]
    families: dict[str, list[tuple[Comparison, dict[str, Any]]]] = {}
    items: dict[str, list] = {}
    for c in comparisons:
        a = units.resolve(c.a, c.metric, c.datasets)
        b = units.resolve(c.b, c.metric, c.datasets)
        x, y, pairs = paired(a.values, b.values)
        here = collapsed[collapsed["dataset"].isin(c.datasets)]
        excluded = int(_in_arms(here, c).sum())
        info = {"claim": c.claim, "comparison": c.id, "source": c.source, "task": c.task,
                "metric": c.metric, "arm_a": c.a.label, "arm_b": c.b.label,
                "chosen_a": "; ".join(f"{d}: {m}" for d, m in a.chosen.items()),
                "chosen_b": "; ".join(f"{d}: {m}" for d, m in b.chosen.items()),
                "paper_value": c.paper, "excluded_collapsed": excluded, "table": c.table,
                "family": c.family, "n_pairs": len(pairs)}
        testable = c.a.testable and c.b.testable and len(pairs) >= 2
        families.setdefault(c.family, []).append((c, info))
        items.setdefault(c.family, []).append(
            (c.id, x if testable else np.array([]), y if testable else np.array([]),
             hypothesis(c)))
    rows = []
    for family, members in families.items():
        results = {r["id"]: r for r in inference.evaluate_family(items[family])}
        member_rows = []
        for c, info in members:
            r = results[c.id]
            member_rows.append({**info, **{k: r.get(k) for k in (
                "estimate", "ci_low", "ci_high", "test_ci_low", "test_ci_high", "p_raw",
                "p_adj", "m", "mde", "verdict", "reason", "rule")}})
        if len(members) > 1:
            rows.append(_headline(family, members[0][0], member_rows))
        rows.extend(member_rows)
    return pd.DataFrame(rows, columns=COLUMNS)


def _in_arms(runs: pd.DataFrame, c: Comparison) -> pd.Series:
    arms = set(c.a.candidates) | set(c.b.candidates)
    return pd.Series([(m, g) in arms for m, g in zip(runs["model"], runs["graph"],
                                                       strict=True)], index=runs.index,
                     dtype=bool)


def _headline(family: str, first: Comparison, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """One row for a claim made of several comparisons (its family)."""
    testable = [r for r in rows if r["verdict"] != inference.NOT_TESTABLE]
    verdict = inference.family_verdict(rows)
    n_sup = sum(r["verdict"] == inference.SUPPORTED for r in rows)
    n_con = sum(r["verdict"] == inference.CONTRADICTED for r in rows)
    return {
        "claim": first.claim, "comparison": family, "source": first.source,
        "task": first.task, "metric": first.metric, "arm_a": "each graph model on each prior",
        "arm_b": "the same model on that prior's degree-matched random control",
        "chosen_a": "", "chosen_b": "", "n_pairs": sum(r["n_pairs"] for r in testable),
        "estimate": math.nan, "ci_low": math.nan, "ci_high": math.nan,
        "test_ci_low": math.nan, "test_ci_high": math.nan, "paper_value": first.paper, "p_raw": math.nan,
        "p_adj": min((r["p_adj"] for r in testable if r["p_adj"] is not None
                      and not math.isnan(r["p_adj"])), default=math.nan),
        "m": len(testable), "mde": math.nan, "verdict": verdict,
        "reason": f"{n_sup} of {len(rows)} arms supported, {n_con} contradicted",
        "rule": (f"headline of {len(rows)} comparisons ({len(testable)} testable; "
                 f"{n_sup} supported, {n_con} contradicted after Holm): "
                 + inference.FAMILY_RULE),
        "excluded_collapsed": sum(r["excluded_collapsed"] for r in rows), "table": first.table,
        "family": family,
    }


def _fmt(v: Any, spec: str) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    return format(v, spec)


def claims_markdown(table: pd.DataFrame, alpha: float = 0.05) -> str:
    """The claims table as markdown; ``alpha`` (report.alpha) names the two intervals."""
    if table.empty:
        return "no claims\n"
    md = pd.DataFrame({
        "claim": table["claim"], "arms": table["arm_a"] + " vs " + table["arm_b"],
        f"effect [{1 - alpha:.0%} CI]": [f"{_fmt(e, '+.4f')} [{_fmt(lo, '+.4f')}, {_fmt(hi, '+.4f')}]"
                            for e, lo, hi in zip(table["estimate"], table["ci_low"],
                                                 table["ci_high"], strict=True)],
        # the (1 - 2 alpha) CI: its end on the claimed side is the one-sided bound the test
        # uses (a two-sided 95% CI can cross 0 under a significant one-sided 5% test)
        f"{1 - 2 * alpha:.0%} CI (the test's)": [f"[{_fmt(lo, '+.4f')}, {_fmt(hi, '+.4f')}]" for lo, hi in
                                zip(table["test_ci_low"], table["test_ci_high"], strict=True)],
        "paper": table["paper_value"],
        "p (raw / Holm)": [f"{_fmt(p, '.3g')} / {_fmt(q, '.3g')}"
                           for p, q in zip(table["p_raw"], table["p_adj"], strict=True)],
        "m": table["m"], "pairs": table["n_pairs"], "MDE": [_fmt(v, ".3g") for v in table["mde"]],
        "excluded (collapsed)": table["excluded_collapsed"],
        "verdict": table["verdict"], "why": table["reason"],
    })
    return md.to_markdown(index=False) + "\n"


def write_claims(runs_csv: str, plan_json: str, out: str) -> pd.DataFrame:
    plan = read_json(plan_json)
    table = compute_claims(pd.read_csv(runs_csv), plan)
    write_table(table, out, claims_markdown(table, float((plan.get("report") or {}).get("alpha", 0.05))))
    return table
