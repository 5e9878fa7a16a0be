"""The graph a model attends or passes messages over: the gene graph with the model's global
tokens (CLS, EOS) prepended, and the module that keeps it on the model's device.

Every family that puts a gene graph under its tokens builds it with
:func:`with_global_nodes` and holds the kernel's :class:`~scgraphbench.kernels.CSRGraph` in a
:class:`GraphBuffers`, so the graph moves with ``model.to(device)`` like any other tensor.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from scgraphbench.kernels import CSRGraph


def with_global_nodes(A: sp.spmatrix, n_global: int, *, self_loops: bool = False) -> sp.csr_matrix:
    """``A`` (n, n) with ``n_global`` nodes prepended, each linked to and from every node
    (the other global nodes included): GenoHoption's global edges, on in their runs, and
    Longformer's global CLS token. ``self_loops`` also links each global node to itself, for
    patterns that keep their diagonal. Returns (n_global + n, n_global + n) float32 CSR."""
    A = sp.csr_matrix(A, dtype=np.float32)
    if n_global == 0:
        return A
    n = A.shape[0]
    corner = np.ones((n_global, n_global), dtype=np.float32)
    if not self_loops:
        np.fill_diagonal(corner, 0.0)
    ones = np.ones((n_global, n), dtype=np.float32)
    full = sp.bmat([[sp.csr_matrix(corner), sp.csr_matrix(ones)], [sp.csr_matrix(ones.T), A]])
    full = sp.csr_matrix(full, dtype=np.float32)
    full.eliminate_zeros()
    return full


class GraphBuffers(nn.Module):
    """A :class:`CSRGraph` kept as non-persistent buffers: ``.to(device)`` moves it with the
    model, and the graph, rebuilt from the run's graph file, never enters a checkpoint.

    :attr:`graph` is the CSRGraph on the buffers' device; layers on the same pattern share
    one instance per device (it caches the batched index arrays), rebuilt after a move.
    """

    def __init__(self, graph: CSRGraph) -> None:
        super().__init__()
        self._tensor_fields: list[str] = []
        self._static: dict[str, object] = {}
        for f in dataclasses.fields(graph):
            if not f.init or f.name.startswith("_"):
                continue  # caches, rebuilt on the new device
            value = getattr(graph, f.name)
            if isinstance(value, torch.Tensor):
                self.register_buffer(f.name, value, persistent=False)
                self._tensor_fields.append(f.name)
            else:
                self._static[f.name] = value
        self.key = graph.fingerprint()
        self._graph: CSRGraph | None = None

    @property
    def graph(self) -> CSRGraph:
        device = getattr(self, self._tensor_fields[0]).device
        if self._graph is None or self._graph.device != device:
            tensors = {name: getattr(self, name) for name in self._tensor_fields}
            self._graph = CSRGraph(**self._static, **tensors).shared(self.key)
        return self._graph
