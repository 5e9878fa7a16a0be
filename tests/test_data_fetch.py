"""Registry datasets end to end against the loopback server: archives laid out as the real
ones (scGPT's figshare zip of nested zips, GEARS' Dataverse zip, 10x's tar.gz), fetched,
checked, extracted, then prepared from the manifest, by the API and by the CLI."""

from __future__ import annotations

import io
import json
import tarfile
import zipfile
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.io
import scipy.sparse as sp

from scgraphbench.cli import main
from scgraphbench.data.datasets import prepare_dataset
from scgraphbench.data.fetch import fetch_dataset, read_manifest
from scgraphbench.errors import ScgbError
from test_data_gears import gears_file, single_list
from test_download import server  # noqa: F401  (the loopback server fixture)
from test_prepare_sources import MS_LABEL, scgpt_file


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def figshare_like(tmp_path: Path) -> bytes:
    """scGPT_processed_datasets/Fig2_Annotation/<dataset>-<date>.zip, each <dataset>/<file>."""
    types = ["astrocyte", "microglia", "oligodendrocyte"]
    ms = zip_bytes(
        {
            "ms/c_data.h5ad": scgpt_file(
                tmp_path / "c.h5ad", MS_LABEL, types, 120, 0, ensembl=True
            ).read_bytes(),
            "ms/filtered_ms_adata.h5ad": scgpt_file(
                tmp_path / "f.h5ad", MS_LABEL, types, 60, 1, ensembl=True
            ).read_bytes(),
        }
    )
    mye = zip_bytes(
        {
            "mye/reference_adata.h5ad": scgpt_file(
                tmp_path / "r.h5ad", "cell_type", types, 90, 2
            ).read_bytes(),
            "mye/query_adata.h5ad": scgpt_file(
                tmp_path / "q.h5ad", "cell_type", types, 45, 3
            ).read_bytes(),
        }
    )
    return zip_bytes(
        {
            "scGPT_processed_datasets/Fig3_Integration/covid-20240103.zip": zip_bytes({"x": b"1"}),
            "scGPT_processed_datasets/Fig2_Annotation/ms-20240103T153851Z-001.zip": ms,
            "scGPT_processed_datasets/Fig2_Annotation/mye-20240103T153851Z-001.zip": mye,
        }
    )


def test_scgpt_figshare_zip_shared_by_two_datasets(server, tmp_path):  # noqa: F811
    server.files["/files/43939560"] = figshare_like(tmp_path)
    url = f"{server.url}/files/43939560"
    root = tmp_path / "resources" / "datasets"
    files = fetch_dataset("ms", root, url=url, backoff=0.01)
    assert files == {
        "train": root / "ms" / "c_data.h5ad",
        "test": root / "ms" / "filtered_ms_adata.h5ad",
    }
    out = prepare_dataset(
        "ms", {"source": "ms", "n_top_genes": None}, inputs=[str(root / "ms" / "manifest.json")]
    )
    assert (out.obs["split"] == "test").sum() == 60
    assert out.var_names[0] == "GENE0"  # symbols from var['gene_name']
    # the second dataset reuses the downloaded archive: no new request
    n = len(server.log)
    files = fetch_dataset("myeloid", root, url=url)
    assert len(server.log) == n
    assert ad.read_h5ad(files["test"]).n_obs == 45
    assert sorted(p.name for p in (root / "_archives").iterdir()) == [
        ".scGPT_processed_datasets.zip.lock",
        "scGPT_processed_datasets.zip",
    ]
    assert sorted(p.name for p in (root / "ms").iterdir()) == [
        "c_data.h5ad",
        "filtered_ms_adata.h5ad",
        "manifest.json",
    ]


