"""Sparsity-matched controls: a random graph with exactly the base graph's degree sequence,
so a model's gain from a graph prior can be told apart from a gain from sparsity alone."""

from __future__ import annotations

import random

import numpy as np
import scipy.sparse as sp


def is_symmetric(A: sp.spmatrix) -> bool:
    A = sp.csr_matrix(A)
    return (A != A.T).nnz == 0


def degree_preserving_random(base: sp.spmatrix, seed: int = 0) -> sp.csr_matrix:
    """A simple random graph (no self-loops, no multi-edges) with ``base``'s degrees.

    Undirected (symmetric) bases keep every gene's degree; directed bases keep every gene's
    in- and out-degree. Sampled by igraph's degree-preserving edge-switching MCMC
    (``Degree_Sequence(method='edge_switching_simple')``), seeded through a private
    ``random.Random`` so the same seed gives the same graph and global state is untouched.
    Self-loops of the base are ignored (the caller adds them back if wanted).
    """
    import igraph as ig  # imported here: every run imports this module for the probe

    A = sp.csr_matrix(base, dtype=np.float32)
    A.setdiag(0)
    A.eliminate_zeros()
    A.data[:] = 1.0
    n = A.shape[0]
    symmetric = is_symmetric(A)
    out_deg = np.diff(A.indptr).astype(int).tolist()
    ig.set_random_number_generator(random.Random(seed))
    try:
        if symmetric:
            g = ig.Graph.Degree_Sequence(out_deg, method="edge_switching_simple")
        else:
            in_deg = np.asarray(A.sum(axis=0)).ravel().astype(int).tolist()
            g = ig.Graph.Degree_Sequence(out_deg, in_deg, method="edge_switching_simple")
    finally:
        ig.set_random_number_generator(random)
    edges = np.asarray(g.get_edgelist(), dtype=np.int64).reshape(-1, 2)
    rows, cols = edges[:, 0], edges[:, 1]
    if symmetric:
        rows, cols = np.concatenate([rows, cols]), np.concatenate([cols, rows])
    R = sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(n, n))
    R.sort_indices()
    return R


def uniform_random_graph(n: int, n_edges: int, *, seed: int = 0, symmetric: bool = True
                         ) -> sp.csr_matrix:
    """A uniformly random simple graph on ``n`` genes with exactly ``n_edges`` edges
    (undirected pairs when ``symmetric``, stored both ways), no self-loops: the control of
    matched density, and the synthetic graph of cost measurements. Pairs are drawn by
    rejection, so memory stays O(n_edges) at any n."""
    pairs = n * (n - 1) // (2 if symmetric else 1)
    if not 0 <= n_edges <= pairs:
        raise ValueError(f"{n_edges} edges do not fit a simple graph on {n} nodes")
    rng = np.random.default_rng(seed)
    keys = np.empty(0, dtype=np.int64)
    while len(keys) < n_edges:
        need = n_edges - len(keys)
        i = rng.integers(0, n, size=2 * need + 16)
        j = rng.integers(0, n, size=2 * need + 16)
        ok = i != j
        i, j = i[ok], j[ok]
        if symmetric:
            i, j = np.minimum(i, j), np.maximum(i, j)
        keys = np.unique(np.concatenate([keys, i * n + j]))
        if len(keys) > n_edges:  # keep a random subset, not the smallest keys
            keys = np.sort(rng.choice(keys, size=n_edges, replace=False))
    rows, cols = keys // n, keys % n
    if symmetric:
        rows, cols = np.concatenate([rows, cols]), np.concatenate([cols, rows])
    return sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(n, n))


def offdiag_binary(A: sp.spmatrix, symmetric: bool) -> sp.csr_matrix:
    """Binary off-diagonal pattern of ``A`` (symmetrised when ``symmetric``)."""
    A = sp.csr_matrix(A, dtype=np.float32, copy=True)
    A.data[:] = 1.0
    if symmetric:
        A = A.maximum(A.T).tocsr()
    A.setdiag(0.0)
    A.eliminate_zeros()
    return A


def random_graph_like(A: sp.spmatrix, seed: int = 0, symmetric: bool = True) -> sp.csr_matrix:
    """A uniformly random graph on the same genes with as many off-diagonal edges as ``A``
    (counted undirected when ``symmetric``): the matched-density control."""
    A = offdiag_binary(A, symmetric)
    n_edges = int(sp.triu(A, k=1).nnz) if symmetric else int(A.nnz)
    return uniform_random_graph(A.shape[0], n_edges, seed=seed, symmetric=symmetric)
