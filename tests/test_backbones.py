"""Pretrained backbones (scGPT, Geneformer) with graph attention injected.

The real checkpoints cannot be fetched here, so each test builds a small model of the
released architecture with random weights, independently of the adapter (scGPT: torch's
nn.TransformerEncoder with scGPT's module names; Geneformer: transformers' BertForMaskedLM),
saves it in the released folder layout, and loads it through the adapter.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import pickle
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from scgraphbench.errors import ScgbError
from scgraphbench.kernels.injected import attention_core
from scgraphbench.models.backbones.checkpoint import fetch_checkpoint
from scgraphbench.models.backbones.scgpt_binning import scgpt_binning
from scgraphbench.models.registry import ModelContext, get_family

torch.set_num_threads(1)


# -- scGPT: a reference model of the released layout -------------------------------------


class RefScGPT(nn.Module):
    """scGPT's TransformerModel encoder path, written with torch's own encoder layers."""

    def __init__(
        self, n_tokens: int, d: int, heads: int, d_hid: int, layers: int, pad_id: int
    ) -> None:
        super().__init__()
        self.encoder = nn.Module()
        self.encoder.embedding = nn.Embedding(n_tokens, d, padding_idx=pad_id)
        self.encoder.enc_norm = nn.LayerNorm(d)
        self.value_encoder = nn.Module()
        self.value_encoder.linear1 = nn.Linear(1, d)
        self.value_encoder.linear2 = nn.Linear(d, d)
        self.value_encoder.norm = nn.LayerNorm(d)
        layer = nn.TransformerEncoderLayer(d, heads, d_hid, 0.0, batch_first=True)
        self.transformer_encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        # released extras the adapter must leave unused
        self.decoder = nn.Module()
        self.decoder.fc = nn.Sequential(nn.Linear(d, d), nn.LeakyReLU(), nn.Linear(d, 1))
        self.flag_encoder = nn.Embedding(2, d)

    def forward(self, ids: torch.Tensor, values: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
        ve = self.value_encoder
        src = self.encoder.enc_norm(self.encoder.embedding(ids))
        v = values.unsqueeze(-1).clamp(max=512)
        src = src + ve.norm(ve.linear2(torch.relu(ve.linear1(v))))
        return self.transformer_encoder(src, src_key_padding_mask=pad)


def build_scgpt_checkpoint(
    folder: Path,
    genes: list[str],
    *,
    d: int = 16,
    heads: int = 2,
    d_hid: int = 32,
    layers: int = 2,
    n_bins: int = 11,
    seed: int = 0,
) -> tuple[RefScGPT, dict[str, int]]:
    """best_model.pt (flash-attention names, as released), args.json, vocab.json."""
    folder.mkdir(parents=True, exist_ok=True)
    vocab = {g: i for i, g in enumerate(genes)}
    for s in ("<pad>", "<cls>", "<eoc>"):
        vocab[s] = len(vocab)
    torch.manual_seed(seed)
    ref = RefScGPT(len(vocab), d, heads, d_hid, layers, vocab["<pad>"])
    with torch.no_grad():
        for p in ref.parameters():
            p.normal_(0, 0.3)
    state = {
        k.replace("self_attn.in_proj_", "self_attn.Wqkv."): v for k, v in ref.state_dict().items()
    }
    state["transformer_encoder.layers.0.self_attn.cross_attn.in_proj_weight"] = torch.zeros(3)
    torch.save(state, folder / "best_model.pt")
    (folder / "vocab.json").write_text(json.dumps(vocab))
    args = dict(
        embsize=d,
        nheads=heads,
        d_hid=d_hid,
        nlayers=layers,
        n_layers_cls=3,
        n_bins=n_bins,
        pad_token="<pad>",
        pad_value=-2,
        mask_value=-1,
        input_style="binned",
        input_emb_style="continuous",
        dropout=0.0,
        fast_transformer=True,
        MVC=True,
        USE_GENERATIVE_TRAINING=True,
    )
    (folder / "args.json").write_text(json.dumps(args))
    return ref.eval(), vocab


def numpy_scgpt_bin(row: np.ndarray, n_bins: int) -> np.ndarray:
    """scgpt.preprocess binning of one cell whose non-zero values are all distinct: then no
    value equals two edges and scGPT's random tie spreading always gives the left digitize."""
    out = np.zeros(row.shape, dtype=np.int64)
    nz = row.nonzero()[0]
    if len(nz):
        edges = np.quantile(row[nz], np.linspace(0, 1, n_bins - 1))
        out[nz] = np.digitize(row[nz], edges)
    return out


def numpy_scgpt_tokens(
    x: np.ndarray,
    gene_idx: list[int],
    token_ids: list[int],
    vocab: dict[str, int],
    n_bins: int,
    include_zero: bool,
):
    """scgpt.tokenizer.tokenize_and_pad_batch on binned values, one cell at a time."""
    rows = []
    for cell in x[:, gene_idx]:
        bins = numpy_scgpt_bin(cell, n_bins)
        keep = np.arange(len(cell)) if include_zero else np.nonzero(bins)[0]
        ids = np.insert(np.asarray(token_ids)[keep], 0, vocab["<cls>"])
        vals = np.insert(bins[keep].astype(np.float32), 0, 0)
        rows.append((ids, vals))
    width = max(len(r[0]) for r in rows)
    ids = np.full((len(rows), width), vocab["<pad>"])
    vals = np.full((len(rows), width), -2.0, dtype=np.float32)
    for i, (r_ids, r_vals) in enumerate(rows):
        ids[i, : len(r_ids)], vals[i, : len(r_vals)] = r_ids, r_vals
    return torch.from_numpy(ids), torch.from_numpy(vals)


def expression(n_cells: int, n_genes: int, seed: int = 0, rate: float = 0.8) -> torch.Tensor:
    """log1p(CP10k)-like values with many zeros and no ties among a cell's non-zeros."""
    rng = np.random.default_rng(seed)
    counts = rng.poisson(rate, (n_cells, n_genes)) * (1 + 0.01 * rng.random((n_cells, n_genes)))
    return torch.from_numpy(np.log1p(counts).astype(np.float32))


def complete_graph(n: int) -> sp.csr_matrix:
    return sp.csr_matrix(np.ones((n, n), dtype=np.float32) - np.eye(n, dtype=np.float32))


