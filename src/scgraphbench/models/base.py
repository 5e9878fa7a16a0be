"""Shared pieces of the neural token families: genes as tokens, pre-LN blocks, pooling, heads.

A cell is a sequence of gene tokens. Token of gene g = LN(gene-identity embedding) +
LN(encoding of the expression value x_g) (+ an optional sinusoidal encoding of the gene's
position in the dataset's gene order, to test whether position matters) (+ a
perturbation-flag embedding on the perturbation task); scGPT's GeneEncoder and
ContinuousValueEncoder/CategoryValueEncoder. Families differ only in how tokens mix: a
:class:`TokenMixer` subclass, and for the sparse-pattern families the attention graph
(:meth:`GeneTokenModel.attention_graph`).

Why it is built this way (measured on pbmc68k_reduced: 300 genes, 455 training cells, 10
classes, 15 epochs of batch 32 at lr 1e-3, d_model 32, 2 layers; before these changes every
token family sat on the class prior, test macro-F1 0.05-0.12, and a Transformer step took
0.70 CPU-s):
- The gene embedding ends in a LayerNorm and starts small (std 0.02). With N(0, 1)
  embeddings and no norm, Adam at lr 1e-3 moves them ~0.1% a step and the value signal is
  drowned by the gene identity. The continuous value encoding has no LayerNorm by default
  (``value_norm``; see :class:`ValueEncoder`), and every residual branch starts at zero
  (``layer_scale``; see :class:`Block`): both measured on planted data (docs/training.md).
- The continuous value encoder starts as a hinge basis, relu(x - knot_k) with knots spread
  over the log-expression range, so values are told apart from the first step (PyTorch's
  default init leaves most hinges outside the range and the encoding nearly linear).
- Attention dropout is its own parameter (``attn_dropout``, default 0): any dropout on the
  attention weights sends PyTorch's SDPA from the fused flash kernel to the math path that
  materialises (B, H, L, L); 0.70 -> 0.16 CPU-s per Transformer step (B=32, L=301, d=32).
- Pooling: ``cls`` (scGPT/GenoHoption; graph families then get CLS<->gene global edges),
  ``mean``, or ``attention`` (a learned gate over genes, PyG's AttentionalAggregation). Mean
  pooling cannot weight marker genes and learns slowest; GNN families default to attention.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from scgraphbench.errors import ScgbError
from scgraphbench.models.contract import FamilyModule
from scgraphbench.models.registry import ModelContext
from scgraphbench.models.token_graph import with_global_nodes

# continuous encoder knots over standardised expression: zeros of sparse genes sit at -0.3..-2,
# expressed cells at 0..+4; beyond the last knot the hinges stay linear
STANDARDISED_RANGE = (-2.0, 4.0)
# batch-norm running statistics for evaluation: small datasets give 10-20 steps an epoch, and
# PyTorch's 0.1 leaves the epoch-0 validation on statistics 30% from their start values
POOL_NORM_MOMENTUM = 0.3
LOG_EXPRESSION_MAX = 10.0  # log1p(normalize_total(1e4)) values stay below this in practice


def quantile_bins(x: torch.Tensor, n_bins: int) -> torch.Tensor:
    """Per-cell quantile bins of (..., n) non-negative values: zero -> bin 0; a non-zero
    value -> bin ceil(F(x) * (n_bins - 1)) in 1..n_bins-1, where F(x) is the share of that
    cell's non-zero values that are <= x. Equal values always share a bin (ties never depend
    on gene order or on random draws). Not scGPT's binning, which cuts at interpolated
    quantiles and spreads ties at random (:mod:`scgraphbench.models.backbones.scgpt_binning`)."""
    nonzero = x > 0
    sorted_x = torch.sort(x, dim=-1).values
    n_zero = (~nonzero).sum(-1, keepdim=True)
    n_nonzero = nonzero.sum(-1, keepdim=True).clamp(min=1)
    at_most = torch.searchsorted(sorted_x.contiguous(), x.contiguous(), right=True) - n_zero
    frac = at_most.to(x.dtype) / n_nonzero.to(x.dtype)  # in (0, 1] for non-zeros
    bins = torch.ceil(frac * (n_bins - 1)).clamp(1, n_bins - 1).long()
    return torch.where(nonzero, bins, torch.zeros_like(bins))


class ValueEncoder(nn.Module):
    """Expression value -> (..., d): ``continuous`` (scGPT's ContinuousValueEncoder: Linear,
    ReLU, Linear, and its LayerNorm only with ``norm=True``) or ``binned`` (per-cell quantile
    bins, an embedding per bin, LayerNorm: scGPT's CategoryValueEncoder).

    ``value_range``: where the continuous encoder's hinge knots lie (the range of the values
    it is given: standardised expression in the token families).

    Why the continuous encoding has no LayerNorm by default: a LayerNorm over the d outputs
    of one scalar maps every value to a vector of the same norm, so a standardised value of
    0.01 weighs as much as one of 3 and the noise of unexpressed genes is blown up; a token
    model without blocks reached 69% of logistic regression's macro-F1 with it and 97%
    without it on the planted data (docs/training.md)."""

    def __init__(
        self,
        d_model: int,
        mode: str = "continuous",
        n_bins: int = 51,
        value_range: tuple[float, float] = (0.0, LOG_EXPRESSION_MAX),
        norm: bool = False,
    ) -> None:
        super().__init__()
        self.mode, self.n_bins = mode, n_bins
        if mode == "continuous":
            self.net = nn.Sequential(nn.Linear(1, d_model), nn.ReLU(), nn.Linear(d_model, d_model))
            # hinge basis: unit k is relu(x - knot_k), knots spread evenly over the values'
            # range, so that from the first step the encoding separates values anywhere in
            # it; PyTorch's default init puts most knots outside it and the encoding starts
            # nearly linear in x (4x more steps to learn).
            with torch.no_grad():
                self.net[0].weight.fill_(1.0)
                self.net[0].bias.copy_(-torch.linspace(*value_range, d_model))
        else:
            self.net = nn.Embedding(n_bins, d_model)
            nn.init.normal_(self.net.weight, std=0.02)
        self.norm = nn.LayerNorm(d_model) if norm or mode != "continuous" else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "continuous":
            return self.norm(self.net(x.unsqueeze(-1)))
        return self.norm(self.net(quantile_bins(x, self.n_bins)))


def gene_scaling(X_train: np.ndarray) -> dict[str, np.ndarray]:
    """Per-gene mean and standard deviation of log expression over the TRAINING cells, the
    ``ModelContext.extra`` entries (``gene_mean``, ``gene_std``) that neural families
    standardise their input with (as logistic regression's StandardScaler does). A gene
    constant on training cells gets std 1, so that it stays constant rather than blowing up."""
    X = np.asarray(X_train, dtype=np.float64)
    mean = X.mean(0)
    std = X.std(0)
    std = np.where(std > 1e-6, std, 1.0)
    return {"gene_mean": mean.astype(np.float32), "gene_std": std.astype(np.float32)}


class GeneStandardiser(nn.Module):
    """x -> (x - mean_g) / std_g with the training-cell statistics of
    :func:`gene_scaling` from ``ctx.extra`` (buffers, saved with the weights); the identity
    when the context carries none (a model built outside a training run)."""

    def __init__(self, ctx: ModelContext) -> None:
        super().__init__()
        n = ctx.n_genes
        mean, std = ctx.extra.get("gene_mean"), ctx.extra.get("gene_std")
        for name, value, fill in (("mean", mean, 0.0), ("std", std, 1.0)):
            t = torch.full((n,), fill) if value is None else torch.as_tensor(
                np.asarray(value, dtype=np.float32))
            if t.shape != (n,):
                raise ScgbError(
                    f"gene_{name} has shape {tuple(t.shape)}, the data has {n} genes",
                    field=f"extra.gene_{name}",
                    fix="compute it with models.base.gene_scaling on the training cells",
                )
            self.register_buffer(name, t.float())
        self.fitted = mean is not None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def sinusoidal_positions(n: int, d: int) -> torch.Tensor:
    """(n, d) Transformer sinusoidal encoding of positions 0..n-1."""
    pos = torch.arange(n, dtype=torch.float32).unsqueeze(1)
    div = torch.exp(torch.arange(0, d, 2, dtype=torch.float32) * (-math.log(10000.0) / d))
    pe = torch.zeros(n, d)
    pe[:, 0::2] = torch.sin(pos * div)
    pe[:, 1::2] = torch.cos(pos * div[: d // 2])
    return pe


class TokenMixer(nn.Module):
    """Maps tokens (B, L, d) -> (B, L, d). L = n_genes (+1 with a CLS token at index 0).

    ``dropout`` is the mixer's own dropout (on attention weights for attention mixers);
    ``graph`` the (L, L) attention/message graph for graph families, else None.

    The typed probes: :meth:`flops` (forward FLOPs per cell at L tokens: 2 L x the elements
    of the mixer's weight matrices, plus :meth:`core_flops`) and :meth:`attention_weights`.
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        dropout: float,
        ctx: ModelContext,
        graph: sp.csr_matrix | None,
        use_cls: bool = False,
        **params: Any,
    ) -> None:
        super().__init__()
        self.use_cls = use_cls

    def weight_elements(self) -> int:
        return int(sum(p.numel() for p in self.parameters() if p.dim() == 2))

    def core_flops(self, L: int) -> int:
        """FLOPs per cell of the mixing itself, beyond the weight matrices."""
        return 0

    def flops(self, L: int) -> int:
        return 2 * L * self.weight_elements() + self.core_flops(L)

    def attention_weights(self, h: torch.Tensor) -> torch.Tensor | None:
        """(B, H, L, L) attention weights of this mixer for its input ``h`` (B, L, d), or
        None for mixers without attention weights (GNN convolutions)."""
        return None


class MultiHeadMixer(TokenMixer):
    """Fused QKV projection + an attention core that families override + output projection.

    The fused ``qkv`` layout ((B, L, 3, H, d/H)) is what ``evaluate.attention`` reads maps from.
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        dropout: float,
        ctx: ModelContext,
        graph: sp.csr_matrix | None,
        **params: Any,
    ) -> None:
        super().__init__(d_model, n_heads, dropout, ctx, graph, **params)
        if d_model % n_heads:
            raise ScgbError(
                f"d_model={d_model} is not divisible by n_heads={n_heads}",
                field="params.n_heads",
                fix="pick n_heads dividing d_model",
            )
        self.n_heads, self.dropout = n_heads, dropout
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)

    def core(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """(B, H, L, dh) x3 -> (B, H, L, dh)."""
        raise NotImplementedError

    def heads(self, x: torch.Tensor) -> torch.Tensor:
        """(B, L, d) -> (3, B, H, L, d/H): q, k, v."""
        B, L, d = x.shape
        return self.qkv(x).view(B, L, 3, self.n_heads, d // self.n_heads).permute(2, 0, 3, 1, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, L, d = x.shape
        qkv = self.heads(x)
        h = self.core(qkv[0], qkv[1], qkv[2])
        return self.out(h.transpose(1, 2).reshape(B, L, d))

    def attention_mask(self, L: int, device: torch.device) -> torch.Tensor | None:
        """(L, L) bool: the keys each query may attend to; None for full attention."""
        return None

    def attention_weights(self, h: torch.Tensor) -> torch.Tensor | None:
        q, k, _ = self.heads(h)
        scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
        mask = self.attention_mask(h.shape[1], h.device)
        if mask is not None:
            scores = scores.masked_fill(~mask, -torch.inf)
        return torch.softmax(scores, dim=-1)


class Block(nn.Module):
    """Pre-LN residual block with LayerScale (Touvron et al. 2021):
    x + g1 * drop(mix(LN(x))), then x + g2 * drop(FFN(LN(x))), g1 and g2 learnable per
    channel from ``layer_scale``. At 0 every block starts as the identity, so that a token
    model starts as its gene-wise readout (close to logistic regression) and its blocks add
    only what training finds useful; at 1 it is the plain pre-LN block, which on a few
    hundred cells overfits through its first steps (docs/training.md)."""

    def __init__(self, mixer: nn.Module, d_model: int, dropout: float, ff_mult: int = 4,
                 layer_scale: float = 1.0) -> None:
        super().__init__()
        self.mixer = mixer
        self.ln1, self.ln2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.ff = nn.Sequential(
            nn.Linear(d_model, ff_mult * d_model),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(ff_mult * d_model, d_model),
        )
        self.drop = nn.Dropout(dropout)
        self.scale_mix = nn.Parameter(torch.full((d_model,), float(layer_scale)))
        self.scale_ff = nn.Parameter(torch.full((d_model,), float(layer_scale)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.scale_mix * self.drop(self.mixer(self.ln1(x)))
        return x + self.scale_ff * self.drop(self.ff(self.ln2(x)))


class GeneTokenModel(FamilyModule):
    """Genes as tokens, a stack of pre-LN blocks built from ``mixer_cls``, a pooled cell
    embedding (CLS token or mean over genes), and a classification or perturbation head.

    Forward: ``x`` (B, n_genes) log-normalised expression, ``pert`` (B, n_genes) 0/1 flags
    of perturbed genes (perturbation task). Returns ``{"embedding": (B, d), "logits": (B, C)}``
    for annotation or ``{"embedding", "pred": (B, n_genes)}`` for perturbation, where
    ``pred = x + delta`` and delta_g is read from gene g's final state and the cell embedding.

    Parameters (the ``params`` of a family in the config): ``d_model`` width (32),
    ``n_layers`` blocks (2), ``n_heads`` attention heads (4), ``dropout`` on residual branches
    and the FFN (0.1), ``attn_dropout`` on attention weights (0), ``ff_mult`` FFN width
    multiple (4), ``value_encoding`` continuous|binned (continuous), ``n_bins`` for binned
    (51), ``positional`` sinusoidal encoding of the dataset's gene order (false), ``pooling``
    cls|mean|attention (None: the family's ``default_pooling``), ``value_norm`` (false) and
    ``layer_scale`` (0); plus the mixer's own parameters. The catalog declares, checks and
    completes them before construction.
    """

    mixer_cls: type[TokenMixer] = TokenMixer
    default_pooling = "mean"
    family = "gene_token_model"

    def __init__(
        self,
        ctx: ModelContext,
        *,
        d_model: int,
        n_layers: int,
        n_heads: int,
        dropout: float,
        attn_dropout: float,
        ff_mult: int,
        value_encoding: str,
        n_bins: int,
        positional: bool,
        pooling: str | None,
        value_coupling: str,
        pool_norm: str,
        standardise: bool,
        value_norm: bool,
        layer_scale: float,
        **mixer_params: Any,
    ) -> None:
        super().__init__()
        pooling = self.default_pooling if pooling is None else pooling
        self.ctx, self.task, self.pooling = ctx, ctx.task, pooling
        self.use_cls = pooling == "cls"
        self.d_model = d_model
        n = ctx.n_genes
        self.gene_emb = nn.Embedding(n, d_model)
        nn.init.normal_(self.gene_emb.weight, std=0.02)  # small: see the module docstring
        self.gene_norm = nn.LayerNorm(d_model)
        # continuous values are standardised per gene with training-cell statistics
        # (ctx.extra, from gene_scaling) before the shared encoder; bins use raw values
        self.standardise = standardise and value_encoding == "continuous"
        self.scaler = GeneStandardiser(ctx) if self.standardise else None
        value_range = (
            STANDARDISED_RANGE
            if self.scaler is not None and self.scaler.fitted
            else (0.0, LOG_EXPRESSION_MAX)
        )
        self.value_enc = ValueEncoder(d_model, value_encoding, n_bins, value_range,
                                      norm=value_norm)
        self.value_coupling = value_coupling
        self.positional = positional
        # 'rank' (positional study): values are withheld and each gene carries only the
        # position it takes in its cell's expression ranking, so position is all there is
        self.rank_order = ctx.extra.get("token_order", "index") == "rank"
        if positional:
            self.register_buffer("pos", sinusoidal_positions(n, d_model), persistent=False)
        if self.use_cls:
            self.cls = nn.Parameter(torch.zeros(1, 1, d_model))
        if ctx.task == "perturbation":
            self.pert_emb = nn.Embedding(2, d_model)
            nn.init.normal_(self.pert_emb.weight, std=0.02)
        graph = self.attention_graph(ctx)
        self.mixing_graph = graph  # (L, L) scipy graph the mixers use, None for dense ones
        self.blocks = nn.ModuleList(
            Block(
                self.mixer_cls(
                    d_model, n_heads, attn_dropout, ctx, graph, use_cls=self.use_cls, **mixer_params
                ),
                d_model,
                dropout,
                ff_mult,
                layer_scale,
            )
            for _ in range(n_layers)
        )
        self.norm = nn.LayerNorm(d_model)
        if pooling == "attention":  # softmax(gate(h_g)) over genes, then the weighted sum
            # imported here: PyG's import costs seconds that non-GNN jobs need not pay
            from torch_geometric.nn.aggr import AttentionalAggregation

            self.attention_pool = AttentionalAggregation(nn.Linear(d_model, 1))
        # normalise the pooled cell embedding: a mean (or CLS / attention average) over many
        # gene tokens is a large cell-invariant vector plus a small cell-specific part, and
        # without this the head sees the same input for every cell (docs/training.md)
        # (annotation only: the perturbation head reads every gene's own state as well)
        self.pool_norm = (
            nn.Identity()
            if pool_norm == "none" or ctx.task != "annotation"
            else nn.BatchNorm1d(d_model, momentum=POOL_NORM_MOMENTUM)
            if pool_norm == "batch"
            else nn.LayerNorm(d_model)
        )
        if ctx.task == "annotation":
            self.head = nn.Sequential(
                nn.Linear(d_model, d_model), nn.ReLU(), nn.Linear(d_model, ctx.n_classes)
            )
        else:
            self.head = nn.Sequential(
                nn.Linear(2 * d_model, d_model), nn.ReLU(), nn.Linear(d_model, 1)
            )
        self.register_buffer("gene_ids", torch.arange(n), persistent=False)

    def attention_graph(self, ctx: ModelContext) -> sp.csr_matrix | None:
        """The (L, L) graph the mixers work on (a CLS row/column first when pooling is cls):
        the gene graph for graph families, None for dense ones. Pattern families override."""
        if not self.spec.needs_graph:
            return None
        if ctx.graph is None:
            raise ScgbError(
                f"family '{self.family}' needs a gene graph and none was given",
                field="graphs",
                fix=f"list graph variants under models.{self.family}.graphs",
            )
        if ctx.graph.shape != (ctx.n_genes, ctx.n_genes):
            raise ScgbError(
                f"gene graph is {ctx.graph.shape}, the data has {ctx.n_genes} genes",
                field="graphs",
                fix="align the graph to the dataset's genes",
            )
        return with_global_nodes(ctx.graph, int(self.use_cls))

    def tokens(self, x: torch.Tensor, pert: torch.Tensor | None) -> torch.Tensor:
        h = self.gene_norm(self.gene_emb(self.gene_ids)).unsqueeze(0)
        if self.rank_order:
            h = h.expand(x.shape[0], -1, -1)
            if self.positional:
                rank = torch.argsort(torch.argsort(-x, dim=-1, stable=True), dim=-1, stable=True)
                h = h + self.pos[rank]
        else:
            v = self.value_enc(self.scaler(x) if self.scaler is not None else x)
            # multiply: the value modulates its gene's own embedding, so that a mean over
            # genes is at once a gene-specific readout of the values (a random projection of
            # the expression vector, as logistic regression's input); add: scGPT's sum, whose
            # mean over genes sees only the cell's value histogram until a layer mixes the two
            h = h + h * v if self.value_coupling == "multiply" else h + v
            if self.positional:
                h = h + self.pos.unsqueeze(0)
        if pert is not None and self.task == "perturbation":
            h = h + self.pert_emb(pert.long())
        if self.use_cls:
            h = torch.cat([self.cls.expand(x.shape[0], -1, -1), h], dim=1)
        return h

    def encode(self, x: torch.Tensor, pert: torch.Tensor | None = None) -> torch.Tensor:
        """Final normalised token states (B, L, d), CLS first when pooling is cls."""
        h = self.tokens(x, pert)
        for block in self.blocks:
            h = block(h)
        return self.norm(h)

    def gene_states(self, x: torch.Tensor, pert: torch.Tensor | None = None) -> torch.Tensor:
        """Final per-gene states (B, n_genes, d), before pooling."""
        h = self.encode(x, pert)
        return h[:, 1:] if self.use_cls else h

    def pool(self, h: torch.Tensor, genes: torch.Tensor) -> torch.Tensor:
        """Cell embedding (B, d) from the final states."""
        if self.pooling == "cls":
            return h[:, 0]
        if self.pooling == "mean":
            return genes.mean(1)
        index = torch.zeros(genes.shape[1], dtype=torch.long, device=genes.device)
        return self.attention_pool(genes, index=index, dim_size=1, dim=-2).squeeze(-2)

    def mixers(self) -> list[TokenMixer]:
        return [block.mixer for block in self.blocks]

    def attention_flops(self, n_genes: int) -> int:
        L = n_genes + (1 if self.use_cls else 0)
        return int(sum(m.flops(L) for m in self.mixers()))

    def attention_maps(self, inputs: dict[str, torch.Tensor], n_genes: int, chunk: int = 4
                       ) -> np.ndarray | None:
        """Mean gene x gene attention over cells, heads and layers, recomputed from each
        mixer's input (a CLS token is dropped and rows renormalised); None when no mixer
        has attention weights."""
        captured: list[tuple[TokenMixer, torch.Tensor]] = []
        hooks = [m.register_forward_pre_hook(lambda mod, args: captured.append((mod, args[0])))
                 for m in self.mixers()]
        n_cells = next(iter(inputs.values())).shape[0]
        total, count = np.zeros((n_genes, n_genes)), 0
        self.eval()
        try:
            with torch.no_grad():
                for start in range(0, n_cells, chunk):
                    captured.clear()
                    self(**{k: v[start : start + chunk] for k, v in inputs.items()})
                    for mod, h in captured:
                        W = mod.attention_weights(h.float())
                        if W is None:
                            continue
                        W = W.mean(1)  # over heads: (B, L, L)
                        if W.shape[-1] == n_genes + 1:  # CLS first
                            W = W[:, 1:, 1:]
                            W = W / W.sum(-1, keepdim=True).clamp_min(1e-12)
                        total += W.sum(0).cpu().double().numpy()
                        count += W.shape[0]
        finally:
            for hook in hooks:
                hook.remove()
        return total / count if count else None

    def forward(self, x: torch.Tensor, pert: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        h = self.encode(x, pert)
        genes = h[:, 1:] if self.use_cls else h
        emb = self.pool(h, genes)
        if self.task == "annotation":
            emb = self.pool_norm(emb)
            return {"embedding": emb, "logits": self.head(emb)}
        # per-gene change from the control cell, conditioned on the cell embedding
        cell = emb.unsqueeze(1).expand_as(genes)
        delta = self.head(torch.cat([genes, cell], dim=-1)).squeeze(-1)
        return {"embedding": emb, "pred": x + delta}
