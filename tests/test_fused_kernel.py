"""The fused CPU kernel (numba) beyond the shared exactness tests of test_kernels.py: the
strided layouts a fused QKV projection gives, head sizes off the SIMD width, threads,
dtypes, the implementation choice, and models giving the reference kernel's outputs."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from scgraphbench.kernels import CSRGraph, graph_attention
from scgraphbench.kernels.graph_attention import (
    IMPL_ENV,
    choose_impl,
    prepare,
)
from scgraphbench.kernels.reference import graph_attention_dense
from test_kernels import grads, qkv, random_graph

MODES = [None, "ppr", "heat"]


def fused_qkv(B: int, H: int, n: int, d: int, seed: int = 0):
    """q, k, v as the strided (B, H, n, d) views of one (B, n, 3, H, d) projection output."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(B, n, 3, H, d, generator=gen, dtype=torch.float64, requires_grad=True)
    q, k, v = x.permute(2, 0, 3, 1, 4)
    return x, (q, k, v)


@pytest.mark.parametrize("d", [1, 3, 8, 9, 17, 24])
@pytest.mark.parametrize("mode", MODES)
def test_strided_views_and_head_sizes_match_dense(mode: str | None, d: int) -> None:
    g = random_graph(21, seed=d, cls=True)  # a CLS row and column of full degree
    x, (q, k, v) = fused_qkv(2, 3, g.n, d)
    assert not q.is_contiguous()
    out = graph_attention(q, k, v, g, diffusion=mode, steps=4, impl="fused")
    ref = graph_attention_dense(q, k, v, g, diffusion=mode, steps=4)
    assert torch.allclose(out, ref, rtol=0, atol=1e-9)
    # the output's memory is (B, n, H, d): merging the heads afterwards is a view
    assert out.transpose(1, 2).is_contiguous()
    (gx,) = grads(out, (x,))
    (gx_ref,) = grads(ref, (x,))
    assert torch.allclose(gx, gx_ref, rtol=0, atol=1e-9)


def test_packed_views_share_one_gradient_buffer() -> None:
    from scgraphbench.kernels._autograd import packed_views as _packed

    g = random_graph(10, seed=2, cls=True)
    gen = torch.Generator().manual_seed(1)
    # four slots, three used (no exact cover: zero-filled, slot 3 keeps a zero gradient);
    # q and v the same view (their gradients add up)
    base = torch.randn(2, g.n, 4, 2, 5, generator=gen, dtype=torch.float64, requires_grad=True)
    slots = base.permute(2, 0, 3, 1, 4)
    q, k, v = slots[0], slots[1], slots[0]
    assert _packed(q, k, v)[2] is False
    out = graph_attention(q, k, v, g, diffusion="heat", steps=4, impl="fused")
    assert out.grad_fn.name().startswith("PackedFused")
    ref = graph_attention_dense(q, k, v, g, diffusion="heat", steps=4)
    assert torch.allclose(out, ref, rtol=0, atol=1e-9)
    (got,) = grads(out, (base,))
    (want,) = grads(ref, (base,))
    assert torch.allclose(got, want, rtol=0, atol=1e-9) and not got[:, :, 3].any()
    # views that partly overlap are left to autograd (separate gradients)
    flat = torch.randn(1, 1, g.n, 12, dtype=torch.float64, requires_grad=True)
    assert _packed(flat[..., 0:8], flat[..., 4:12], flat[..., 2:10]) is None
    assert _packed(flat[..., 0:4], flat[..., 4:8], flat[..., 8:12])[2] is True
    half = flat[..., 0:8]
    out = graph_attention(half, flat[..., 4:12], half, g, impl="fused")
    assert not out.grad_fn.name().startswith("PackedFused")
    ref = graph_attention_dense(half, flat[..., 4:12], half, g)
    (got,), (want,) = grads(out, (flat,)), grads(ref, (flat,))
    assert torch.allclose(got, want, rtol=0, atol=1e-9)


@pytest.mark.parametrize("mode", MODES)
def test_gradcheck_strided_odd_head_size(mode: str | None) -> None:
    g = random_graph(9, seed=3, cls=True)
    x, _ = fused_qkv(2, 2, g.n, 9)

    def fn(t):
        q, k, v = t.permute(2, 0, 3, 1, 4)
        return graph_attention(q, k, v, g, diffusion=mode, steps=3, impl="fused")

    assert torch.autograd.gradcheck(fn, (x,), fast_mode=True)


