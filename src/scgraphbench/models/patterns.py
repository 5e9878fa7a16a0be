"""Sparse attention patterns over a gene ordering, as CSR graphs for the sparse kernel.

Longformer (sliding window + global tokens), BigBird (window + global + random) and Diffuser
(BigBird's pattern + attention diffusion) are attention restricted to a fixed sparse pattern;
built as a graph, they run on the same CSR kernel as the gene-graph families, so their cost
is comparable edge for edge. Hand-written: the libraries that ship these patterns (HF
transformers' Longformer/BigBird) implement them as blocked dense kernels for token
sequences, not as graphs over a gene ordering.

Conventions: row i of a pattern lists the genes that gene i attends to. Positions come from
a gene ordering ``order`` (position -> gene index). With a CLS token, the CLS row and column
are prepended and full (the CLS token is global, as Longformer's classification token).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import reverse_cuthill_mckee

from scgraphbench.errors import ScgbError
from scgraphbench.models.token_graph import with_global_nodes

ORDERS = ("dataset", "random", "graph")


def mean_degree(graph: sp.spmatrix) -> float:
    """Mean number of off-diagonal neighbours per gene of a binary gene graph."""
    A = sp.csr_matrix(graph, dtype=np.float32, copy=True)
    A.setdiag(0.0)
    A.eliminate_zeros()
    return A.nnz / max(A.shape[0], 1)


def resolve_window(family: str, window: int | str, graph: sp.spmatrix | None) -> int:
    """``window`` as an int; ``"auto"`` = the gene graph's mean degree (GenoHoption's choice
    for BigBird/Diffuser, so the pattern matches the graph's density)."""
    if window == "auto":
        if graph is None:
            raise ScgbError(
                f"{family}: window 'auto' takes the gene graph's mean degree, and no "
                "graph was given",
                field=f"models.{family}.params.window",
                fix=f"list a graph under models.{family}.graphs, or set window to an integer",
            )
        return max(2, int(round(mean_degree(graph))))
    if isinstance(window, bool) or not isinstance(window, int) or window < 0:
        raise ScgbError(
            f"{family}: window must be a non-negative integer or 'auto', got {window!r}",
            field=f"models.{family}.params.window",
            fix="set window to an integer such as 16, or 'auto'",
        )
    return window


def gene_order(family: str, n: int, order: str, graph: sp.spmatrix | None, seed: int) -> np.ndarray:
    """Position -> gene index. ``dataset``: the prepared dataset's gene order; ``random``: a
    seeded permutation; ``graph``: reverse Cuthill-McKee on the symmetrised gene graph, which
    puts graph neighbours close together so that a window covers them."""
    if order == "dataset":
        return np.arange(n)
    if order == "random":
        return np.random.default_rng(seed).permutation(n)
    if order == "graph":
        if graph is None:
            raise ScgbError(
                f"{family}: order 'graph' needs a gene graph and none was given",
                field=f"models.{family}.params.order",
                fix=f"list a graph under models.{family}.graphs, or use order "
                "'dataset' or 'random'",
            )
        A = sp.csr_matrix(graph, dtype=np.float32)
        A = (A + A.T).tocsr()
        return np.asarray(reverse_cuthill_mckee(A, symmetric_mode=True), dtype=np.int64)
    raise ScgbError(
        f"{family}: order must be one of {list(ORDERS)}, got {order!r}",
        field=f"models.{family}.params.order",
        fix="use dataset, random or graph",
    )


def window_pattern(order: np.ndarray, window: int) -> sp.csr_matrix:
    """Gene a attends to gene b when their positions differ by at most ``window // 2``
    (Longformer's sliding window of ``window`` neighbours, half on each side; diagonal kept)."""
    n = len(order)
    half = window // 2
    offsets = np.arange(-half, half + 1)
    pos_a = np.repeat(np.arange(n), len(offsets))
    pos_b = pos_a + np.tile(offsets, n)
    keep = (pos_b >= 0) & (pos_b < n)
    rows, cols = order[pos_a[keep]], order[pos_b[keep]]
    return sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(n, n))


def global_pattern(n: int, global_genes: np.ndarray) -> sp.csr_matrix:
    """Global genes attend to every gene and every gene attends to them."""
    g = np.asarray(global_genes, dtype=np.int64)
    rows = np.concatenate([np.repeat(g, n), np.tile(np.arange(n), len(g))])
    cols = np.concatenate([np.tile(np.arange(n), len(g)), np.repeat(g, n)])
    A = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(n, n))
    A.data[:] = 1.0
    return A


def random_pattern(
    base: sp.csr_matrix,
    n_random: int,
    skip_rows: np.ndarray,
    rng: np.random.Generator,
    family: str = "bigbird",
) -> sp.csr_matrix:
    """BigBird's random attention: every row not in ``skip_rows`` gets exactly ``n_random``
    extra keys drawn uniformly from the genes it does not already attend to in ``base``."""
    n = base.shape[0]
    base = sp.csr_matrix(base)
    base.sum_duplicates()
    skip = set(np.asarray(skip_rows).tolist())
    rows, cols = [], []
    for i in range(n):
        if i in skip or n_random == 0:
            continue
        taken = np.zeros(n, dtype=bool)
        taken[base.indices[base.indptr[i] : base.indptr[i + 1]]] = True
        taken[i] = True
        free = np.flatnonzero(~taken)
        if len(free) < n_random:
            raise ScgbError(
                f"{family}: n_random={n_random} but gene {i} has only {len(free)} "
                "genes outside its window and the global genes",
                field=f"models.{family}.params.n_random",
                fix=f"set n_random to at most {len(free)}, or shrink the window",
            )
        rows.append(np.full(n_random, i))
        cols.append(rng.choice(free, size=n_random, replace=False))
    if not rows:
        return sp.csr_matrix((n, n), dtype=np.float32)
    r, c = np.concatenate(rows), np.concatenate(cols)
    return sp.csr_matrix((np.ones(len(r), np.float32), (r, c)), shape=(n, n))


def binary(A: sp.spmatrix) -> sp.csr_matrix:
    A = sp.csr_matrix(A, dtype=np.float32)
    A.sum_duplicates()
    A.data[:] = 1.0
    A.sort_indices()
    return A


def sparse_pattern(
    family: str,
    n: int,
    *,
    window: int,
    n_global: int,
    n_random: int,
    order: np.ndarray,
    seed: int,
    use_cls: bool,
) -> sp.csr_matrix:
    """Window + global (+ random) pattern over ``n`` genes, (n [+1], n [+1]) binary CSR.

    Global genes are the first ``n_global`` genes of the ordering (BigBird-ITC makes existing
    tokens global); random keys are drawn with ``numpy.random.default_rng(seed)``.
    """
    if not 0 <= n_global <= n:
        raise ScgbError(
            f"{family}: n_global must be in [0, {n}], got {n_global}",
            field=f"models.{family}.params.n_global",
            fix=f"set n_global <= {n}",
        )
    base = window_pattern(order, window)
    global_genes = order[:n_global]
    if n_global:
        base = base + global_pattern(n, global_genes)
    base = binary(base)
    if n_random:
        rng = np.random.default_rng(seed)
        base = binary(base + random_pattern(base, n_random, global_genes, rng, family))
    return with_global_nodes(base, int(use_cls), self_loops=True)
