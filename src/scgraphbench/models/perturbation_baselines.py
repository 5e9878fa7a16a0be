"""Non-learned perturbation baselines, always run beside the neural families.

- ``mean_baseline``: predicts the mean expression of the perturbed training cells for every
  perturbation (the "train mean" baseline that perturbation models are compared against).
- ``control_baseline``: predicts the mean expression of the control training cells, i.e.
  "no effect". Its delta correlations only reflect the sampling difference between the
  training controls and all controls (the GEARS delta reference), so they sit near 0.

Both follow the non-torch family protocol of the perturbation task: ``fit(x, pert, y)`` on
training pairs (control input, perturbation flags, perturbed target) and
``predict(x, pert) -> (cells, genes)``.
"""

from __future__ import annotations

import numpy as np

from scgraphbench.errors import ScgbError
from scgraphbench.models.contract import ArrayEstimator
from scgraphbench.models.registry import ModelContext, register


class _MeanPredictor(ArrayEstimator):
    def __init__(self, ctx: ModelContext) -> None:
        self.ctx = ctx
        self.mean_: np.ndarray | None = None

    def _rows(self, pert: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def fit(self, x: np.ndarray, pert: np.ndarray, y: np.ndarray) -> _MeanPredictor:
        rows = self._rows(np.asarray(pert))
        if not rows.any():
            raise ScgbError(
                f"{self.family}: no training cells of the kind it averages",
                field="split",
                fix="check the train split holds control and perturbed cells",
            )
        self.mean_ = np.asarray(y, dtype=np.float64)[rows].mean(0).astype(np.float32)
        return self

    def predict(self, x: np.ndarray, pert: np.ndarray | None = None) -> np.ndarray:
        if self.mean_ is None:
            raise RuntimeError("fit() first")
        return np.broadcast_to(self.mean_, (len(x), len(self.mean_))).copy()

    def n_parameters(self) -> int:
        return 0 if self.mean_ is None else int(self.mean_.size)


@register("mean_baseline")
class MeanBaseline(_MeanPredictor):
    """Mean of the perturbed training cells (rows with at least one perturbation flag)."""

    def _rows(self, pert: np.ndarray) -> np.ndarray:
        return pert.sum(1) > 0


@register("control_baseline")
class ControlBaseline(_MeanPredictor):
    """Mean of the control training cells (rows without perturbation flags)."""

    def _rows(self, pert: np.ndarray) -> np.ndarray:
        return pert.sum(1) == 0
