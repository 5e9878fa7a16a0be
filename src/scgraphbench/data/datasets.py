"""Dispatch a dataset entry of the config to the loader for its source.

``source`` is one of:

- ``scanpy_pbmc68k_reduced``: scanpy's bundled 700-cell PBMC file (offline default);
- a registry name (``pbmc3k``, ``myeloid``, ``pancreas``, ``ms``, ``adamson``, ``norman``):
  downloaded by ``scgraphbench download`` unless a local copy is given with ``path``
  (the archive, or for pbmc3k a 10x folder/.h5/.h5ad, for adamson/norman the .h5ad) or
  ``train_path`` + ``test_path`` (the scGPT pairs);
- ``h5ad``: ``path`` + ``label_key`` (+ optional ``test_path`` for a given test file);
- ``10x``: ``path`` (Cell Ranger folder or .h5) + ``labels`` (CSV barcode,<label_key>) or
  ``annotate: pbmc3k_tutorial``;
- ``gears``: ``path`` to a GEARS ``perturb_processed.h5ad``;
- ``synthetic_perturbation``: ``params`` for
  :func:`scgraphbench.data.synthetic.synthetic_perturbation_adata`;
- ``synthetic_positional``: ``mode`` (set|order) + ``params`` for
  :func:`scgraphbench.data.positional.synthetic_positional_adata` (the positional study);
- ``synthetic_planted``: ``params`` for
  :func:`scgraphbench.data.synthetic.planted_regulatory_adata` (cell types driven by TF
  modules; prepared like a bring-your-own h5ad, label = ``cell_type``); its GRN is the
  database source ``synthetic_planted`` with the same ``params``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd

from scgraphbench.data import readers
from scgraphbench.data.builtin import pbmc68k_reduced_counts
from scgraphbench.data.prepare import (
    check_classes,
    labelled_cells,
    prepare_annotation,
    prepare_gears,
    stratified_split,
)
from scgraphbench.data.registry import REGISTRY, DatasetInfo
from scgraphbench.data.sources import (  # noqa: F401  (re-exported)
    DEFAULT_ROOT,
    LOADER_KINDS,
    default_task,
    known_sources,
    local_inputs,
    lookup,
    needs_download,
)
from scgraphbench.errors import ScgbError

log = logging.getLogger(__name__)

def _settings(name: str, spec: dict[str, Any], info: DatasetInfo | None) -> dict[str, Any]:
    """Registry defaults overlaid by the config entry."""
    merged = {**(info.defaults if info else {}), **spec}
    task = merged.get("task") or (info.task if info else "annotation")
    if info and task != info.task:
        raise ScgbError(
            f"dataset '{name}' is a {info.task} dataset, config says task: {task}",
            field=f"datasets.{name}.task",
            fix=f"set task: {info.task} or remove it",
        )
    merged["task"] = task
    return merged


def split_seed(spec: dict[str, Any]) -> int:
    """The seed of replicate r's split: ``seed + r`` (the split, HVGs and everything fit on
    training cells vary by replicate; generators and reference labels keep ``seed``)."""
    return int(spec.get("seed", 0)) + int(spec.get("replicate", 0))


def _common(name: str, s: dict[str, Any]) -> dict[str, Any]:
    return dict(dataset=name, seed=split_seed(s), n_top_genes=s.get("n_top_genes"))


def _label_options(s: dict[str, Any]) -> dict[str, Any]:
    """The entry's handling of unlabelled cells and of classes too small to split."""
    return dict(on_bad_label=s.get("on_bad_label", "drop"),
                small_classes=s.get("small_classes", "error"))


