"""The perturbation-response run (GEARS task).

A training example is (input = a control cell's expression, flags = the condition's
perturbed genes, target = a perturbed cell's expression); control cells of the train split
are also examples of themselves with no flags, as GEARS trains on ``ctrl``. Inputs are drawn
from the control pool with seeded generators: afresh every epoch for training (seed, epoch),
once for validation and test. The loss is the MSE; early stopping watches the validation
loss. Test predictions are averaged per perturbation and scored with the GEARS metrics
(:mod:`scgraphbench.evaluate.perturbation`), overall and per subgroup.

Outputs beside ``metrics.json``: ``predictions.csv`` (one row per test perturbation:
condition, subgroup, n_cells and the six metrics) and ``mean_expression.npz`` (conditions,
genes, pred_mean, true_mean, ctrl_mean) for figures.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from scgraphbench.evaluate.collapse import detect_perturbation_collapse
from scgraphbench.evaluate.perturbation import condition_means, perturbation_table, summarise
from scgraphbench.io import atomic_path, write_json
from scgraphbench.models.base import gene_scaling
from scgraphbench.models.registry import ModelContext
from scgraphbench.train.common import (
    ATTENTION_PROBE_CELLS,
    attention_probe,
    build_family,
    cost_block,
    fingerprint,
    is_torch,
    load_aligned_graph,
    reference_graph,
    timed,
)
from scgraphbench.train.cost import PeakMemory
from scgraphbench.train.data import PerturbationData, load_prepared, perturbation_data
from scgraphbench.train.trainer import TrainConfig, Trainer, minibatches, seed_everything

_SPLIT_STREAM = {"val": 2, "test": 3}


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
    """Tensors of one split: ``batch(idx)`` -> ({"x", "pert"}, target)."""

    def __init__(self, data: PerturbationData, split: str) -> None:
        self.pool = torch.from_numpy(data.ctrl_pool[split])
        self.flags = torch.from_numpy(data.flags.astype(np.float32))
        self.cond = torch.from_numpy(data.cond_id[split])
        self.y = torch.from_numpy(data.X[split])

    def batch(
        self, idx: np.ndarray, rows: np.ndarray
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        idx_t = torch.from_numpy(np.asarray(idx))
        return (
            {"x": self.pool[torch.from_numpy(rows[idx])], "pert": self.flags[self.cond[idx_t]]},
            self.y[idx_t],
        )


def _predict(trainer: Trainer, split: PairedSplit, rows: np.ndarray, batch_size: int) -> np.ndarray:
    preds = []
    for start in range(0, len(rows), batch_size):
        idx = np.arange(start, min(start + batch_size, len(rows)))
        inputs, _ = split.batch(idx, rows)
        preds.append(trainer.infer(inputs)["pred"].cpu())
    return torch.cat(preds).numpy()


def score(data: PerturbationData, split: str, pred: np.ndarray) -> tuple[Any, ...]:
    """GEARS metrics of a split's predictions: (per-perturbation table, overall, subgroups,
    condition names, pred means, true means)."""
    names = data.condition_names(split)
    conds, pred_mean = condition_means(pred, names)
    _, true_mean = condition_means(data.X[split], names)
    counts = {c: int((names == c).sum()) for c in conds}
    table = perturbation_table(
        conds, pred_mean, true_mean, data.ctrl_mean, data.de_idx, data.subgroup, counts
    )
    overall, groups = summarise(table)
    return table, overall, groups, conds, pred_mean, true_mean


def run_perturbation(
    prepared: str,
    graph_path: str | None,
    family: str,
    params: dict[str, Any],
    train_cfg: dict[str, Any],
    seed: int,
    out_dir: str,
    stop_after_epoch: int | None = None,
    meta: dict[str, Any] | None = None,
    adata: Any = None,
    reference_graph_path: str | None = None,
) -> dict[str, Any] | None:
    out = Path(out_dir)
    cfg = TrainConfig.from_dict(train_cfg)
    seed_everything(seed)
    adata = adata if adata is not None else load_prepared(prepared)
    data = perturbation_data(adata, prepared, train_fraction=cfg.train_fraction, seed=seed)
    n_genes = len(data.genes)
    graph = load_aligned_graph(graph_path, data.genes)
    # the input standardisation is fit on the training inputs (training control cells)
    ctx = ModelContext(task="perturbation", n_genes=n_genes, gene_names=data.genes, graph=graph,
                       extra=gene_scaling(data.ctrl_pool["train"]))
    model = build_family(family, ctx, params, seed)
    out.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {
        **(meta or {}),
        "task": "perturbation",
        "family": family,
        "seed": seed,
        "params": params,
        "train": cfg.as_dict(),
        "n_genes": n_genes,
        **{f"n_{s}": int(len(data.X[s])) for s in ("train", "val", "test")},
        "n_test_perturbations": int(len(set(data.cond_id["test"]))),
    }
    test = PairedSplit(data, "test")
    test_rows = input_rows(data, "test", seed)

    if not is_torch(model):
        device = torch.device("cpu")
        train_rows = input_rows(data, "train", seed, 0)
        x_tr = data.ctrl_pool["train"][train_rows]
        flags_tr = data.flags[data.cond_id["train"]]
        with PeakMemory(device) as mem:
            _, train_time = timed(lambda: model.fit(x_tr, flags_tr, data.X["train"]))
        x_te = data.ctrl_pool["test"][test_rows]
        pred, infer = timed(
            lambda: np.asarray(model.predict(x_te, data.flags[data.cond_id["test"]]))
        )
        result.update(
            {
                "train_time_s": train_time,
                "time_per_step_s": train_time,
                "epoch_time_s": train_time,
                "epochs_run": 1,
                "steps": 1,
            }
        )
    else:
        fp = fingerprint(
            task="perturbation",
            prepared=prepared,
            graph=graph_path,
            family=family,
            params=params,
            train=cfg.as_dict(),
            seed=seed,
        )
        trainer = Trainer(
            model,
            cfg,
            seed,
            loss_fn=lambda o, y: F.mse_loss(o["pred"].float(), y),
            checkpoint=out / "checkpoint.pt",
            fingerprint=fp,
        )
        device = trainer.device
        train, val = PairedSplit(data, "train"), PairedSplit(data, "val")
        val_rows = input_rows(data, "val", seed)

        def batches(epoch: int):
            rows = input_rows(data, "train", seed, epoch)
            for idx in minibatches(len(rows), cfg.batch_size, seed, epoch):
                yield train.batch(idx, rows)

        def validate(m: torch.nn.Module) -> tuple[float, dict[str, float]]:
            pred = _predict(trainer, val, val_rows, cfg.batch_size)
            loss = float(np.mean((pred - data.X["val"]) ** 2))
            _, overall, *_ = score(data, "val", pred)
            return -loss, {"val_loss": loss, "val_pearson_delta": overall["pearson_delta"]}

        with PeakMemory(device) as mem:
            trainer.fit(batches, validate, stop_after_epoch=stop_after_epoch)
        if (
            stop_after_epoch is not None
            and not trainer.state.done
            and trainer.state.epoch < cfg.epochs
        ):
            return None  # simulated kill: the checkpoint is on disk, no metrics yet
        pred, infer = timed(lambda: _predict(trainer, test, test_rows, cfg.batch_size))
        result.update(trainer.summary())
        result["best_val_loss"] = -result.pop("best_val_score")
        result["history"] = trainer.state.history
        result["resumed_from_epoch"] = trainer.resumed_from

    table, overall, groups, conds, pred_mean, true_mean = score(data, "test", pred)
    result.update({k: v for k, v in overall.items() if k != "n_perturbations"})
    if is_torch(model):  # the non-learned baselines predict one response by design
        verdict = detect_perturbation_collapse(pred_mean, true_mean, data.ctrl_mean)
        result.update(collapsed=verdict["collapsed"], collapse_reason=verdict["collapse_reason"],
                      collapse=verdict)
    else:
        result.update(collapsed=False, collapse_reason=None)
    result["subgroups"] = groups
    result.update(cost_block(model, n_genes, device, mem.peak_mb, len(pred), infer))
    ref, source = reference_graph(adata, data.genes, reference_graph_path)
    if is_torch(model):
        idx = np.sort(
            np.random.default_rng([seed, 4]).choice(
                len(test_rows), size=min(len(test_rows), ATTENTION_PROBE_CELLS), replace=False
            )
        )
        probe = attention_probe(model, test.batch(idx, test_rows)[0], n_genes, ref, source, seed)
        if probe is not None:
            result["attention_edges"] = probe

    with atomic_path(out / "predictions.csv") as tmp:
        table.to_csv(tmp, index=False)
    with atomic_path(out / "mean_expression.npz", suffix=".npz") as tmp:
        np.savez_compressed(
            tmp,
            conditions=np.asarray(conds, dtype=str),
            genes=np.asarray(data.genes, dtype=str),
            pred_mean=pred_mean.astype(np.float32),
            true_mean=true_mean.astype(np.float32),
            ctrl_mean=data.ctrl_mean.astype(np.float32),
        )
    write_json(out / "metrics.json", result)
    return result
