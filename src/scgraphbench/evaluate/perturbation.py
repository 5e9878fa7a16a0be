"""Perturbation-response metrics, computed as GEARS computes them (gears/inference.py).

Everything is on per-perturbation *mean* expression: the mean of the predictions for a
perturbation's test cells against the mean of its true cells. For each perturbation:

- ``mse``, ``pearson``: on all genes (``compute_metrics``);
- ``mse_de``, ``pearson_de``: on the perturbation's top-20 DE genes (``compute_metrics``);
- ``pearson_delta``: Pearson(pred_mean - ctrl_mean, true_mean - ctrl_mean) on all genes, and
  ``pearson_delta_de`` the same on the top-20 DE genes (``deeper_analysis``; the numbers the
  GEARS paper reports, GEARS issue #61).

As in GEARS, a Pearson correlation that is undefined (a constant vector) counts as 0, the
control mean is over every control cell of the dataset, and an overall or subgroup score is
the plain mean over its perturbations.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

METRICS = ("mse", "pearson", "mse_de", "pearson_de", "pearson_delta", "pearson_delta_de")


def mean_squared_error(a: np.ndarray, b: np.ndarray) -> float:
    """scikit-learn's ``mean_squared_error`` of two vectors (not imported: see pearson)."""
    return float(np.mean(np.square(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson r as scipy's ``pearsonr`` computes it (centred, normalised, then the dot
    product; GEARS's metric), with GEARS's rule that an undefined correlation is 0. numpy
    rather than scipy.stats: importing scipy.stats costs each training job about a second."""
    if len(a) < 2:
        return 0.0
    a = np.asarray(a, dtype=np.float64) - np.mean(a)
    b = np.asarray(b, dtype=np.float64) - np.mean(b)
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 or nb == 0 or not np.isfinite(na * nb):
        return 0.0
    return max(-1.0, min(1.0, float(np.dot(a / na, b / nb))))


def condition_means(values: np.ndarray, conditions: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """Mean row of ``values`` per condition, conditions in sorted order (as np.unique)."""
    conditions = np.asarray(conditions, dtype=str)
    names = np.unique(conditions)
    means = (
        np.stack([np.asarray(values[conditions == c], dtype=np.float64).mean(0) for c in names])
        if len(names)
        else np.zeros((0, values.shape[1]))
    )
    return names.tolist(), means


def perturbation_scores(
    pred_mean: np.ndarray, true_mean: np.ndarray, ctrl_mean: np.ndarray, de_idx: np.ndarray
) -> dict[str, float]:
    """The six GEARS metrics for one perturbation: (n_genes,) means, ``de_idx`` gene indices."""
    pred_mean, true_mean, ctrl_mean = (
        np.asarray(a, dtype=np.float64) for a in (pred_mean, true_mean, ctrl_mean)
    )
    de_idx = np.asarray(de_idx, dtype=np.int64)
    dp, dt = pred_mean - ctrl_mean, true_mean - ctrl_mean
    return {
        "mse": float(mean_squared_error(pred_mean, true_mean)),
        "pearson": pearson(pred_mean, true_mean),
        "mse_de": float(mean_squared_error(pred_mean[de_idx], true_mean[de_idx])),
        "pearson_de": pearson(pred_mean[de_idx], true_mean[de_idx]),
        "pearson_delta": pearson(dp, dt),
        "pearson_delta_de": pearson(dp[de_idx], dt[de_idx]),
    }


def perturbation_table(
    conditions: Sequence[str],
    pred_mean: np.ndarray,
    true_mean: np.ndarray,
    ctrl_mean: np.ndarray,
    de_idx: Mapping[str, np.ndarray],
    subgroup: Mapping[str, str] | None = None,
    n_cells: Mapping[str, int] | None = None,
) -> pd.DataFrame:
    """One row per perturbation: condition, subgroup, n_cells and the six metrics."""
    rows = []
    for i, c in enumerate(conditions):
        row = {
            "condition": c,
            "subgroup": (subgroup or {}).get(c, "all"),
            "n_cells": int((n_cells or {}).get(c, 0)),
        }
        row.update(perturbation_scores(pred_mean[i], true_mean[i], ctrl_mean, de_idx[c]))
        rows.append(row)
    return pd.DataFrame(rows, columns=["condition", "subgroup", "n_cells", *METRICS])


def summarise(table: pd.DataFrame, extra: Mapping[str, set[str]] | None = None
              ) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """(overall means, {subgroup: means + n_perturbations}) over the perturbations' rows;
    ``extra`` adds groups given as sets of conditions (they may overlap the subgroups)."""
    overall = {m: float(table[m].mean()) if len(table) else float("nan") for m in METRICS}
    overall["n_perturbations"] = int(len(table))
    groups: dict[str, dict[str, float]] = {}
    parts = [(str(n), p) for n, p in table.groupby("subgroup", sort=True)]
    parts += [(n, table[table["condition"].isin(c)]) for n, c in (extra or {}).items()]
    for name, part in parts:
        if len(part):
            groups[name] = {**{m: float(part[m].mean()) for m in METRICS},
                            "n_perturbations": int(len(part))}
    return overall, groups
