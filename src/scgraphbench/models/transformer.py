"""Dense Transformer: full self-attention over all gene tokens (PyTorch SDPA)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from scgraphbench.models.base import GeneTokenModel, MultiHeadMixer
from scgraphbench.models.registry import register


class DenseAttention(MultiHeadMixer):
    """softmax(q k^T / sqrt(d)) v over all tokens. With ``attn_dropout`` 0 (the default) SDPA
    runs its fused flash kernel; dropout on the weights forces the (B, H, L, L) math path."""

    def core(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        p = self.dropout if self.training else 0.0
        return F.scaled_dot_product_attention(q, k, v, dropout_p=p)

    def core_flops(self, L: int) -> int:
        return 4 * L * L * self.qkv.in_features  # q k^T and (weights) v


@register("transformer")
class Transformer(GeneTokenModel):
    """Genes as tokens with dense multi-head self-attention."""

    mixer_cls = DenseAttention
