"""Aggregation math: mean ± std over seeds and paired significance tests across seeds."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats


def summarise(runs: pd.DataFrame, metrics: list[str], group: list[str]) -> pd.DataFrame:
    """One row per group: ``<metric>_mean``, ``<metric>_std`` (sample std, ddof=1), ``n_seeds``."""
    metrics = [m for m in metrics if m in runs.columns]
    g = runs.groupby(group, dropna=False, sort=True)
    out = g[metrics].agg(["mean", "std"])
    out.columns = [f"{m}_{stat}" for m, stat in out.columns]
    out["n_seeds"] = g["seed"].nunique() if "seed" in runs else g.size()
    return out.reset_index()


@dataclass
class PairedTest:
    n_pairs: int
    mean_difference: float  # mean over seeds of (a - b)
    p_ttest: float  # two-sided paired t-test
    p_wilcoxon: float  # two-sided Wilcoxon signed-rank (exact for small n)


def paired_test(a: pd.Series, b: pd.Series) -> PairedTest:
    """Compare two runs' metric paired by seed (the index of both series).

    With fewer than two pairs, or identical values, the p-values are NaN / 1 as the
    tests define them; they are never invented.
    """
    joined = pd.concat([a.rename("a"), b.rename("b")], axis=1, join="inner").dropna()
    n = len(joined)
    if n == 0:
        return PairedTest(0, math.nan, math.nan, math.nan)
    diff = (joined["a"] - joined["b"]).to_numpy(dtype=float)
    mean_diff = float(diff.mean())
    if n < 2:
        return PairedTest(n, mean_diff, math.nan, math.nan)
    if np.allclose(diff, 0):
        return PairedTest(n, mean_diff, 1.0, 1.0)
    if np.allclose(diff, diff[0]):
        # zero variance of a non-zero difference: t is infinite
        p_t = 0.0
    else:
        p_t = float(stats.ttest_rel(joined["a"], joined["b"]).pvalue)
    p_w = float(stats.wilcoxon(diff, zero_method="wilcox", alternative="two-sided").pvalue) \
        if np.count_nonzero(diff) else 1.0
    return PairedTest(n, mean_diff, p_t, p_w)


def by_seed(runs: pd.DataFrame, metric: str, **where: object) -> pd.Series:
    """The metric of the runs matching ``where``, indexed by seed."""
    mask = np.ones(len(runs), dtype=bool)
    for key, value in where.items():
        mask &= (runs[key] == value).to_numpy()
    sel = runs.loc[mask]
    return sel.groupby("seed")[metric].mean() if metric in sel else pd.Series(dtype=float)


def format_mean_std(mean: float, std: float, digits: int = 4) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "n/a"
    std = 0.0 if std is None or (isinstance(std, float) and math.isnan(std)) else std
    return f"{mean:.{digits}g} ± {std:.2g}"


def format_p(p: float) -> str:
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return "n/a"
    return f"{p:.3g}"
