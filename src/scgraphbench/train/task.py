"""The task contract: what one run needs to know about its task, and nothing else.

A :class:`Task` owns its data view (arrays per split, cut from a prepared dataset), the
model context, the loss, the validation score, test scoring and the files a run writes
beside ``metrics.json``. :func:`scgraphbench.train.run.run` drives every family through
it: torch families via the Trainer (``train_batches``, ``loss``, ``predict``), array
estimators via ``fit_estimator``/``predict_estimator``. Adding a task is one module with a
``Task`` subclass registered in :data:`TASKS`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from scgraphbench.models.registry import ModelContext
from scgraphbench.train.trainer import Batch, TrainConfig

if TYPE_CHECKING:
    import anndata as ad
    import scipy.sparse as sp

    from scgraphbench.train.trainer import Trainer


class Task(ABC):
    """One task's view of a prepared dataset for one run (see the module docstring).

    ``Prediction`` objects are task-specific (logits and embeddings, or expression); the
    runner only passes them between the task's own methods.
    """

    name: str

    def __init__(self, adata: ad.AnnData, path: str, cfg: TrainConfig, seed: int) -> None:
        self.adata, self.path, self.cfg, self.seed = adata, path, cfg, seed

    @property
    @abstractmethod
    def genes(self) -> list[str]: ...

    @abstractmethod
    def context(self, graph: sp.csr_matrix | None) -> ModelContext: ...

    @abstractmethod
    def sizes(self) -> dict[str, int]:
        """Counts for metrics.json (n_train, n_val, n_test, ...)."""

    # -- torch families --------------------------------------------------------------
    @abstractmethod
    def loss(self, out: dict[str, torch.Tensor], target: torch.Tensor) -> torch.Tensor: ...

    @abstractmethod
    def train_batches(self, epoch: int) -> Iterator[Batch]: ...

    @abstractmethod
    def predict(self, trainer: Trainer, split: str) -> Any: ...

    # -- array estimators ------------------------------------------------------------
    @abstractmethod
    def fit_estimator(self, model: Any) -> None: ...

    @abstractmethod
    def predict_estimator(self, model: Any, split: str) -> Any: ...

    # -- scoring and outputs -----------------------------------------------------------
    @abstractmethod
    def val_score(self, prediction: Any) -> tuple[float, dict[str, float]]:
        """(score where higher is better, numbers for the history) on the val split."""

    def validation_summary(self, best_val_score: float) -> dict[str, float]:
        """Task-specific names for the best validation score (e.g. the loss it negates)."""
        return {}

    @abstractmethod
    def test_scores(self, prediction: Any) -> dict[str, Any]: ...

    @abstractmethod
    def collapse(self, prediction: Any, history: list[dict[str, float]]) -> dict[str, Any]:
        """``collapsed`` (bool), ``collapse_reason`` and the numbers behind the verdict
        (:mod:`scgraphbench.evaluate.collapse`) for a test prediction."""

    def prior_loss(self) -> float | None:
        """The training loss of a constant predictor, where patience waits (None: none)."""
        return None

    @abstractmethod
    def probe_inputs(self, prediction: Any, n_cells: int) -> dict[str, torch.Tensor]:
        """Model inputs of a few seeded test cells, for the attention probe."""

    @abstractmethod
    def write_outputs(self, out: Path, prediction: Any) -> None: ...

    def n_inferred(self, prediction: Any) -> int:
        return int(len(next(iter(prediction.values()))) if isinstance(prediction, dict)
                   else len(prediction))

    def probe_rows(self, n: int, n_cells: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, 4])
        return np.sort(rng.choice(n, size=min(n, n_cells), replace=False))


def make_task(adata: ad.AnnData, path: str, cfg: TrainConfig, seed: int) -> Task:
    from scgraphbench.train.data import dataset_task

    name = dataset_task(adata, path)
    if name == "perturbation":
        from scgraphbench.train.perturbation import PerturbationTask

        return PerturbationTask(adata, path, cfg, seed)
    from scgraphbench.train.annotation import AnnotationTask

    return AnnotationTask(adata, path, cfg, seed)
