"""Sparsity-matched controls: a random graph with exactly the base graph's degree sequence,
so a model's gain from a graph prior can be told apart from a gain from sparsity alone."""

from __future__ import annotations

import random

import igraph as ig
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
