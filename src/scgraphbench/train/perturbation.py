"""The perturbation-response task (GEARS): predict a perturbed cell from a control cell.

A training example is (input = a control cell's expression, flags = the condition's
perturbed genes, target = a perturbed cell's expression); control cells of the train split
are also examples of themselves with no flags, as GEARS trains on ``ctrl``. Inputs are drawn
from the control pool with seeded generators: afresh every epoch for training (seed, epoch),
once for validation and test. The loss is the MSE; the validation score is minus the
validation MSE. Test predictions are averaged per perturbation and scored with the GEARS
metrics (:mod:`scgraphbench.evaluate.perturbation`), overall and per subgroup.

Outputs beside ``metrics.json``: ``predictions.csv`` (one row per test perturbation:
condition, subgroup, n_cells and the six metrics) and ``mean_expression.npz`` (conditions,
genes, pred_mean, true_mean, ctrl_mean) for figures.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from scgraphbench.data.gears import genes_of
from scgraphbench.evaluate.collapse import detect_perturbation_collapse
from scgraphbench.evaluate.perturbation import condition_means, perturbation_table, summarise
from scgraphbench.io import atomic_path
from scgraphbench.models.base import gene_scaling
from scgraphbench.models.registry import ModelContext
from scgraphbench.train.data import PerturbationData, perturbation_data
from scgraphbench.train.task import Task
from scgraphbench.train.trainer import Batch, Trainer, minibatches

_SPLIT_STREAM = {"val": 2, "test": 3}
COMBO_SINGLES_TRAINED = "combo_singles_trained"


def input_rows(data: PerturbationData, split: str, seed: int, epoch: int = 0) -> np.ndarray:
    """Row of ``ctrl_pool[split]`` used as each target's input: itself for control targets,
    a seeded draw otherwise (per epoch for train, fixed for val/test)."""
    stream = [seed, epoch, 1] if split == "train" else [seed, _SPLIT_STREAM[split]]
    draws = np.random.default_rng(stream).integers(
        0, len(data.ctrl_pool[split]), size=len(data.X[split])
    )
    own = data.self_input[split]
    return np.where(own >= 0, own, draws)


class PairedSplit:
    """Tensors of one split: ``batch(idx, rows)`` -> ({"x", "pert"}, target)."""

    def __init__(self, data: PerturbationData, split: str) -> None:
        self.pool = torch.from_numpy(data.ctrl_pool[split])
        self.flags = torch.from_numpy(data.flags.astype(np.float32))
        self.cond = torch.from_numpy(data.cond_id[split])
        self.y = torch.from_numpy(data.X[split])

    def batch(self, idx: np.ndarray, rows: np.ndarray) -> Batch:
        idx_t = torch.from_numpy(np.asarray(idx))
        return (
            {"x": self.pool[torch.from_numpy(rows[idx])], "pert": self.flags[self.cond[idx_t]]},
            self.y[idx_t],
        )


@dataclass
class Expression:
    """A split's predicted expression, one row per target cell."""

    pred: np.ndarray
    split: str
    scored: tuple | None = None  # PerturbationTask.score's result, computed once