def prepare_dataset(
    name: str,
    spec: dict[str, Any],
    inputs: list[str] | None = None,
    root: str | Path = DEFAULT_ROOT,
) -> ad.AnnData:
    """Prepared AnnData for the dataset ``name`` described by its config entry ``spec``.

    ``inputs``: for a registry dataset, the manifest.json written by the download step; when
    absent (a run by hand) the dataset is fetched into ``root`` first. ``spec['replicate']``
    (default 0) picks the replicate's split (:func:`split_seed`).
    """
    source = spec.get("source")
    if source == "scanpy_pbmc68k_reduced":
        s = _settings(name, spec, None)
        return prepare_annotation(
            pbmc68k_reduced_counts(),
            label_key=s.get("label_key", "bulk_labels"),
            source="scanpy.datasets.pbmc68k_reduced",
            val_fraction=float(s.get("val_fraction", 0.15)),
            test_fraction=float(s.get("test_fraction", 0.15)),
            **_label_options(s),
            **_common(name, s),
        )
    if source in REGISTRY:
        return _prepare_registry(name, spec, REGISTRY[source], inputs, root)
    if source == "h5ad":
        return _prepare_h5ad(name, _settings(name, spec, None))
    if source == "10x":
        return _prepare_10x(name, _settings(name, spec, None))
    if source == "gears":
        s = _settings(name, {"task": "perturbation", **spec}, None)
        path = _required(name, s, "path")
        return _gears(name, s, readers.read_h5ad(path), str(path))
    if source == "synthetic_perturbation":
        from scgraphbench.data.synthetic import synthetic_perturbation_adata

        s = _settings(name, {"task": "perturbation", **spec}, None)
        adata = synthetic_perturbation_adata(**(s.get("params") or {}))
        return _gears(name, s, adata, "synthetic_perturbation")
    if source == "synthetic_positional":
        from scgraphbench.data.positional import synthetic_positional_adata

        return synthetic_positional_adata(spec.get("mode", "set"), dataset=name,
                                          seed=int(spec.get("seed", 0)),
                                          split_seed=split_seed(spec),
                                          **(spec.get("params") or {}))
    if source == "synthetic_planted":
        from scgraphbench.data.synthetic import planted_regulatory_adata

        s = _settings(name, spec, None)
        return prepare_annotation(
            planted_regulatory_adata(**(s.get("params") or {})),
            label_key="cell_type",
            source="synthetic_planted",
            val_fraction=float(s.get("val_fraction", 0.15)),
            test_fraction=float(s.get("test_fraction", 0.2)),
            **_label_options(s),
            **_common(name, s),
        )
    raise ScgbError(
        f"unknown source '{source}' for dataset '{name}'",
        field=f"datasets.{name}.source",
        fix=f"use one of {known_sources()}",
    )


def _required(name: str, s: dict[str, Any], key: str) -> Any:
    if not s.get(key):
        raise ScgbError(
            f"source '{s.get('source')}' needs '{key}'",
            field=f"datasets.{name}.{key}",
            fix=f"add {key}: to the dataset entry",
        )
    return s[key]


def _gears(name: str, s: dict[str, Any], adata: ad.AnnData, source: str) -> ad.AnnData:
    return prepare_gears(
        adata,
        source=source,
        train_fraction=float(s.get("train_fraction", 0.75)),
        on_missing_gene=s.get("on_missing_gene", "drop"),
        exclude_conditions=s.get("exclude_conditions"),
        **_common(name, s),
    )


# ---------------------------------------------------------------------------- registry


def _registry_files(
    name: str, s: dict[str, Any], info: DatasetInfo, inputs: list[str] | None, root: str | Path
) -> dict[str, Path]:
    """role -> local path: the offline override, the manifest, or a fetch now."""
    from scgraphbench.data.fetch import fetch_dataset, read_manifest

    if s.get("train_path") or s.get("test_path"):
        if info.loader != "scgpt_pair":
            raise ScgbError(
                f"'{info.name}' has one file: use 'path', not train_path/test_path",
                field=f"datasets.{name}.path",
                fix="set path: instead",
            )
        return {
            "train": Path(_required(name, s, "train_path")),
            "test": Path(_required(name, s, "test_path")),
        }
    path = s.get("path")
    if path:
        p = Path(path)
        if p.suffix in (".zip", ".gz", ".tgz"):  # a local copy of the registered archive
            return fetch_dataset(info.name, root, archive_path=p, sha256=s.get("sha256"))
        if info.loader == "scgpt_pair":
            raise ScgbError(
                f"'{info.name}' has a train and a test file",
                path=str(p),
                field=f"datasets.{name}.path",
                fix="give train_path and test_path, or path: the figshare zip",
            )
        return {info.files[0].role: p}
    if inputs:
        manifest = [i for i in inputs if str(i).endswith("manifest.json")]
        if manifest:
            return read_manifest(manifest[0])
    return fetch_dataset(info.name, root, url=s.get("url"), sha256=s.get("sha256"))


def _check_cells(info: DatasetInfo, role: str, adata: ad.AnnData, path: Path) -> None:
    want = info.expected_cells.get(role)
    if want is not None and adata.n_obs != want:
        log.warning(
            "%s: %d cells, the published %s %s file has %d; preparing it anyway",
            path,
            adata.n_obs,
            info.name,
            role,
            want,
        )


