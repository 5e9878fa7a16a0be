"""What the pretrained backbones (scGPT, Geneformer) share: checkpoint checks, the gene
coverage report, and the attention core that swaps a backbone's dense self-attention for
graph-masked or graph-diffusion attention while reusing its own Q/K/V projections.

Tokens versus graph nodes: a backbone's tokens are a subset of the matched genes (plus
special tokens), in an order that may change from cell to cell (Geneformer ranks genes by
expression). The gene graph is fixed: its nodes are ``[special tokens] + matched genes``.
:func:`attention_core` scatters each cell's q/k/v from token positions onto graph nodes
(one vectorised scatter for the batch, no loop over cells), runs the sparse kernel on the
shared graph, and gathers the result back, so edges follow genes, not positions. Nodes a
cell has no token for are masked out as keys (GenoHoption keeps an edge for a cell only
when both genes are among its tokens).
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from scgraphbench.errors import ScgbError
from scgraphbench.io import write_json
from scgraphbench.kernels import CSRGraph, graph_attention, prepare

log = logging.getLogger("scgraphbench.models.backbones")

ATTENTION_MODES = ("dense", "masked", "diffusion_ppr", "diffusion_heat")
_DIFFUSION = {"dense": None, "masked": None, "diffusion_ppr": "ppr", "diffusion_heat": "heat"}
# Additive score for keys a cell has no token for: exp(-1e4) is exactly 0 in fp32 and bf16.
_ABSENT_SCORE = 1e4


def check_attention_mode(mode: str, family: str) -> str:
    if mode not in ATTENTION_MODES:
        raise ScgbError(
            f"{family}: unknown attention mode '{mode}'",
            field="params.attention",
            fix=f"use one of: {', '.join(ATTENTION_MODES)}",
        )
    return mode


def check_diffusion_params(
    mode: str, alpha: float, t: float, steps: int, family: str
) -> dict[str, Any]:
    """alpha in [0, 1], t > 0, steps >= 0 (PPR with 0 steps is V itself) or >= 1 (heat)."""
    least = 1 if mode == "diffusion_heat" else 0
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < least:
        raise ScgbError(
            f"{family}: steps={steps!r} is not a valid number of diffusion steps",
            field="params.steps",
            fix=f"use an integer >= {least}",
        )
    if not 0.0 <= float(alpha) <= 1.0:
        raise ScgbError(
            f"{family}: alpha={alpha} is outside [0, 1]",
            field="params.alpha",
            fix="GenoHoption uses alpha = 0.25",
        )
    if float(t) <= 0:
        raise ScgbError(
            f"{family}: t={t} must be positive", field="params.t", fix="GenoHoption uses t = 5"
        )
    return dict(alpha=float(alpha), t=float(t), steps=int(steps))


def require_checkpoint(
    checkpoint: str | os.PathLike | None, family: str, required: Iterable[str]
) -> Path:
    """The checkpoint folder, or a ScgbError that names the path and the config key."""
    key = family.removeprefix("backbone_")
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


@dataclass
class GeneCoverage:
    """How many of a dataset's genes a backbone's vocabulary covers."""

    backbone: str
    n_genes: int
    n_matched: int
    unmatched: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)  # mapped to a token already taken

    @property
    def n_unmatched(self) -> int:
        return len(self.unmatched)

    @property
    def n_duplicates(self) -> int:
        return len(self.duplicates)

    @property
    def fraction(self) -> float:
        return self.n_matched / self.n_genes if self.n_genes else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "backbone": self.backbone,
            "n_genes": self.n_genes,
            "n_matched": self.n_matched,
            "n_unmatched": self.n_unmatched,
            "n_duplicates": self.n_duplicates,
            "fraction": self.fraction,
            "unmatched_examples": self.unmatched[:10],
        }

    def report(self) -> str:
        text = (
            f"{self.backbone}: {self.n_matched}/{self.n_genes} genes "
            f"({100 * self.fraction:.1f}%) matched the vocabulary; "
            f"{self.n_unmatched} unmatched genes dropped"
        )
        if self.unmatched:
            text += f" (e.g. {', '.join(self.unmatched[:5])})"
        if self.duplicates:
            text += f"; {self.n_duplicates} genes dropped as duplicates of a matched token"
        return text


def match_genes(
    gene_names: list[str], lookup: Callable[[str], int | None], backbone: str
) -> tuple[np.ndarray, np.ndarray, GeneCoverage]:
    """Dataset positions and token ids of the genes ``lookup`` knows, in dataset order.

    A token claimed by an earlier gene is not used twice (the later gene counts as a
    duplicate). Logs the coverage report; raises when no gene matches.
    """
    idx, tokens, unmatched, duplicates, taken = [], [], [], [], set()
    for i, name in enumerate(gene_names):
        token = lookup(name)
        if token is None:
            unmatched.append(name)
        elif token in taken:
            duplicates.append(name)
        else:
            taken.add(token)
            idx.append(i)
            tokens.append(token)
    coverage = GeneCoverage(backbone, len(gene_names), len(idx), unmatched, duplicates)
    log.info(coverage.report())
    if not idx:
        raise ScgbError(
            f"{backbone}: none of the dataset's {len(gene_names)} genes is in the "
            f"checkpoint's vocabulary (e.g. {', '.join(gene_names[:3])})",
            field="params.checkpoint",
            fix="check that the dataset's gene names and the checkpoint use the same "
            "identifiers (symbols for scGPT; Ensembl IDs or a symbol-to-ID "
            "dictionary for Geneformer)",
        )
    return np.asarray(idx, dtype=np.int64), np.asarray(tokens, dtype=np.int64), coverage


def graph_with_globals(A: sp.spmatrix, n_global: int) -> sp.csr_matrix:
    """Prepend ``n_global`` nodes (CLS, EOS) linked to and from every node (GenoHoption's
    global edges, on in their runs)."""
    A = sp.csr_matrix(A, dtype=np.float32)
    if n_global == 0:
        return A
    n = A.shape[0] + n_global
    full = sp.lil_matrix((n, n), dtype=np.float32)
    full[n_global:, n_global:] = A
    full[:n_global, :] = 1.0
    full[:, :n_global] = 1.0
    return sp.csr_matrix(full)


def restrict_graph(
    graph: sp.spmatrix | None, gene_idx: np.ndarray, n_global: int, mode: str, family: str
) -> CSRGraph | None:
    """The dataset graph on the matched genes, with global nodes first, as a CSRGraph."""
    if mode == "dense":
        return None
    if graph is None:
        raise ScgbError(
            f"{family} with attention '{mode}' needs a gene graph",
            field="graphs",
            fix="list a graph variant in the model's graphs (e.g. graphs: [coexpr]), "
            "or use attention: dense",
        )
    A = sp.csr_matrix(graph)[gene_idx][:, gene_idx]
    prepare("cuda" if torch.cuda.is_available() else "cpu")  # not inside the run's costs
    return CSRGraph.from_scipy(graph_with_globals(A, n_global), add_self_loops=True)


class GraphHolder:
    """Keeps a CSRGraph and moves it to the device of the tensors it meets (not a buffer:
    the graph is rebuilt from the run's graph file, never stored in a checkpoint)."""

    def __init__(self, graph: CSRGraph | None) -> None:
        self.graph = graph

    def on(self, device: torch.device) -> CSRGraph:
        assert self.graph is not None
        if self.graph.device != device:
            self.graph = self.graph.to(device)
        return self.graph


def _scatter_nodes(t: torch.Tensor, index: torch.Tensor, n_nodes: int) -> torch.Tensor:
    """(B, H, L, D) token rows -> (B, H, n_nodes, D); rows of index n_nodes (padding) dropped."""
    B, H, _, D = t.shape
    out = t.new_zeros(B, H, n_nodes + 1, D)
    out = out.scatter(2, index.expand(B, H, -1, D), t)
    return out[:, :, :n_nodes]


def attention_core(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    mode: str,
    graph: CSRGraph | None = None,
    node_index: torch.Tensor | None = None,
    key_valid: torch.Tensor | None = None,
    alpha: float = 0.25,
    t: float = 5.0,
    steps: int = 6,
    dropout_p: float = 0.0,
    training: bool = False,
) -> torch.Tensor:
    """Attention over (B, H, L, d) q/k/v of L token positions; returns (B, H, L, d).

    - ``dense``: scaled dot-product attention over the valid keys (``key_valid`` (B, L),
      None = all valid), as the released models.
    - ``masked`` / ``diffusion_ppr`` / ``diffusion_heat``: the sparse kernel on ``graph``.
      ``node_index`` (B, L) gives the graph node of each token (-1 for padding); None means
      token i is node i for every cell (fixed tokens, no padding).
    """
    if mode == "dense":
        mask = None if key_valid is None else key_valid[:, None, None, :]
        return F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=dropout_p if training else 0.0
        )
    diffusion = _DIFFUSION[mode]
    kw = dict(
        diffusion=diffusion, alpha=alpha, t=t, steps=steps, dropout_p=dropout_p, training=training
    )
    assert graph is not None, "graph modes need the gene graph"
    if diffusion == "ppr" and steps == 0:
        return v  # V_0 = V: no propagation at all
    if node_index is None:
        return graph_attention(q, k, v, graph, **kw)

    B, H, L, d = q.shape
    N = graph.n
    dtype = q.dtype
    if dtype == torch.float16:  # the absent-key score must not overflow
        q, k, v = q.float(), k.float(), v.float()
    index = torch.where(node_index >= 0, node_index, N)[:, None, :, None]  # (B, 1, L, 1)
    present = torch.zeros(B, N + 1, dtype=torch.bool, device=q.device)
    present = present.scatter(1, index[:, 0, :, 0], True)[:, :N]  # (B, N)
    # One extra channel masks absent keys inside the kernel's own softmax:
    # [q*s, 1] . [k, b] / sqrt(d+1) = q.k/sqrt(d) + b/sqrt(d+1), with b = 0 or -1e4*sqrt(d+1).
    # Absent nodes get q = 0 (finite, uniform rows that no present node reads).
    s = math.sqrt((d + 1) / d)
    ones = q.new_ones(B, H, L, 1)
    q_nodes = _scatter_nodes(torch.cat([q * s, ones], -1), index, N)
    k_nodes = _scatter_nodes(torch.cat([k, torch.zeros_like(ones)], -1), index, N)
    bias = (~present).to(q.dtype) * (-_ABSENT_SCORE * math.sqrt(d + 1))
    k_nodes = torch.cat([k_nodes[..., :d], bias[:, None, :, None].expand(B, H, N, 1)], -1)
    v_nodes = _scatter_nodes(torch.cat([v, torch.zeros_like(ones)], -1), index, N)
    out_nodes = graph_attention(q_nodes, k_nodes, v_nodes, graph, **kw)[..., :d]
    out_nodes = torch.cat([out_nodes, out_nodes.new_zeros(B, H, 1, d)], 2)  # padding reads 0
    out = out_nodes.gather(2, index.expand(B, H, L, d))
    return out.to(dtype)


