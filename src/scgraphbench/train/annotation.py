"""The cell-type annotation task: classify each cell from its expression vector.

Training minimises cross-entropy (class-weighted when ``train.class_weight`` is
``balanced``, the same setting every family gets); validation macro-F1 drives early
stopping and any choice made on validation. Outputs beside ``metrics.json``:
``predictions.csv`` (cell, true, pred), ``confusion.csv`` (rows: true class) and
``embeddings.npy`` (test-cell embeddings, in the order of predictions.csv).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from scgraphbench.evaluate.annotation import (
    annotation_scores,
    confusion_table,
    embedding_scores,
    per_class_scores,
)
from scgraphbench.evaluate.collapse import detect_collapse, prior_loss
from scgraphbench.io import atomic_path
from scgraphbench.models.base import gene_scaling
from scgraphbench.models.registry import ModelContext
from scgraphbench.train.data import annotation_data, class_weights
from scgraphbench.train.task import Task
from scgraphbench.train.trainer import Batch, Trainer, minibatches


@dataclass
class Labels:
    """A split's predicted class ids and cell embeddings."""

    pred: np.ndarray
    embedding: np.ndarray
    split: str


class AnnotationTask(Task):
    name = "annotation"

    def __init__(self, adata: Any, path: str, cfg: Any, seed: int) -> None:
        super().__init__(adata, path, cfg, seed)
        self.data = annotation_data(adata, path, train_fraction=cfg.train_fraction, seed=seed)
        self.n_classes = len(self.data.classes)
        self.weights = (class_weights(self.data.y["train"], self.n_classes)
                        if cfg.class_weight == "balanced" else None)
        self._ce: torch.nn.CrossEntropyLoss | None = None
        self._Xtr = torch.from_numpy(self.data.X["train"])
        self._ytr = torch.from_numpy(self.data.y["train"])

    @property
    def genes(self) -> list[str]:
        return self.data.genes

    def context(self, graph: sp.csr_matrix | None) -> ModelContext:
        return ModelContext(
            task="annotation", n_genes=len(self.genes), gene_names=self.genes,
            n_classes=self.n_classes, graph=graph, seed=self.seed,
            class_weight=self.cfg.class_weight,
            # 'rank': genes shown in rank order without values (the positional study)
            # gene_mean/gene_std: the input standardisation, fit on training cells only
            extra={"token_order":
                   (self.adata.uns.get("scgraphbench") or {}).get("token_order", "index"),
                   **gene_scaling(self.data.X["train"])},
        )

    def sizes(self) -> dict[str, int]:
        return {**{f"n_{s}": int(len(self.data.y[s])) for s in ("train", "val", "test")},
                "n_genes": len(self.genes), "n_classes": self.n_classes}

    # -- torch families ----------------------------------------------------------------
    def loss(self, out: dict[str, torch.Tensor], target: torch.Tensor) -> torch.Tensor:
        logits = out["logits"].float()
        if self._ce is None:
            w = None if self.weights is None else torch.from_numpy(self.weights).to(logits.device)
            self._ce = torch.nn.CrossEntropyLoss(weight=w)
        return self._ce(logits, target)

    def train_batches(self, epoch: int) -> Iterator[Batch]:
        for idx in minibatches(len(self._ytr), self.cfg.batch_size, self.seed, epoch):
            yield {"x": self._Xtr[idx]}, self._ytr[idx]

    def predict(self, trainer: Trainer, split: str) -> Labels:
        X, bs = self.data.X[split], self.cfg.batch_size
        logits, embs = [], []
        for start in range(0, len(X), bs):
            out = trainer.infer({"x": torch.from_numpy(X[start : start + bs])})
            logits.append(out["logits"].cpu())
            embs.append(out["embedding"].cpu())
        return Labels(torch.cat(logits).numpy().argmax(1), torch.cat(embs).numpy(), split)

    # -- array estimators --------------------------------------------------------------
    def fit_estimator(self, model: Any) -> None:
        model.fit(self.data.X["train"], self.data.y["train"])

    def predict_estimator(self, model: Any, split: str) -> Labels:
        X = self.data.X[split]
        return Labels(np.asarray(model.predict(X)), np.asarray(model.embed(X)), split)

    # -- scoring and outputs -------------------------------------------------------------
    def val_score(self, prediction: Labels) -> tuple[float, dict[str, float]]:
        s = annotation_scores(self.data.y["val"], prediction.pred, self.n_classes)
        return s["macro_f1"], {"val_macro_f1": s["macro_f1"], "val_accuracy": s["accuracy"]}

    def test_scores(self, prediction: Labels) -> dict[str, Any]:
        y = self.data.y["test"]
        return {
            **annotation_scores(y, prediction.pred, self.n_classes),
            "per_class": per_class_scores(y, prediction.pred, self.data.classes),
            **embedding_scores(prediction.embedding, y, seed=self.seed),
        }

    def prior_loss(self) -> float:
        return prior_loss(self.data.y["train"], self.n_classes, self.weights is not None)

    def collapse(self, prediction: Labels, history: list[dict[str, float]]) -> dict[str, Any]:
        return detect_collapse(prediction.pred, self.n_classes, history,
                               y_true=self.data.y["test"], prior=self.prior_loss())

    def n_inferred(self, prediction: Labels) -> int:
        return len(prediction.pred)

    def probe_inputs(self, prediction: Labels, n_cells: int) -> dict[str, torch.Tensor]:
        rows = self.probe_rows(len(self.data.y["test"]), n_cells)
        return {"x": torch.from_numpy(self.data.X["test"][rows])}

    def write_outputs(self, out: Path, prediction: Labels) -> None:
        y, pred = self.data.y["test"], prediction.pred
        classes = np.asarray(self.data.classes)
        with atomic_path(out / "predictions.csv") as tmp:
            pd.DataFrame({"cell": self.data.cell_ids["test"], "true": classes[y],
                          "pred": classes[pred]}).to_csv(tmp, index=False)
        with atomic_path(out / "confusion.csv") as tmp:
            confusion_table(y, pred, self.data.classes).to_csv(tmp)
        with atomic_path(out / "embeddings.npy", suffix=".npy") as tmp:
            np.save(tmp, np.asarray(prediction.embedding, dtype=np.float32))
