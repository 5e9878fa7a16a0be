"""The token graph: global nodes prepended to a gene graph, and the module that keeps a
CSRGraph with the model (buffers that move with ``.to()``, never in a checkpoint)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from scgraphbench.kernels import CSRGraph
from scgraphbench.models.token_graph import GraphBuffers, with_global_nodes


def _graph(n: int = 6, seed: int = 0) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    A = (rng.random((n, n)) < 0.3).astype(np.float32)
    np.fill_diagonal(A, 0)
    return sp.csr_matrix(A)


def test_with_global_nodes_links_globals_to_every_node() -> None:
    A = _graph()
    assert (with_global_nodes(A, 0) != A).nnz == 0
    one = with_global_nodes(A, 1).toarray()
    assert one.shape == (7, 7) and one[0, 1:].all() and one[1:, 0].all() and one[0, 0] == 0
    np.testing.assert_array_equal(one[1:, 1:], A.toarray())
    two = with_global_nodes(A, 2, self_loops=True).toarray()
    assert two[:2].all() and two[:, :2].all()  # CLS, EOS: each other and themselves too
    np.testing.assert_array_equal(two[2:, 2:], A.toarray())
    assert with_global_nodes(A, 2).toarray()[[0, 1], [0, 1]].sum() == 0
    assert with_global_nodes(A, 1).dtype == np.float32


def test_graph_buffers_move_with_the_module_and_stay_out_of_checkpoints() -> None:
    g = CSRGraph.from_scipy(with_global_nodes(_graph(), 1), add_self_loops=True)
    model = nn.Module()
    model.first, model.second = GraphBuffers(g), GraphBuffers(g)
    assert model.state_dict() == {}  # rebuilt from the run's graph file, never saved
    assert {name for name, _ in model.named_buffers()} >= {"first.crow", "first.col"}
    assert model.first.graph is model.second.graph  # one shared graph per pattern and device
    assert torch.equal(model.first.graph.col, g.col) and model.first.graph.n == g.n
    model.to(torch.float64)  # a dtype cast leaves the index buffers alone
    assert model.first.graph.col.dtype == torch.int64
    model.to("meta")
    assert model.first.graph.device.type == "meta"  # rebuilt on the buffers' new device
    assert model.first.graph is model.second.graph
