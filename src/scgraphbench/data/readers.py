"""Readers for the input formats, each turning a library failure into a named user error."""

from __future__ import annotations

import logging
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from scgraphbench.errors import ScgbError

log = logging.getLogger(__name__)

MTX_NAMES = ("matrix.mtx", "matrix.mtx.gz")


def read_h5ad(path: str | Path, field: str = "path") -> ad.AnnData:
    path = Path(path)
    if not path.is_file():
        raise ScgbError(
            f"{path} does not exist",
            path=str(path),
            field=field,
            fix="point it at an existing .h5ad file",
        )
    try:
        return ad.read_h5ad(path)
    except Exception as e:  # h5py/anndata raise many types for a bad file
        raise ScgbError(
            f"cannot read {path} as h5ad ({type(e).__name__}: {e})",
            path=str(path),
            field=field,
            fix="check it is an AnnData .h5ad file and not truncated",
        ) from None


def find_10x(path: str | Path) -> Path:
    """The 10x matrix to read: an .h5 file, or the folder that holds matrix.mtx(.gz).

    A folder is searched downwards (Cell Ranger 2 nests ``<genome>/``); more than one matrix
    folder is an error, since guessing the genome would be silent.
    """
    path = Path(path)
    if path.is_file() and path.suffix == ".h5":
        return path
    if not path.is_dir():
        raise ScgbError(
            f"{path} is neither a 10x .h5 file nor a folder",
            path=str(path),
            field="path",
            fix="point it at a Cell Ranger matrix folder or .h5 file",
        )
    dirs = sorted({p.parent for name in MTX_NAMES for p in path.rglob(name)})
    if len(dirs) == 1:
        return dirs[0]
    if len(dirs) > 1:
        raise ScgbError(
            f"{len(dirs)} matrix folders under {path}: {[str(d) for d in dirs]}",
            path=str(path),
            field="path",
            fix="point path at one of them",
        )
    h5 = sorted(path.glob("*.h5"))
    if len(h5) == 1:
        return h5[0]
    raise ScgbError(
        f"no matrix.mtx(.gz) or single .h5 under {path}",
        path=str(path),
        field="path",
        fix="point it at a Cell Ranger output folder",
    )


def read_10x(path: str | Path) -> ad.AnnData:
    """Counts from a Cell Ranger v2/v3 folder or .h5; var_names are gene symbols, made unique."""
    import scanpy as sc

    target = find_10x(path)
    try:
        if target.is_file():
            adata = sc.read_10x_h5(target)
        else:
            adata = sc.read_10x_mtx(target, var_names="gene_symbols", cache=False)
    except Exception as e:
        raise ScgbError(
            f"cannot read 10x data at {target} ({type(e).__name__}: {e})",
            path=str(target),
            field="path",
            fix="check the folder holds matrix.mtx with genes/features and "
            "barcodes files from Cell Ranger",
        ) from None
    n_dup = int(adata.var_names.duplicated().sum())
    if n_dup:
        adata.var_names_make_unique()  # 10x symbols repeat; scanpy's tutorial does the same
        log.info("%s: made %d duplicate gene symbols unique", target, n_dup)
    adata.X = sp.csr_matrix(adata.X, dtype=np.float32)
    return adata


def read_labels_csv(path: str | Path, label_key: str) -> pd.Series:
    """Labels by barcode from a CSV whose first column is the barcode."""
    path = Path(path)
    if not path.is_file():
        raise ScgbError(
            f"{path} does not exist",
            path=str(path),
            field="labels",
            fix="point labels at a CSV of barcode,<label_key>",
        )
    table = pd.read_csv(path, index_col=0)
    if label_key not in table.columns:
        raise ScgbError(
            f"column '{label_key}' not found; {path.name} has: {list(table.columns)}",
            path=str(path),
            field="label_key",
            fix="set label_key to one of them",
        )
    return table[label_key].astype(str)


def use_gene_symbols(
    adata: ad.AnnData,
    column: str | None,
    source: str,
    make_unique: bool = False,
    reference: ad.AnnData | None = None,
) -> None:
    """Index genes by ``var[column]`` (in place); duplicates made unique only if asked.

    When ``adata`` lacks the column but its var_names all occur in ``reference`` (which has
    it), the symbols are taken from there — scGPT's MS test file is indexed that way.
    """
    if column:
        if column in adata.var:
            symbols = adata.var[column].astype(str).to_numpy()
        elif (
            reference is not None
            and column in reference.var
            and adata.var_names.isin(reference.var_names).all()
        ):
            symbols = reference.var[column].astype(str).reindex(adata.var_names).to_numpy()
        else:
            raise ScgbError(
                f"var column '{column}' not found; var has: {list(adata.var.columns)}",
                path=source,
                field="gene_symbols",
                fix="set gene_symbols to a var column of gene symbols, or remove it",
            )
        adata.var_names = pd.Index(symbols)
    if make_unique and adata.var_names.has_duplicates:
        n = int(adata.var_names.duplicated().sum())
        adata.var_names_make_unique()
        log.warning("%s: made %d duplicate gene names unique", source, n)
