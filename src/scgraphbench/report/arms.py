"""From runs to the paired units a comparison tests: one value per (dataset, replicate).

- A unit is one replicate (train/val/test split) of one dataset; several initialisation
  seeds inside a replicate are averaged first, so p-values carry split variance and not
  seed noise counted as independent evidence.
- Collapsed runs (a model that never trained) are left out and counted.
- With ``tuning:`` on, a (model, graph)'s setting is chosen per replicate among the default
  and the tuning points by mean *validation* score.
- An arm with several candidate (model, graph) pairs takes, per dataset, the candidate with
  the best mean validation score over replicates, and reports its *test* metric.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from scgraphbench.plan.comparisons import Arm

VAL = "best_val_score"
UNIT = ["dataset", "replicate"]


def usable(runs: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """(runs that trained, how many collapsed ones were left out)."""
    collapsed = runs["collapsed"].astype(bool) if "collapsed" in runs else pd.Series(False,
                                                                                  runs.index)
    return runs[~collapsed], int(collapsed.sum())


def main_settings(runs: pd.DataFrame, tuned: bool) -> pd.DataFrame:
    """The runs of the main comparison: setting ``default``, or with tuning the setting of
    each (dataset, replicate, model, graph) with the best mean validation score among the
    default and the tuning points."""
    pool = runs[runs["setting_study"].isin(["main", "tuning"] if tuned else ["main"])]
    if not tuned or pool.empty:
        return pool[pool["setting"] == "default"]
    keys = [*UNIT, "model", "graph"]
    score = pool.groupby([*keys, "setting"])[VAL].mean().reset_index()
    best = score.loc[score.groupby(keys)[VAL].idxmax(), [*keys, "setting"]]
    return pool.merge(best, on=[*keys, "setting"])


@dataclass
class ArmValues:
    """An arm resolved on the runs: test metric per unit, and what was chosen."""

    values: pd.Series  # (dataset, replicate) -> mean over seeds of the metric
    chosen: dict[str, str] = field(default_factory=dict)  # dataset -> "model · graph"
    excluded: int = 0  # collapsed runs left out


def unit_means(runs: pd.DataFrame, model: str, graph: str, metric: str) -> pd.Series:
    sel = runs[(runs["model"] == model) & (runs["graph"] == graph)]
    if metric not in sel or sel.empty:
        return pd.Series(dtype=float)
    return sel.groupby(UNIT)[metric].mean().dropna()


def resolve_arm(runs: pd.DataFrame, arm: Arm, metric: str, datasets: tuple[str, ...]
                ) -> ArmValues:
    """The arm's test metric per unit over ``datasets`` (``runs``: the main comparison's
    runs of usable models, see :func:`main_settings` and :func:`usable`)."""
    sel = runs[runs["dataset"].isin(datasets)]
    parts, chosen = [], {}
    for dataset in datasets:
        here = sel[sel["dataset"] == dataset]
        best, best_val = None, -np.inf
        for model, graph in arm.candidates:
            cand = here[(here["model"] == model) & (here["graph"] == graph)]
            if cand.empty or metric not in cand or cand[metric].isna().all():
                continue
            val = cand[VAL].mean() if len(arm.candidates) > 1 else 0.0
            if best is None or val > best_val:
                best, best_val = (model, graph), val
        if best is None:
            continue
        chosen[dataset] = best[0] if best[1] == "none" else f"{best[0]} · {best[1]}"
        parts.append(unit_means(here, *best, metric))
    values = pd.concat(parts) if parts else pd.Series(dtype=float)
    return ArmValues(values, chosen)


def paired(a: pd.Series, b: pd.Series) -> tuple[np.ndarray, np.ndarray, list[tuple]]:
    """The two arms' values on the units both have, in the same order."""
    joined = pd.concat([a.rename("a"), b.rename("b")], axis=1, join="inner").dropna()
    return (joined["a"].to_numpy(float), joined["b"].to_numpy(float),
            [tuple(i) for i in joined.index])
