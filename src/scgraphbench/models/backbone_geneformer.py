"""Geneformer (Theodoris et al. 2023) as a backbone: its BERT checkpoint through
``transformers``, fine-tuned as is or with self-attention replaced by graph-masked or
GenoHoption diffusion attention that reuses the pretrained query/key/value and output
projections (no new attention parameters).

Checkpoint folder: ``config.json`` + weights (``model.safetensors`` or
``pytorch_model.bin``, a ``BertForMaskedLM`` or ``BertModel``) as on Hugging Face
(ctheodoris/Geneformer), plus Geneformer's dictionaries from its ``geneformer/`` package
folder: ``*token_dictionary*.pkl`` ({Ensembl ID: token}), ``*gene_median_dictionary*.pkl``
({Ensembl ID: non-zero median over the pretraining corpus}) and, to map gene symbols,
``*gene_name_id_dict*.pkl`` ({symbol: Ensembl ID}).

Rank-value encoding (``geneformer/tokenizer.py``): a cell's normalised expression
(counts / total * 10,000) is divided by each gene's corpus median; its detected genes are
ordered by that value, highest first, truncated to the model input size; V2 checkpoints
(``<cls>`` in the token dictionary) wrap the genes in ``<cls>`` ... ``<eos>``. Here the
normalised expression is expm1 of the prepared log1p(CP10k) matrix, so the ranks are
Geneformer's; only the genes are the prepared dataset's (its HVGs), not the whole
transcriptome. Ties keep dataset order (stable sort).

Token positions change from cell to cell with the ranks, so graph attention maps each
cell's tokens onto the fixed gene graph (:func:`attention_core`), so that edges follow
genes; its cost is that of the whole matched-gene graph per cell, whatever the cell's
number of detected genes.

The layer loop is written here over the ``BertModel``'s own submodules only so that the
attention core can be swapped; tests check that dense mode reproduces ``BertModel``.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn

from scgraphbench.errors import ScgbError
from scgraphbench.models._backbone_common import (
    GraphHolder,
    attention_core,
    attention_flops,
    check_attention_mode,
    check_diffusion_params,
    check_freeze_layers,
    freeze,
    log,
    match_genes,
    merge_heads,
    require_checkpoint,
    restrict_graph,
    split_heads,
)
from scgraphbench.models.contract import FamilyModule
from scgraphbench.models.registry import ModelContext, register

_DICTIONARIES = {
    "token_dictionary": "*token_dictionary*.pkl",
    "gene_median_dictionary": "*gene_median_dictionary*.pkl",
    "gene_name_id_dictionary": "*gene_name_id_dict*.pkl",
}
_WEIGHTS = ("model.safetensors", "pytorch_model.bin")


def _find_dictionary(folder: Path, param: str, given: str | None, required: bool) -> Path | None:
    """An explicit path (relative to the checkpoint folder) or the one file matching the
    released name pattern."""
    if given:
        path = Path(given).expanduser()
        path = path if path.is_absolute() else folder / path
        if not path.exists():
            raise ScgbError(
                f"Geneformer {param} not found",
                path=str(path),
                field=f"params.{param}",
                fix="give an existing file",
            )
        return path
    found = sorted(folder.glob(_DICTIONARIES[param]))
    if len(found) == 1:
        return found[0]
    if not found and not required:
        return None
    what = "no file matches" if not found else f"{len(found)} files match"
    raise ScgbError(
        f"Geneformer checkpoint: {what} {_DICTIONARIES[param]}",
        path=str(folder),
        field=f"params.{param}",
        fix=f"put Geneformer's {param.replace('_', ' ')} in the checkpoint folder "
        f"or name it with params.{param}",
    )


def read_mapping(path: Path, param: str) -> dict[str, Any]:
    """A dictionary file: pickle (Geneformer's format), JSON, or a two-column CSV/TSV."""
    try:
        if path.suffix in (".csv", ".tsv", ".txt"):
            table = pd.read_csv(path, sep="," if path.suffix == ".csv" else "\t", dtype=str)
            return dict(zip(table.iloc[:, 0], table.iloc[:, 1], strict=True))
        if path.suffix == ".json":
            data = json.loads(path.read_text())
        else:
            # Geneformer ships its dictionaries as pickles; unpickling runs code from the
            # file, so only use checkpoint folders from a source you trust.
            with path.open("rb") as f:
                data = pickle.load(f)
    except Exception as e:  # noqa: BLE001 - any parse failure is a bad file
        raise ScgbError(
            f"cannot read Geneformer {param}: {type(e).__name__}: {e}",
            path=str(path),
            field=f"params.{param}",
            fix="use the dictionary released with the checkpoint",
        ) from None
    if not isinstance(data, dict):
        raise ScgbError(
            f"Geneformer {param} is not a dictionary",
            path=str(path),
            field=f"params.{param}",
            fix="use the dictionary released with the checkpoint",
        )
    return data


@register("backbone_geneformer")
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
    needs_graph = False

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
        family = "backbone_geneformer"
        if ctx.task != "annotation":
            raise ScgbError(
                f"{family} supports the annotation task only (got '{ctx.task}')",
                field="models",
                fix="use backbone_scgpt for perturbation",
            )
        self.attention = check_attention_mode(attention, family)
        folder = require_checkpoint(checkpoint, family, ["config.json"])
        if not any((folder / w).exists() for w in _WEIGHTS):
            raise ScgbError(
                "Geneformer checkpoint folder has no weights",
                path=str(folder),
                field="params.checkpoint",
                fix=f"the folder needs {' or '.join(_WEIGHTS)} beside config.json",
            )
        self.checkpoint_dir = folder
        paths = {
            "token_dictionary": _find_dictionary(
                folder, "token_dictionary", token_dictionary, True
            ),
            "gene_median_dictionary": _find_dictionary(
                folder, "gene_median_dictionary", gene_median_dictionary, True
            ),
            "gene_name_id_dictionary": _find_dictionary(
                folder, "gene_name_id_dictionary", gene_name_id_dictionary, False
            ),
        }
        self.dictionary_paths = paths
        token_dict = read_mapping(paths["token_dictionary"], "token_dictionary")
        medians = read_mapping(paths["gene_median_dictionary"], "gene_median_dictionary")
        name_to_id = (
            {}
            if paths["gene_name_id_dictionary"] is None
            else read_mapping(paths["gene_name_id_dictionary"], "gene_name_id_dictionary")
        )
        if "<pad>" not in token_dict:
            raise ScgbError(
                "Geneformer token dictionary has no '<pad>' token",
                path=str(paths["token_dictionary"]),
                field="params.token_dictionary",
                fix="use the token dictionary released with the checkpoint",
            )
        self.pad_id = int(token_dict["<pad>"])
        self.has_cls = "<cls>" in token_dict and "<eos>" in token_dict
        self.cls_id = int(token_dict["<cls>"]) if self.has_cls else -1
        self.eos_id = int(token_dict["<eos>"]) if self.has_cls else -1
        self.n_global = 2 if self.has_cls else 0  # <cls> is node 0, <eos> node 1

        def lookup(name: str) -> int | None:
            ensembl = name if name in token_dict else name_to_id.get(name)
            if ensembl is None or ensembl not in token_dict or ensembl not in medians:
                return None
            return int(token_dict[ensembl])

        gene_idx, token_ids, self.coverage = match_genes(ctx.gene_names, lookup, "Geneformer")
        median_of = {int(token_dict[k]): float(v) for k, v in medians.items() if k in token_dict}
        self.register_buffer("gene_idx", torch.from_numpy(gene_idx), persistent=False)
        self.register_buffer("token_ids", torch.from_numpy(token_ids), persistent=False)
        self.register_buffer(
            "medians",
            torch.tensor([median_of[int(t)] for t in token_ids], dtype=torch.float32),
            persistent=False,
        )
        self.graph = GraphHolder(
            restrict_graph(ctx.graph, gene_idx, self.n_global, self.attention, family)
        )
        self.core_params = check_diffusion_params(self.attention, alpha, t, steps, family)

        self.bert = self._load_bert(folder)
        config = self.bert.config
        self.config = config
        self.n_heads = config.num_attention_heads
        self.max_len = int(max_len or config.max_position_embeddings)
        if not 1 + self.n_global <= self.max_len <= config.max_position_embeddings:
            raise ScgbError(
                f"max_len={self.max_len} is outside what the checkpoint takes",
                field="params.max_len",
                fix=f"use at most {config.max_position_embeddings} (or leave unset)",
            )
        self.pooling = pooling or ("cls" if self.has_cls else "mean")
        if self.pooling not in ("cls", "mean") or (self.pooling == "cls" and not self.has_cls):
            raise ScgbError(
                f"pooling '{self.pooling}' is not available for this checkpoint",
                field="params.pooling",
                fix="use mean (or cls with a V2 checkpoint, which has <cls>)",
            )
        self.head = nn.Sequential(
            nn.Dropout(config.hidden_dropout_prob), nn.Linear(config.hidden_size, ctx.n_classes)
        )
        n_layers = config.num_hidden_layers
        check_freeze_layers(freeze_layers, n_layers, family)
        freeze(self.bert.encoder.layer[:freeze_layers])
        if freeze_embeddings:
            freeze([self.bert.embeddings])

    def _load_bert(self, folder: Path) -> nn.Module:
        from transformers import BertModel
        from transformers.utils import logging as hf_logging

        verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
        hf_logging.set_verbosity_error()  # the unused MLM head is expected, not news
        hf_logging.disable_progress_bar()
        try:
            bert, info = BertModel.from_pretrained(
                str(folder),
                add_pooling_layer=False,
                local_files_only=True,
                output_loading_info=True,
            )
        except Exception as e:  # noqa: BLE001 - transformers raises many kinds here
            raise ScgbError(
                f"cannot load the Geneformer BERT checkpoint: {type(e).__name__}: {e}",
                path=str(folder),
                field="params.checkpoint",
                fix="the folder needs Geneformer's config.json and weights",
            ) from None
        finally:
            hf_logging.set_verbosity(verbosity)
            if bars:
                hf_logging.enable_progress_bar()
        missing = [k for k in info.get("missing_keys", []) if "pooler" not in k]
        if missing or info.get("mismatched_keys"):
            raise ScgbError(
                f"Geneformer weights do not match config.json (missing "
                f"{missing[:3]}, mismatched {list(info.get('mismatched_keys', []))[:3]})",
                path=str(folder),
                field="params.checkpoint",
                fix="config.json and the weights must come from the same checkpoint",
            )
        log.info(
            "Geneformer: loaded %d layers x %d from %s (%d checkpoint tensors unused, "
            "e.g. the masked-LM head)",
            bert.config.num_hidden_layers,
            bert.config.hidden_size,
            folder,
            len(info.get("unexpected_keys", [])),
        )
        return bert

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
            graph=self.graph.graph,
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
            core["graph"] = self.graph.on(tok["ids"].device)
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
