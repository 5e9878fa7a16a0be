"""The additive baseline for combinations (Ahlmann-Eltze, Huber & Anders, Nature Methods 2025).

A perturbation of genes ``{A, B, ...}`` is predicted as the control mean plus the effect of
each gene perturbed alone::

    pred(A+B) = c + (m_A - c) + (m_B - c)

with ``c`` the mean of the control training cells and ``m_A`` the mean of the training cells
of the single perturbation ``A+ctrl`` (all estimated from training cells only; the input
control cell is not used, the prediction is the same for every cell of a condition). No
deep model in that paper beat it on combinations whose single perturbations were both seen.

A condition with a gene whose single perturbation has no training cells (GEARS combo_seen0/1,
unseen singles, and combo_seen2 combinations whose single was moved to validation) falls
back to the mean of the perturbed training cells (the ``mean_baseline``'s prediction), and
says so: :meth:`AdditiveBaseline.report` gives, for the latest ``predict`` call (the test
split, in a run), how many distinct perturbations were predicted, how many fell back and
which; the runner writes it to metrics.json under ``additive_baseline``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from scgraphbench.errors import ScgbError
from scgraphbench.models.contract import ArrayEstimator
from scgraphbench.models.perturbation_baselines import condition_name, flag_groups, pseudobulk
from scgraphbench.models.registry import ModelContext, register


@register("additive_baseline")
class AdditiveBaseline(ArrayEstimator):
    """Control mean + the sum of the single-perturbation effects (see the module docstring)."""

    def __init__(self, ctx: ModelContext) -> None:
        self.ctx = ctx
        self.ctrl_mean_: np.ndarray | None = None
        self.fallback_mean_: np.ndarray | None = None
        self.effects_: dict[int, np.ndarray] = {}  # gene index -> m_gene - c
        self.last_: dict[str, Any] = {}

    def fit(self, x: np.ndarray, pert: np.ndarray, y: np.ndarray) -> AdditiveBaseline:
        groups, means, counts = pseudobulk(pert, y)
        if () not in groups or len(groups) == 1:
            raise ScgbError(
                "additive_baseline: the training cells need both controls and perturbed cells",
                field="split", fix="check the train split holds control and perturbed cells",
            )
        ctrl = groups.index(())
        self.ctrl_mean_ = means[ctrl]
        perturbed = [k for k in range(len(groups)) if k != ctrl]
        w = counts[perturbed] / counts[perturbed].sum()
        self.fallback_mean_ = w @ means[perturbed]  # the mean of every perturbed cell
        self.effects_ = {g[0]: means[k] - self.ctrl_mean_
                         for k, g in enumerate(groups) if len(g) == 1}
        return self

    def predict(self, x: np.ndarray, pert: np.ndarray) -> np.ndarray:
        if self.ctrl_mean_ is None:
            raise RuntimeError("fit() first")
        groups, inverse = flag_groups(pert)
        out = np.empty((len(groups), len(self.ctrl_mean_)))
        fallback = []
        for k, genes in enumerate(groups):
            if all(g in self.effects_ for g in genes):
                out[k] = self.ctrl_mean_ + sum((self.effects_[g] for g in genes),
                                               np.zeros_like(self.ctrl_mean_))
            else:
                out[k] = self.fallback_mean_
                fallback.append(genes)
        self.last_ = {
            "n_conditions": sum(1 for g in groups if g),
            "n_fallback": len(fallback),
            "n_fallback_combinations": sum(1 for g in fallback if len(g) > 1),
            "fallback_conditions": sorted(condition_name(self.ctx.gene_names, g)
                                          for g in fallback),
        }
        return out[inverse].astype(np.float32)

    def n_parameters(self) -> int:
        if self.ctrl_mean_ is None:
            return 0
        return int(self.ctrl_mean_.size * (2 + len(self.effects_)))

    def report(self) -> dict[str, Any]:
        """For the latest ``predict``: distinct perturbations predicted (``n_conditions``),
        how many fell back to the train mean (``n_fallback``; combinations among them:
        ``n_fallback_combinations``) and which (``fallback_conditions``)."""
        return dict(self.last_)