def random_graph(n: int, p: float = 0.25, seed: int = 0) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    A = (rng.random((n, n)) < p).astype(np.float32)
    np.fill_diagonal(A, 0)
    return sp.csr_matrix(np.maximum(A, A.T))


def annotation_ctx(
    genes: list[str], graph: sp.spmatrix | None = None, n_classes: int = 3
) -> ModelContext:
    return ModelContext(
        task="annotation", n_genes=len(genes), gene_names=genes, n_classes=n_classes, graph=graph
    )


SCGPT_GENES = [f"G{i}" for i in range(14)]
DATASET_GENES = SCGPT_GENES[:12] + ["NOTINVOCAB1", "NOTINVOCAB2"]


@pytest.fixture
def scgpt_ckpt(tmp_path: Path):
    return (tmp_path / "scgpt", *build_scgpt_checkpoint(tmp_path / "scgpt", SCGPT_GENES))


# -- Geneformer: a random BertForMaskedLM in the released layout --------------------------


def build_geneformer_checkpoint(
    folder: Path,
    symbols: list[str],
    *,
    v2: bool = True,
    max_pos: int = 64,
    seed: int = 0,
    layers: int = 2,
):
    """config.json + model.safetensors (BertForMaskedLM) + Geneformer's three dictionaries,
    named as in the released geneformer/ folder."""
    from transformers import BertConfig, BertForMaskedLM

    ensembl = [f"ENSG{1000 + i:011d}" for i in range(len(symbols))]
    specials = ["<pad>", "<mask>"] + (["<cls>", "<eos>"] if v2 else [])
    token = {s: i for i, s in enumerate(specials)}
    token.update({g: len(specials) + i for i, g in enumerate(ensembl)})
    rng = np.random.default_rng(seed)
    medians = {
        g: float(m) for g, m in zip(ensembl, rng.uniform(0.5, 3.0, len(ensembl)), strict=True)
    }
    config = BertConfig(
        vocab_size=len(token),
        hidden_size=16,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=32,
        hidden_act="relu",
        max_position_embeddings=max_pos,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        pad_token_id=0,
    )
    torch.manual_seed(seed)
    mlm = BertForMaskedLM(config)
    with torch.no_grad():
        for p in mlm.parameters():
            p.normal_(0, 0.3)
    mlm.save_pretrained(str(folder))
    tag = "gc104M" if v2 else "gc30M"
    for name, obj in (
        (f"token_dictionary_{tag}.pkl", token),
        (f"gene_median_dictionary_{tag}.pkl", medians),
        (f"gene_name_id_dict_{tag}.pkl", dict(zip(symbols, ensembl, strict=True))),
    ):
        with (folder / name).open("wb") as f:
            pickle.dump(obj, f)
    return mlm.eval(), token, medians, ensembl


def numpy_geneformer_tokens(
    x: np.ndarray,
    gene_idx: list[int],
    tokens: list[int],
    medians: list[float],
    max_len: int,
    v2: bool,
    token: dict,
):
    """geneformer.tokenizer: rank by normalised expression / median, truncate, <cls>/<eos>."""
    rows = []
    for cell in np.expm1(x[:, gene_idx]):
        v = cell / np.asarray(medians)
        nz = np.nonzero(v)[0]
        ranked = np.asarray(tokens)[nz[np.argsort(-v[nz], kind="stable")]]
        if v2:
            ranked = np.concatenate([[token["<cls>"]], ranked[: max_len - 2], [token["<eos>"]]])
        else:
            ranked = ranked[:max_len]
        rows.append(ranked)
    width = max(len(r) for r in rows)
    ids = np.full((len(rows), width), token["<pad>"])
    for i, r in enumerate(rows):
        ids[i, : len(r)] = r
    return torch.from_numpy(ids)


GF_SYMBOLS = [f"S{i}" for i in range(14)]
GF_DATASET = GF_SYMBOLS[:11] + ["UNKNOWN1", "UNKNOWN2"] + ["ENSG00000001011"]  # S11 by ID


@pytest.fixture(params=[True, False], ids=["v2", "v1"])
def gf_ckpt(request, tmp_path: Path):
    v2 = request.param
    folder = tmp_path / ("gf_v2" if v2 else "gf_v1")
    mlm, token, medians, ensembl = build_geneformer_checkpoint(folder, GF_SYMBOLS, v2=v2)
    return folder, mlm, token, medians, ensembl, v2


# -- scGPT ----------------------------------------------------------------------------------


def scgpt_preprocess():
    """scgpt 0.2.4's own ``scgpt/preprocess.py`` (``binning``, ``Preprocessor``), executed from
    the installed files under a stub parent package: ``import scgpt`` itself pulls torchtext,
    which has no build for this torch. Install it with ``pip install --no-deps scgpt==0.2.4``."""
    import importlib.util
    import sys
    import types

    spec = importlib.util.find_spec("scgpt")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("scgpt is not installed (pip install --no-deps scgpt==0.2.4)")
    folder = Path(next(iter(spec.submodule_search_locations)))
    stub = types.ModuleType("scgpt")
    stub.__path__ = [str(folder)]
    stub.logger = logging.getLogger("scGPT")
    saved = sys.modules.get("scgpt")
    sys.modules["scgpt"] = stub
    try:
        module_spec = importlib.util.spec_from_file_location(
            "scgpt.preprocess", folder / "preprocess.py"
        )
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
    except ImportError as e:
        pytest.skip(f"scgpt's preprocess.py does not load here: {e}")
    finally:
        if saved is None:
            sys.modules.pop("scgpt", None)
        else:
            sys.modules["scgpt"] = saved
    return module


def scgpt_draws(x: np.ndarray, seed: int) -> torch.Tensor:
    """The uniform draws scGPT's binning makes after ``np.random.seed(seed)``: one per
    non-zero value, cell by cell in gene order (none for an all-zero cell)."""
    np.random.seed(seed)
    u = np.zeros(x.shape)
    for i, row in enumerate(x):
        if row.max() > 0:
            nz = row.nonzero()[0]
            u[i, nz] = np.random.rand(len(nz))
    return torch.from_numpy(u)


