"""Dense Transformer: full self-attention over all gene tokens (PyTorch SDPA)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from scgraphbench.models.base import GeneTokenModel, MultiHeadMixer
from scgraphbench.models.registry import register


class DenseAttention(MultiHeadMixer):
    def core(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)


@register("transformer")
class Transformer(GeneTokenModel):
    mixer_cls = DenseAttention
