"""The linear baseline of Ahlmann-Eltze, Huber & Anders (Nature Methods 2025): the expression
change is a low-rank bilinear function of gene and perturbation embeddings,

    y_p - c  ≈  b + G W P_pᵀ

- ``c`` (genes,): the mean of the control training cells;
- ``G`` (genes × K): gene embeddings, the top-K principal-component scores of the genes in
  the training pseudobulk matrix (genes × training conditions, every condition's mean
  expression, each condition's column centred over genes, as their ``prcomp`` on it);
- ``P_p`` (K,): the perturbation's embedding, the row of ``G`` of its perturbed gene (so an
  unseen single perturbation has one too); a combination gets the sum of its genes' rows,
  controls zero (our extension: the paper fits and predicts singles);
- ``b`` (genes,): the mean change over the fitted conditions (the paper's row centring);
- ``W`` (K × K): ridge least squares on the control and the single-gene training
  perturbations (combinations are left out of the fit, as in the paper):
  ``W = (GᵀG + λI)⁻¹ Gᵀ (Y - b) Pᵀ (PPᵀ + λI)⁻¹`` with ``Y`` the changes ``m_p - c``.

Defaults are the paper's (K = 10, λ = 0.1). The prediction ignores the input control cell:
every cell of a perturbation gets ``c + b + G W P_pᵀ``. Their code is R
(``run_linear_pretrained_model.R`` in const-ae/linear_perturbation_prediction-Paper); this is
a re-implementation from its equations with an exact SVD in place of irlba.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from scgraphbench.errors import ScgbError
from scgraphbench.models.contract import ArrayEstimator
from scgraphbench.models.perturbation_baselines import flag_groups, pseudobulk
from scgraphbench.models.registry import ModelContext, register


def gene_embedding(pseudobulk_means: np.ndarray, n_components: int) -> np.ndarray:
    """Top principal-component scores of the genes (genes × K, K <= the matrix rank bound) of
    a (conditions, genes) pseudobulk matrix, each condition centred over genes."""
    X = pseudobulk_means.T - pseudobulk_means.mean(1)  # genes × conditions, centred columns
    U, S, _ = np.linalg.svd(X, full_matrices=False)
    k = min(n_components, len(S))
    return U[:, :k] * S[:k]


def embed_perturbations(G: np.ndarray, groups: list[tuple[int, ...]]) -> np.ndarray:
    """(groups, K): the sum of the perturbed genes' rows of ``G`` (controls: zero)."""
    return np.stack([G[list(genes)].sum(0) for genes in groups])


def ridge_bilinear(Y: np.ndarray, G: np.ndarray, P: np.ndarray, ridge: float) -> np.ndarray:
    """The two-sided ridge solution of ``Y ≈ G W Pᵀ`` (Y: genes × m, G: genes × K,
    P: m × K), as the paper's ``solve_y_axb``: ``(GᵀG + λI)⁻¹ Gᵀ Y P (PᵀP + λI)⁻¹``, the
    least-squares ``W`` when λ = 0 (pinv keeps that case defined)."""
    k = G.shape[1]
    left = np.linalg.pinv(G.T @ G + ridge * np.eye(k))
    right = np.linalg.pinv(P.T @ P + ridge * np.eye(k))
    return left @ G.T @ Y @ P @ right


@register("linear_baseline")
class LinearBaseline(ArrayEstimator):
    """``c + b + G W P_pᵀ`` (see the module docstring)."""

    def __init__(self, ctx: ModelContext, *, n_components: int, ridge: float) -> None:
        self.ctx = ctx
        self.n_components = n_components
        self.ridge = ridge
        self.G_: np.ndarray | None = None
        self.fit_info_: dict[str, Any] = {}

    def fit(self, x: np.ndarray, pert: np.ndarray, y: np.ndarray) -> LinearBaseline:
        groups, means, _ = pseudobulk(pert, y)
        fitted = [k for k, g in enumerate(groups) if len(g) <= 1]
        if () not in groups or len(fitted) < 2:
            raise ScgbError(
                "linear_baseline: the training cells need controls and at least one "
                "single-gene perturbation",
                field="split", fix="use a dataset whose train split holds single perturbations",
            )
        self.ctrl_mean_ = means[groups.index(())]
        self.G_ = gene_embedding(means, self.n_components)
        Y = (means[fitted] - self.ctrl_mean_).T  # genes × fitted conditions
        self.b_ = Y.mean(1)
        P = embed_perturbations(self.G_, [groups[k] for k in fitted])
        self.W_ = ridge_bilinear(Y - self.b_[:, None], self.G_, P, self.ridge)
        self.fit_info_ = {"n_components": int(self.G_.shape[1]),
                          "n_fit_conditions": len(fitted),
                          "n_combinations_not_fitted": len(groups) - len(fitted)}
        return self

    def predict(self, x: np.ndarray, pert: np.ndarray) -> np.ndarray:
        if self.G_ is None:
            raise RuntimeError("fit() first")
        groups, inverse = flag_groups(pert)
        change = self.G_ @ self.W_ @ embed_perturbations(self.G_, groups).T  # genes × groups
        pred = self.ctrl_mean_ + self.b_ + change.T
        return pred[inverse].astype(np.float32)

    def n_parameters(self) -> int:
        if self.G_ is None:
            return 0
        return int(self.G_.size + self.W_.size + self.b_.size + self.ctrl_mean_.size)

    def report(self) -> dict[str, Any]:
        """The embedding size used (K is capped by the number of training conditions) and
        how many training conditions the ridge fit used / left out (combinations)."""
        return dict(self.fit_info_)
