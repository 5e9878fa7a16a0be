"""Geneformer's checkpoint folder: ``config.json`` + weights (``model.safetensors`` or
``pytorch_model.bin``, a ``BertForMaskedLM`` or ``BertModel``) as on Hugging Face
(ctheodoris/Geneformer), plus Geneformer's dictionaries from its ``geneformer/`` package
folder: ``*token_dictionary*.pkl`` ({Ensembl ID: token}), ``*gene_median_dictionary*.pkl``
({Ensembl ID: non-zero median over the pretraining corpus}) and, to map gene symbols,
``*gene_name_id_dict*.pkl`` ({symbol: Ensembl ID})."""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from torch import nn

from scgraphbench.errors import ScgbError
from scgraphbench.models.backbones.checkpoint import log, require_checkpoint

_DICTIONARIES = {
    "token_dictionary": "*token_dictionary*.pkl",
    "gene_median_dictionary": "*gene_median_dictionary*.pkl",
    "gene_name_id_dictionary": "*gene_name_id_dict*.pkl",
}
WEIGHTS = ("model.safetensors", "pytorch_model.bin")


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


def require_geneformer_checkpoint(checkpoint: str | None, family: str) -> Path:
    """The folder, which must hold config.json and one of the weight files."""
    folder = require_checkpoint(checkpoint, family, ["config.json"])
    if not any((folder / w).exists() for w in WEIGHTS):
        raise ScgbError(
            "Geneformer checkpoint folder has no weights",
            path=str(folder),
            field="params.checkpoint",
            fix=f"the folder needs {' or '.join(WEIGHTS)} beside config.json",
        )
    return folder


@dataclass
class GeneformerDictionaries:
    """The three dictionaries and where they were read from."""

    tokens: dict[str, Any]  # {Ensembl ID or special token: token id}
    medians: dict[str, Any]  # {Ensembl ID: corpus median}
    name_to_id: dict[str, Any]  # {symbol: Ensembl ID}; empty without the file
    paths: dict[str, Path | None]

    @classmethod
    def read(cls, folder: Path, given: dict[str, str | None]) -> GeneformerDictionaries:
        """``given``: explicit paths by parameter name (None: found in ``folder``)."""
        paths = {
            param: _find_dictionary(
                folder, param, given.get(param), param != "gene_name_id_dictionary"
            )
            for param in _DICTIONARIES
        }
        read = {p: {} if path is None else read_mapping(path, p) for p, path in paths.items()}
        if "<pad>" not in read["token_dictionary"]:
            raise ScgbError(
                "Geneformer token dictionary has no '<pad>' token",
                path=str(paths["token_dictionary"]),
                field="params.token_dictionary",
                fix="use the token dictionary released with the checkpoint",
            )
        return cls(
            read["token_dictionary"],
            read["gene_median_dictionary"],
            read["gene_name_id_dictionary"],
            paths,
        )

    def token_of(self, name: str) -> int | None:
        """The token of a dataset gene (an Ensembl ID, or a symbol through the name
        dictionary), None when Geneformer has no token or no median for it."""
        ensembl = name if name in self.tokens else self.name_to_id.get(name)
        if ensembl is None or ensembl not in self.tokens or ensembl not in self.medians:
            return None
        return int(self.tokens[ensembl])

    def median_of_token(self) -> dict[int, float]:
        return {int(self.tokens[k]): float(v) for k, v in self.medians.items() if k in self.tokens}


def load_bert(folder: Path) -> nn.Module:
    """The checkpoint's ``BertModel`` (an MLM checkpoint's encoder), quietly and offline."""
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
