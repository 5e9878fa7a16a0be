"""Geneformer (Theodoris et al. 2023) as a backbone: its BERT checkpoint through
``transformers``, fine-tuned as is or with self-attention replaced by graph-masked or
GenoHoption diffusion attention that reuses the pretrained query/key/value and output
projections (no new attention parameters).

The checkpoint folder (BERT weights and Geneformer's dictionaries) is read by
:mod:`.backbones.geneformer_checkpoint`.

Rank-value encoding (``geneformer/tokenizer.py``): a cell's normalised expression
(counts / total * 10,000) is divided by each gene's corpus median; its detected genes are
ordered by that value, highest first, truncated to the model input size; V2 checkpoints
(``<cls>`` in the token dictionary) wrap the genes in ``<cls>`` ... ``<eos>``. Here the
normalised expression is expm1 of the prepared log1p(CP10k) matrix, so the ranks are
Geneformer's; only the genes are the prepared dataset's (its HVGs), not the whole
transcriptome. Ties keep dataset order (stable sort).

Token positions change from cell to cell with the ranks, so graph attention maps each
cell's tokens onto the fixed gene graph (:func:`scgraphbench.kernels.injected.attention_core`),
so that edges follow genes; its cost is that of the whole matched-gene graph per cell,
whatever the cell's number of detected genes.

The layer loop is written here over the ``BertModel``'s own submodules only so that the
attention core can be swapped; tests check that dense mode reproduces ``BertModel``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from scgraphbench.errors import ScgbError
from scgraphbench.kernels.injected import attention_core, attention_flops, merge_heads, split_heads
from scgraphbench.models.backbones.attention import attention_settings, backbone_graph
from scgraphbench.models.backbones.checkpoint import freeze, freeze_lowest
from scgraphbench.models.backbones.geneformer_checkpoint import (
    GeneformerDictionaries,
    load_bert,
    require_geneformer_checkpoint,
)
from scgraphbench.models.backbones.vocabulary import match_genes
from scgraphbench.models.contract import FamilyModule
from scgraphbench.models.registry import ModelContext, register

FAMILY = "backbone_geneformer"


@register(FAMILY)
class GeneformerBackbone(FamilyModule):
    """Geneformer fine-tuned for cell-type annotation.

    Params: ``checkpoint`` (folder, required), ``attention`` (dense | masked |
    diffusion_ppr | diffusion_heat), ``alpha``/``t``/``steps`` (diffusion; ``steps``
    defaults to 1, as GenoHoption's Geneformer runs), ``freeze_layers`` (first N BERT
    layers, as Geneformer's Classifier), ``freeze_embeddings``, ``pooling`` (None: ``cls``
    when the checkpoint has a ``<cls>`` token, else ``mean`` over gene tokens, Geneformer's
    cell embedding), ``max_len`` (None: config.max_position_embeddings),
    ``token_dictionary`` / ``gene_median_dictionary`` / ``gene_name_id_dictionary`` (paths;
    None: found in the checkpoint folder), ``backbone`` (the config's backbones key).
    """

    recommended_lr = 5e-5  # Geneformer's cell-classification example (AdamW, linear schedule)
    tasks = ("annotation",)

    def __init__(
        self,
        ctx: ModelContext,
        checkpoint: str | None = None,
        attention: str = "dense",
        alpha: float = 0.25,
        t: float = 5.0,
        steps: int = 1,
        freeze_layers: int = 0,
        freeze_embeddings: bool = False,
        pooling: str | None = None,
        max_len: int | None = None,
        token_dictionary: str | None = None,
        gene_median_dictionary: str | None = None,
        gene_name_id_dictionary: str | None = None,
        backbone: str | None = None,
    ) -> None:
        super().__init__()
        if ctx.task != "annotation":
            raise ScgbError(
                f"{FAMILY} supports the annotation task only (got '{ctx.task}')",
                field="models",
                fix="use backbone_scgpt for perturbation",
            )
        self.attention = attention
        self.core_params = attention_settings(attention, alpha, t, steps, FAMILY)
        self.checkpoint_dir = require_geneformer_checkpoint(checkpoint, FAMILY)
        dictionaries = GeneformerDictionaries.read(
            self.checkpoint_dir,
            {
                "token_dictionary": token_dictionary,
                "gene_median_dictionary": gene_median_dictionary,
                "gene_name_id_dictionary": gene_name_id_dictionary,
            },
        )
        self.dictionary_paths = dictionaries.paths
        self._special_tokens(dictionaries.tokens)
        gene_idx = self._match_vocabulary(ctx.gene_names, dictionaries)
        self.gene_graph = backbone_graph(ctx.graph, gene_idx, self.n_global, attention, FAMILY)
        self.bert = load_bert(self.checkpoint_dir)
        self.config = self.bert.config
        self.n_heads = self.config.num_attention_heads
        self._choose_input(max_len, pooling)
        self.head = nn.Sequential(
            nn.Dropout(self.config.hidden_dropout_prob),
            nn.Linear(self.config.hidden_size, ctx.n_classes),
        )
        freeze_lowest(self.bert.encoder.layer, freeze_layers, FAMILY)
        if freeze_embeddings:
            freeze([self.bert.embeddings])

    # -- construction steps -----------------------------------------------------------------
    def _special_tokens(self, tokens: dict[str, Any]) -> None:
        """<pad>, and <cls>/<eos> of V2 checkpoints (then graph nodes 0 and 1)."""
        self.pad_id = int(tokens["<pad>"])
        self.has_cls = "<cls>" in tokens and "<eos>" in tokens
        self.cls_id = int(tokens["<cls>"]) if self.has_cls else -1
        self.eos_id = int(tokens["<eos>"]) if self.has_cls else -1
        self.n_global = 2 if self.has_cls else 0

    def _match_vocabulary(
        self, gene_names: list[str], dictionaries: GeneformerDictionaries
    ) -> np.ndarray:
        """Dataset genes -> tokens and corpus medians (buffers); returns matched positions."""
        gene_idx, token_ids, self.coverage = match_genes(
            gene_names, dictionaries.token_of, "Geneformer"
        )
        median_of = dictionaries.median_of_token()
        self.register_buffer("gene_idx", torch.from_numpy(gene_idx), persistent=False)
        self.register_buffer("token_ids", torch.from_numpy(token_ids), persistent=False)
        self.register_buffer(
            "medians",
            torch.tensor([median_of[int(t)] for t in token_ids], dtype=torch.float32),
            persistent=False,
        )
        return gene_idx

    def _choose_input(self, max_len: int | None, pooling: str | None) -> None:
        """Tokens per cell and the cell embedding, checked against the checkpoint."""
        longest = self.config.max_position_embeddings
        self.max_len = int(max_len or longest)
        if not 1 + self.n_global <= self.max_len <= longest:
            raise ScgbError(
                f"max_len={self.max_len} is outside what the checkpoint takes",
                field="params.max_len",
                fix=f"use at most {longest} (or leave unset)",
            )
        self.pooling = pooling or ("cls" if self.has_cls else "mean")
        if self.pooling not in ("cls", "mean") or (self.pooling == "cls" and not self.has_cls):
            raise ScgbError(
                f"pooling '{self.pooling}' is not available for this checkpoint",
                field="params.pooling",
                fix="use mean (or cls with a V2 checkpoint, which has <cls>)",
            )

    def save_pretrained(self, folder: str | Path) -> Path:
        """Write the encoder as a Hugging Face BERT folder plus the dictionaries, loadable
        again by this adapter (the classification head is not part of it)."""
        import shutil

        folder = Path(folder)
        self.bert.save_pretrained(str(folder))
        for path in self.dictionary_paths.values():
            if path is not None and path.resolve() != (folder / path.name).resolve():
                shutil.copyfile(path, folder / path.name)
        return folder

    def attention_flops(self, n_genes: int) -> int:
        """Attention FLOPs per cell (train/cost.py's formula), for a cell whose detected
        genes fill the input (the bound); graph modes run on every matched gene."""
        return attention_flops(
            n_layers=self.config.num_hidden_layers,
            d_model=self.config.hidden_size,
            n_tokens=min(len(self.gene_idx) + self.n_global, self.max_len),
            mode=self.attention,
            graph=None if self.gene_graph is None else self.gene_graph.graph,
            steps=self.core_params["steps"],
            mapped=True,
        )

    # -- rank-value encoding ---------------------------------------------------------------
    def tokens(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Input ids, key validity and graph node of each position, for a batch of cells.

        Vectorised over the batch: one stable descending sort of median-scaled expression.
        """
        xm = x[:, self.gene_idx]
        B = xm.shape[0]
        detected = xm > 0
        score = torch.where(detected, torch.expm1(xm) / self.medians, torch.full_like(xm, -1.0))
        order = torch.sort(score, dim=1, descending=True, stable=True).indices
        n_genes = detected.sum(1).clamp(max=self.max_len - self.n_global)
        width = max(int(n_genes.max()) if B else 0, 1)
        order = order[:, :width]
        valid = torch.arange(width, device=x.device)[None, :] < n_genes[:, None]
        ids = torch.where(valid, self.token_ids[order], self.pad_id)
        node = torch.where(valid, order + self.n_global, -1)
        gene_pos = valid
        if self.has_cls:
            col = lambda v, dtype: torch.full((B, 1), v, dtype=dtype, device=x.device)  # noqa: E731
            ids = torch.cat([col(self.cls_id, torch.long), ids, col(self.pad_id, torch.long)], 1)
            node = torch.cat([col(0, torch.long), node, col(-1, torch.long)], 1)
            valid = torch.cat([col(True, torch.bool), valid, col(False, torch.bool)], 1)
            gene_pos = torch.cat([col(False, torch.bool), gene_pos, col(False, torch.bool)], 1)
            eos_at = (1 + n_genes)[:, None]  # right after the cell's last gene
            ids = ids.scatter(1, eos_at, self.eos_id)
            node = node.scatter(1, eos_at, 1)
            valid = valid.scatter(1, eos_at, True)
        else:
            # a cell with no detected gene keeps one padding key so attention stays defined
            valid = valid.clone()
            valid[:, 0] = True
        return {"ids": ids, "key_valid": valid, "node_index": node, "gene_pos": gene_pos}

    def encode(self, tok: dict[str, torch.Tensor]) -> torch.Tensor:
        """BERT forward with the attention core chosen by ``attention``."""
        core: dict[str, Any] = dict(mode=self.attention, **self.core_params)
        if self.attention == "dense":
            core["key_valid"] = tok["key_valid"]
        else:
            core["graph"] = self.gene_graph.graph
            core["node_index"] = tok["node_index"]
        p_drop = self.config.attention_probs_dropout_prob
        h = self.bert.embeddings(input_ids=tok["ids"])
        for layer in self.bert.encoder.layer:
            sa = layer.attention.self
            q, k, v = (split_heads(proj(h), self.n_heads) for proj in (sa.query, sa.key, sa.value))
            ctx = merge_heads(
                attention_core(q, k, v, dropout_p=p_drop, training=self.training, **core)
            )
            a = layer.attention.output(ctx, h)  # dense, dropout, LayerNorm(+ residual)
            h = layer.output(layer.intermediate(a), a)
        return h

    def forward(self, x: torch.Tensor, pert: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        tok = self.tokens(x)
        h = self.encode(tok)
        if self.pooling == "cls":
            emb = h[:, 0]
        else:
            w = tok["gene_pos"].to(h.dtype).unsqueeze(-1)
            emb = (h * w).sum(1) / w.sum(1).clamp(min=1.0)
        return {"embedding": emb, "logits": self.head(emb)}