def test_non_contiguous_last_dimension_and_grad_out() -> None:
    g = random_graph(11, seed=4)
    q, k, v = (t.detach().transpose(-1, -2).contiguous().transpose(-1, -2).requires_grad_()
               for t in qkv(2, 2, g.n, 5))  # d has stride n: copied, then read in place
    assert q.stride(-1) != 1
    out = graph_attention(q, k, v, g, diffusion="ppr", impl="fused")
    ref = graph_attention_dense(q, k, v, g, diffusion="ppr")
    assert torch.allclose(out, ref, rtol=0, atol=1e-9)
    B, H, n, d = out.shape
    g_out = torch.randn(B, H, d, n, dtype=out.dtype).transpose(2, 3)  # a strided dOut
    fused = torch.autograd.grad(out, (q, k, v), g_out)
    dense = torch.autograd.grad(ref, (q, k, v), g_out)
    for a, b in zip(fused, dense, strict=True):
        assert torch.allclose(a, b, rtol=0, atol=1e-9)


def test_graph_without_edges() -> None:
    g = CSRGraph.from_scipy(sp.csr_matrix((6, 6), dtype=np.float32), add_self_loops=False)
    assert g.n_edges == 0
    q, k, v = qkv(2, 2, 6, 3)
    out = graph_attention(q, k, v, g, diffusion="ppr", alpha=0.3, steps=3, impl="fused")
    assert torch.allclose(out, 0.3 * v, atol=1e-15)  # A = 0 keeps only theta_0 V
    dq, dk, dv = grads(out, (q, k, v))
    assert not dq.any() and not dk.any()


@pytest.mark.parametrize("mode", MODES)
def test_threads_split_slices_without_changing_results(mode: str | None) -> None:
    g = random_graph(30, seed=5, cls=True)
    q, k, v = qkv(3, 3, g.n, 8, dtype=torch.float32)
    before = torch.get_num_threads()
    results = []
    try:
        for threads in (1, 2, 4):
            torch.set_num_threads(threads)
            out = graph_attention(q, k, v, g, diffusion=mode, impl="fused")
            results.append((out, *grads(out, (q, k, v))))
    finally:
        torch.set_num_threads(before)
    for other in results[1:]:  # each (batch, head) slice is computed by one thread
        for a, b in zip(results[0], other, strict=True):
            assert torch.equal(a, b)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_is_computed_in_float32(dtype: torch.dtype) -> None:
    g = random_graph(15, seed=6)
    q, k, v = (t.detach().to(dtype).requires_grad_() for t in qkv(2, 2, g.n, 8))
    out = graph_attention(q, k, v, g, diffusion="heat", impl="fused")
    assert out.dtype == dtype
    ref = graph_attention_dense(q.double(), k.double(), v.double(), g, diffusion="heat")
    assert torch.allclose(out.double(), ref, atol=2e-2)
    out.sum().backward()
    assert q.grad.dtype == dtype and torch.isfinite(q.grad.float()).all()


def test_float32_matches_dense_float64() -> None:
    g = random_graph(40, seed=7, cls=True)
    q, k, v = qkv(2, 4, g.n, 16)
    ref = graph_attention_dense(q, k, v, g, diffusion="ppr")
    q32, k32, v32 = (t.detach().float().requires_grad_() for t in (q, k, v))
    out = graph_attention(q32, k32, v32, g, diffusion="ppr", impl="fused")
    assert torch.allclose(out.double(), ref, atol=1e-5)
    g_out = torch.randn(ref.shape, dtype=torch.float64)
    fused = torch.autograd.grad(out, (q32, k32, v32), g_out.float())
    for a, b in zip(fused, torch.autograd.grad(ref, (q, k, v), g_out), strict=True):
        assert torch.allclose(a.double(), b, atol=1e-5)


# --------------------------------------------------------------------------- the choice


