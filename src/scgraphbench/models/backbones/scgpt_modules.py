"""scGPT's modules, named as ``scgpt/model/model.py: TransformerModel`` (annotation) and
``scgpt/model/generation_model.py: TransformerGenerator`` (perturbation), so that the
released state dict loads by name: ``GeneEncoder`` (``embedding`` + ``enc_norm``),
``ContinuousValueEncoder`` (``linear1``, ``linear2``, ``norm``) or ``CategoryValueEncoder``,
the encoder layers (``self_attn.in_proj_weight/bias``, ``self_attn.out_proj``, ``linear1``,
``linear2``, ``norm1``, ``norm2``), ``ClsDecoder`` and ``ExprDecoder``.

The layer forward is written here (rather than calling ``nn.TransformerEncoderLayer``) only
so that the attention core can be swapped; tests check that dense mode reproduces
``nn.TransformerEncoder`` with the same weights.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from scgraphbench.kernels.injected import attention_core, merge_heads, split_heads


class GeneEncoder(nn.Module):
    def __init__(self, n_tokens: int, d_model: int, padding_idx: int | None = None) -> None:
        super().__init__()
        self.embedding = nn.Embedding(n_tokens, d_model, padding_idx=padding_idx)
        self.enc_norm = nn.LayerNorm(d_model)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.enc_norm(self.embedding(ids))


class ContinuousValueEncoder(nn.Module):
    def __init__(self, d_model: int, dropout: float, max_value: int = 512) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.linear1 = nn.Linear(1, d_model)
        self.activation = nn.ReLU()
        self.linear2 = nn.Linear(d_model, d_model)
        self.norm = nn.LayerNorm(d_model)
        self.max_value = max_value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.clamp(x.unsqueeze(-1), max=self.max_value)
        x = self.linear2(self.activation(self.linear1(x)))
        return self.dropout(self.norm(x))


class CategoryValueEncoder(nn.Module):
    def __init__(self, n_embeddings: int, d_model: int, padding_idx: int | None = None) -> None:
        super().__init__()
        self.embedding = nn.Embedding(n_embeddings, d_model, padding_idx=padding_idx)
        self.enc_norm = nn.LayerNorm(d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.enc_norm(self.embedding(x.long()))


class ClsDecoder(nn.Module):
    def __init__(self, d_model: int, n_cls: int, n_layers: int = 3) -> None:
        super().__init__()
        self._decoder = nn.ModuleList()
        for _ in range(n_layers - 1):
            self._decoder.extend([nn.Linear(d_model, d_model), nn.ReLU(), nn.LayerNorm(d_model)])
        self.out_layer = nn.Linear(d_model, n_cls)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self._decoder:
            x = layer(x)
        return self.out_layer(x)


class ExprDecoder(nn.Module):
    def __init__(self, d_model: int) -> None:
        super().__init__()
        self.fc = nn.Sequential(
            nn.Linear(d_model, d_model),
            nn.LeakyReLU(),
            nn.Linear(d_model, d_model),
            nn.LeakyReLU(),
            nn.Linear(d_model, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x).squeeze(-1)


class ScGPTEncoderLayer(nn.Module):
    """``nn.TransformerEncoderLayer``'s parameters (scGPT's layer), with a swappable core.

    post norm (scGPT's default): x = norm1(x + attn(x)); x = norm2(x + ff(x)).
    pre norm, as scGPT writes it: x = norm1(x); x = x + attn(x); x = norm2(x); x = x + ff(x).
    """

    def __init__(
        self, d_model: int, n_heads: int, d_hid: int, dropout: float, pre_norm: bool = False
    ) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d_model, n_heads, dropout=dropout, batch_first=True)
        self.linear1 = nn.Linear(d_model, d_hid)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(d_hid, d_model)
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.dropout1, self.dropout2 = nn.Dropout(dropout), nn.Dropout(dropout)
        self.n_heads, self.attn_dropout, self.pre_norm = n_heads, dropout, pre_norm

    def attend(self, x: torch.Tensor, core: dict[str, Any]) -> torch.Tensor:
        qkv = F.linear(x, self.self_attn.in_proj_weight, self.self_attn.in_proj_bias)
        q, k, v = (split_heads(t, self.n_heads) for t in qkv.chunk(3, dim=-1))
        h = attention_core(q, k, v, dropout_p=self.attn_dropout, training=self.training, **core)
        return self.self_attn.out_proj(merge_heads(h))

    def feed_forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear2(self.dropout(F.relu(self.linear1(x))))

    def forward(self, x: torch.Tensor, core: dict[str, Any]) -> torch.Tensor:
        if self.pre_norm:
            x = self.norm1(x)
            x = x + self.dropout1(self.attend(x, core))
            x = self.norm2(x)
            return x + self.dropout2(self.feed_forward(x))
        x = self.norm1(x + self.dropout1(self.attend(x, core)))
        return self.norm2(x + self.dropout2(self.feed_forward(x)))