class PerturbationTask(Task):
    name = "perturbation"

    def __init__(self, adata: Any, path: str, cfg: Any, seed: int) -> None:
        super().__init__(adata, path, cfg, seed)
        self.data = perturbation_data(adata, path, train_fraction=cfg.train_fraction, seed=seed)
        self.splits = {s: PairedSplit(self.data, s) for s in ("train", "val", "test")}
        self.rows = {s: input_rows(self.data, s, seed) for s in ("val", "test")}

    @property
    def genes(self) -> list[str]:
        return self.data.genes

    def context(self, graph: sp.csr_matrix | None) -> ModelContext:
        # the input standardisation is fit on the training inputs (training control cells)
        return ModelContext(task="perturbation", n_genes=len(self.genes), gene_names=self.genes,
                            graph=graph, seed=self.seed,
                            extra=gene_scaling(self.data.ctrl_pool["train"]))

    def sizes(self) -> dict[str, int]:
        return {"n_genes": len(self.genes),
                **{f"n_{s}": int(len(self.data.X[s])) for s in ("train", "val", "test")},
                "n_test_perturbations": int(len(set(self.data.cond_id["test"])))}

    # -- torch families ----------------------------------------------------------------
    def loss(self, out: dict[str, torch.Tensor], target: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(out["pred"].float(), target)

    def train_batches(self, epoch: int) -> Iterator[Batch]:
        rows = input_rows(self.data, "train", self.seed, epoch)
        for idx in minibatches(len(rows), self.cfg.batch_size, self.seed, epoch):
            yield self.splits["train"].batch(idx, rows)

    def predict(self, trainer: Trainer, split: str) -> Expression:
        rows, bs = self.rows[split], self.cfg.batch_size
        preds = []
        for start in range(0, len(rows), bs):
            idx = np.arange(start, min(start + bs, len(rows)))
            inputs, _ = self.splits[split].batch(idx, rows)
            preds.append(trainer.infer(inputs)["pred"].cpu())
        return Expression(torch.cat(preds).numpy(), split)

    # -- array estimators --------------------------------------------------------------
    def fit_estimator(self, model: Any) -> None:
        d = self.data
        rows = input_rows(d, "train", self.seed, 0)
        model.fit(d.ctrl_pool["train"][rows], d.flags[d.cond_id["train"]], d.X["train"])

    def predict_estimator(self, model: Any, split: str) -> Expression:
        d = self.data
        x = d.ctrl_pool[split][self.rows[split]]
        return Expression(np.asarray(model.predict(x, d.flags[d.cond_id[split]])), split)

    # -- scoring and outputs -------------------------------------------------------------
    def score(self, prediction: Expression) -> tuple[Any, ...]:
        """(per-perturbation table, overall, subgroups, conditions, pred means, true means)."""
        if prediction.scored is not None:
            return prediction.scored
        d, split = self.data, prediction.split
        names = d.condition_names(split)
        conds, pred_mean = condition_means(prediction.pred, names)
        _, true_mean = condition_means(d.X[split], names)
        counts = {c: int((names == c).sum()) for c in conds}
        table = perturbation_table(conds, pred_mean, true_mean, d.ctrl_mean, d.de_idx,
                                   d.subgroup, counts)
        # combinations whose singles both have training cells: where the additive
        # baseline needs no fallback (a subset of combo_seen2)
        trained = {c for c in conds if len(genes_of(c)) == 2
                   and set(genes_of(c)) <= d.singles_trained}
        overall, groups = summarise(table, {COMBO_SINGLES_TRAINED: trained})
        prediction.scored = (table, overall, groups, conds, pred_mean, true_mean)
        return prediction.scored

    def val_score(self, prediction: Expression) -> tuple[float, dict[str, float]]:
        loss = float(np.mean((prediction.pred - self.data.X["val"]) ** 2))
        _, overall, *_ = self.score(prediction)
        return -loss, {"val_loss": loss, "val_pearson_delta": overall["pearson_delta"]}

    def validation_summary(self, best_val_score: float) -> dict[str, float]:
        return {"best_val_loss": -best_val_score}

    def test_scores(self, prediction: Expression) -> dict[str, Any]:
        _, overall, groups, *_ = self.score(prediction)
        return {**{k: v for k, v in overall.items() if k != "n_perturbations"},
                "subgroups": groups}

    def collapse(self, prediction: Expression, history: list[dict[str, float]]) -> dict[str, Any]:
        _, _, _, _, pred_mean, true_mean = self.score(prediction)
        return detect_perturbation_collapse(pred_mean, true_mean, self.data.ctrl_mean)

    def n_inferred(self, prediction: Expression) -> int:
        return len(prediction.pred)

    def probe_inputs(self, prediction: Expression, n_cells: int) -> dict[str, torch.Tensor]:
        rows = self.rows["test"]
        return self.splits["test"].batch(self.probe_rows(len(rows), n_cells), rows)[0]

    def write_outputs(self, out: Path, prediction: Expression) -> None:
        table, _, _, conds, pred_mean, true_mean = self.score(prediction)
        with atomic_path(out / "predictions.csv") as tmp:
            table.to_csv(tmp, index=False)
        with atomic_path(out / "mean_expression.npz", suffix=".npz") as tmp:
            np.savez_compressed(
                tmp, conditions=np.asarray(conds, dtype=str),
                genes=np.asarray(self.data.genes, dtype=str),
                pred_mean=pred_mean.astype(np.float32), true_mean=true_mean.astype(np.float32),
                ctrl_mean=self.data.ctrl_mean.astype(np.float32),
            )