def _prepare_registry(
    name: str, spec: dict[str, Any], info: DatasetInfo, inputs: list[str] | None, root: str | Path
) -> ad.AnnData:
    s = _settings(name, spec, info)
    files = _registry_files(name, s, info, inputs, root)
    if info.loader == "gears":
        adata = readers.read_h5ad(files["data"])
        _check_cells(info, "data", adata, files["data"])
        return _gears(name, s, adata, f"{info.name}:{files['data']}")
    if info.loader == "scgpt_pair":
        train = readers.read_h5ad(files["train"], field="train_path")
        test = readers.read_h5ad(files["test"], field="test_path")
        _check_cells(info, "train", train, files["train"])
        _check_cells(info, "test", test, files["test"])
        return _prepare_pair(
            name,
            s,
            train,
            test,
            str(files["train"]),
            str(files["test"]),
            label_key=s.get("label_key", info.label_key),
            gene_symbols=s.get("gene_symbols", info.gene_symbols),
            make_unique=bool(s.get("make_var_names_unique", True)),
        )
    if info.loader == "pbmc3k_10x":
        path = files[info.files[0].role]
        counts = readers.read_h5ad(path) if Path(path).suffix == ".h5ad" else readers.read_10x(path)
        _check_cells(info, "matrix_dir", counts, Path(path))
        return _annotate_pbmc3k(name, s, counts, f"pbmc3k:{path}")
    raise AssertionError(f"registry loader {info.loader} has no preparation")  # pragma: no cover


# ---------------------------------------------------------------------------- annotation


def _prepare_pair(
    name: str,
    s: dict[str, Any],
    train: ad.AnnData,
    test: ad.AnnData,
    train_src: str,
    test_src: str,
    *,
    label_key: str,
    gene_symbols: str | None,
    make_unique: bool,
) -> ad.AnnData:
    """A train file (split into train/val, stratified) and a test file (the test split)."""
    original_train = train.copy() if gene_symbols else None
    readers.use_gene_symbols(train, gene_symbols, train_src, make_unique)
    readers.use_gene_symbols(test, gene_symbols, test_src, make_unique, reference=original_train)
    for adata, src in ((train, train_src), (test, test_src)):
        if label_key not in adata.obs.columns:
            raise ScgbError(
                f"label column '{label_key}' not found; obs has: {list(adata.obs.columns)}",
                path=src,
                field="label_key",
                fix="set label_key to one of the columns listed",
            )
    genes = train.var_names[train.var_names.isin(test.var_names)]
    if len(genes) == 0:
        raise ScgbError(
            "the train and test files share no genes",
            path=test_src,
            field="var_names",
            fix="check both files index genes the same way "
            "(symbols vs Ensembl ids: see gene_symbols)",
        )
    if len(genes) < max(train.n_vars, test.n_vars):
        log.warning(
            "using the %d genes common to train (%d) and test (%d)",
            len(genes),
            train.n_vars,
            test.n_vars,
        )
    counts_layer = s.get("counts_layer")
    parts = []
    for adata, tag in ((train, "train"), (test, "test")):
        if not genes.is_unique:
            raise ScgbError(
                "duplicate gene names",
                path=train_src,
                field="var_names",
                fix="set 'make_var_names_unique: true' for this dataset",
            )
        part = ad.AnnData(
            X=adata[:, genes].X,
            obs=pd.DataFrame(
                {"_label": adata.obs[label_key].to_numpy()}, index=adata.obs_names.astype(str)
            ),
            var=pd.DataFrame(index=genes),
        )
        if counts_layer and counts_layer in adata.layers:
            part.layers[counts_layer] = adata[:, genes].layers[counts_layer]
        part.obs_names = [f"{tag}-{c}" for c in part.obs_names]
        parts.append(part)
    # The reference file is split into train/val here; the test file is the test split.
    # A reference class too small for val stays in train by default: it is still learnt,
    # and its cells in the test file are still evaluated.
    options = _label_options(s)
    options["small_classes"] = s.get("small_classes", "train")
    val_fraction = float(s.get("val_fraction", 0.25))
    labels_train = parts[0].obs["_label"]
    ok = labelled_cells(labels_train, train_src, options["on_bad_label"])
    ok[ok] = check_classes(labels_train[ok], val_fraction, 0.0, train_src,
                           options["small_classes"])
    parts[0] = parts[0][ok].copy()
    combined = ad.concat(parts, merge=None)
    split_train = stratified_split(parts[0].obs["_label"], val_fraction, 0.0,
                                   split_seed(s))
    split = np.concatenate([split_train, np.full(parts[1].n_obs, "test", dtype=object)])
    return prepare_annotation(
        combined,
        label_key="_label",
        split=split,
        val_fraction=0.0,
        test_fraction=0.0,
        source=f"{train_src} + {test_src}",
        counts_layer=counts_layer,
        on_bad_label=options["on_bad_label"],
        **_common(name, s),
    )


