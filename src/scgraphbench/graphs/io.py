"""Graph files: CSR adjacency (.npz) with the gene order and a stats sidecar."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.sparse as sp

from scgraphbench.errors import ScgbError
from scgraphbench.io import atomic_path


def save_graph(path: str | Path, adjacency: sp.spmatrix, genes: list[str]) -> None:
    """Save the adjacency and gene order into one .npz (keys of scipy's save_npz + ``genes``)."""
    A = sp.csr_matrix(adjacency, dtype=np.float32)
    if A.shape != (len(genes), len(genes)):
        raise ValueError(f"adjacency {A.shape} does not match {len(genes)} genes")
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez_compressed(tmp, data=A.data, indices=A.indices, indptr=A.indptr,
                            shape=np.array(A.shape), genes=np.array(genes, dtype=str))


def load_graph(path: str | Path) -> tuple[sp.csr_matrix, list[str]]:
    path = Path(path)
    if not path.exists():
        raise ScgbError("graph file not found", path=str(path),
                        fix="run the build_graph rule (or `scgraphbench build-graph`) first")
    with np.load(path, allow_pickle=False) as f:
        A = sp.csr_matrix((f["data"], f["indices"], f["indptr"]), shape=tuple(f["shape"]))
        genes = f["genes"].tolist()
    return A, genes


def align_graph(A: sp.csr_matrix, graph_genes: list[str], genes: list[str], path: str) -> sp.csr_matrix:
    """Reorder a graph to a dataset's gene order; genes must match exactly."""
    if list(graph_genes) == list(genes):
        return A
    pos = {g: i for i, g in enumerate(graph_genes)}
    missing = [g for g in genes if g not in pos]
    if missing:
        raise ScgbError(f"{len(missing)} dataset genes are not in the graph, e.g. {missing[:5]}",
                        path=path, field="genes",
                        fix="rebuild the graph from the same prepared dataset")
    perm = np.array([pos[g] for g in genes])
    return A[perm][:, perm].tocsr()
