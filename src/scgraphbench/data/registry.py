"""The six published datasets: where each file lives, how it is laid out, how it is split.

Every entry says where its checksum comes from. None could be pinned from this machine (it has
no internet), so ``sha256`` is ``None`` with the reason in ``unpinned``. ``download`` then logs the
actual sha256 of what it fetched, so a user can pin it in config (``datasets.<name>.sha256``,
a mapping archive name -> sha256) or here. The checks that do not need a pinned hash still run:
an archive must open as its format (a Dataverse bot-challenge HTML page fails that), and every
member named below must be inside it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from scgraphbench.errors import ScgbError

NOT_PINNED_OFFLINE = (
    "not pinned: written on a machine without internet, and no trusted published checksum "
    "was found; the sha256 of the first download is logged so that it can be pinned"
)


@dataclass(frozen=True)
class Archive:
    """One remote file. ``kind`` is how to open it: ``file`` (used as is), ``zip``, ``tar.gz``."""

    name: str  # file name under resources/datasets/_archives/
    url: str
    kind: str
    sha256: str | None = None
    size: int | None = None
    unpinned: str | None = NOT_PINNED_OFFLINE
    mirrors: tuple[str, ...] = ()


@dataclass(frozen=True)
class Member:
    """A file the preparation reads: ``member`` is its path (or, with ``search``, its base name,
    found anywhere in the archive and in zips nested inside it)."""

    role: str  # what the preparation calls it: data, train, test, matrix_dir
    archive: Archive
    member: str
    search: bool = False
    local_name: str | None = None  # name under resources/datasets/<dataset>/
    hint: str = ""  # nested zips whose path contains it are searched first


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    task: str  # annotation | perturbation
    loader: str  # pbmc3k_10x | scgpt_pair | gears
    files: tuple[Member, ...]
    description: str
    citation: str
    licence: str
    split_rule: str
    label_key: str | None = None
    gene_symbols: str | None = None  # var column holding symbols, when var_names are not
    defaults: dict[str, Any] = field(default_factory=dict)
    expected_cells: dict[str, int] = field(default_factory=dict)  # role -> cells, a sanity check


PBMC3K_TAR = Archive(
    name="pbmc3k_filtered_gene_bc_matrices.tar.gz",
    url="https://cf.10xgenomics.com/samples/cell-exp/1.1.0/pbmc3k/"
    "pbmc3k_filtered_gene_bc_matrices.tar.gz",
    kind="tar.gz",
)

# scGPT's processed datasets on figshare (article 24954519, file 43939560): one zip holding
# scGPT_processed_datasets/Fig2_Annotation/<dataset>-<date>.zip, each holding <dataset>/<file>.
# The inner zip names are known only for MS (ms-20240103T153851Z-001.zip), so members are
# found by base name, descending into nested zips.
SCGPT_FIGSHARE = Archive(
    name="scGPT_processed_datasets.zip",
    url="https://figshare.com/ndownloader/files/43939560",
    kind="zip",
)

GEARS_ADAMSON = Archive(
    name="gears_adamson.zip",
    url="https://dataverse.harvard.edu/api/access/datafile/6154417",
    kind="zip",
)
GEARS_NORMAN = Archive(
    name="gears_norman.zip",
    url="https://dataverse.harvard.edu/api/access/datafile/6154020",
    kind="zip",
)

_SCGPT_SPLIT = (
    "train file = train + val: a stratified 25% of it (fixed seed) is validation; "
    "the test file is the test split, unchanged except cells whose label never occurs in the "
    "train file (no classifier can predict them; they are dropped and counted)"
)
_SCGPT_DEFAULTS = {"val_fraction": 0.25, "n_top_genes": 3000, "seed": 0}
_SCGPT_LICENCE = (
    "scGPT code MIT; the processed files carry the terms of their original studies; the "
    "figshare item's licence (24954519) was not checked from here (figshare's default is CC BY 4.0)"
)
_GEARS_SPLIT = (
    "GEARS 'simulation' split (DataSplitter.get_simulation_split): 75% of the perturbed genes "
    "are drawn as seen (np.random.seed(seed)); test = unseen singles + combo_seen0/1 + 25% of "
    "combo_seen2; validation drawn the same way from the training perturbations at 0.9; "
    "control cells are split at random in the proportions of the perturbed cells"
)
_GEARS_LICENCE = (
    "GEARS code MIT; the Dataverse files' terms were not checked from here (Harvard Dataverse's "
    "default is CC0 1.0); the original studies' data are public on GEO"
)

REGISTRY: dict[str, DatasetInfo] = {
    info.name: info
    for info in (
        DatasetInfo(
            name="pbmc3k",
            task="annotation",
            loader="pbmc3k_10x",
            files=(Member("matrix_dir", PBMC3K_TAR, "filtered_gene_bc_matrices/hg19/"),),
            description="10x Genomics 3k PBMCs from a healthy donor (2,700 cells x 32,738 genes)",
            citation="10x Genomics (2016); labels: the scanpy PBMC3k tutorial (Wolf et al. 2018)",
            licence="10x Genomics datasets CC BY 4.0; scanpy BSD-3",
            split_rule="stratified train/val/test (val_fraction, test_fraction, seed)",
            defaults={"n_top_genes": 3000, "val_fraction": 0.15, "test_fraction": 0.2, "seed": 0},
            expected_cells={"matrix_dir": 2700},
        ),
        DatasetInfo(
            name="myeloid",
            task="annotation",
            loader="scgpt_pair",
            files=(
                Member("train", SCGPT_FIGSHARE, "reference_adata.h5ad", search=True, hint="mye"),
                Member("test", SCGPT_FIGSHARE, "query_adata.h5ad", search=True, hint="mye"),
            ),
            description="tumour-infiltrating myeloid cells, GSE154763 (scGPT processed, 3,000 HVGs)",
            citation="Cheng et al. 2021 Cell; processed by Cui et al. 2024 Nat Methods (scGPT)",
            licence=_SCGPT_LICENCE,
            split_rule=_SCGPT_SPLIT,
            label_key="cell_type",
            defaults=_SCGPT_DEFAULTS,
            expected_cells={"train": 9748, "test": 3430},
        ),
        DatasetInfo(
            name="pancreas",
            task="annotation",
            loader="scgpt_pair",
            files=(
                Member("train", SCGPT_FIGSHARE, "demo_train.h5ad", search=True, hint="pancreas"),
                Member("test", SCGPT_FIGSHARE, "demo_test.h5ad", search=True, hint="pancreas"),
            ),
            description="human pancreas, five studies (TOSICA's hPancreas demo, 3,000 HVGs)",
            citation="Chen et al. 2023 Nat Commun (TOSICA); used by scGPT",
            licence=_SCGPT_LICENCE,
            split_rule=_SCGPT_SPLIT,
            label_key="Celltype",
            defaults=_SCGPT_DEFAULTS,
            expected_cells={"train": 10600, "test": 4218},
        ),
        DatasetInfo(
            name="ms",
            task="annotation",
            loader="scgpt_pair",
            files=(
                Member("train", SCGPT_FIGSHARE, "c_data.h5ad", search=True, hint="ms-"),
                Member("test", SCGPT_FIGSHARE, "filtered_ms_adata.h5ad", search=True, hint="ms-"),
            ),
            description="multiple sclerosis brain nuclei, E-HCAD-35 (scGPT processed, 3,000 HVGs)",
            citation="Schirmer et al. 2019 Nature; processed by Cui et al. 2024 Nat Methods (scGPT)",
            licence=_SCGPT_LICENCE,
            split_rule=_SCGPT_SPLIT,
            label_key="Factor Value[inferred cell type - authors labels]",
            # scGPT's tutorial indexes genes by var['gene_name'] for MS
            gene_symbols="gene_name",
            defaults=_SCGPT_DEFAULTS,
            expected_cells={"train": 7844, "test": 13468},
        ),
        DatasetInfo(
            name="adamson",
            task="perturbation",
            loader="gears",
            files=(Member("data", GEARS_ADAMSON, "perturb_processed.h5ad", search=True),),
            description="Perturb-seq of UPR genes in K562, single perturbations (GEARS processed)",
            citation="Adamson et al. 2016 Cell; processed by Roohani et al. 2024 Nat Biotechnol",
            licence=_GEARS_LICENCE,
            split_rule=_GEARS_SPLIT,
            # GEARS' own default seed is 1 (PertData.prepare_split)
            defaults={"seed": 1, "n_top_genes": None, "train_fraction": 0.75},
        ),
        DatasetInfo(
            name="norman",
            task="perturbation",
            loader="gears",
            files=(Member("data", GEARS_NORMAN, "perturb_processed.h5ad", search=True),),
            description="CRISPRa single and double perturbations in K562 (GEARS processed)",
            citation="Norman et al. 2019 Science; processed by Roohani et al. 2024 Nat Biotechnol",
            licence=_GEARS_LICENCE,
            split_rule=_GEARS_SPLIT,
            defaults={"seed": 1, "n_top_genes": None, "train_fraction": 0.75},
            # reported for the GEARS file by an independent re-analysis; checked, not enforced
            expected_cells={"data": 91205},
        ),
    )
}


def get_dataset(name: str) -> DatasetInfo:
    try:
        return REGISTRY[name]
    except KeyError:
        raise ScgbError(
            f"unknown dataset '{name}'",
            field="source",
            fix=f"use one of {sorted(REGISTRY)} or a loader kind "
            "(h5ad, 10x, gears, synthetic_perturbation, scanpy_pbmc68k_reduced)",
        ) from None


def archives(info: DatasetInfo) -> list[Archive]:
    """The distinct archives a dataset needs, in file order."""
    seen: dict[str, Archive] = {}
    for m in info.files:
        seen.setdefault(m.archive.name, m.archive)
    return list(seen.values())
