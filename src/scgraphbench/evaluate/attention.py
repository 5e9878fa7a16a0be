"""Does attention fall on known regulatory edges? (the scTransformer claim, with the random
graph of equal density its referee asked for as the control).

An attention map ``W`` (n x n, row i = query gene i, each row summing to 1) puts a mass
``sum_{(i,j) in G, i != j} W[i, j] / sum_{i != j} W[i, j]`` on the off-diagonal edges of a
graph ``G``. Comparing that mass on a known graph with the mass on a random graph of the same
density says whether attention prefers known edges beyond chance; under uniform attention
both masses equal the graph density.

:func:`attention_maps` reads dense attention maps out of the attention families (the ones
whose token mixers have ``qkv``/``n_heads``, graph-masked ones also ``crow``/``col``) by
recomputing the softmax from each mixer's input, so the models need no special code path.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp
import torch

from scgraphbench.errors import ScgbError
from scgraphbench.graphs.controls import offdiag_binary, random_graph_like


def edge_mass(attention: np.ndarray, graph: sp.spmatrix, symmetric: bool = True) -> float:
    """Share of the off-diagonal attention mass of a dense (n, n) map that lies on ``graph``."""
    W = np.asarray(attention, dtype=np.float64)
    if W.ndim != 2 or W.shape[0] != W.shape[1] or W.shape != graph.shape:
        raise ValueError(
            f"attention map {W.shape} and graph {graph.shape} must be the same square shape"
        )
    W = W.copy()
    np.fill_diagonal(W, 0.0)
    total = W.sum()
    if total <= 0:
        return float("nan")
    G = offdiag_binary(graph, symmetric).tocoo()
    return float(W[G.row, G.col].sum() / total)


def attention_on_known_edges(
    attention: np.ndarray,
    known: sp.spmatrix,
    random: sp.spmatrix | None = None,
    *,
    seed: int = 0,
    symmetric: bool = True,
) -> dict[str, float]:
    """Attention mass on ``known`` edges vs on ``random`` (a same-density random graph when
    None). ``enrichment`` = mass_known / mass_random; about 1 means no preference."""
    if random is None:
        random = random_graph_like(known, seed=seed, symmetric=symmetric)
    n = known.shape[0]
    mk = edge_mass(attention, known, symmetric)
    mr = edge_mass(attention, random, symmetric)
    denom = n * (n - 1)
    return {
        "mass_known": mk,
        "mass_random": mr,
        "enrichment": mk / mr if mr > 0 else float("nan"),
        "density_known": offdiag_binary(known, symmetric).nnz / denom,
        "density_random": offdiag_binary(random, symmetric).nnz / denom,
    }


def _attention_mixers(model: torch.nn.Module) -> list[torch.nn.Module]:
    return [
        m
        for m in model.modules()
        if isinstance(getattr(m, "qkv", None), torch.nn.Linear) and hasattr(m, "n_heads")
    ]


def attention_maps(
    model: torch.nn.Module, inputs: dict[str, torch.Tensor], n_genes: int, chunk: int = 4
) -> np.ndarray | None:
    """Mean gene x gene attention map over cells, heads and layers, or None when the model
    has no attention mixers (GNNs, scikit-learn families).

    For graph-masked mixers the softmax runs over each row's graph neighbours (self-loops
    included), as their kernel does; diffusion on top of it is not part of the map. A CLS
    token, when present, is dropped (rows and columns) and rows are renormalised.
    """
    mixers = _attention_mixers(model)
    if not mixers:
        return None
    captured: list[tuple[torch.nn.Module, torch.Tensor]] = []
    hooks = [
        m.register_forward_pre_hook(lambda mod, args: captured.append((mod, args[0])))
        for m in mixers
    ]
    n_cells = next(iter(inputs.values())).shape[0]
    total = np.zeros((n_genes, n_genes))
    count = 0
    model.eval()
    try:
        with torch.no_grad():
            for start in range(0, n_cells, chunk):
                captured.clear()
                model(**{k: v[start : start + chunk] for k, v in inputs.items()})
                for mod, h in captured:
                    total += _mixer_map(mod, h.float(), n_genes).sum(0)
                    count += h.shape[0]
    finally:
        for hook in hooks:
            hook.remove()
    if count == 0:
        raise ScgbError(
            "no cells to read attention from", field="attention", fix="pass at least one cell"
        )
    return total / count


def _mixer_map(mod: torch.nn.Module, h: torch.Tensor, n_genes: int) -> np.ndarray:
    """(B, L, d) mixer input -> (B, n_genes, n_genes) head-averaged attention."""
    B, L, d = h.shape
    H = mod.n_heads
    qkv = mod.qkv(h).view(B, L, 3, H, d // H).permute(2, 0, 3, 1, 4)
    q, k = qkv[0], qkv[1]
    scores = q @ k.transpose(-1, -2) / math.sqrt(d // H)  # (B, H, L, L)
    holder = mod if hasattr(mod, "crow") else getattr(mod, "graph", None)
    if hasattr(holder, "crow") and hasattr(holder, "col"):
        crow, col = holder.crow.cpu(), holder.col.cpu()
        row = torch.repeat_interleave(torch.arange(len(crow) - 1), crow[1:] - crow[:-1])
        mask = torch.zeros(L, L, dtype=torch.bool)
        mask[row, col] = True
        scores = scores.masked_fill(~mask.to(scores.device), -torch.inf)
    W = torch.softmax(scores, dim=-1).mean(1)  # (B, L, L)
    if L == n_genes + 1:  # CLS token at index 0
        W = W[:, 1:, 1:]
        W = W / W.sum(-1, keepdim=True).clamp_min(1e-12)
    return W.cpu().double().numpy()
