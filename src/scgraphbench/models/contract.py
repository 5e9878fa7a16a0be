"""The two interfaces a family class implements (its catalog row says which).

``torch`` families subclass :class:`FamilyModule`: ``forward(x, pert=None)`` returns
``{"embedding": (B, d), "logits": (B, C)}`` (annotation) or ``{"embedding", "pred":
(B, n_genes)}`` (perturbation); the Trainer fits them. The cost table asks
:meth:`FamilyModule.attention_flops`, the interpretability probe asks
:meth:`FamilyModule.attention_maps`; a family without token mixing returns None from both.

``arrays`` families subclass :class:`ArrayEstimator`: ``fit`` and ``predict`` on numpy
arrays (annotation: ``fit(X, y)``, ``predict(X) -> class ids``, ``embed(X) -> (cells, d)``;
perturbation: ``fit(x, pert, y)``, ``predict(x, pert) -> (cells, genes)``), and
``n_parameters()``. ``report()`` may return extra numbers for metrics.json: the runner calls
it right after the test predictions and writes it under the family's name (runs.csv
flattens it to ``<family>/<key>`` columns).

Both are built as ``Family(ctx, **params)`` with the parameters their catalog row declares,
already checked and completed with the declared defaults (:mod:`.catalog`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn


class FamilyModule(nn.Module):
    """Base of every torch family (see the module docstring)."""

    family: str = ""

    def attention_flops(self, n_genes: int) -> int | None:
        """Forward FLOPs per cell of the token-mixing layers (train/cost.py gives the
        formula), None for a family without token mixing."""
        return None

    def attention_maps(self, inputs: dict[str, torch.Tensor], n_genes: int
                       ) -> np.ndarray | None:
        """Mean (n_genes, n_genes) attention over the cells of ``inputs``, heads and layers
        (row i: where gene i attends), None for a family without attention weights."""
        return None


class ArrayEstimator:
    """Base of every array family (see the module docstring)."""

    family: str = ""

    def fit(self, *arrays: np.ndarray) -> ArrayEstimator:
        raise NotImplementedError

    def predict(self, *arrays: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def embed(self, X: np.ndarray) -> np.ndarray:
        raise NotImplementedError(f"{self.family} has no cell embedding")

    def n_parameters(self) -> int:
        raise NotImplementedError

    def report(self) -> dict[str, Any]:
        """Numbers about the fit for metrics.json (none by default)."""
        return {}
