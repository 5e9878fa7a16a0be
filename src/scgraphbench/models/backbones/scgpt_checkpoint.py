"""scGPT's checkpoint folder (its model zoo layout): ``args.json`` (architecture and input
settings), ``vocab.json`` ({token: index}, with ``<pad>`` and ``<cls>``) and ``best_model.pt``
(a state dict). The released checkpoint was trained with flash-attention, whose packed
projection is named ``self_attn.Wqkv``: it is renamed to ``in_proj_`` on load, as scGPT's own
``load_pretrained`` does, and back on save."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from scgraphbench.errors import ScgbError
from scgraphbench.io import atomic_path
from scgraphbench.models.backbones.checkpoint import read_checkpoint_json

FILES = ("best_model.pt", "args.json", "vocab.json")
PRETRAINED_PREFIXES = ("encoder.", "value_encoder.", "transformer_encoder.")
HEAD_PREFIXES = ("cls_decoder.", "pert_encoder.", "bn.", "decoder.")
INPUT_STYLES = ("binned", "log1p", "normed_raw")
INPUT_EMB_STYLES = ("continuous", "category", "scaling")


@dataclass(frozen=True)
class ScGPTArgs:
    """What the adapter reads from ``args.json``; ``raw`` is the whole file (written back by
    ``save_pretrained``)."""

    d_model: int
    n_heads: int
    d_hid: int
    n_layers: int
    n_bins: int = 51
    input_style: str = "binned"
    input_emb_style: str = "continuous"
    pad_value: float = -2.0
    pad_token: str = "<pad>"
    dropout: float = 0.2
    pre_norm: bool = False
    n_layers_cls: int = 3
    n_input_bins: int | None = None  # category encoding: None = n_bins + 2
    raw: dict[str, Any] = field(default_factory=dict, compare=False)


def _bad_args(path: Path, message: str, fix: str) -> ScgbError:
    return ScgbError(message, path=str(path), field="params.checkpoint", fix=fix)


def read_scgpt_args(folder: Path) -> ScGPTArgs:
    path = folder / "args.json"
    args = read_checkpoint_json(path, "scGPT")
    try:
        arch = dict(
            d_model=int(args["embsize"]),
            n_heads=int(args.get("nheads", args.get("nhead"))),
            d_hid=int(args["d_hid"]),
            n_layers=int(args["nlayers"]),
        )
    except (KeyError, TypeError, ValueError) as e:
        raise _bad_args(
            path,
            f"scGPT args.json lacks an architecture field ({e})",
            "args.json needs embsize, nheads, d_hid and nlayers",
        ) from None
    n_input_bins = args.get("n_input_bins")
    parsed = ScGPTArgs(
        **arch,
        n_bins=int(args.get("n_bins", 51)),
        input_style=args.get("input_style", "binned"),
        input_emb_style=args.get("input_emb_style", "continuous"),
        pad_value=float(args.get("pad_value", -2)),
        pad_token=args.get("pad_token", "<pad>"),
        dropout=float(args.get("dropout", 0.2)),
        pre_norm=bool(args.get("pre_norm", False)),
        n_layers_cls=int(args.get("n_layers_cls", 3)),
        n_input_bins=None if n_input_bins is None else int(n_input_bins),
        raw=dict(args),
    )
    if parsed.input_style not in INPUT_STYLES:
        raise _bad_args(
            path,
            f"scGPT input_style '{parsed.input_style}' is not supported",
            f"input_style must be {', '.join(INPUT_STYLES)}",
        )
    if parsed.input_emb_style not in INPUT_EMB_STYLES:
        raise _bad_args(
            path,
            f"scGPT input_emb_style '{parsed.input_emb_style}' is unknown",
            f"input_emb_style must be {', '.join(INPUT_EMB_STYLES)}",
        )
    return parsed


def read_scgpt_vocab(folder: Path, pad_token: str) -> dict[str, int]:
    """{token: index}; it must hold the pad token of args.json and ``<cls>``."""
    path = folder / "vocab.json"
    vocab = {str(k): int(v) for k, v in read_checkpoint_json(path, "scGPT").items()}
    for token in (pad_token, "<cls>"):
        if token not in vocab:
            raise ScgbError(
                f"scGPT vocab.json has no '{token}' token",
                path=str(path),
                field="params.checkpoint",
                fix="use the vocab.json released with the checkpoint",
            )
    return vocab


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


def save_scgpt_state(state: dict[str, torch.Tensor], path: Path) -> None:
    """``state`` as best_model.pt with the released (flash-attention) names."""
    released = {
        k.replace("self_attn.in_proj_", "self_attn.Wqkv."): v.detach().cpu()
        for k, v in state.items()
    }
    with atomic_path(path, suffix=".pt") as tmp:
        torch.save(released, tmp)


def select_pretrained(
    own: dict[str, torch.Tensor], state: dict[str, torch.Tensor], load_heads: bool, path: Path
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """The checkpoint tensors to load into a model whose state is ``own``: every pretrained
    tensor (encoders, layers; all must be there with the right shape) and, with
    ``load_heads``, the task heads whose shape fits. Returns them and the heads skipped."""
    missing = [k for k in own if k.startswith(PRETRAINED_PREFIXES) and k not in state]
    if missing:
        raise ScgbError(
            f"scGPT weights lack {len(missing)} tensors of the architecture in "
            f"args.json (e.g. {', '.join(missing[:3])})",
            path=str(path),
            field="params.checkpoint",
            fix="best_model.pt and args.json must come from the same checkpoint",
        )
    prefixes = PRETRAINED_PREFIXES + (HEAD_PREFIXES if load_heads else ())
    take, skipped_heads = {}, []
    for key, value in own.items():
        if not key.startswith(prefixes) or key not in state:
            continue
        if state[key].shape != value.shape:
            if key.startswith(HEAD_PREFIXES):
                skipped_heads.append(key)  # e.g. a classifier for other classes
                continue
            raise ScgbError(
                f"scGPT tensor {key} has shape {tuple(state[key].shape)}, the "
                f"architecture in args.json expects {tuple(value.shape)}",
                path=str(path),
                field="params.checkpoint",
                fix="best_model.pt, args.json and vocab.json must come from the same checkpoint",
            )
        take[key] = state[key]
    return take, skipped_heads