def tied_counts(n_cells: int = 60, n_genes: int = 200, seed: int = 0) -> np.ndarray:
    """UMI-like counts (negative binomial, mean 1): most non-zero values are 1s and 2s, so
    most tie with several quantile edges; plus an all-zero cell and a cell without zeros."""
    rng = np.random.default_rng(seed)
    counts = rng.negative_binomial(1, 0.5, (n_cells, n_genes)).astype(np.float32)
    counts[0] = 0
    counts[1] = rng.integers(1, 4, n_genes)
    return counts


def test_scgpt_binning_without_ties_is_the_left_digitize():
    x = expression(20, 40, seed=3).numpy()
    x[0] = 0  # an all-zero cell
    ours = scgpt_binning(torch.from_numpy(x), 51).numpy()
    ref = np.stack([numpy_scgpt_bin(row, 51) for row in x])
    np.testing.assert_array_equal(ours, ref)
    assert ours[0].max() == 0 and ours[2].max() == 50 and ours[2][x[2] > 0].min() == 1


def test_scgpt_binning_spreads_ties_uniformly_over_the_tied_bins():
    """A value equal to several edges lands in right+1..left, each about equally often."""
    x = torch.tensor([[1.0] * 12 + [2.0] * 4 + [5.0] + [0.0] * 3])
    n_bins = 11  # 10 edges: 1,1,1,1,1,1,1,(1..2),2,5
    edges = np.quantile(x[0][x[0] > 0].numpy(), np.linspace(0, 1, n_bins - 1))
    left = np.digitize(1.0, edges)
    right = np.digitize(1.0, edges, right=True)
    assert (right, left) == (0, 7)
    g = torch.Generator().manual_seed(0)
    bins = torch.stack([scgpt_binning(x, n_bins, generator=g)[0, :12] for _ in range(500)])
    counts = torch.bincount(bins.flatten(), minlength=n_bins)
    assert counts[0] == 0 and counts[left + 1 :].sum() == 0
    share = counts[right + 1 : left + 1].double() / bins.numel()
    torch.testing.assert_close(share, torch.full_like(share, 1 / (left - right)), atol=0.02, rtol=0)
    assert scgpt_binning(x, n_bins)[0, 16] == n_bins - 1  # the maximum, no tie: the top bin


@pytest.mark.filterwarnings("ignore:Some cells have zero counts")
@pytest.mark.parametrize("n_bins", [51, 11])
def test_scgpt_binning_equals_scgpts_own_binning_on_tied_counts(n_bins):
    """Bin for bin against scgpt 0.2.4's ``preprocess.binning`` and its ``Preprocessor``
    (as its tutorials run it: normalize_total 1e4, log1p, binning) on count data full of
    ties, with the same uniform draws; ours reads the prepared log1p(CP10k) matrix."""
    import anndata as ad

    pp = scgpt_preprocess()
    counts = tied_counts(seed=n_bins)
    x = np.log1p(counts / np.maximum(counts.sum(1, keepdims=True), 1) * 1e4).astype(np.float32)
    nonzero = counts > 0
    tied = [np.unique(r[r > 0], return_counts=True)[1].max() > 1 for r in counts[2:]]
    assert all(tied) and nonzero.mean() > 0.4
    logging.getLogger("scGPT").disabled = True  # it warns about the all-zero cell
    try:
        np.random.seed(5)
        ref = np.stack([pp.binning(row, n_bins) for row in counts]).astype(np.int64)
        adata = ad.AnnData(counts.copy())
        np.random.seed(6)
        pp.Preprocessor(normalize_total=1e4, log1p=True, binning=n_bins)(adata)
    finally:
        logging.getLogger("scGPT").disabled = False
    ours = scgpt_binning(torch.from_numpy(x), n_bins, uniform=scgpt_draws(counts, 5)).numpy()
    np.testing.assert_array_equal(ours, ref)
    ours_pp = scgpt_binning(torch.from_numpy(x), n_bins, uniform=scgpt_draws(counts, 6)).numpy()
    np.testing.assert_array_equal(ours_pp, adata.layers["X_binned"])
    # the left bin for ties, what this adapter did before, differs on most non-zero tokens
    left = np.stack([numpy_scgpt_bin(row, n_bins) for row in counts])
    assert (left[nonzero] != ref[nonzero]).mean() > 0.5


def test_scgpt_binned_tokens_are_seeded(scgpt_ckpt):
    """Evaluation draws the tie spreading from the run's seed (the same batch gives the same
    tokens); training draws from torch's generator, which the Trainer re-seeds per epoch."""
    folder, _, _ = scgpt_ckpt
    genes = DATASET_GENES
    family = get_family("backbone_scgpt")
    ctx = annotation_ctx(genes)
    x = torch.from_numpy(np.log1p(tied_counts(8, len(genes), seed=2)))
    model = family(ctx, checkpoint=str(folder), include_zero_genes=True).eval()
    first = model.tokens(x)["values"]
    torch.testing.assert_close(model.tokens(x)["values"], first)
    other_seed = family(
        dataclasses.replace(ctx, seed=1), checkpoint=str(folder), include_zero_genes=True
    ).eval()
    assert not torch.equal(other_seed.tokens(x)["values"], first)
    model.train()
    torch.manual_seed(3)
    a = model.tokens(x)["values"]
    torch.manual_seed(3)
    torch.testing.assert_close(model.tokens(x)["values"], a)


@pytest.mark.parametrize("include_zero", [False, True])
def test_scgpt_released_layout_loads_and_matches_reference(scgpt_ckpt, include_zero, caplog):
    folder, ref, vocab = scgpt_ckpt
    ctx = annotation_ctx(DATASET_GENES)
    with caplog.at_level(logging.INFO, logger="scgraphbench"):
        model = get_family("backbone_scgpt")(
            ctx, checkpoint=str(folder), include_zero_genes=include_zero
        ).eval()
    assert "12/14 genes (85.7%) matched" in caplog.text
    assert "2 unmatched genes dropped (e.g. NOTINVOCAB1, NOTINVOCAB2)" in caplog.text
    assert "unused (e.g." in caplog.text  # decoder, flag_encoder, cross_attn of the release
    x = expression(6, len(DATASET_GENES), seed=1)
    tok = model.tokens(x)
    ids, vals = numpy_scgpt_tokens(
        x.numpy(), list(range(12)), [vocab[g] for g in DATASET_GENES[:12]], vocab, 11, include_zero
    )
    torch.testing.assert_close(tok["ids"], ids)
    torch.testing.assert_close(tok["values"], vals)
    with torch.no_grad():
        want = ref(ids, vals, ids.eq(vocab["<pad>"]))
        got = model.encode(
            model._embed(tok["ids"], tok["values"]), tok["node_index"], tok["key_valid"]
        )
        out = model(x)
    valid = ~ids.eq(vocab["<pad>"])
    torch.testing.assert_close(got[valid], want[valid], atol=2e-5, rtol=1e-4)
    torch.testing.assert_close(out["embedding"], want[:, 0], atol=2e-5, rtol=1e-4)
    assert out["logits"].shape == (6, 3)


