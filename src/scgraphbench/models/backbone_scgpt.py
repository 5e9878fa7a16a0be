"""scGPT (Cui et al. 2024) as a backbone: its released checkpoint, fine-tuned as is or with
its self-attention replaced by graph-masked or GenoHoption diffusion attention that reuses
the pretrained Q/K/V and output projections (no new attention parameters).

The checkpoint folder (``best_model.pt``, ``args.json``, ``vocab.json``) is read by
:mod:`.backbones.scgpt_checkpoint`; the modules, named as scGPT's ``TransformerModel`` /
``TransformerGenerator`` so that the released weights load by name, are in
:mod:`.backbones.scgpt_modules`; binned inputs use scGPT's own binning
(:mod:`.backbones.scgpt_binning`), whose random tie spreading draws from torch's generator
in training (re-seeded per epoch by the Trainer, so a resumed run replays it) and from a
generator seeded with the run's seed in evaluation (repeatable predictions).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import torch
from torch import nn

from scgraphbench.errors import ScgbError
from scgraphbench.io import write_json
from scgraphbench.kernels.injected import attention_flops
from scgraphbench.models.backbones.attention import attention_settings, backbone_graph
from scgraphbench.models.backbones.checkpoint import freeze, freeze_lowest, log, require_checkpoint
from scgraphbench.models.backbones.scgpt_binning import scgpt_binning
from scgraphbench.models.backbones.scgpt_checkpoint import (
    FILES,
    ScGPTArgs,
    load_scgpt_state,
    read_scgpt_args,
    read_scgpt_vocab,
    save_scgpt_state,
    select_pretrained,
)
from scgraphbench.models.backbones.scgpt_modules import (
    CategoryValueEncoder,
    ClsDecoder,
    ContinuousValueEncoder,
    ExprDecoder,
    GeneEncoder,
    ScGPTEncoderLayer,
)
from scgraphbench.models.backbones.vocabulary import match_genes
from scgraphbench.models.contract import FamilyModule
from scgraphbench.models.registry import ModelContext, register

FAMILY = "backbone_scgpt"


@register(FAMILY)
class ScGPTBackbone(FamilyModule):
    """scGPT fine-tuned for cell-type annotation (CLS token -> ``cls_decoder``) or for
    perturbation (control cell + perturbed-gene flags -> expression of every gene).

    Params: ``checkpoint`` (folder, required), ``attention`` (dense | masked |
    diffusion_ppr | diffusion_heat), ``alpha``/``t``/``steps`` (diffusion, GenoHoption's
    0.25/5/6), ``freeze_layers`` (first N encoder layers), ``freeze_embeddings`` (gene and
    value encoders), ``include_zero_genes`` (None: False for annotation as scGPT's
    annotation tutorial, True for perturbation as its perturbation tutorial), ``dropout``
    (None: args.json), ``load_heads`` (also load head weights present in the checkpoint,
    e.g. one this adapter exported), ``backbone`` (the config's backbones key; a label).
    """

    recommended_lr = 1e-4  # scGPT's annotation and perturbation tutorials
    tasks = ("annotation", "perturbation")

    def __init__(
        self,
        ctx: ModelContext,
        checkpoint: str | None = None,
        attention: str = "dense",
        alpha: float = 0.25,
        t: float = 5.0,
        steps: int = 6,
        freeze_layers: int = 0,
        freeze_embeddings: bool = False,
        include_zero_genes: bool | None = None,
        dropout: float | None = None,
        load_heads: bool = False,
        backbone: str | None = None,
    ) -> None:
        super().__init__()
        self.ctx, self.task, self.seed = ctx, ctx.task, ctx.seed
        self.perturbation = ctx.task == "perturbation"
        self.attention = attention
        self.core_params = attention_settings(attention, alpha, t, steps, FAMILY)
        self.checkpoint_dir = require_checkpoint(checkpoint, FAMILY, FILES)
        self.args = read_scgpt_args(self.checkpoint_dir)
        self.vocab = read_scgpt_vocab(self.checkpoint_dir, self.args.pad_token)
        self.pad_id, self.cls_id = self.vocab[self.args.pad_token], self.vocab["<cls>"]
        self._choose_inputs(include_zero_genes)
        gene_idx = self._match_vocabulary(ctx.gene_names)
        self.n_global = 0 if self.perturbation else 1  # <cls> is node 0 for annotation
        self.gene_graph = backbone_graph(ctx.graph, gene_idx, self.n_global, attention, FAMILY)
        self._build_modules(self.args, self.args.dropout if dropout is None else float(dropout))
        self._load_weights(self.checkpoint_dir / "best_model.pt", load_heads)
        freeze_lowest(self.transformer_encoder.layers, freeze_layers, FAMILY)
        if freeze_embeddings:
            freeze([self.encoder, self.value_encoder])

    # -- construction steps -----------------------------------------------------------------
    def _choose_inputs(self, include_zero_genes: bool | None) -> None:
        """Which genes become tokens and how their values are encoded (args.json)."""
        self.n_bins, self.pad_value = self.args.n_bins, self.args.pad_value
        self.input_style, self.input_emb_style = self.args.input_style, self.args.input_emb_style
        self.include_zero = (
            self.perturbation if include_zero_genes is None else bool(include_zero_genes)
        )
        if self.perturbation and not self.include_zero:
            raise ScgbError(
                "scGPT's perturbation setup feeds every gene of the control cell",
                field="params.include_zero_genes",
                fix="leave include_zero_genes unset (or true) for perturbation",
            )

    def _match_vocabulary(self, gene_names: list[str]) -> np.ndarray:
        """Dataset genes -> vocabulary tokens (buffers); returns the matched positions."""
        gene_idx, token_ids, self.coverage = match_genes(gene_names, self.vocab.get, "scGPT")
        self.register_buffer("gene_idx", torch.from_numpy(gene_idx), persistent=False)
        self.register_buffer("token_ids", torch.from_numpy(token_ids), persistent=False)
        return gene_idx

    def _build_modules(self, args: ScGPTArgs, dropout: float) -> None:
        """scGPT's modules for this task, named as its TransformerModel/TransformerGenerator."""
        d = self.d_model = args.d_model
        self.encoder = GeneEncoder(max(self.vocab.values()) + 1, d, padding_idx=self.pad_id)
        if self.perturbation or args.input_emb_style == "continuous":
            self.value_encoder: nn.Module = ContinuousValueEncoder(d, dropout)
        elif args.input_emb_style == "category":
            n_input_bins = args.n_input_bins or args.n_bins + 2
            pad_bin = int(args.pad_value) if 0 <= args.pad_value < n_input_bins else None
            self.value_encoder = CategoryValueEncoder(n_input_bins, d, padding_idx=pad_bin)
        else:  # scaling
            self.value_encoder = nn.Identity()
        self.transformer_encoder = nn.Module()
        self.transformer_encoder.layers = nn.ModuleList(
            ScGPTEncoderLayer(d, args.n_heads, args.d_hid, dropout, args.pre_norm)
            for _ in range(args.n_layers)
        )
        if self.perturbation:
            self.pert_encoder = nn.Embedding(3, d, padding_idx=2)
            self.bn = nn.BatchNorm1d(d, eps=6.1e-5)
            self.decoder = ExprDecoder(d)
            return
        if self.ctx.n_classes < 2:
            raise ScgbError(
                "annotation needs at least two classes",
                field="label_key",
                fix="check the dataset's label column",
            )
        self.cls_decoder = ClsDecoder(d, self.ctx.n_classes, args.n_layers_cls)

    def _load_weights(self, path: Path, load_heads: bool) -> None:
        state = load_scgpt_state(path)
        take, skipped_heads = select_pretrained(self.state_dict(), state, load_heads, path)
        self.load_state_dict(take, strict=False)
        unused = sorted(k for k in state if k not in take)
        log.info(
            "scGPT: loaded %d tensors from %s; %d checkpoint tensors unused%s%s",
            len(take),
            path,
            len(unused),
            f" (e.g. {', '.join(unused[:4])})" if unused else "",
            f"; heads of another shape skipped: {skipped_heads}" if skipped_heads else "",
        )

    def save_pretrained(self, folder: str | Path) -> Path:
        """Write this model in scGPT's layout (best_model.pt with flash-attention names,
        args.json, vocab.json), loadable by this adapter (``load_heads: true``) and scGPT."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_scgpt_state(self.state_dict(), folder / "best_model.pt")
        write_json(folder / "args.json", self.args.raw)
        vocab = self.checkpoint_dir / "vocab.json"
        if vocab.resolve() != (folder / "vocab.json").resolve():
            shutil.copyfile(vocab, folder / "vocab.json")
        return folder

    def attention_flops(self, n_genes: int) -> int:
        """Attention FLOPs per cell (train/cost.py's formula); with only non-zero genes as
        tokens this is the bound for a cell that expresses every matched gene."""
        return attention_flops(
            n_layers=len(self.transformer_encoder.layers),
            d_model=self.d_model,
            n_tokens=len(self.gene_idx) + self.n_global,
            mode=self.attention,
            graph=None if self.gene_graph is None else self.gene_graph.graph,
            steps=self.core_params["steps"],
            mapped=not self.include_zero,
        )

    # -- tokens ------------------------------------------------------------------------------
    def values(self, xm: torch.Tensor) -> torch.Tensor:
        """Matched-gene expression (log1p of CP10k) -> the input scGPT was trained on."""
        if self.input_style == "binned":
            return scgpt_binning(xm, self.n_bins, generator=self._tie_generator(xm.device)).to(
                xm.dtype
            )
        if self.input_style == "normed_raw":
            return torch.expm1(xm)
        return xm

    def _tie_generator(self, device: torch.device) -> torch.Generator | None:
        """Where scGPT's binning draws its tie spreading: torch's global generator in
        training (the Trainer re-seeds it from (seed, epoch)), a generator seeded with the
        run's seed in evaluation, so that predicting the same batches twice agrees."""
        if self.training:
            return None
        return torch.Generator(device=device).manual_seed(self.seed)

    def tokens(self, x: torch.Tensor) -> dict[str, torch.Tensor | None]:
        """Annotation tokens: ``<cls>`` then the cell's genes (all matched genes, or only its
        non-zero ones padded to the batch maximum, as scGPT's tokenize_and_pad_batch)."""
        xm = x[:, self.gene_idx]
        vals = self.values(xm)
        B, n = xm.shape
        cls_ids = xm.new_full((B, 1), self.cls_id, dtype=torch.long)
        cls_vals = xm.new_zeros(B, 1)
        if self.include_zero:
            ids = torch.cat([cls_ids, self.token_ids.expand(B, -1)], 1)
            return {
                "ids": ids,
                "values": torch.cat([cls_vals, vals], 1),
                "node_index": None,
                "key_valid": None,
            }
        nonzero = xm > 0
        counts = nonzero.sum(1)
        width = max(int(counts.max()), 1) if B else 1
        order = torch.sort((~nonzero).to(torch.int32), dim=1, stable=True).indices[:, :width]
        valid = torch.arange(width, device=x.device)[None, :] < counts[:, None]
        ids = torch.where(valid, self.token_ids[order], self.pad_id)
        gene_vals = torch.where(
            valid, vals.gather(1, order), torch.full_like(vals[:, :1], self.pad_value)
        )
        true = valid.new_ones(B, 1)
        node = torch.where(valid, order + self.n_global, -1)
        return {
            "ids": torch.cat([cls_ids, ids], 1),
            "values": torch.cat([cls_vals, gene_vals], 1),
            "node_index": torch.cat([torch.zeros_like(node[:, :1]), node], 1),
            "key_valid": torch.cat([true, valid], 1),
        }

    def _embed(self, ids: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        src = self.encoder(ids)
        if self.input_emb_style == "scaling" and not self.perturbation:
            return src * values.unsqueeze(-1)
        if self.input_emb_style == "category" and not self.perturbation:
            # scGPT gives category inputs a non-negative pad value (n_bins); a negative one
            # is read as bin 0 (the key is masked anyway)
            values = torch.where(values < 0, torch.zeros_like(values), values)
        return src + self.value_encoder(values)

    def encode(
        self, h: torch.Tensor, node_index: torch.Tensor | None, key_valid: torch.Tensor | None
    ) -> torch.Tensor:
        core = dict(
            mode=self.attention, node_index=node_index, key_valid=key_valid, **self.core_params
        )
        if self.attention != "dense":
            core["graph"] = self.gene_graph.graph
            if node_index is not None:
                core.pop("key_valid")
        for layer in self.transformer_encoder.layers:
            h = layer(h, core)
        return h

    def forward(self, x: torch.Tensor, pert: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        if self.perturbation:
            return self._forward_perturbation(x, pert)
        tok = self.tokens(x)
        h = self.encode(self._embed(tok["ids"], tok["values"]), tok["node_index"], tok["key_valid"])
        emb = h[:, 0]  # cell_emb_style "cls"
        return {"embedding": emb, "logits": self.cls_decoder(emb)}

    def _forward_perturbation(
        self, x: torch.Tensor, pert: torch.Tensor | None
    ) -> dict[str, torch.Tensor]:
        """TransformerGenerator: every matched gene of the control cell with its continuous
        value and its perturbation flag; ExprDecoder predicts each gene's expression.
        Genes outside the vocabulary are predicted as their control value."""
        xm = x[:, self.gene_idx]
        flags = (
            torch.zeros_like(xm, dtype=torch.long)
            if pert is None
            else (pert[:, self.gene_idx] > 0).long()
        )
        ids = self.token_ids.expand(x.shape[0], -1)
        h = self.encoder(ids) + self.value_encoder(xm) + self.pert_encoder(flags)
        h = self.bn(h.permute(0, 2, 1)).permute(0, 2, 1)
        h = self.encode(h, None, None)
        pred = x.index_copy(1, self.gene_idx, self.decoder(h).to(x.dtype))
        return {"embedding": h.mean(1), "pred": pred}
