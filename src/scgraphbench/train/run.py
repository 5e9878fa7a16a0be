"""One training run = (prepared dataset, graph, family, params, seed) -> a run directory.

:func:`run_training` reads the task from the prepared dataset
(``uns['scgraphbench']['task']``) and calls :func:`run_annotation` or
:func:`scgraphbench.train.perturbation.run_perturbation`. Both write, atomically, into
``out_dir``: ``metrics.json`` (scores, cost, params, environment, history, the ``meta``
labels), a predictions table and ``checkpoint.pt`` (neural families; resumed when present).

Annotation outputs: ``predictions.csv`` (cell, true, pred), ``confusion.csv`` (rows: true
class), ``embeddings.npy`` (test-cell embeddings, the order of predictions.csv).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from scgraphbench.evaluate.annotation import (
    annotation_scores,
    confusion_table,
    embedding_scores,
    per_class_scores,
)
from scgraphbench.evaluate.collapse import detect_collapse, prior_loss
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
from scgraphbench.train.data import annotation_data, class_weights, dataset_task, load_prepared
from scgraphbench.train.trainer import TrainConfig, Trainer, minibatches, seed_everything


def run_training(
    prepared: str,
    graph_path: str | None,
    family: str,
    params: dict[str, Any],
    train_cfg: dict[str, Any],
    seed: int,
    out_dir: str,
    *,
    stop_after_epoch: int | None = None,
    meta: dict[str, Any] | None = None,
    reference_graph_path: str | None = None,
) -> dict[str, Any] | None:
    """Train and evaluate one run for the task the prepared dataset was made for.

    Returns the metrics (also in ``out_dir/metrics.json``), or None when
    ``stop_after_epoch`` ended training early (a simulated kill; the checkpoint is on disk).
    """
    adata = load_prepared(prepared)
    task = dataset_task(adata, prepared)
    if task == "perturbation":
        from scgraphbench.train.perturbation import run_perturbation

        return run_perturbation(
            prepared,
            graph_path,
            family,
            params,
            train_cfg,
            seed,
            out_dir,
            stop_after_epoch=stop_after_epoch,
            meta=meta,
            adata=adata,
            reference_graph_path=reference_graph_path,
        )
    return run_annotation(
        prepared,
        graph_path,
        family,
        params,
        train_cfg,
        seed,
        out_dir,
        stop_after_epoch=stop_after_epoch,
        meta=meta,
        adata=adata,
        reference_graph_path=reference_graph_path,
    )


def _predict(trainer: Trainer, X: np.ndarray, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    logits, embs = [], []
    for start in range(0, len(X), batch_size):
        out = trainer.infer({"x": torch.from_numpy(X[start : start + batch_size])})
        logits.append(out["logits"].cpu())
        embs.append(out["embedding"].cpu())
    return torch.cat(logits).numpy(), torch.cat(embs).numpy()


def run_annotation(
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
    data = annotation_data(adata, prepared, train_fraction=cfg.train_fraction, seed=seed)
    graph = load_aligned_graph(graph_path, data.genes)
    ctx = ModelContext(
        task="annotation",
        n_genes=len(data.genes),
        gene_names=data.genes,
        n_classes=len(data.classes),
        graph=graph,
        # 'rank': cells are shown as their genes in rank order without values (positional study);
        # gene_mean/gene_std: the per-gene input standardisation, fit on training cells only
        extra={
            "token_order": adata.uns.get("scgraphbench", {}).get("token_order", "index"),
            **gene_scaling(data.X["train"]),
        },
    )
    model = build_family(family, ctx, params, seed)
    out.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {
        **(meta or {}),
        "task": "annotation",
        "family": family,
        "seed": seed,
        "params": params,
        "train": cfg.as_dict(),
        "n_train": int(len(data.y["train"])),
        "n_val": int(len(data.y["val"])),
        "n_test": int(len(data.y["test"])),
        "n_genes": len(data.genes),
        "n_classes": len(data.classes),
    }

    if not is_torch(model):
        device = torch.device("cpu")
        with PeakMemory(device) as mem:
            _, train_time = timed(lambda: model.fit(data.X["train"], data.y["train"]))
        pred, infer = timed(lambda: np.asarray(model.predict(data.X["test"])))
        emb = np.asarray(model.embed(data.X["test"]))
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
        weights = (
            torch.from_numpy(class_weights(data.y["train"], len(data.classes)))
            if cfg.class_weighting
            else None
        )
        fp = fingerprint(
            task="annotation",
            prepared=prepared,
            graph=graph_path,
            family=family,
            params=params,
            train=cfg.as_dict(),
            seed=seed,
        )
        trainer = Trainer(
            model, cfg, seed, loss_fn=None, checkpoint=out / "checkpoint.pt", fingerprint=fp
        )
        device = trainer.device
        ce = torch.nn.CrossEntropyLoss(weight=weights.to(device) if weights is not None else None)
        trainer.loss_fn = lambda o, y: ce(o["logits"].float(), y)
        Xtr, ytr = torch.from_numpy(data.X["train"]), torch.from_numpy(data.y["train"])

        def batches(epoch: int):
            for idx in minibatches(len(ytr), cfg.batch_size, seed, epoch):
                yield {"x": Xtr[idx]}, ytr[idx]

        def validate(m: torch.nn.Module) -> tuple[float, dict[str, float]]:
            logits, _ = _predict(trainer, data.X["val"], cfg.batch_size)
            s = annotation_scores(data.y["val"], logits.argmax(1), len(data.classes))
            return s["macro_f1"], {"val_macro_f1": s["macro_f1"], "val_accuracy": s["accuracy"]}

        prior = prior_loss(data.y["train"], len(data.classes), cfg.class_weighting)
        with PeakMemory(device) as mem:
            trainer.fit(batches, validate, stop_after_epoch=stop_after_epoch, prior_loss=prior)
        if (
            stop_after_epoch is not None
            and not trainer.state.done
            and trainer.state.epoch < cfg.epochs
        ):
            return None  # simulated kill: the checkpoint is on disk, no metrics yet
        (logits, emb), infer = timed(lambda: _predict(trainer, data.X["test"], cfg.batch_size))
        pred = logits.argmax(1)
        result.update(trainer.summary())
        result["history"] = trainer.state.history
        result["resumed_from_epoch"] = trainer.resumed_from

    y_test = data.y["test"]
    result.update(annotation_scores(y_test, pred, len(data.classes)))
    if is_torch(model):  # a learned family that never left the class prior is marked
        verdict = detect_collapse(
            pred, len(data.classes), trainer.state.history, y_true=y_test, prior=prior
        )
        result.update(collapsed=verdict["collapsed"], collapse_reason=verdict["collapse_reason"],
                      collapse=verdict)
    else:
        result.update(collapsed=False, collapse_reason=None)
    result["per_class"] = per_class_scores(y_test, pred, data.classes)
    result.update(embedding_scores(emb, y_test, seed=seed))
    result.update(cost_block(model, len(data.genes), device, mem.peak_mb, len(pred), infer))
    ref, source = reference_graph(adata, data.genes, reference_graph_path)
    probe = None
    if is_torch(model) and ref is not None:
        n_test = len(y_test)
        idx = np.sort(
            np.random.default_rng([seed, 4]).choice(
                n_test, size=min(n_test, ATTENTION_PROBE_CELLS), replace=False
            )
        )
        probe = attention_probe(
            model, {"x": torch.from_numpy(data.X["test"][idx])}, len(data.genes), ref, source, seed
        )
    if probe is not None:
        result["attention_edges"] = probe

    classes = np.asarray(data.classes)
    with atomic_path(out / "predictions.csv") as tmp:
        pd.DataFrame(
            {"cell": data.cell_ids["test"], "true": classes[y_test], "pred": classes[pred]}
        ).to_csv(tmp, index=False)
    with atomic_path(out / "confusion.csv") as tmp:
        confusion_table(y_test, pred, data.classes).to_csv(tmp)
    with atomic_path(out / "embeddings.npy", suffix=".npy") as tmp:
        np.save(tmp, np.asarray(emb, dtype=np.float32))
    write_json(out / "metrics.json", result)
    return result
