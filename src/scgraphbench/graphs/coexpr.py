"""Co-expression graph (GenoHoption ``utils.co_expression``, GEARS
``get_coexpression_network_from_train``): for each gene keep the top H+1 genes by
absolute Pearson correlation (itself included), then drop edges with |r| <= sigma."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def pearson_abs(X: np.ndarray) -> np.ndarray:
    """|Pearson r| between the columns (genes) of a cells x genes matrix; constant genes get 0."""
    X = np.asarray(X, dtype=np.float64)
    Xc = X - X.mean(axis=0, keepdims=True)
    norm = np.sqrt((Xc * Xc).sum(axis=0))
    norm[norm == 0] = np.inf
    Z = Xc / norm
    return np.abs(Z.T @ Z)


def coexpression_graph(X_train: np.ndarray, top_h: int = 20, sigma: float = 0.4) -> sp.csr_matrix:
    """Directed edges gene i -> its top-H co-expressed genes j (row i lists i's neighbours),
    weighted by |r| (used to rank edges under a degree cap).

    Self-edges are part of the top H+1, as in the references; pass the result
    through :func:`scgraphbench.graphs.build.finish_graph` to set self-loops and symmetry.
    """
    corr = pearson_abs(X_train)
    n = corr.shape[0]
    k = min(top_h + 1, n)
    # a stable sort breaks ties towards the lower gene index, the same way every run
    top = np.argsort(-corr, axis=1, kind="stable")[:, :k]
    rows = np.repeat(np.arange(n), k)
    cols = top.ravel()
    vals = corr[rows, cols]
    keep = vals > sigma
    A = sp.csr_matrix((vals[keep].astype(np.float32), (rows[keep], cols[keep])), shape=(n, n))
    A.sort_indices()
    return A
