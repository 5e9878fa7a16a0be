"""Graph files: CSR adjacency (.npz) with the gene order and a stats sidecar."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from scgraphbench.errors import ScgbError
from scgraphbench.io import atomic_path


def save_graph(
    path: str | Path, adjacency: sp.spmatrix, genes: list[str], meta: dict[str, Any] | None = None,
    directed: sp.spmatrix | None = None,
) -> None:
    """Save the adjacency and gene order into one .npz (keys of scipy's save_npz + ``genes``),
    plus ``meta`` (variant, kind, self_loops, symmetrise, global_node) as a JSON string so
    that models can read how the graph was built (:func:`load_graph_meta`).

    ``directed``: for a regulatory graph that was symmetrised, the regulator -> target edges
    it came from (row = target), kept so that its random control can keep every gene's
    number of regulators and of targets (:func:`load_directed`)."""
    A = sp.csr_matrix(adjacency, dtype=np.float32)
    if A.shape != (len(genes), len(genes)):
        raise ValueError(f"adjacency {A.shape} does not match {len(genes)} genes")
    arrays = {}
    if directed is not None:
        D = sp.csr_matrix(directed, dtype=np.float32)
        if D.shape != A.shape:
            raise ValueError(f"directed adjacency {D.shape} does not match {A.shape}")
        arrays = {"directed_indices": D.indices, "directed_indptr": D.indptr}
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez_compressed(
            tmp,
            data=A.data,
            indices=A.indices,
            indptr=A.indptr,
            shape=np.array(A.shape),
            genes=np.array(genes, dtype=str),
            meta=np.array(json.dumps(meta or {}, sort_keys=True)),
            **arrays,
        )


def _require(path: str | Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise ScgbError(
            "graph file not found",
            path=str(path),
            fix="run the build_graph rule (or `scgraphbench build-graph`) first",
        )
    return path


def load_graph(path: str | Path) -> tuple[sp.csr_matrix, list[str]]:
    with np.load(_require(path), allow_pickle=False) as f:
        A = sp.csr_matrix((f["data"], f["indices"], f["indptr"]), shape=tuple(f["shape"]))
        genes = f["genes"].tolist()
    return A, genes


def load_directed(path: str | Path) -> sp.csr_matrix | None:
    """The regulator -> target edges a symmetrised regulatory graph was built from (binary,
    row = target, in the file's gene order), None when the file keeps none."""
    with np.load(_require(path), allow_pickle=False) as f:
        if "directed_indptr" not in f.files:
            return None
        indices, indptr = f["directed_indices"], f["directed_indptr"]
        return sp.csr_matrix((np.ones(len(indices), dtype=np.float32), indices, indptr),
                             shape=tuple(f["shape"]))


def load_graph_meta(path: str | Path) -> dict[str, Any]:
    """How the graph was built: ``variant``, ``kind``, ``self_loops``, ``symmetrise``,
    ``global_node`` (add a CLS node linked to every gene), ``max_degree``. Empty for files
    written before meta existed."""
    with np.load(_require(path), allow_pickle=False) as f:
        return json.loads(str(f["meta"])) if "meta" in f.files else {}


def align_graph(
    A: sp.csr_matrix, graph_genes: list[str], genes: list[str], path: str
) -> sp.csr_matrix:
    """Reorder a graph to a dataset's gene order; genes must match exactly."""
    if list(graph_genes) == list(genes):
        return A
    pos = {g: i for i, g in enumerate(graph_genes)}
    missing = [g for g in genes if g not in pos]
    if missing:
        raise ScgbError(
            f"{len(missing)} dataset genes are not in the graph, e.g. {missing[:5]}",
            path=path,
            field="genes",
            fix="rebuild the graph from the same prepared dataset",
        )
    perm = np.array([pos[g] for g in genes])
    return A[perm][:, perm].tocsr()