def test_scgpt_save_pretrained_round_trip(scgpt_ckpt, tmp_path):
    folder, _, _ = scgpt_ckpt
    ctx = annotation_ctx(DATASET_GENES, complete_graph(len(DATASET_GENES)))
    family = get_family("backbone_scgpt")
    x = expression(5, len(DATASET_GENES), seed=2)
    for mode in ("dense", "diffusion_ppr"):
        a = family(ctx, checkpoint=str(folder), attention=mode).eval()
        a.save_pretrained(tmp_path / f"export_{mode}")
        state = torch.load(tmp_path / f"export_{mode}" / "best_model.pt", weights_only=True)
        assert "transformer_encoder.layers.1.self_attn.Wqkv.weight" in state  # released names
        b = family(
            ctx, checkpoint=str(tmp_path / f"export_{mode}"), attention=mode, load_heads=True
        ).eval()
        with torch.no_grad():
            ya, yb = a(x), b(x)
        torch.testing.assert_close(ya["logits"], yb["logits"])
        torch.testing.assert_close(ya["embedding"], yb["embedding"])


@pytest.mark.parametrize("include_zero", [False, True])
def test_scgpt_masked_on_complete_graph_equals_dense(scgpt_ckpt, include_zero):
    folder, _, _ = scgpt_ckpt
    ctx = annotation_ctx(DATASET_GENES, complete_graph(len(DATASET_GENES)))
    family = get_family("backbone_scgpt")
    dense = family(ctx, checkpoint=str(folder), include_zero_genes=include_zero).eval()
    masked = family(
        ctx, checkpoint=str(folder), attention="masked", include_zero_genes=include_zero
    ).eval()
    masked.load_state_dict(dense.state_dict())
    x = expression(7, len(DATASET_GENES), seed=4)
    with torch.no_grad():
        torch.testing.assert_close(masked(x)["logits"], dense(x)["logits"], atol=1e-5, rtol=1e-4)


def test_scgpt_diffusion_without_propagation_passes_values(scgpt_ckpt):
    """PPR with alpha=1, or with K=0 steps, returns V: the layer's attention output is
    out_proj(W_v x) for every token."""
    folder, _, _ = scgpt_ckpt
    ctx = annotation_ctx(DATASET_GENES, random_graph(len(DATASET_GENES)))
    family = get_family("backbone_scgpt")
    x = expression(4, len(DATASET_GENES), seed=5)
    for params in ({"alpha": 1.0}, {"steps": 0}):
        model = family(ctx, checkpoint=str(folder), attention="diffusion_ppr", **params).eval()
        tok = model.tokens(x)
        h = model._embed(tok["ids"], tok["values"])
        layer = model.transformer_encoder.layers[0]
        core = dict(
            mode="diffusion_ppr",
            graph=model.gene_graph.graph,
            node_index=tok["node_index"],
            **model.core_params,
        )
        with torch.no_grad():
            got = layer.attend(h, core)
            w_v = layer.self_attn.in_proj_weight.chunk(3)[2]
            b_v = layer.self_attn.in_proj_bias.chunk(3)[2]
            want = layer.self_attn.out_proj(F.linear(h, w_v, b_v))
        valid = tok["key_valid"]
        torch.testing.assert_close(got[valid], want[valid], atol=1e-5, rtol=1e-4)