def attention_flops(
    *,
    n_layers: int,
    d_model: int,
    n_tokens: int,
    mode: str,
    graph: CSRGraph | None,
    steps: int,
    mapped: bool,
) -> int:
    """Forward FLOPs per cell of the attention layers, by train/cost.py's formula: 8 L d^2
    for the Q/K/V/O projections, plus 4 L^2 d (dense) or (4 + 2 steps) E d' (graph, E edges
    with self-loops and global edges; d' = d + 1 with the per-cell masking channel)."""
    flops = 8 * n_tokens * d_model * d_model
    if mode == "dense" or graph is None:
        flops += 4 * n_tokens * n_tokens * d_model
    else:
        n_steps = steps if _DIFFUSION[mode] else 0
        flops += (4 + 2 * n_steps) * graph.n_edges * (d_model + (1 if mapped else 0))
    return int(n_layers * flops)


def split_heads(x: torch.Tensor, n_heads: int) -> torch.Tensor:
    """(B, L, H*d) -> (B, H, L, d)."""
    B, L, D = x.shape
    return x.view(B, L, n_heads, D // n_heads).transpose(1, 2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """(B, H, L, d) -> (B, L, H*d)."""
    B, H, L, d = x.shape
    return x.transpose(1, 2).reshape(B, L, H * d)


def freeze(modules: Iterable[nn.Module]) -> None:
    for module in modules:
        for p in module.parameters():
            p.requires_grad_(False)


def check_freeze_layers(n: int, n_layers: int, family: str) -> int:
    if not isinstance(n, int) or n < 0 or n > n_layers:
        raise ScgbError(
            f"{family}: freeze_layers={n} but the checkpoint has {n_layers} layers",
            field="params.freeze_layers",
            fix=f"use an integer between 0 and {n_layers}",
        )
    return n


# -- fetching a checkpoint folder -----------------------------------------------------------


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fetch_checkpoint(
    spec: dict[str, Any], out: str | os.PathLike, downloader: Callable[..., Any] | None = None
) -> dict[str, Any]:
    """Download every file of ``spec['files']`` ({name: {url, sha256, size}}) into ``out``.

    Files land in ``<out>.partial/`` first (a rerun resumes there) and the folder is renamed
    to ``out`` only when all are in. ``MANIFEST.json`` records each file's url, size and
    sha256 as downloaded, and whether a checksum from the config verified it.
    """
    if downloader is None:
        from scgraphbench.data.download import download as downloader
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
            "sha256": _sha256(dest),
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
