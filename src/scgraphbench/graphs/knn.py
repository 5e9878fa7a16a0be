"""Cosine kNN graph over gene expression profiles (scrna_longformer's attention mask):
each gene is linked to the k genes whose profiles across training cells are most similar."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from sklearn.neighbors import kneighbors_graph

from scgraphbench.errors import ScgbError


def knn_graph(X_train: np.ndarray, k: int = 16) -> sp.csr_matrix:
    """Row i holds gene i's k nearest genes by cosine similarity of their columns in
    ``X_train`` (cells x genes), weighted by that similarity (for degree caps); itself
    excluded. Symmetrise and add self-loops afterwards (``finish_graph``)."""
    X = np.asarray(X_train, dtype=np.float64)
    n = X.shape[1]
    if not 1 <= k < n:
        raise ScgbError(
            f"k={k} neighbours is impossible with {n} genes",
            field="k",
            fix=f"choose k between 1 and {n - 1}",
        )
    D = kneighbors_graph(X.T, n_neighbors=k, mode="distance", metric="cosine", include_self=False)
    D = sp.csr_matrix(D)
    # similarity in [0, 2] shifted to stay > 0 so that no chosen edge vanishes as a zero
    D.data = 2.0 - D.data
    return D
