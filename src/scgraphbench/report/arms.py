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
    if "collapsed" not in runs:
        return runs, 0
    collapsed = runs["collapsed"].astype(bool)
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

    values: dict[tuple[str, int], float]  # (dataset, replicate) -> mean over seeds
    chosen: dict[str, str] = field(default_factory=dict)  # dataset -> "model · graph"

    def mean(self) -> float:
        return float(np.mean(list(self.values.values()))) if self.values else float("nan")


class Units:
    """Per-unit means of a runs table, computed once and looked up per arm."""

    def __init__(self, runs: pd.DataFrame) -> None:
        self.runs = runs
        self._means: dict[str, dict[tuple, tuple[dict[tuple[str, int], float], float]]] = {}

    def _groups(self, metric: str) -> dict[tuple, tuple[dict[tuple[str, int], float], float]]:
        """(dataset, model, graph) -> ({(dataset, replicate): metric}, mean val score)."""
        if metric not in self._means:
            groups: dict[tuple, tuple[dict, float]] = {}
            if metric in self.runs and not self.runs.empty:
                cols = list(dict.fromkeys([metric, VAL] if VAL in self.runs else [metric]))
                means = self.runs.groupby(["dataset", "model", "graph", "replicate"])[
                    cols].mean()
                val = means[VAL] if VAL in means else pd.Series(-np.inf, index=means.index)
                for (d, m, g, r), v, sv in zip(means.index, means[metric], val, strict=True):
                    values, vals = groups.setdefault((d, m, g), ({}, []))
                    if np.isfinite(v):
                        values[(d, int(r))] = float(v)
                    vals.append(sv)
                groups = {k: (v, float(np.mean(sv))) for k, (v, sv) in groups.items()}
            self._means[metric] = groups
        return self._means[metric]

    def values(self, dataset: str, model: str, graph: str, metric: str
               ) -> dict[tuple[str, int], float]:
        """(dataset, replicate) -> metric of one (model, graph), NaNs left out."""
        return self._groups(metric).get((dataset, model, graph), ({}, -np.inf))[0]

    def validation(self, dataset: str, model: str, graph: str, metric: str) -> float:
        return self._groups(metric).get((dataset, model, graph), ({}, -np.inf))[1]

    def resolve(self, arm: Arm, metric: str, datasets: tuple[str, ...]) -> ArmValues:
        """The arm's test metric per unit over ``datasets``; with several candidates, the
        one with the best mean validation score per dataset."""
        values: dict[tuple[str, int], float] = {}
        chosen = {}
        for dataset in datasets:
            best, best_val, best_vals = None, -np.inf, {}
            for model, graph in arm.candidates:
                vals = self.values(dataset, model, graph, metric)
                if not vals:
                    continue
                val = (self.validation(dataset, model, graph, metric)
                       if len(arm.candidates) > 1 else 0.0)
                if best is None or val > best_val:
                    best, best_val, best_vals = (model, graph), val, vals
            if best is None:
                continue
            chosen[dataset] = best[0] if best[1] == "none" else f"{best[0]} · {best[1]}"
            values.update(best_vals)
        return ArmValues(values, chosen)


def paired(a: dict[tuple, float], b: dict[tuple, float]
           ) -> tuple[np.ndarray, np.ndarray, list[tuple]]:
    """The two arms' values on the units both have, in the same (sorted) order."""
    units = sorted(set(a) & set(b))
    return (np.array([a[u] for u in units], dtype=float),
            np.array([b[u] for u in units], dtype=float), units)
