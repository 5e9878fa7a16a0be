"""Injecting graph attention into a backbone: its settings (mode, diffusion parameters) and
the gene graph it runs on (the matched genes, the backbone's global tokens first). The
attention core is :func:`scgraphbench.kernels.injected.attention_core`."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from scgraphbench.errors import ScgbError
from scgraphbench.kernels import CSRGraph, prepare
from scgraphbench.kernels.injected import ATTENTION_MODES
from scgraphbench.models.token_graph import GraphBuffers, with_global_nodes


def attention_settings(
    mode: str, alpha: float, t: float, steps: int, family: str
) -> dict[str, Any]:
    """The core's diffusion parameters ({alpha, t, steps}) for attention ``mode``, checked:
    a known mode, alpha in [0, 1], t > 0, steps >= 0 (PPR with 0 steps is V itself) or >= 1
    (heat, whose series needs a term)."""
    if mode not in ATTENTION_MODES:
        raise ScgbError(
            f"{family}: unknown attention mode '{mode}'",
            field="params.attention",
            fix=f"use one of: {', '.join(ATTENTION_MODES)}",
        )
    least = 1 if mode == "diffusion_heat" else 0
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < least:
        raise ScgbError(
            f"{family}: steps={steps!r} is not a valid number of diffusion steps",
            field="params.steps",
            fix=f"use an integer >= {least}",
        )
    if not 0.0 <= float(alpha) <= 1.0:
        raise ScgbError(
            f"{family}: alpha={alpha} is outside [0, 1]",
            field="params.alpha",
            fix="GenoHoption uses alpha = 0.25",
        )
    if float(t) <= 0:
        raise ScgbError(
            f"{family}: t={t} must be positive", field="params.t", fix="GenoHoption uses t = 5"
        )
    return dict(alpha=float(alpha), t=float(t), steps=int(steps))


def backbone_graph(
    graph: sp.spmatrix | None, gene_idx: np.ndarray, n_global: int, mode: str, family: str
) -> GraphBuffers | None:
    """The dataset graph restricted to the matched genes (``gene_idx``, in token-id order),
    with ``n_global`` global nodes first and self-loops, as buffers of the model; None for
    dense attention."""
    if mode == "dense":
        return None
    if graph is None:
        raise ScgbError(
            f"{family} with attention '{mode}' needs a gene graph",
            field="graphs",
            fix="list a graph variant in the model's graphs (e.g. graphs: [coexpr]), "
            "or use attention: dense",
        )
    A = sp.csr_matrix(graph)[gene_idx][:, gene_idx]
    prepare("cuda" if torch.cuda.is_available() else "cpu")  # not inside the run's costs
    return GraphBuffers(CSRGraph.from_scipy(with_global_nodes(A, n_global), add_self_loops=True))
