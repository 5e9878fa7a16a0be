"""One training run = (prepared dataset, graph, family, params, train settings, seed) -> a
run directory, for every family and task through one flow:

task view of the data -> model from the family contract -> fit (the Trainer for torch
families, ``fit`` for array estimators) -> validation score -> test scores, collapse check,
cost, attention probe -> outputs, each written atomically.

``metrics.json`` holds the scores, ``best_val_score`` (the score any choice on validation
uses), cost, params, train settings, environment, history and the ``meta`` labels (dataset,
replicate, model, graph, setting, seed) the workflow passes; an array estimator's
``report()`` (read after its test predictions) goes under the family's name. A checkpoint
is resumed when present and written for the same inputs (the fingerprint).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from scgraphbench.io import write_json
from scgraphbench.models.catalog import get_spec
from scgraphbench.models.registry import build_family
from scgraphbench.train.common import (
    ATTENTION_PROBE_CELLS,
    attention_probe,
    cost_block,
    fingerprint,
    load_aligned_graph,
    reference_graph,
    timed,
)
from scgraphbench.train.cost import PeakMemory
from scgraphbench.train.data import load_prepared
from scgraphbench.train.task import make_task
from scgraphbench.train.trainer import TrainConfig, Trainer, seed_everything


def run(
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
    """Train and evaluate one run; returns the metrics (also in ``out_dir/metrics.json``),
    or None when ``stop_after_epoch`` ended training early (a simulated kill: the checkpoint
    is on disk, no metrics yet)."""
    out = Path(out_dir)
    spec = get_spec(family)
    cfg = TrainConfig.from_dict(train_cfg)
    seed_everything(seed)
    adata = load_prepared(prepared)
    task = make_task(adata, prepared, cfg, seed)
    graph = load_aligned_graph(graph_path, task.genes)
    model = build_family(family, task.context(graph), params)
    out.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {
        "task": task.name,
        "family": family,
        "seed": seed,
        **(meta or {}),  # the workflow's labels: its seed is the seed inside the replicate
        "effective_seed": seed,
        "params": params,
        "train": cfg.as_dict(),
        **task.sizes(),
    }
    history: list[dict[str, float]] = []
    if spec.interface == "arrays":
        device = torch.device("cpu")
        with PeakMemory(device) as mem:
            _, train_time = timed(lambda: task.fit_estimator(model))
        score, info = task.val_score(task.predict_estimator(model, "val"))
        test, infer = timed(lambda: task.predict_estimator(model, "test"))
        # what the estimator says about its fit and its test predictions (e.g. fallbacks)
        report = model.report()
        if report:
            result[family] = report
        result.update({"train_time_s": train_time, "time_per_step_s": train_time,
                       "epoch_time_s": train_time, "epochs_run": 1, "steps": 1,
                       "best_epoch": 0, "best_val_score": score, **info})
    else:
        fp = fingerprint(task=task.name, prepared=prepared, graph=graph_path, family=family,
                         params=params, train=cfg.as_dict(), seed=seed)
        trainer = Trainer(model, cfg, seed, loss_fn=task.loss, checkpoint=out / "checkpoint.pt",
                          fingerprint=fp)
        device = trainer.device
        with PeakMemory(device) as mem:
            trainer.fit(task.train_batches,
                        lambda _m: task.val_score(task.predict(trainer, "val")),
                        stop_after_epoch=stop_after_epoch, prior_loss=task.prior_loss())
        if not trainer.finished:
            return None
        test, infer = timed(lambda: task.predict(trainer, "test"))
        history = trainer.state.history
        result.update(trainer.summary())
        result["history"] = history
        result["resumed_from_epoch"] = trainer.resumed_from
    result.update(task.validation_summary(result["best_val_score"]))
    result.update(task.test_scores(test))
    if spec.learned:  # a model that never trained is marked, counted and kept out of claims
        verdict = task.collapse(test, history)
        result.update(collapsed=verdict["collapsed"], collapse_reason=verdict["collapse_reason"],
                      collapse=verdict)
    else:  # the non-learned baselines predict one response by design
        result.update(collapsed=False, collapse_reason=None)
    result.update(cost_block(model, len(task.genes), device, mem.peak_mb, task.n_inferred(test),
                             infer))
    ref, source = reference_graph(adata, task.genes, reference_graph_path)
    probe = attention_probe(model, task.probe_inputs(test, ATTENTION_PROBE_CELLS),
                            len(task.genes), ref, source, seed)
    if probe is not None:
        result["attention_edges"] = probe
    task.write_outputs(out, test)
    write_json(out / "metrics.json", result)
    return result
