"""scGPT (Cui et al. 2024) as a backbone: its released checkpoint, fine-tuned as is or with
its self-attention replaced by graph-masked or GenoHoption diffusion attention that reuses
the pretrained Q/K/V and output projections (no new attention parameters).

Checkpoint folder (scGPT's model zoo layout): ``best_model.pt`` (a state dict), ``args.json``
(embsize, nheads, d_hid, nlayers, n_bins, pad_token, pad_value, input_style,
input_emb_style, ...) and ``vocab.json`` ({token: index}, with ``<pad>`` and ``<cls>``).

Modules and parameter names follow ``scgpt/model/model.py: TransformerModel`` (annotation)
and ``scgpt/model/generation_model.py: TransformerGenerator`` (perturbation): ``encoder``
(GeneEncoder: ``embedding`` + ``enc_norm``), ``value_encoder`` (ContinuousValueEncoder:
``linear1``, ``linear2``, ``norm``; or CategoryValueEncoder), ``transformer_encoder.layers.N``
(``self_attn.in_proj_weight/bias``, ``self_attn.out_proj``, ``linear1``, ``linear2``,
``norm1``, ``norm2``), ``cls_decoder`` (ClsDecoder), ``pert_encoder``, ``bn`` and ``decoder``
(ExprDecoder). The released checkpoint was trained with flash-attention, whose packed
projection is named ``self_attn.Wqkv``: it is renamed to ``in_proj_`` on load, as scGPT's
own ``load_pretrained`` does.

The layer forward is written here (rather than calling ``nn.TransformerEncoderLayer``) only
so that the attention core can be swapped; tests check that dense mode reproduces
``nn.TransformerEncoder`` with the same weights.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from scgraphbench.errors import ScgbError
from scgraphbench.io import atomic_path, write_json
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

FILES = ("best_model.pt", "args.json", "vocab.json")
_PRETRAINED_PREFIXES = ("encoder.", "value_encoder.", "transformer_encoder.")
_HEAD_PREFIXES = ("cls_decoder.", "pert_encoder.", "bn.", "decoder.")


def scgpt_bin(x: torch.Tensor, n_bins: int) -> torch.Tensor:
    """scGPT's value binning, per cell (``scgpt.preprocess.Preprocessor`` / ``binning``).

    The cell's non-zero values give ``n_bins - 1`` edges ``np.quantile(nonzero,
    linspace(0, 1, n_bins - 1))`` (linear interpolation); each non-zero value gets
    ``np.digitize(value, edges)`` in 1..n_bins-1 and zeros get 0. scGPT's release spreads
    values that tie with several edges at random across those bins (``_digitize(side=
    'both')``); this uses the deterministic left digitize so that evaluation is repeatable.
    x: (B, n) non-negative -> (B, n) int64.
    """
    B, n = x.shape
    nonzero = x > 0
    m = nonzero.sum(1, keepdim=True)  # (B, 1)
    sorted_x, _ = torch.sort(x, dim=1)  # zeros first (x >= 0)
    q = torch.linspace(0, 1, n_bins - 1, device=x.device, dtype=torch.float64)
    pos = (n - m).double() + q[None, :] * (m - 1).clamp(min=0).double()  # (B, n_bins-1)
    lo = pos.floor().long().clamp(0, n - 1)
    hi = pos.ceil().long().clamp(0, n - 1)
    frac = (pos - lo.double()).to(x.dtype)
    lo_v, hi_v = sorted_x.gather(1, lo), sorted_x.gather(1, hi)
    edges = lo_v + (hi_v - lo_v) * frac
    digits = torch.searchsorted(edges.contiguous(), x.contiguous(), right=True)
    return torch.where(nonzero, digits, torch.zeros_like(digits))


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


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ScgbError(
            f"cannot read scGPT {what}: {e}",
            path=str(path),
            field="params.checkpoint",
            fix=f"fetch {path.name} again",
        ) from None


def load_scgpt_state(path: Path) -> dict[str, torch.Tensor]:
    """The checkpoint's state dict with flash-attention names mapped to ``in_proj_``."""
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling failure is a bad file
        raise ScgbError(
            f"cannot load scGPT weights: {type(e).__name__}: {e}",
            path=str(path),
            field="params.checkpoint",
            fix="best_model.pt must be a state dict saved with torch.save; fetch it again",
        ) from None
    if isinstance(raw, dict) and isinstance(raw.get("model_state_dict"), dict):
        raw = raw["model_state_dict"]
    if not isinstance(raw, dict):
        raise ScgbError(
            "scGPT weights are not a state dict",
            path=str(path),
            field="params.checkpoint",
            fix="use scGPT's released best_model.pt",
        )
    state = {}
    for key, value in raw.items():
        key = key.removeprefix("module.")  # saved from DistributedDataParallel
        state[key.replace("self_attn.Wqkv.", "self_attn.in_proj_")] = value
    return state


