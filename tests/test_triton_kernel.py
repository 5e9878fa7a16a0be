"""The Triton kernel against the dense float64 reference: on a GPU when there is one, else
on CPU tensors through Triton's interpreter (TRITON_INTERPRET=1; slow, so graphs are tiny).
Triton computes in float32: tolerances are float32's."""

from __future__ import annotations

import os
import sys

import pytest
import torch

CUDA = torch.cuda.is_available()
DEVICE = "cuda" if CUDA else "cpu"
if not CUDA:
    # the interpreter must be on before triton is first imported: triton.language's own
    # @jit helpers (tl.sum, tl.max) are decorated at that import
    if "triton" in sys.modules and os.environ.get("TRITON_INTERPRET") != "1":
        pytest.skip("triton was imported before TRITON_INTERPRET=1 could be set",
                    allow_module_level=True)
    os.environ["TRITON_INTERPRET"] = "1"
pytest.importorskip("triton")

from scgraphbench.kernels import graph_attention  # noqa: E402
from scgraphbench.kernels.graph_attention import IMPL_ENV, choose_impl  # noqa: E402
from scgraphbench.kernels.reference import graph_attention_dense  # noqa: E402
from test_kernels import random_graph  # noqa: E402


@pytest.fixture(autouse=True)
def no_impl_override(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv(IMPL_ENV, raising=False)


def inputs(B: int, H: int, n: int, d: int, seed: int = 0):
    """float64 leaves (for the reference) and float32 copies on DEVICE (for Triton)."""
    gen = torch.Generator().manual_seed(seed)
    ref = [torch.randn(B, H, n, d, generator=gen, dtype=torch.float64, requires_grad=True)
           for _ in range(3)]
    ours = [t.detach().float().to(DEVICE).requires_grad_() for t in ref]
    return ref, ours


def compare(out, ref, ours_in, ref_in, atol: float = 2e-5) -> None:
    assert out.device.type == DEVICE and out.dtype == torch.float32
    assert torch.allclose(out.double().cpu(), ref, rtol=0, atol=atol)
    g = torch.randn(ref.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(9))
    got = torch.autograd.grad(out, ours_in, g.float().to(DEVICE))
    want = torch.autograd.grad(ref, ref_in, g)
    for a, b in zip(got, want, strict=True):
        assert torch.allclose(a.double().cpu(), b, rtol=0, atol=atol)


@pytest.mark.parametrize(
    "mode, steps, checkpoint",
    [(None, 1, None), ("ppr", 3, None), ("heat", 4, None), ("ppr", 3, False), ("heat", 2, None)],
)
def test_matches_dense_reference(mode: str | None, steps: int, checkpoint: bool | None) -> None:
    g = random_graph(9, seed=1, cls=True)  # a full CLS row, rows of very different degree
    ref_in, ours_in = inputs(1, 2, g.n, 5)
    out = graph_attention(*ours_in, g.to(DEVICE), diffusion=mode, steps=steps,
                          checkpoint=checkpoint, impl="triton")
    assert out.grad_fn.name().startswith("TritonGraphAttention")
    ref = graph_attention_dense(*ref_in, g, diffusion=mode, steps=steps)
    compare(out, ref, ours_in, ref_in)


def test_packed_views_and_rows_without_edges() -> None:
    import numpy as np
    import scipy.sparse as sp

    from scgraphbench.kernels import CSRGraph

    A = sp.random(7, 7, density=0.4, random_state=2, format="csr")
    A = sp.csr_matrix(A.toarray() * (np.arange(7) != 3)[:, None])  # row 3 has no edges
    g = CSRGraph.from_scipy(A, add_self_loops=False)
    gen = torch.Generator().manual_seed(4)
    base_ref = torch.randn(2, g.n, 3, 2, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    base = base_ref.detach().float().to(DEVICE).requires_grad_()
    out = graph_attention(*base.permute(2, 0, 3, 1, 4), g.to(DEVICE), diffusion="ppr", steps=2,
                          impl="triton")
    assert out.grad_fn.name().startswith("PackedTriton")
    ref = graph_attention_dense(*base_ref.permute(2, 0, 3, 1, 4), g, diffusion="ppr", steps=2)
    compare(out, ref, (base,), (base_ref,))


def test_selection() -> None:
    x = torch.zeros(1, 1, 2, 2, device=DEVICE)
    if CUDA:
        assert choose_impl("auto", x, dropout=False) == "triton"
        assert choose_impl("auto", x, dropout=True) == "torch_sparse"
    else:
        assert choose_impl("auto", x, dropout=False) == "fused"  # CPU tensors: numba
        assert choose_impl("triton", x, dropout=False) == "triton"  # the interpreter


def test_refused_on_cpu_without_interpreter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(ValueError, match="TRITON_INTERPRET"):
        choose_impl("triton", torch.zeros(1, 1, 2, 2), dropout=False)


@pytest.mark.skipif(not CUDA, reason="needs a GPU")
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_on_gpu(dtype: torch.dtype) -> None:
    g = random_graph(40, seed=5, cls=True)
    ref_in, ours_in = inputs(2, 2, g.n, 16)
    half = [t.detach().to(dtype).requires_grad_() for t in ours_in]
    out = graph_attention(*half, g.to(DEVICE), diffusion="heat")
    assert out.dtype == dtype
    ref = graph_attention_dense(*ref_in, g, diffusion="heat")
    assert torch.allclose(out.double().cpu(), ref, atol=3e-2)


@pytest.mark.skipif(not CUDA, reason="needs a GPU")
def test_larger_graph_on_gpu() -> None:
    g = random_graph(300, seed=6, cls=True)
    ref_in, ours_in = inputs(2, 4, g.n, 16)
    out = graph_attention(*ours_in, g.to(DEVICE), diffusion="ppr", steps=6)
    ref = graph_attention_dense(*ref_in, g, diffusion="ppr", steps=6)
    compare(out, ref, ours_in, ref_in, atol=1e-4)
