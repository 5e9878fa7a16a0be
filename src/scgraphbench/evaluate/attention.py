"""Does attention fall on known regulatory edges? (the scTransformer claim, with the random
graph of equal density its referee asked for as the control).

An attention map ``W`` (n x n, row i = query gene i, each row summing to 1) puts a mass
``sum_{(i,j) in G, i != j} W[i, j] / sum_{i != j} W[i, j]`` on the off-diagonal edges of a
graph ``G``. Comparing that mass on a known graph with the mass on a random graph of the same
density says whether attention prefers known edges beyond chance; under uniform attention
both masses equal the graph density.

The maps themselves come from the families (:meth:`FamilyModule.attention_maps`).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

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