@register("backbone_scgpt")
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
    needs_graph = False  # only the graph attention modes need one; checked in __init__

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
        family = "backbone_scgpt"
        self.ctx, self.task = ctx, ctx.task
        self.attention = check_attention_mode(attention, family)
        folder = require_checkpoint(checkpoint, family, FILES)
        self.checkpoint_dir = folder
        args = _read_json(folder / "args.json", "args.json")
        vocab = _read_json(folder / "vocab.json", "vocab.json")
        self.args = dict(args)
        self.vocab = {str(k): int(v) for k, v in vocab.items()}
        try:
            d_model, n_heads = int(args["embsize"]), int(args.get("nheads", args.get("nhead")))
            d_hid, n_layers = int(args["d_hid"]), int(args["nlayers"])
        except (KeyError, TypeError, ValueError) as e:
            raise ScgbError(
                f"scGPT args.json lacks an architecture field ({e})",
                path=str(folder / "args.json"),
                field="params.checkpoint",
                fix="args.json needs embsize, nheads, d_hid and nlayers",
            ) from None
        self.n_bins = int(args.get("n_bins", 51))
        self.input_style = args.get("input_style", "binned")
        self.input_emb_style = args.get("input_emb_style", "continuous")
        self.pad_value = float(args.get("pad_value", -2))
        pad_token = args.get("pad_token", "<pad>")
        drop = float(args.get("dropout", 0.2)) if dropout is None else float(dropout)
        pre_norm = bool(args.get("pre_norm", False))
        for token in (pad_token, "<cls>"):
            if token not in self.vocab:
                raise ScgbError(
                    f"scGPT vocab.json has no '{token}' token",
                    path=str(folder / "vocab.json"),
                    field="params.checkpoint",
                    fix="use the vocab.json released with the checkpoint",
                )
        if self.input_style not in ("binned", "log1p", "normed_raw"):
            raise ScgbError(
                f"scGPT input_style '{self.input_style}' is not supported",
                path=str(folder / "args.json"),
                field="params.checkpoint",
                fix="input_style must be binned, log1p or normed_raw",
            )
        self.pad_id, self.cls_id = self.vocab[pad_token], self.vocab["<cls>"]
        n_tokens = max(self.vocab.values()) + 1

        gene_idx, token_ids, self.coverage = match_genes(ctx.gene_names, self.vocab.get, "scGPT")
        self.register_buffer("gene_idx", torch.from_numpy(gene_idx), persistent=False)
        self.register_buffer("token_ids", torch.from_numpy(token_ids), persistent=False)
        self.perturbation = ctx.task == "perturbation"
        self.include_zero = (
            self.perturbation if include_zero_genes is None else bool(include_zero_genes)
        )
        if self.perturbation and not self.include_zero:
            raise ScgbError(
                "scGPT's perturbation setup feeds every gene of the control cell",
                field="params.include_zero_genes",
                fix="leave include_zero_genes unset (or true) for perturbation",
            )
        self.n_global = 0 if self.perturbation else 1  # <cls> is node 0 for annotation
        self.graph = GraphHolder(
            restrict_graph(ctx.graph, gene_idx, self.n_global, self.attention, family)
        )
        self.core_params = check_diffusion_params(self.attention, alpha, t, steps, family)

        # -- modules, named as scGPT's TransformerModel / TransformerGenerator -------------
        self.encoder = GeneEncoder(n_tokens, d_model, padding_idx=self.pad_id)
        if self.perturbation or self.input_emb_style == "continuous":
            self.value_encoder: nn.Module = ContinuousValueEncoder(d_model, drop)
        elif self.input_emb_style == "category":
            n_input_bins = int(args.get("n_input_bins", self.n_bins + 2))
            pad_bin = int(self.pad_value) if 0 <= self.pad_value < n_input_bins else None
            self.value_encoder = CategoryValueEncoder(n_input_bins, d_model, padding_idx=pad_bin)
        elif self.input_emb_style == "scaling":
            self.value_encoder = nn.Identity()
        else:
            raise ScgbError(
                f"scGPT input_emb_style '{self.input_emb_style}' is unknown",
                path=str(folder / "args.json"),
                field="params.checkpoint",
                fix="input_emb_style must be continuous, category or scaling",
            )
        self.transformer_encoder = nn.Module()
        self.transformer_encoder.layers = nn.ModuleList(
            ScGPTEncoderLayer(d_model, n_heads, d_hid, drop, pre_norm) for _ in range(n_layers)
        )
        if self.perturbation:
            self.pert_encoder = nn.Embedding(3, d_model, padding_idx=2)
            self.bn = nn.BatchNorm1d(d_model, eps=6.1e-5)
            self.decoder = ExprDecoder(d_model)
        else:
            if ctx.n_classes < 2:
                raise ScgbError(
                    "annotation needs at least two classes",
                    field="label_key",
                    fix="check the dataset's label column",
                )
            self.cls_decoder = ClsDecoder(d_model, ctx.n_classes, int(args.get("n_layers_cls", 3)))
        self._load(folder / "best_model.pt", load_heads)

        check_freeze_layers(freeze_layers, n_layers, family)
        freeze(self.transformer_encoder.layers[:freeze_layers])
        if freeze_embeddings:
            freeze([self.encoder, self.value_encoder])
        self.d_model = d_model

    # -- weights ---------------------------------------------------------------------------
    def _load(self, path: Path, load_heads: bool) -> None:
        state = load_scgpt_state(path)
        own = self.state_dict()
        prefixes = _PRETRAINED_PREFIXES + (_HEAD_PREFIXES if load_heads else ())
        wanted = {k: v for k, v in own.items() if k.startswith(_PRETRAINED_PREFIXES)}
        missing = [k for k in wanted if k not in state]
        if missing:
            raise ScgbError(
                f"scGPT weights lack {len(missing)} tensors of the architecture in "
                f"args.json (e.g. {', '.join(missing[:3])})",
                path=str(path),
                field="params.checkpoint",
                fix="best_model.pt and args.json must come from the same checkpoint",
            )
        take, skipped_heads = {}, []
        for key, value in own.items():
            if not key.startswith(prefixes) or key not in state:
                continue
            if state[key].shape != value.shape:
                if key.startswith(_HEAD_PREFIXES):
                    skipped_heads.append(key)  # e.g. a classifier for other classes
                    continue
                raise ScgbError(
                    f"scGPT tensor {key} has shape {tuple(state[key].shape)}, the "
                    f"architecture in args.json expects {tuple(value.shape)}",
                    path=str(path),
                    field="params.checkpoint",
                    fix="best_model.pt, args.json and vocab.json must come from "
                    "the same checkpoint",
                )
            take[key] = state[key]
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
        state = {
            k.replace("self_attn.in_proj_", "self_attn.Wqkv."): v.detach().cpu()
            for k, v in self.state_dict().items()
        }
        with atomic_path(folder / "best_model.pt", suffix=".pt") as tmp:
            torch.save(state, tmp)
        write_json(folder / "args.json", self.args)
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
            graph=self.graph.graph,
            steps=self.core_params["steps"],
            mapped=not self.include_zero,
        )

    # -- tokens ------------------------------------------------------------------------------
    def values(self, xm: torch.Tensor) -> torch.Tensor:
        """Matched-gene expression (log1p of CP10k) -> the input scGPT was trained on."""
        if self.input_style == "binned":
            return scgpt_bin(xm, self.n_bins).to(xm.dtype)
        if self.input_style == "normed_raw":
            return torch.expm1(xm)
        return xm

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
            core["graph"] = self.graph.on(h.device)
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
