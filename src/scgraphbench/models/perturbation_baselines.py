"""Non-learned perturbation baselines, always run beside the neural families.

- ``mean_baseline``: predicts the mean expression of the perturbed training cells for every
  perturbation (the "train mean" baseline that perturbation models are compared against).
- ``control_baseline``: predicts the mean expression of the control training cells, i.e.
  "no effect". Its delta correlations only reflect the sampling difference between the
  training controls and all controls (the GEARS delta reference), so they sit near 0.

Both follow the non-torch family protocol of the perturbation task: ``fit(x, pert, y)`` on
training pairs (control input, perturbation flags, perturbed target) and
``predict(x, pert) -> (cells, genes)``. :func:`pseudobulk` (mean target per distinct flag
row, i.e. per condition) is shared with the additive and linear baselines.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from scgraphbench.errors import ScgbError
from scgraphbench.models.contract import ArrayEstimator
from scgraphbench.models.registry import ModelContext, register


def flag_groups(pert: np.ndarray) -> tuple[list[tuple[int, ...]], np.ndarray]:
    """The distinct perturbations among the rows of ``pert`` (cells, genes): each as the
    sorted tuple of its perturbed gene indices (controls: ``()``), and each row's group."""
    flags = sp.csr_matrix(np.asarray(pert) != 0)
    index: dict[tuple[int, ...], int] = {}
    inverse = np.empty(flags.shape[0], dtype=np.int64)
    for i in range(flags.shape[0]):
        key = tuple(int(g) for g in flags.indices[flags.indptr[i]:flags.indptr[i + 1]])
        inverse[i] = index.setdefault(key, len(index))
    return list(index), inverse


def condition_name(gene_names: list[str], genes: tuple[int, ...]) -> str:
    """A group's GEARS-style name: ``A+ctrl`` for a single, ``A+B`` (gene order) otherwise."""
    names = [gene_names[g] for g in genes]
    return f"{names[0]}+ctrl" if len(names) == 1 else "+".join(names) or "ctrl"


def pseudobulk(pert: np.ndarray, y: np.ndarray
               ) -> tuple[list[tuple[int, ...]], np.ndarray, np.ndarray]:
    """Mean target per distinct perturbation: (groups as in :func:`flag_groups`, means
    (groups, genes) float64, cells per group)."""
    groups, inverse = flag_groups(pert)
    means = np.empty((len(groups), y.shape[1]))
    counts = np.bincount(inverse, minlength=len(groups))
    for k in range(len(groups)):
        means[k] = y[inverse == k].mean(0, dtype=np.float64)
    return groups, means, counts


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