def test_gears_zip_via_cli_download_then_prepare(server, tmp_path, monkeypatch):  # noqa: F811
    h5ad = gears_file(tmp_path, single_list(12)).read_bytes()
    server.files["/api/access/datafile/6154417"] = zip_bytes(
        {"adamson/perturb_processed.h5ad": h5ad, "adamson/go.csv": b"a,b\n"}
    )
    monkeypatch.chdir(tmp_path)
    spec = json.dumps({"source": "adamson", "url": f"{server.url}/api/access/datafile/6154417"})
    assert main(["download", "--dataset", "adamson", "--spec", spec]) == 0
    manifest = Path("resources/datasets/adamson/manifest.json")
    assert read_manifest(manifest)["data"].read_bytes() == h5ad
    assert (
        main(
            [
                "prepare",
                "--dataset",
                "adamson",
                "--spec",
                spec,
                "--inputs",
                str(manifest),
                "--out",
                "results/prepared/adamson.h5ad",
            ]
        )
        == 0
    )
    out = ad.read_h5ad("results/prepared/adamson.h5ad")
    assert out.uns["scgraphbench"]["seed"] == 1  # GEARS' default seed, from the registry
    assert set(out.uns["subgroup"].values()) == {"unseen_single"}
    assert sorted(p.name for p in Path("results/prepared").iterdir()) == ["adamson.h5ad"]


def test_pbmc3k_tar_layout(server, tmp_path):  # noqa: F811
    counts = sp.random(50, 30, density=0.3, random_state=0, format="coo") * 10
    counts.data = np.ceil(counts.data)
    mtx = io.BytesIO()
    scipy.io.mmwrite(mtx, counts.T.tocoo())
    members = {
        "filtered_gene_bc_matrices/hg19/matrix.mtx": mtx.getvalue(),
        "filtered_gene_bc_matrices/hg19/genes.tsv": "".join(
            f"ENSG{i}\tGENE{i}\n" for i in range(30)
        ).encode(),
        "filtered_gene_bc_matrices/hg19/barcodes.tsv": "".join(
            f"BC{i}-1\n" for i in range(50)
        ).encode(),
    }
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    server.files["/pbmc3k.tar.gz"] = buf.getvalue()
    files = fetch_dataset("pbmc3k", tmp_path, url=f"{server.url}/pbmc3k.tar.gz")
    folder = files["matrix_dir"]
    assert sorted(p.name for p in folder.iterdir()) == ["barcodes.tsv", "genes.tsv", "matrix.mtx"]
    from scgraphbench.data.readers import read_10x

    assert read_10x(folder).shape == (50, 30)


def test_html_instead_of_zip_is_named_and_removed(server, tmp_path):  # noqa: F811
    server.files["/datafile"] = b"<!DOCTYPE html><html><body>Please verify you are human"
    with pytest.raises(ScgbError, match="HTML page") as e:
        fetch_dataset("norman", tmp_path, url=f"{server.url}/datafile")
    assert "set the dataset's 'path'" in str(e.value)
    assert list((tmp_path / "_archives").iterdir()) == [
        tmp_path / "_archives" / ".gears_norman.zip.lock"
    ]
    assert not (tmp_path / "norman").exists()


def test_pinned_sha_mismatch_leaves_nothing(server, tmp_path):  # noqa: F811
    server.files["/z"] = zip_bytes({"norman/perturb_processed.h5ad": b"x"})
    with pytest.raises(ScgbError, match="checksum mismatch"):
        fetch_dataset("norman", tmp_path, url=f"{server.url}/z", sha256="a" * 64)
    assert [p.name for p in (tmp_path / "_archives").iterdir()] == [".gears_norman.zip.lock"]


def test_local_archive_override_uses_no_network(server, tmp_path):  # noqa: F811
    h5ad = gears_file(tmp_path, single_list(8)).read_bytes()
    local = tmp_path / "mine.zip"
    local.write_bytes(zip_bytes({"norman/perturb_processed.h5ad": h5ad}))
    out = prepare_dataset("norman", {"source": "norman", "path": str(local)}, root=tmp_path / "res")
    assert server.log == []
    assert out.uns["scgraphbench"]["task"] == "perturbation"
    assert not (tmp_path / "res" / "_archives" / "gears_norman.zip").exists()  # used in place
    # a direct h5ad path skips the archive altogether
    direct = tmp_path / "res" / "norman" / "perturb_processed.h5ad"
    again = prepare_dataset("norman", {"source": "norman", "path": str(direct)})
    assert list(again.var_names) == list(out.var_names)
    pd.testing.assert_series_equal(again.obs["split"], out.obs["split"])
