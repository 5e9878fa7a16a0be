"""A pretrained backbone's checkpoint folder: finding it, reading its JSON files, fetching it
(the workflow's ``fetch-checkpoint`` rule), and keeping its lowest layers frozen."""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from torch import nn

from scgraphbench.errors import ScgbError
from scgraphbench.io import write_json

log = logging.getLogger("scgraphbench.models.backbones")


def require_checkpoint(
    checkpoint: str | os.PathLike | None, family: str, required: Iterable[str]
) -> Path:
    """The checkpoint folder, or a ScgbError that names the path and the config key."""
    key = family.removeprefix("backbone_")
    required = list(required)
    if checkpoint is None or str(checkpoint).strip() == "":
        raise ScgbError(
            f"{family} needs a pretrained checkpoint folder and none was given",
            field="params.checkpoint",
            fix=f"set the model's params.checkpoint (or backbones.{key}.checkpoint) to a folder "
            f"holding {', '.join(required)}, or give backbones.{key}.files so that the "
            f"workflow fetches it (see docs/backbones.md)",
        )
    folder = Path(checkpoint).expanduser()
    if not folder.is_dir():
        raise ScgbError(
            f"{family}: checkpoint folder does not exist",
            path=str(folder),
            field="params.checkpoint",
            fix=f"point params.checkpoint (or backbones.{key}.checkpoint) at the "
            f"folder holding {', '.join(required)}",
        )
    missing = [name for name in required if not (folder / name).exists()]
    if missing:
        raise ScgbError(
            f"{family}: checkpoint folder lacks {', '.join(missing)}",
            path=str(folder),
            field="params.checkpoint",
            fix=f"a {key} checkpoint folder holds {', '.join(required)}; fetch it "
            f"again or point params.checkpoint at the complete folder",
        )
    return folder


def read_checkpoint_json(path: Path, backbone: str) -> Any:
    """A JSON file of a checkpoint folder (args.json, vocab.json), or a ScgbError naming it."""
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ScgbError(
            f"cannot read {backbone} {path.name}: {e}",
            path=str(path),
            field="params.checkpoint",
            fix=f"fetch {path.name} again",
        ) from None


def freeze_lowest(layers: nn.ModuleList, n: int, family: str) -> None:
    """Keep the first ``n`` of ``layers`` frozen (``params.freeze_layers``)."""
    if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= len(layers):
        raise ScgbError(
            f"{family}: freeze_layers={n} but the checkpoint has {len(layers)} layers",
            field="params.freeze_layers",
            fix=f"use an integer between 0 and {len(layers)}",
        )
    freeze(layers[:n])


def freeze(modules: Iterable[nn.Module]) -> None:
    for module in modules:
        for p in module.parameters():
            p.requires_grad_(False)


def fetch_checkpoint(
    spec: dict[str, Any], out: str | os.PathLike, downloader: Callable[..., Any] | None = None
) -> dict[str, Any]:
    """Download every file of ``spec['files']`` ({name: {url, sha256, size}}) into ``out``.

    Files land in ``<out>.partial/`` first (a rerun resumes there) and the folder is renamed
    to ``out`` only when all are in. ``MANIFEST.json`` records each file's url, size and
    sha256 as downloaded, and whether a checksum from the config verified it.
    ``downloader`` defaults to :func:`scgraphbench.download.download`.
    """
    # imported here: a training job that only reads a checkpoint need not load requests
    from scgraphbench.download import download, sha256_file

    downloader = downloader or download
    out = Path(out)
    files = spec.get("files") or {}
    if not files:
        raise ScgbError(
            "nothing to fetch: the backbone entry has no files",
            field="files",
            fix="give files: {name: {url: ..., sha256: ...}} or a local checkpoint",
        )
    partial = out.with_name(out.name + ".partial")
    partial.mkdir(parents=True, exist_ok=True)
    manifest: dict[str, Any] = {}
    for name, entry in files.items():
        if Path(name).name != name or name in {"", ".", ".."}:
            raise ScgbError(
                f"file name '{name}' is not a plain file name",
                field=f"files.{name}",
                fix="name each file as it should appear in the checkpoint folder",
            )
        if not isinstance(entry, dict) or not entry.get("url"):
            raise ScgbError(
                f"file '{name}' has no url",
                field=f"files.{name}.url",
                fix="give the file's download url",
            )
        dest = partial / name
        downloader(entry["url"], dest, sha256=entry.get("sha256"), size=entry.get("size"))
        manifest[name] = {
            "url": entry["url"],
            "size": dest.stat().st_size,
            "sha256": sha256_file(dest),
            "verified": bool(entry.get("sha256")),
        }
        log.info(
            "fetched %s (%d bytes, sha256 %s%s)",
            name,
            manifest[name]["size"],
            manifest[name]["sha256"],
            "" if entry.get("sha256") else ", not pinned",
        )
    write_json(partial / "MANIFEST.json", manifest)
    if out.exists():
        shutil.rmtree(out)
    os.replace(partial, out)
    return manifest
