"""Performer: FAVOR+ positive orthogonal random-feature attention (Choromanski et al. 2021),
linear in the number of genes; the attention of scBERT, used here as its proxy.

The FAVOR+ kernel is ``performer_pytorch.FastAttention`` (lucidrains' implementation, which
scBERT vendors); this file adds the seeding: features are drawn from a seeded generator and
redrawn every ``redraw_interval`` training forward passes (the Performer paper's feature
redrawing; performer-pytorch and scBERT default to 1000), each draw seeded by
(feature seed, draw count) so that a resumed run redraws the same features.
"""

from __future__ import annotations

import warnings
from typing import Any

import scipy.sparse as sp
import torch

from scgraphbench.errors import ScgbError
from scgraphbench.models.base import GeneTokenModel, MultiHeadMixer
from scgraphbench.models.registry import ModelContext, register

with warnings.catch_warnings():  # performer_pytorch 1.1.4 compares versions with distutils
    warnings.simplefilter("ignore", DeprecationWarning)
    from performer_pytorch import FastAttention
    from performer_pytorch.performer_pytorch import softmax_kernel


def seeded_projection(attn: FastAttention, seed: int) -> torch.Tensor:
    """A fresh (n_features, d_head) Gaussian orthogonal projection drawn from ``seed`` (on the
    CPU, leaving torch's global generators as they were)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return attn.create_projection(device="cpu")


class FavorAttention(MultiHeadMixer):
    """Multi-head attention whose softmax kernel is approximated with ``n_features`` positive
    random features per head (shared by the heads, as in performer-pytorch)."""

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        dropout: float,
        ctx: ModelContext,
        graph: sp.csr_matrix | None,
        *,
        n_features: int,
        redraw_interval: int,
        feature_seed: int | None,
        **params: Any,
    ) -> None:
        super().__init__(d_model, n_heads, dropout, ctx, graph, **params)
        if dropout:
            raise ScgbError(
                "performer: FAVOR+ never forms the attention matrix, so attn_dropout "
                "has nothing to drop",
                field="models.performer.params.attn_dropout",
                fix="set attn_dropout to 0 for performer (dropout still applies)",
            )
        self.fast = FastAttention(d_model // n_heads, nb_features=int(n_features))
        if feature_seed is None:  # the run's seed: reproducible per run
            feature_seed = ctx.seed
        self.redraw_interval = int(redraw_interval)
        # persistent, so that a checkpoint resumes with the same features and redraw schedule
        self.register_buffer("feature_seed", torch.tensor(int(feature_seed), dtype=torch.long))
        self.register_buffer("calls", torch.zeros((), dtype=torch.long))
        self.register_buffer("draws", torch.zeros((), dtype=torch.long))
        self.redraw()

    def redraw(self) -> None:
        proj = seeded_projection(self.fast, int(self.feature_seed) * 1_000_003 + int(self.draws))
        self.fast.projection_matrix.copy_(proj.to(self.fast.projection_matrix.device))
        self.draws += 1

    def flops(self, L: int) -> int:
        """Projections 2 L x weights, random features of q and k 2*2*L*m*d, then K'^T V
        and Q'(K'^T V) 2*2*L*m*d (d = all heads together)."""
        m, d = self.fast.nb_features, self.qkv.in_features
        return 2 * L * self.weight_elements() + 8 * L * m * d

    def attention_weights(self, h: torch.Tensor) -> torch.Tensor:
        """The attention FAVOR+ implies: D^-1 phi(q) phi(k)^T with the current features
        (never formed in training; formed here for the probe only)."""
        q, k, _ = self.heads(h)
        proj = self.fast.projection_matrix
        qf = softmax_kernel(q, projection_matrix=proj, is_query=True, device=q.device)
        kf = softmax_kernel(k, projection_matrix=proj, is_query=False, device=k.device)
        A = qf @ kf.transpose(-1, -2)
        return A / A.sum(-1, keepdim=True).clamp_min(1e-12)

    def core(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        if self.training and self.redraw_interval:
            if int(self.calls) and int(self.calls) % self.redraw_interval == 0:
                self.redraw()
            self.calls += 1
        return self.fast(q, k, v)


@register("performer")
class Performer(GeneTokenModel):
    """Genes as tokens with FAVOR+ attention: ``n_features`` random features (default 64),
    ``redraw_interval`` (training steps between redraws; 0 = fixed features),
    ``feature_seed`` (None: the run's seed)."""

    mixer_cls = FavorAttention