def test_choose_impl_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(IMPL_ENV, raising=False)
    x = torch.zeros(1, 1, 2, 2)
    assert choose_impl("auto", x, dropout=False) == "fused"
    assert choose_impl("auto", x.double(), dropout=False) == "fused"
    assert choose_impl("auto", x.half(), dropout=False) == "fused"
    assert choose_impl("auto", x.int(), dropout=False) == "torch_sparse"
    assert choose_impl("auto", x, dropout=True) == "torch_sparse"  # no dropout in fused
    assert choose_impl("torch_sparse", x, dropout=False) == "torch_sparse"
    with pytest.raises(ValueError, match="no attention dropout"):
        choose_impl("fused", x, dropout=True)
    with pytest.raises(ValueError, match="unknown graph attention impl"):
        choose_impl("numba", x, dropout=False)
    monkeypatch.setenv(IMPL_ENV, "torch_sparse")
    assert choose_impl("auto", x, dropout=False) == "torch_sparse"
    assert choose_impl("fused", x, dropout=False) == "fused"  # an explicit choice wins
    monkeypatch.setenv(IMPL_ENV, "bogus")
    with pytest.raises(ValueError, match=IMPL_ENV):
        choose_impl("auto", x, dropout=False)


def test_prepare_loads_the_chosen_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    from scgraphbench.kernels import fused_cpu

    monkeypatch.delenv(IMPL_ENV, raising=False)
    assert prepare("cpu") == "fused" and torch.float32 in fused_cpu._WARM
    monkeypatch.setenv(IMPL_ENV, "torch_sparse")
    assert prepare("cpu") == "torch_sparse"


def test_graph_on_another_device_is_refused() -> None:
    g = random_graph(5)
    q, k, v = qkv(1, 1, 5, 2)
    with pytest.raises(ValueError, match="graph is on meta"):
        graph_attention(q, k, v, g.to("meta"))


def test_dropout_in_training_falls_back_to_torch_sparse() -> None:
    g = random_graph(12, seed=8)
    q, k, v = qkv(2, 2, g.n, 4)
    torch.manual_seed(3)
    auto = graph_attention(q, k, v, g, diffusion="ppr", dropout_p=0.2, training=True)
    torch.manual_seed(3)
    ref = graph_attention(
        q, k, v, g, diffusion="ppr", dropout_p=0.2, training=True, impl="torch_sparse"
    )
    assert torch.equal(auto, ref)


# --------------------------------------------------------------------------- models


def _model_context(n_genes: int = 14):
    from scgraphbench.models.registry import ModelContext

    A = sp.random(n_genes, n_genes, density=0.25, random_state=1, format="csr")
    return ModelContext(
        task="annotation",
        n_genes=n_genes,
        gene_names=[f"G{i}" for i in range(n_genes)],
        n_classes=3,
        graph=A,
        extra={},
    )


@pytest.mark.parametrize(
    "family, params",
    [
        ("genohoption_ppr", {}),
        ("genohoption_heat", {}),
        ("masked_attention", {}),
        ("longformer", {"window": 4, "n_global": 1}),
        ("bigbird", {"window": 4, "n_global": 1, "n_random": 2}),
        ("diffuser", {"window": 4, "n_global": 1, "n_random": 2}),
    ],
)
def test_models_match_the_reference_kernel(
    family: str, params: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    from scgraphbench.models.registry import build_family

    # float64: in float32 the two summation orders differ by ~1e-4 in a few gradients,
    # which says nothing about the kernel; in double precision they must agree closely.
    x = torch.rand(5, 14, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    results = {}
    for impl in ("fused", "torch_sparse"):
        monkeypatch.setenv(IMPL_ENV, impl)
        torch.manual_seed(0)
        model = build_family(family, _model_context(),
                             dict(d_model=16, n_layers=2, n_heads=2, **params)).double()
        model.train()  # dropout on the residual branches; attention dropout is 0
        torch.manual_seed(1)
        logits = model(x)["logits"]
        logits.square().sum().backward()
        results[impl] = (logits.detach(), [p.grad.clone() for p in model.parameters()])
    (out_a, grads_a), (out_b, grads_b) = results["fused"], results["torch_sparse"]
    assert torch.allclose(out_a, out_b, rtol=1e-9, atol=1e-9)
    for a, b in zip(grads_a, grads_b, strict=True):
        assert torch.allclose(a, b, rtol=1e-8, atol=1e-9)
