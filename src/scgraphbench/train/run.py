"""One training run = (prepared dataset, graph, family, params, seed) -> metrics.json."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from scgraphbench.evaluate.annotation import annotation_scores
from scgraphbench.graphs.io import align_graph, load_graph
from scgraphbench.io import atomic_path, write_json
from scgraphbench.models.registry import ModelContext, get_family
from scgraphbench.train.cost import PeakMemory, count_parameters, environment
from scgraphbench.train.data import annotation_data, class_weights, load_prepared
from scgraphbench.train.trainer import TrainConfig, Trainer, minibatches, seed_everything


def _predict(model: torch.nn.Module, X: np.ndarray, device: torch.device,
             batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    model.eval()
    logits, embs = [], []
    with torch.no_grad():
        for start in range(0, len(X), batch_size):
            out = model(x=torch.from_numpy(X[start:start + batch_size]).to(device))
            logits.append(out["logits"].float().cpu())
            embs.append(out["embedding"].float().cpu())
    return torch.cat(logits).numpy(), torch.cat(embs).numpy()


def run_annotation(prepared: str, graph_path: str | None, family: str, params: dict[str, Any],
                   train_cfg: dict[str, Any], seed: int, out_dir: str,
                   stop_after_epoch: int | None = None,
                   meta: dict[str, Any] | None = None) -> dict[str, Any] | None:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cfg = TrainConfig.from_dict(train_cfg)
    seed_everything(seed)
    adata = load_prepared(prepared)
    data = annotation_data(adata, prepared, train_fraction=float(train_cfg.get("train_fraction", 1.0)),
                           seed=seed)
    graph = None
    if graph_path:
        A, genes = load_graph(graph_path)
        graph = align_graph(A, genes, data.genes, graph_path)
    ctx = ModelContext(task="annotation", n_genes=len(data.genes), gene_names=data.genes,
                       n_classes=len(data.classes), graph=graph)
    cls = get_family(family)
    result: dict[str, Any] = {**(meta or {}), "task": "annotation", "family": family, "seed": seed, "params": params,
                              "n_train": int(len(data.y["train"]))}

    if getattr(cls, "kind", "torch") == "sklearn":
        model = cls(ctx, seed=seed, **params)
        device = torch.device("cpu")
        with PeakMemory(device) as mem:
            t0 = time.perf_counter()
            model.fit(data.X["train"], data.y["train"])
            train_time = time.perf_counter() - t0
        t0 = time.perf_counter()
        pred = model.predict(data.X["test"])
        infer = time.perf_counter() - t0
        emb = model.embed(data.X["test"])
        cost = {"train_time_s": train_time, "time_per_step_s": train_time, "epochs_run": 1}
    else:
        model = cls(ctx, **params)
        weights = (torch.from_numpy(class_weights(data.y["train"], len(data.classes)))
                   if cfg.class_weighting else None)
        trainer = Trainer(model, cfg, seed, loss_fn=None, checkpoint=out / "checkpoint.pt")
        device = trainer.device
        ce = torch.nn.CrossEntropyLoss(weight=weights.to(device) if weights is not None else None)
        trainer.loss_fn = lambda o, y: ce(o["logits"].float(), y)
        Xtr, ytr = torch.from_numpy(data.X["train"]), torch.from_numpy(data.y["train"])

        def batches(epoch: int):
            for idx in minibatches(len(ytr), cfg.batch_size, seed, epoch):
                yield {"x": Xtr[idx]}, ytr[idx]

        def validate(m: torch.nn.Module) -> tuple[float, dict[str, float]]:
            logits, _ = _predict(m, data.X["val"], device, cfg.batch_size)
            s = annotation_scores(data.y["val"], logits.argmax(1), len(data.classes))
            return s["macro_f1"], {"val_accuracy": s["accuracy"]}

        with PeakMemory(device) as mem:
            trainer.fit(batches, validate, stop_after_epoch=stop_after_epoch)
        if stop_after_epoch is not None and not trainer.state.done \
                and trainer.state.epoch < cfg.epochs:
            return None  # simulated kill: the checkpoint is on disk, no metrics yet
        t0 = time.perf_counter()
        logits, emb = _predict(trainer.model, data.X["test"], device, cfg.batch_size)
        infer = time.perf_counter() - t0
        pred = logits.argmax(1)
        cost = trainer.summary()
        result["history"] = trainer.state.history
        result["resumed_from_epoch"] = trainer.resumed_from

    scores = annotation_scores(data.y["test"], pred, len(data.classes))
    result.update(scores)
    result.update(cost)
    result.update({"n_parameters": count_parameters(model), "peak_memory_mb": mem.peak_mb,
                   "inference_cells_per_s": len(pred) / max(infer, 1e-9),
                   "environment": environment(device)})
    with atomic_path(out / "predictions.csv") as tmp:
        pd.DataFrame({"cell": data.cell_ids["test"],
                      "true": np.asarray(data.classes)[data.y["test"]],
                      "pred": np.asarray(data.classes)[pred]}).to_csv(tmp, index=False)
    with atomic_path(out / "embeddings.npy", suffix=".npy") as tmp:
        np.save(tmp, emb.astype(np.float32))
    write_json(out / "metrics.json", result)
    return result