def test_scgpt_perturbation_setup(scgpt_ckpt):
    folder, _, _ = scgpt_ckpt
    n = len(DATASET_GENES)
    ctx = ModelContext(
        task="perturbation", n_genes=n, gene_names=DATASET_GENES, graph=complete_graph(n)
    )
    family = get_family("backbone_scgpt")
    model = family(ctx, checkpoint=str(folder)).eval()
    assert {"pert_encoder.weight", "bn.running_mean", "decoder.fc.4.weight"} <= set(
        model.state_dict()
    )
    assert not hasattr(model, "cls_decoder")
    x = expression(6, n, seed=6)
    pert = torch.zeros_like(x)
    pert[:, 3] = 1
    with torch.no_grad():
        out, out_ctrl = model(x, pert), model(x, torch.zeros_like(x))
    assert out["pred"].shape == (6, n) and out["embedding"].shape == (6, 16)
    torch.testing.assert_close(out["pred"][:, 12:], x[:, 12:])  # genes outside the vocabulary
    assert not torch.allclose(out["pred"][:, :12], out_ctrl["pred"][:, :12])  # flags matter
    masked = family(ctx, checkpoint=str(folder), attention="masked").eval()
    masked.load_state_dict(model.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(masked(x, pert)["pred"], out["pred"], atol=1e-5, rtol=1e-4)
    # a few steps of MSE towards a shifted target lower the loss
    model = family(ctx, checkpoint=str(folder), attention="diffusion_heat").train()
    target = x.clone()
    target[:, 3] = 0
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    losses = []
    for _ in range(15):
        loss = F.mse_loss(model(x, pert)["pred"], target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    assert losses[-1] < 0.7 * losses[0]


# -- Geneformer ------------------------------------------------------------------------------


def test_geneformer_released_layout_loads_and_matches_bert(gf_ckpt, caplog):
    folder, mlm, token, medians, ensembl, v2 = gf_ckpt
    ctx = annotation_ctx(GF_DATASET)
    max_len = 9  # below most cells' detected genes, so truncation is exercised
    with caplog.at_level(logging.INFO, logger="scgraphbench"):
        model = get_family("backbone_geneformer")(
            ctx, checkpoint=str(folder), max_len=max_len
        ).eval()
    # S0..S10 by symbol, ENSG...1011 (S11) by ID; two unknown symbols
    assert model.coverage.n_matched == 12 and model.coverage.unmatched == ["UNKNOWN1", "UNKNOWN2"]
    assert "12/14 genes (85.7%) matched" in caplog.text
    x = expression(8, len(GF_DATASET), seed=7, rate=1.5)
    x[0] = 0  # a cell with no detected gene
    gene_idx = list(range(11)) + [13]
    gene_tokens = [token[ensembl[i]] for i in range(12)]
    gene_medians = [medians[ensembl[i]] for i in range(12)]
    want_ids = numpy_geneformer_tokens(
        x.numpy(), gene_idx, gene_tokens, gene_medians, max_len, v2, token
    )
    tok = model.tokens(x)
    valid = want_ids.ne(token["<pad>"])
    torch.testing.assert_close(tok["ids"][:, : want_ids.shape[1]], want_ids)
    with torch.no_grad():
        want = mlm.bert(input_ids=want_ids, attention_mask=valid.long()).last_hidden_state
        got = model.encode(tok)[:, : want_ids.shape[1]]
    torch.testing.assert_close(got[valid], want[valid], atol=2e-5, rtol=1e-4)
    assert model.pooling == ("cls" if v2 else "mean")


def test_geneformer_masked_on_complete_graph_equals_dense(gf_ckpt):
    folder = gf_ckpt[0]
    ctx = annotation_ctx(GF_DATASET, complete_graph(len(GF_DATASET)))
    family = get_family("backbone_geneformer")
    dense = family(ctx, checkpoint=str(folder)).eval()
    masked = family(ctx, checkpoint=str(folder), attention="masked").eval()
    masked.load_state_dict(dense.state_dict())
    x = expression(6, len(GF_DATASET), seed=8, rate=1.2)
    with torch.no_grad():
        a, b = dense(x), masked(x)
    torch.testing.assert_close(b["embedding"], a["embedding"], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(b["logits"], a["logits"], atol=1e-5, rtol=1e-4)


def test_geneformer_save_pretrained_round_trip(gf_ckpt, tmp_path):
    folder = gf_ckpt[0]
    ctx = annotation_ctx(GF_DATASET, random_graph(len(GF_DATASET)))
    family = get_family("backbone_geneformer")
    a = family(ctx, checkpoint=str(folder), attention="diffusion_ppr").eval()
    with torch.no_grad():
        a.bert.encoder.layer[0].attention.self.query.weight.mul_(1.5)  # as if fine-tuned
    a.save_pretrained(tmp_path / "export")
    b = family(ctx, checkpoint=str(tmp_path / "export"), attention="diffusion_ppr").eval()
    b.head.load_state_dict(a.head.state_dict())
    x = expression(5, len(GF_DATASET), seed=9, rate=1.2)
    with torch.no_grad():
        torch.testing.assert_close(b(x)["logits"], a(x)["logits"])


def test_geneformer_coverage_counts_duplicates(tmp_path):
    folder = tmp_path / "gf"
    build_geneformer_checkpoint(folder, GF_SYMBOLS)
    # S3 by symbol and again by its Ensembl ID: one token, the second is a duplicate
    genes = ["S3", "ENSG00000001003", "S5", "NOPE"]
    model = get_family("backbone_geneformer")(annotation_ctx(genes), checkpoint=str(folder))
    cov = model.coverage.as_dict()
    assert (cov["n_matched"], cov["n_unmatched"], cov["n_duplicates"]) == (2, 1, 1)
    assert cov["unmatched_examples"] == ["NOPE"] and cov["fraction"] == 0.5
    assert model.gene_idx.tolist() == [0, 2]


def test_geneformer_rejects_perturbation(tmp_path):
    folder = tmp_path / "gf"
    build_geneformer_checkpoint(folder, GF_SYMBOLS)
    ctx = ModelContext(task="perturbation", n_genes=3, gene_names=GF_SYMBOLS[:3])
    with pytest.raises(ScgbError, match="annotation task only"):
        get_family("backbone_geneformer")(ctx, checkpoint=str(folder))


# -- the attention core: graph follows genes, not positions ----------------------------------


def reference_graph_attention(q, k, v, A, node_index, mode, alpha=0.25, t=5.0, steps=6):
    """Dense reference: a per-cell (L, L) mask built from the gene graph through each
    token's gene, masked softmax, then PPR/heat on the dense weights."""
    n = A.shape[0]
    A = torch.from_numpy((A + sp.identity(n)).toarray() > 0)
    B, H, L, d = q.shape
    valid = node_index >= 0
    nodes = node_index.clamp(min=0)
    mask = A[nodes[:, :, None], nodes[:, None, :]] & valid[:, None, :] & valid[:, :, None]
    scores = (q @ k.transpose(-1, -2)) / math.sqrt(d)
    scores = scores.masked_fill(~mask[:, None], -torch.inf)
    w = torch.nan_to_num(torch.softmax(scores, -1))
    if mode == "masked":
        return w @ v
    if mode == "diffusion_ppr":
        h = v
        for _ in range(steps):
            h = (1 - alpha) * (w @ h) + alpha * v
        return h
    h = math.exp(-t) * v
    out = h
    for s in range(1, steps):
        h = (t / s) * (w @ h)
        out = out + h
    return out


@pytest.mark.parametrize("mode", ["masked", "diffusion_ppr", "diffusion_heat"])
def test_attention_core_follows_genes_through_per_cell_positions(mode):
    from scgraphbench.kernels import CSRGraph

    torch.manual_seed(0)
    B, H, L, d, n = 4, 2, 7, 8, 10
    A = random_graph(n, p=0.3, seed=1)
    graph = CSRGraph.from_scipy(A)
    # each cell: a different subset of genes in a different order, then padding
    node_index = torch.full((B, L), -1)
    for b, length in enumerate((7, 5, 6, 2)):
        node_index[b, :length] = torch.randperm(n)[:length]
    q, k, v = (torch.randn(B, H, L, d) for _ in range(3))
    got = attention_core(q, k, v, mode=mode, graph=graph, node_index=node_index, steps=4)
    want = reference_graph_attention(q, k, v, A, node_index, mode, steps=4)
    valid = node_index >= 0
    torch.testing.assert_close(
        got.transpose(1, 2)[valid], want.transpose(1, 2)[valid], atol=1e-5, rtol=1e-4
    )
    # PPR with alpha = 1 or K = 0 is plain value passing, through the same mapping
    for kw in ({"alpha": 1.0}, {"steps": 0}):
        out = attention_core(
            q, k, v, mode="diffusion_ppr", graph=graph, node_index=node_index, **kw
        )
        torch.testing.assert_close(out.transpose(1, 2)[valid], v.transpose(1, 2)[valid])


# -- fine-tuning through the common trainer on the default dataset ---------------------------


@pytest.fixture(scope="session")
def pbmc_default(tmp_path_factory):
    """The default config's dataset (scanpy's pbmc68k_reduced, 300 HVGs) and its coexpr graph."""
    from scgraphbench.data.datasets import prepare_dataset
    from scgraphbench.graphs.coexpr import coexpression_graph

    spec = {
        "source": "scanpy_pbmc68k_reduced",
        "task": "annotation",
        "label_key": "bulk_labels",
        "n_top_genes": 300,
        "val_fraction": 0.15,
        "test_fraction": 0.2,
        "seed": 0,
    }
    adata = prepare_dataset("pbmc68k", spec)
    train = np.asarray(adata.X[(adata.obs["split"] == "train").to_numpy()])
    return adata, coexpression_graph(train, top_h=20, sigma=0.4)


@pytest.mark.parametrize(
    "family,mode", [("backbone_scgpt", "diffusion_ppr"), ("backbone_geneformer", "masked")]
)
def test_finetuning_lowers_the_loss_on_the_default_dataset(pbmc_default, tmp_path, family, mode):
    from scgraphbench.train.cost import count_parameters
    from scgraphbench.train.trainer import TrainConfig, Trainer

    adata, graph = pbmc_default
    genes = list(adata.var_names)
    folder = tmp_path / "ckpt"
    if family == "backbone_scgpt":
        build_scgpt_checkpoint(folder, genes[:250] + [f"EXTRA{i}" for i in range(20)])
    else:
        build_geneformer_checkpoint(folder, genes[:250], max_pos=128)
    classes = sorted(adata.obs["label"].unique())
    y = torch.tensor(adata.obs["label"].map({c: i for i, c in enumerate(classes)}).to_numpy())
    ctx = ModelContext(
        task="annotation", n_genes=len(genes), gene_names=genes, n_classes=len(classes), graph=graph
    )
    model = get_family(family)(ctx, checkpoint=str(folder), attention=mode, freeze_layers=1)
    assert model.coverage.n_matched == 250
    frozen = (
        model.transformer_encoder.layers[0]
        if family == "backbone_scgpt"
        else model.bert.encoder.layer[0]
    )
    full = get_family(family)(ctx, checkpoint=str(folder), attention=mode)
    assert count_parameters(model) == count_parameters(full) - sum(
        p.numel() for p in frozen.parameters()
    )
    frozen_before = [p.detach().clone() for p in frozen.parameters()]
    ce = nn.CrossEntropyLoss()
    trainer = Trainer(
        model,
        TrainConfig(lr=3e-3, device="cpu", precision="fp32"),
        seed=0,
        loss_fn=lambda o, t: ce(o["logits"], t),
    )
    batch = ({"x": torch.from_numpy(np.asarray(adata.X[:32]))}, y[:32])
    model.eval()
    with torch.no_grad():
        before = float(ce(model(**batch[0])["logits"], batch[1]))
    for _ in range(10):
        trainer.step(batch)
    model.eval()
    with torch.no_grad():
        after = float(ce(model(**batch[0])["logits"], batch[1]))
    assert after < before - 0.1
    for p, p0 in zip(frozen.parameters(), frozen_before, strict=True):
        torch.testing.assert_close(p, p0)  # freeze_layers held the first layer


def test_run_annotation_end_to_end(tiny_annotation, tmp_path):
    """The common runner: params from config, graph file, metrics.json with cost."""
    import anndata as ad

    from scgraphbench.graphs.io import save_graph
    from scgraphbench.io import read_json
    from scgraphbench.train.run import run

    genes = list(ad.read_h5ad(tiny_annotation).var_names)
    folder = tmp_path / "ckpt"
    build_scgpt_checkpoint(folder, genes[:30])
    save_graph(tmp_path / "g.npz", random_graph(len(genes), p=0.1), genes)
    res = run(
        str(tiny_annotation),
        str(tmp_path / "g.npz"),
        "backbone_scgpt",
        {"checkpoint": str(folder), "attention": "diffusion_heat", "steps": 3, "freeze_layers": 1},
        {"epochs": 2, "batch_size": 32, "device": "cpu", "lr": 1e-4},
        0,
        str(tmp_path / "run"),
    )
    metrics = read_json(tmp_path / "run" / "metrics.json")
    assert metrics["n_parameters"] == res["n_parameters"] > 0
    assert 0 <= metrics["macro_f1"] <= 1 and metrics["epochs_run"] == 2


# -- user errors ---------------------------------------------------------------------------


@pytest.mark.parametrize("family", ["backbone_scgpt", "backbone_geneformer"])
def test_missing_checkpoint_is_a_clear_error(family, tmp_path):
    ctx = annotation_ctx(SCGPT_GENES)
    cls = get_family(family)
    with pytest.raises(ScgbError, match="needs a pretrained checkpoint") as e:
        cls(ctx)
    assert "params.checkpoint" in str(e.value) and "backbones." in str(e.value)
    missing = tmp_path / "nowhere"
    with pytest.raises(ScgbError, match="does not exist") as e:
        cls(ctx, checkpoint=str(missing))
    assert str(missing) in str(e.value) and "params.checkpoint" in str(e.value)


def test_incomplete_or_mismatched_checkpoint_errors(scgpt_ckpt, tmp_path):
    folder, _, _ = scgpt_ckpt
    ctx = annotation_ctx(DATASET_GENES)
    family = get_family("backbone_scgpt")
    (folder / "vocab.json").rename(tmp_path / "vocab.json")
    with pytest.raises(ScgbError, match="lacks vocab.json") as e:
        family(ctx, checkpoint=str(folder))
    assert str(folder) in str(e.value)
    (tmp_path / "vocab.json").rename(folder / "vocab.json")
    args = json.loads((folder / "args.json").read_text())
    (folder / "args.json").write_text(json.dumps({**args, "nlayers": 3}))
    with pytest.raises(ScgbError, match="lack 12 tensors"):
        family(ctx, checkpoint=str(folder))
    (folder / "args.json").write_text(json.dumps({**args, "d_hid": 8}))
    with pytest.raises(ScgbError, match="linear1.weight has shape"):
        family(ctx, checkpoint=str(folder))
    (folder / "args.json").write_text(json.dumps(args))
    with pytest.raises(ScgbError, match="unknown attention mode"):
        family(ctx, checkpoint=str(folder), attention="sparse")
    with pytest.raises(ScgbError, match="needs a gene graph"):
        family(ctx, checkpoint=str(folder), attention="masked")
    with pytest.raises(ScgbError, match="freeze_layers=5"):
        family(ctx, checkpoint=str(folder), freeze_layers=5)
    with pytest.raises(ScgbError, match="none of the dataset's"):
        family(annotation_ctx(["A", "B"]), checkpoint=str(folder))


def test_geneformer_folder_without_dictionaries_errors(tmp_path):
    folder = tmp_path / "gf"
    build_geneformer_checkpoint(folder, GF_SYMBOLS)
    (folder / "gene_median_dictionary_gc104M.pkl").unlink()
    with pytest.raises(ScgbError, match="gene_median_dictionary") as e:
        get_family("backbone_geneformer")(annotation_ctx(GF_SYMBOLS), checkpoint=str(folder))
    assert "params.gene_median_dictionary" in str(e.value)


# -- fetching a checkpoint folder ----------------------------------------------------------


def test_fetch_checkpoint_writes_folder_and_manifest(tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    (source / "a.bin").write_bytes(b"weights")
    (source / "args.json").write_text("{}")
    calls = []

    def fake_download(url, dest, *, sha256=None, size=None):
        calls.append((url, Path(dest).name, sha256, size))
        Path(dest).write_bytes((source / url.rsplit("/", 1)[1]).read_bytes())

    spec = {
        "files": {
            "best_model.pt": {"url": "https://host/x/a.bin", "sha256": "ab" * 32},
            "args.json": {"url": "https://host/x/args.json"},
        }
    }
    out = tmp_path / "resources" / "checkpoints" / "scgpt"
    manifest = fetch_checkpoint(spec, out, downloader=fake_download)
    assert sorted(p.name for p in out.iterdir()) == ["MANIFEST.json", "args.json", "best_model.pt"]
    assert not (out.parent / "scgpt.partial").exists()
    assert calls[0] == ("https://host/x/a.bin", "best_model.pt", "ab" * 32, None)
    assert manifest["best_model.pt"]["verified"] and not manifest["args.json"]["verified"]
    import hashlib

    assert manifest["best_model.pt"]["sha256"] == hashlib.sha256(b"weights").hexdigest()
    with pytest.raises(ScgbError, match="not a plain file name"):
        fetch_checkpoint(
            {"files": {"../x": {"url": "u"}}}, tmp_path / "o", downloader=fake_download
        )
    with pytest.raises(ScgbError, match="no files"):
        fetch_checkpoint({"files": {}}, tmp_path / "o", downloader=fake_download)


def test_fetch_checkpoint_cli_with_real_downloader(scgpt_ckpt, tmp_path, capsys):
    """The CLI subcommand the workflow rule runs, with file:// urls (no network here)."""
    from scgraphbench.cli import main

    folder, _, _ = scgpt_ckpt
    files = {
        n: {"url": (folder / n).resolve().as_uri()}
        for n in ("best_model.pt", "args.json", "vocab.json")
    }
    out = tmp_path / "resources" / "checkpoints" / "scgpt"
    assert (
        main(
            [
                "fetch-checkpoint",
                "--name",
                "scgpt",
                "--spec",
                json.dumps({"files": files}),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    manifest = json.loads((out / "MANIFEST.json").read_text())
    assert set(manifest) == {"best_model.pt", "args.json", "vocab.json"}
    model = get_family("backbone_scgpt")(annotation_ctx(DATASET_GENES), checkpoint=str(out))
    assert model.coverage.n_matched == 12
    bad = {**files, "args.json": {**files["args.json"], "sha256": "0" * 64}}
    out2 = tmp_path / "other"
    assert main(["fetch-checkpoint", "--spec", json.dumps({"files": bad}), "--out", str(out2)]) == 2
    assert not out2.exists() and "sha256" in capsys.readouterr().err


@pytest.mark.slow
def test_backbones_smk_fetches_and_resolves_checkpoints(scgpt_ckpt, tmp_path):
    """workflow/rules/backbones.smk under Snakemake: the schema accepts a backbones section,
    fetch_checkpoint downloads the files (file:// here), and models resolve their folder or
    a skip message."""
    import os
    import subprocess
    import sys

    import yaml

    repo = Path(__file__).resolve().parents[1]
    folder, _, _ = scgpt_ckpt
    config = yaml.safe_load((repo / "tests" / "configs" / "tiny.yaml").read_text())
    files = {
        n: {"url": (folder / n).resolve().as_uri()}
        for n in ("best_model.pt", "args.json", "vocab.json")
    }
    config["backbones"] = {
        "scgpt": {"checkpoint": None, "files": files},
        "geneformer": None,
        "gf_v2": {"checkpoint": "/somewhere/gf_v2", "files": files},  # a folder wins
    }
    config["models"] = {
        "scgpt_ppr": {
            "family": "backbone_scgpt",
            "graphs": ["coexpr"],
            "params": {"attention": "diffusion_ppr"},
        },
        "scgpt_local": {"family": "backbone_scgpt", "params": {"checkpoint": str(folder)}},
        "geneformer_dense": {"family": "backbone_geneformer", "params": {}},
        "geneformer_v2": {"family": "backbone_geneformer", "params": {"backbone": "gf_v2"}},
        "transformer": {"params": {"d_model": 16}},
        "logreg": {},
    }
    config.pop("studies")  # they name models this test replaces
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    (tmp_path / "Snakefile").write_text(
        f'configfile: "config.yaml"\n'
        f'include: "{repo}/workflow/rules/common.smk"\n'
        f'include: "{repo}/workflow/rules/backbones.smk"\n'
        "import types\n"
        "rule all:\n"
        '    input: "resolved.json"\n'
        "rule resolve:\n"
        "    input: [f for m in PLAN.models for f in "
        "backbone_input(types.SimpleNamespace(model=m))]\n"
        '    output: "resolved.json"\n'
        "    run:\n"
        "        import json\n"
        "        from scgraphbench.plan.build import backbone_params\n"
        "        skip = lambda m: next((s for s in PLAN.skipped if f\"'{m}'\" in s), None)\n"
        "        out = {m: {'skip': skip(m), 'params': backbone_params(config, PLAN.models[m], "
        "PLAN.models[m].params) if m in PLAN.models else {}} for m in config['models']}\n"
        "        open(output[0], 'w').write(json.dumps(out))\n"
    )
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    res = subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "1"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    fetched = tmp_path / "resources" / "checkpoints" / "scgpt"
    assert {"best_model.pt", "args.json", "vocab.json", "MANIFEST.json"} <= {
        p.name for p in fetched.iterdir()
    }
    resolved = json.loads((tmp_path / "resolved.json").read_text())
    assert resolved["scgpt_ppr"]["skip"] is None
    assert resolved["scgpt_ppr"]["params"]["attention"] == "diffusion_ppr"
    assert resolved["scgpt_ppr"]["params"]["checkpoint"] == "resources/checkpoints/scgpt"
    assert resolved["scgpt_local"]["params"]["checkpoint"] == str(folder)
    assert "backbones.geneformer.checkpoint" in resolved["geneformer_dense"]["skip"]
    assert "checkpoint" not in resolved["geneformer_dense"]["params"]
    assert resolved["geneformer_v2"]["params"]["checkpoint"] == "/somewhere/gf_v2"
    assert resolved["transformer"]["skip"] is None
    assert resolved["transformer"]["params"]["d_model"] == 16
    assert "checkpoint" not in resolved["transformer"]["params"]
    assert not (tmp_path / "resources" / "checkpoints" / "gf_v2").exists()


def test_attention_flops_follow_the_cost_formula(scgpt_ckpt):
    from scgraphbench.train.cost import attention_flops as mixer_flops

    folder, _, _ = scgpt_ckpt
    n = len(DATASET_GENES)
    graph = random_graph(n)
    ctx = annotation_ctx(DATASET_GENES, graph)
    family = get_family("backbone_scgpt")
    dense = family(ctx, checkpoint=str(folder), include_zero_genes=True)
    L, d = 13, 16  # 12 matched genes + <cls>
    assert mixer_flops(dense, n) == 2 * (8 * L * d * d + 4 * L * L * d)
    ppr = family(ctx, checkpoint=str(folder), attention="diffusion_ppr", steps=3)
    E = ppr.gene_graph.graph.n_edges  # matched genes + <cls> edges + self-loops
    assert E == graph[:12, :12].nnz + 2 * 12 + 13
    assert mixer_flops(ppr, n) == 2 * (8 * L * d * d + (4 + 2 * 3) * E * (d + 1))


def test_scgpt_perturbation_run_end_to_end(tmp_path):
    """scGPT through the common perturbation run path on the data stage's synthetic GEARS
    preparation; Geneformer is refused for this task before anything is built."""
    from scgraphbench.data.prepare import prepare_gears
    from scgraphbench.data.synthetic import synthetic_perturbation_adata
    from scgraphbench.graphs.io import save_graph
    from scgraphbench.io import read_json
    from scgraphbench.train.run import run

    raw = synthetic_perturbation_adata(
        n_genes=24, n_perturbations=8, n_combos=4, cells_per_perturbation=8, n_control=60, seed=1
    )
    prepared = prepare_gears(
        raw, dataset="syn", seed=0, n_top_genes=None, source="synthetic_perturbation"
    )
    path = tmp_path / "syn.h5ad"
    prepared.write_h5ad(path)
    genes = list(prepared.var_names)
    folder = tmp_path / "ckpt"
    build_scgpt_checkpoint(folder, genes[:20])
    save_graph(tmp_path / "g.npz", random_graph(len(genes), p=0.2), genes)
    train = {"epochs": 2, "batch_size": 32, "device": "cpu", "lr": 1e-3}
    params = {"checkpoint": str(folder), "attention": "diffusion_ppr", "steps": 2}
    res = run(
        str(path),
        str(tmp_path / "g.npz"),
        "backbone_scgpt",
        params,
        train,
        0,
        str(tmp_path / "run"),
    )
    metrics = read_json(tmp_path / "run" / "metrics.json")
    assert metrics["n_parameters"] == res["n_parameters"] > 0
    assert np.isfinite(metrics["pearson_delta"]) and metrics["epochs_run"] == 2
    with pytest.raises(ScgbError, match="does not do the perturbation task"):
        run(
            str(path),
            None,
            "backbone_geneformer",
            {"checkpoint": str(folder)},
            train,
            0,
            str(tmp_path / "run_gf"),
        )


@pytest.mark.parametrize("style", ["category", "scaling"])
def test_scgpt_other_value_encodings(scgpt_ckpt, style):
    """args.json's input_emb_style: category (an embedding of the bin) or scaling
    (gene embedding times the value), as scGPT's TransformerModel."""
    folder, _, _ = scgpt_ckpt
    args = json.loads((folder / "args.json").read_text())
    state = torch.load(folder / "best_model.pt", weights_only=True)
    state = {k: v for k, v in state.items() if not k.startswith("value_encoder.")}
    n_bins, d = args["n_bins"], args["embsize"]
    if style == "category":
        state["value_encoder.embedding.weight"] = torch.randn(n_bins + 2, d)
        state["value_encoder.enc_norm.weight"] = torch.rand(d) + 0.5
        state["value_encoder.enc_norm.bias"] = torch.randn(d)
    torch.save(state, folder / "best_model.pt")
    pad_value = n_bins if style == "category" else -2
    (folder / "args.json").write_text(
        json.dumps({**args, "input_emb_style": style, "pad_value": pad_value})
    )
    model = get_family("backbone_scgpt")(annotation_ctx(DATASET_GENES), checkpoint=str(folder))
    model.eval()
    x = expression(3, len(DATASET_GENES), seed=11)
    tok = model.tokens(x)
    with torch.no_grad():
        got = model._embed(tok["ids"], tok["values"])
        genes = model.encoder(tok["ids"])
        if style == "category":
            emb = F.embedding(tok["values"].long(), state["value_encoder.embedding.weight"])
            want = genes + F.layer_norm(
                emb,
                (d,),
                state["value_encoder.enc_norm.weight"],
                state["value_encoder.enc_norm.bias"],
            )
        else:
            want = genes * tok["values"].unsqueeze(-1)
    torch.testing.assert_close(got, want)
    assert tok["values"][tok["ids"].eq(model.pad_id)].eq(pad_value).all()
