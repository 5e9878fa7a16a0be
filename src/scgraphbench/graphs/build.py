"""Build a named graph variant for a prepared dataset, on training cells only."""

from __future__ import annotations

from typing import Any

import anndata as ad
import numpy as np
import scipy.sparse as sp

from scgraphbench.errors import ScgbError
from scgraphbench.graphs.coexpr import coexpression_graph


def training_matrix(adata: ad.AnnData) -> np.ndarray:
    """Expression of training cells only (control cells only on the perturbation task,
    as GEARS does), so the graph never sees a test cell."""
    mask = (adata.obs["split"] == "train").to_numpy()
    if "control" in adata.obs:
        mask &= adata.obs["control"].astype(bool).to_numpy()
    if not mask.any():
        raise ScgbError("no training cells to build the graph from", field="split",
                        fix="re-prepare the dataset so the train split is not empty")
    X = adata.X[mask]
    return X.toarray() if sp.issparse(X) else np.asarray(X)


def finish_graph(A: sp.spmatrix, *, self_loops: bool = False, symmetrise: bool = True,
                 max_degree: int | None = None) -> sp.csr_matrix:
    """Binary adjacency with the requested symmetry, self-loops and degree cap."""
    A = sp.csr_matrix(A, dtype=np.float32)
    A.data[:] = 1.0
    if symmetrise:
        A = A.maximum(A.T).tocsr()
    A.setdiag(1.0 if self_loops else 0.0)
    A.eliminate_zeros()
    if max_degree:
        rows = []
        for i in range(A.shape[0]):
            cols = A.indices[A.indptr[i]:A.indptr[i + 1]]
            rows.append(np.sort(cols)[:max_degree])
        A = sp.csr_matrix((np.ones(sum(map(len, rows)), dtype=np.float32),
                           np.concatenate(rows) if rows else [],
                           np.concatenate([[0], np.cumsum([len(r) for r in rows])])), shape=A.shape)
    A.sort_indices()
    return A


def graph_stats(A: sp.csr_matrix, genes: list[str]) -> dict[str, Any]:
    A = sp.csr_matrix(A)
    offdiag = sp.csr_matrix(A - sp.diags(A.diagonal()))
    offdiag.eliminate_zeros()
    deg = np.diff(offdiag.indptr)
    return {"nodes": int(A.shape[0]), "edges": int(offdiag.nnz),
            "mean_degree": float(deg.mean()) if len(deg) else 0.0,
            "median_degree": float(np.median(deg)) if len(deg) else 0.0,
            "max_degree": int(deg.max()) if len(deg) else 0,
            "isolated_genes": int((deg == 0).sum()),
            "density": float(offdiag.nnz / max(A.shape[0] * (A.shape[0] - 1), 1))}


def build_variant(adata: ad.AnnData, variant: str, params: dict[str, Any]) -> sp.csr_matrix:
    if variant == "coexpr":
        A = coexpression_graph(training_matrix(adata), top_h=int(params.get("top_h", 20)),
                               sigma=float(params.get("sigma", 0.4)))
    else:
        raise ScgbError(f"unknown graph variant '{variant}'", field="graphs",
                        fix="use one of: coexpr")
    return finish_graph(A, self_loops=bool(params.get("self_loops", False)),
                        symmetrise=bool(params.get("symmetrise", True)),
                        max_degree=params.get("max_degree"))