def _prepare_h5ad(name: str, s: dict[str, Any]) -> ad.AnnData:
    path = _required(name, s, "path")
    label_key = _required(name, s, "label_key")
    adata = readers.read_h5ad(path)
    if s.get("test_path"):
        test = readers.read_h5ad(s["test_path"], field="test_path")
        return _prepare_pair(
            name,
            s,
            adata,
            test,
            str(path),
            str(s["test_path"]),
            label_key=label_key,
            gene_symbols=s.get("gene_symbols"),
            make_unique=bool(s.get("make_var_names_unique", False)),
        )
    readers.use_gene_symbols(
        adata, s.get("gene_symbols"), str(path), bool(s.get("make_var_names_unique", False))
    )
    return prepare_annotation(
        adata,
        label_key=label_key,
        source=str(path),
        counts_layer=s.get("counts_layer"),
        val_fraction=float(s.get("val_fraction", 0.15)),
        test_fraction=float(s.get("test_fraction", 0.15)),
        **_label_options(s),
        **_common(name, s),
    )


def _prepare_10x(name: str, s: dict[str, Any]) -> ad.AnnData:
    path = _required(name, s, "path")
    counts = readers.read_10x(path)
    if s.get("annotate") == "pbmc3k_tutorial":
        return _annotate_pbmc3k(name, s, counts, str(path))
    if s.get("annotate"):
        raise ScgbError(
            f"unknown annotate '{s['annotate']}'",
            field=f"datasets.{name}.annotate",
            fix="use annotate: pbmc3k_tutorial, or give labels: a CSV",
        )
    labels_path = s.get("labels")
    if not labels_path:
        raise ScgbError(
            "a 10x folder has no cell labels",
            path=str(path),
            field=f"datasets.{name}.labels",
            fix="add labels: <CSV of barcode,label> (or annotate: pbmc3k_tutorial)",
        )
    label_key = s.get("label_key", "label")
    labels = readers.read_labels_csv(labels_path, label_key)
    common = counts.obs_names.intersection(labels.index)
    if len(common) == 0:
        raise ScgbError(
            f"no barcode of {path} occurs in {labels_path}",
            path=str(labels_path),
            field="labels",
            fix="the CSV's first column must hold the barcodes",
        )
    if len(common) < counts.n_obs:
        log.warning(
            "%d of %d cells have a label in %s; the rest are dropped",
            len(common),
            counts.n_obs,
            labels_path,
        )
    counts = counts[common].copy()
    counts.obs[label_key] = labels.loc[common].to_numpy()
    return prepare_annotation(
        counts,
        label_key=label_key,
        source=str(path),
        val_fraction=float(s.get("val_fraction", 0.15)),
        test_fraction=float(s.get("test_fraction", 0.15)),
        **_label_options(s),
        **_common(name, s),
    )


def _annotate_pbmc3k(name: str, s: dict[str, Any], counts: ad.AnnData, source: str) -> ad.AnnData:
    """Labels from the scanpy PBMC3k tutorial clustering (see :mod:`scgraphbench.data.pbmc3k`)."""
    from scgraphbench.data.pbmc3k import TutorialParams, tutorial_labels

    params = TutorialParams(**(s.get("annotate_params") or {}))
    labels, report = tutorial_labels(counts, seed=int(s.get("seed", 0)), params=params)
    counts = counts[labels.index].copy()
    counts.obs["pbmc3k_tutorial_label"] = labels.to_numpy()
    out = prepare_annotation(
        counts,
        label_key="pbmc3k_tutorial_label",
        source=source,
        val_fraction=float(s.get("val_fraction", 0.15)),
        test_fraction=float(s.get("test_fraction", 0.2)),
        **_label_options(s),
        **_common(name, s),
    )
    out.uns["scgraphbench"]["annotation"] = {
        "method": "scanpy PBMC3k tutorial clustering + marker table",
        "cells_in": report["cells_in"],
        "cells_after_qc": report["cells_after_qc"],
        "n_clusters": report["n_clusters"],
        "cluster_names": report["cluster_names"],
        "absent_types": ", ".join(report["absent_types"]),
    }
    return out
