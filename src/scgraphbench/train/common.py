"""Pieces every run shares: the checkpoint fingerprint, graph loading, timed inference, the cost block of metrics.json and the interpretability probe."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable
from typing import Any

import anndata as ad
import numpy as np
import scipy.sparse as sp
import torch

from scgraphbench.evaluate.attention import attention_on_known_edges
from scgraphbench.graphs.io import align_graph, load_graph
from scgraphbench.models.contract import FamilyModule
from scgraphbench.train.cost import attention_flops, count_parameters, environment

log = logging.getLogger(__name__)

ATTENTION_PROBE_CELLS = 32


def _file_identity(path: str | None) -> list[Any] | None:
    if not path:
        return None
    st = os.stat(path)
    return [os.path.abspath(path), st.st_size, st.st_mtime_ns]


def fingerprint(
    *,
    task: str,
    prepared: str,
    graph: str | None,
    family: str,
    params: dict[str, Any],
    train: dict[str, Any],
    seed: int,
) -> str:
    """Identity of a run's inputs and settings; a checkpoint only resumes the same run.
    Files are identified by path, size and mtime (hashing a large h5ad would cost minutes)."""
    blob = json.dumps(
        {
            "task": task,
            "prepared": _file_identity(prepared),
            "graph": _file_identity(graph),
            "family": family,
            "params": params,
            "train": train,
            "seed": seed,
        },
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def load_aligned_graph(graph_path: str | None, genes: list[str]) -> sp.csr_matrix | None:
    if not graph_path:
        return None
    A, graph_genes = load_graph(graph_path)
    return align_graph(A, graph_genes, genes, graph_path)


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def cost_block(
    model: Any, n_genes: int, device: torch.device, peak_mb: float, n_inferred: int, infer_s: float
) -> dict[str, Any]:
    return {
        "n_parameters": count_parameters(model),
        "peak_memory_mb": float(peak_mb),
        "inference_cells_per_s": n_inferred / max(infer_s, 1e-9),
        "inference_time_s": float(infer_s),
        "attention_flops_per_cell": attention_flops(model, n_genes),
        "environment": environment(device),
    }


def reference_graph(
    adata: ad.AnnData, genes: list[str], graph_path: str | None
) -> tuple[sp.csr_matrix | None, str | None]:
    """The graph attention is checked against: a given graph file, else the ground-truth GRN
    a synthetic dataset carries in ``uns['grn']``; (None, None) when there is neither."""
    if graph_path:
        return load_aligned_graph(graph_path, genes), os.path.basename(graph_path)
    if "grn" in adata.uns:
        from scgraphbench.data.synthetic import grn_adjacency

        return grn_adjacency(adata, genes), "uns:grn"
    return None, None


def attention_probe(
    model: Any,
    inputs: dict[str, torch.Tensor],
    n_genes: int,
    reference: sp.csr_matrix | None,
    source: str | None,
    seed: int,
) -> dict[str, Any] | None:
    """Attention mass on the reference graph's edges vs a same-density random graph, for
    attention families; None when not applicable (no graph, no attention, no edges)."""
    if reference is None or not isinstance(model, FamilyModule) or reference.nnz == 0:
        return None
    device = next(model.parameters()).device
    small = {k: v[:ATTENTION_PROBE_CELLS].to(device) for k, v in inputs.items()}
    W = model.attention_maps(small, n_genes)
    if W is None:
        return None
    out: dict[str, Any] = attention_on_known_edges(W, reference, seed=seed)
    out.update({"reference": source, "cells": int(next(iter(small.values())).shape[0])})
    return out


def as_numpy(x: np.ndarray | torch.Tensor) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
