"""Where regulatory databases come from, and how one is fetched into the normalised table
that ``build-graph`` reads (``resources/databases/<name>.csv.gz`` + ``<name>.json``).

A ``databases.<name>`` config entry names a ``source``:

- ``package``: a file shipped inside an installed PyPI distribution (``package``, pinned
  ``version``, ``member`` path); works offline once the package is installed. The default
  ``pathwaycommons`` entry is Pathway Commons v9 inside ``regulon-enrichment==0.4a0``.
- ``url``: downloaded once with :func:`scgraphbench.download.download` (streamed,
  sha256-checked, resumable) into the cache folder; known URLs carry a pinned sha256.
- ``dgp_amio``: shorthand for the URL of DGP-AMIO's ``graphs/edges_<db>.csv`` at a fixed commit.
- ``enrichr``: an Enrichr library through gseapy (``library``, ``organism``).
- ``file``: a local file (``path``).
- ``synthetic_planted``: the planted GRN of
  :func:`scgraphbench.data.synthetic.planted_regulatory_adata` for ``params`` (the dataset
  entry's generator parameters), written as a TRRUST file into the cache folder; with
  ``shuffle_seed`` its degree-matched shuffle (:func:`scgraphbench.data.synthetic.shuffled_grn`).

Every source also takes ``path``: a local copy that is used instead (the offline override);
its sha256 is checked when one is pinned. ``format`` says how to parse the file.
"""

from __future__ import annotations

import importlib.metadata as md
import logging
from pathlib import Path
from typing import Any

import pandas as pd

from scgraphbench.errors import ScgbError
from scgraphbench.graphs import regulatory as reg
from scgraphbench.io import atomic_path, write_json

log = logging.getLogger(__name__)

SOURCES = ("package", "url", "dgp_amio", "enrichr", "file", "synthetic_planted")
FORMATS = ("dgp_edges", "trrust", "collectri", "regnetwork", "sif", "gmt")

# DGP-AMIO's ten gene-interaction graphs, the regulation source GenoHoption's README points
# to. Pinned to the commit whose files were hashed (HEAD in November 2026).
DGP_AMIO_REPO = "yangkaiyuan1027/DGP-AMIO"
DGP_AMIO_COMMIT = "e6d8d7b5cf21df32ff089a773d9e5864f855fe9f"
DGP_AMIO_DBS = (
    "CHEA",
    "CPDB",
    "EVEX",
    "IREF",
    "JASPAR",
    "MOTIFMAP",
    "RegNetwork",
    "kegg",
    "string",
    "trrust",
)


def dgp_amio_url(db: str) -> str:
    return (
        f"https://raw.githubusercontent.com/{DGP_AMIO_REPO}/{DGP_AMIO_COMMIT}/graphs/edges_{db}.csv"
    )


TRRUST_HUMAN_URL = "https://www.grnpedia.org/trrust/data/trrust_rawdata.human.tsv"

# sha256 of files we have seen (shared/data/SOURCES.md). CHEA, CPDB and IREF are missing:
# they exceeded the size limit of the snapshot they were taken from, so no copy was ever
# hashed here; they download unpinned and the log prints the sha256 to pin.
KNOWN_SHA256: dict[str, str] = {
    dgp_amio_url("EVEX"): "62910baad3304b7aaaa87f1a36966f3f6ee7619196b9eb44092017065cbb25e3",
    dgp_amio_url("JASPAR"): "64285fb6aa9c3bbd88b644464a2d3d360b79f156883a4bde23f840da8f214465",
    dgp_amio_url("MOTIFMAP"): "87ad6c83d3bd8a330a6ba9491ece39a94b29322400e275781f90dccdfd3e749c",
    dgp_amio_url("RegNetwork"): "a8c01830ec841cf71c49b7b2b5f0fc68d5204086039ab2e305e091aca3ce9b04",
    dgp_amio_url("kegg"): "d178a250dc56e60487bb9aad961f9fb39e4e5672d480c2a398470abf99bea605",
    dgp_amio_url("string"): "d3813c367eb81fd827d3f99ae5625bfbb9c39c1377bd124b1805e9dfdf91c969",
    dgp_amio_url("trrust"): "3e0884a317e3fa2e5266e8996a8304a2ba630aa102a407c9d16406c252bb2499",
    # the GitHub copy of TRRUST v2 (unchanged since 2018); the grnpedia file should match
    TRRUST_HUMAN_URL: "9b909319ccc8e36588b5a1bd3640e0dfba03936c6fc154cc4304d742bec11bed",
}

# Pathway Commons v9 (2017) as shipped in regulon-enrichment 0.4a0 (MIT package): 1.5 M
# interactions among HGNC symbols, 122,785 of them 'controls-expression-of'.
PATHWAY_COMMONS_PACKAGE = {
    "source": "package",
    "package": "regulon-enrichment",
    "version": "0.4a0",
    "member": "enricher/data/PathwayCommons9.All.hgnc.sif.gz",
    "sha256": "02b93256ba264d29720d150b730dc3da8fdc16d8a0f9c920540311a957542c58",
    "format": "sif",
    "relations": ["controls-expression-of"],
}


def resolve_spec(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    """Fill in what a source implies (URL, format, pinned sha256) and check the entry."""
    spec = dict(spec or {})
    source = spec.get("source", "file" if "path" in spec else None)
    if source not in SOURCES:
        raise ScgbError(
            f"unknown source {source!r}",
            field=f"databases.{name}.source",
            fix=f"use one of {list(SOURCES)}",
        )
    spec["source"] = source
    if source == "dgp_amio":
        db = spec.get("db")
        if db not in DGP_AMIO_DBS:
            raise ScgbError(
                f"unknown DGP-AMIO database {db!r}",
                field=f"databases.{name}.db",
                fix=f"use one of {list(DGP_AMIO_DBS)}",
            )
        spec.setdefault("url", dgp_amio_url(db))
        spec.setdefault("format", "dgp_edges")
    if source == "enrichr":
        if not spec.get("library") and not spec.get("path"):
            raise ScgbError(
                "an enrichr source needs 'library' (or a local .gmt 'path')",
                field=f"databases.{name}.library",
                fix="e.g. library: ChEA_2022",
            )
        spec.setdefault("format", "gmt")
    if source == "synthetic_planted":
        from scgraphbench.data.synthetic import planted_params

        planted_params(**(spec.get("params") or {}))  # unknown or bad parameters fail here
        spec.setdefault("format", "trrust")
    if source == "url" and not spec.get("url"):
        raise ScgbError(
            "a url source needs 'url'",
            field=f"databases.{name}.url",
            fix="give the download URL (and its sha256 if known)",
        )
    if source == "file" and not spec.get("path"):
        raise ScgbError(
            "a file source needs 'path'",
            field=f"databases.{name}.path",
            fix="give the path of a local database file",
        )
    if source == "package":
        for key in ("package", "version", "member"):
            if not spec.get(key):
                raise ScgbError(
                    f"a package source needs '{key}'",
                    field=f"databases.{name}.{key}",
                    fix="e.g. package: regulon-enrichment, version: '0.4a0', "
                    "member: enricher/data/PathwayCommons9.All.hgnc.sif.gz",
                )
        if (spec["package"], spec["version"], spec["member"]) == tuple(
            PATHWAY_COMMONS_PACKAGE[k] for k in ("package", "version", "member")
        ):
            spec.setdefault("sha256", PATHWAY_COMMONS_PACKAGE["sha256"])
    if spec.get("url") and "sha256" not in spec:
        spec["sha256"] = KNOWN_SHA256.get(spec["url"])
    fmt = spec.get("format")
    if fmt not in FORMATS:
        raise ScgbError(
            f"unknown or missing format {fmt!r}",
            field=f"databases.{name}.format",
            fix=f"use one of {list(FORMATS)}",
        )
    if fmt == "gmt":
        spec.setdefault("geneset_rule", "tf")
        if spec["geneset_rule"] == "clique":
            spec.setdefault("max_set_size", 100)
    return spec


def package_file(name: str, spec: dict[str, Any]) -> Path:
    """The file inside an installed distribution, after checking the pinned version."""
    field = f"databases.{name}"
    pin = f"{spec['package']}=={spec['version']}"
    try:
        dist = md.distribution(spec["package"])
    except md.PackageNotFoundError:
        raise ScgbError(
            f"package {spec['package']!r} is not installed",
            field=f"{field}.package",
            fix=f"pip install '{pin}', or set {field}.path to a local copy of the file",
        ) from None
    if dist.version != str(spec["version"]):
        raise ScgbError(
            f"{spec['package']} {dist.version} is installed, the config pins {spec['version']}",
            field=f"{field}.version",
            fix=f"pip install '{pin}' (or change the pin and its sha256)",
        )
    member = str(spec["member"])
    for f in dist.files or []:
        if str(f) == member:
            path = Path(dist.locate_file(f))
            if path.is_file():
                return path
    raise ScgbError(
        f"{pin} has no file {member!r}",
        field=f"{field}.member",
        fix="list the package's files with `pip show -f " + spec["package"] + "`",
    )


def obtain(name: str, spec: dict[str, Any], cache_dir: str | Path) -> Path | None:
    """The raw database file: the local override, the package file, or a (cached,
    checksummed) download. None for an Enrichr library fetched through gseapy."""
    from scgraphbench.download import check_sha256, download

    sha = spec.get("sha256")
    if spec.get("path"):
        path = Path(spec["path"]).expanduser()
        if not path.is_file():
            raise ScgbError(
                "local database file not found",
                path=str(path),
                field=f"databases.{name}.path",
                fix="fix the path, or remove 'path' to use the configured source",
            )
        check_sha256(
            path,
            sha,
            source=str(path),
            field=f"databases.{name}.sha256",
            fix="use the file the pin belongs to, or set sha256: null",
        )
        return path
    source = spec["source"]
    if source == "package":
        path = package_file(name, spec)
        check_sha256(
            path,
            sha,
            source=str(path),
            field=f"databases.{name}.sha256",
            fix=f"reinstall {spec['package']}=={spec['version']}",
        )
        return path
    if source == "synthetic_planted":
        from scgraphbench.data.synthetic import (
            PLANTED_GRN_KEYS,
            planted_grn,
            planted_params,
            shuffled_grn,
            write_trrust,
        )

        p = planted_params(**(spec.get("params") or {}))
        grn = planted_grn(**{k: p[k] for k in PLANTED_GRN_KEYS})
        if spec.get("shuffle_seed") is not None:
            grn = shuffled_grn(grn, seed=int(spec["shuffle_seed"]))
        return write_trrust(grn, Path(cache_dir) / name / "planted_grn.tsv")
    if source in ("url", "dgp_amio"):
        url = spec["url"]
        dest = Path(cache_dir) / name / url.rstrip("/").rsplit("/", 1)[-1]
        if not sha:
            log.warning("%s: no sha256 pinned for %s; the file is not verified", name, url)
        return download(url, dest, sha256=sha)
    return None  # enrichr without a local path


def load_table(
    name: str, spec: dict[str, Any], raw: Path | None
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Parse the raw file into the normalised edge or membership table."""
    fmt = spec["format"]
    extra: dict[str, Any] = {}
    if fmt == "gmt":
        sets = (
            reg.read_gmt(raw)
            if raw is not None
            else reg.enrichr_library(spec["library"], spec.get("organism", "Human"))
        )
        table, extra = reg.geneset_table(
            sets,
            spec["geneset_rule"],
            max_set_size=spec.get("max_set_size"),
            term_regex=spec.get("term_regex"),
        )
    elif fmt == "sif":
        table = reg.read_sif(raw, spec.get("relations"))
    else:
        reader = {
            "dgp_edges": reg.read_edge_csv,
            "trrust": reg.read_trrust,
            "collectri": reg.read_collectri,
            "regnetwork": reg.read_regnetwork,
        }[fmt]
        table = reader(raw)
    if table.empty:
        raise ScgbError(
            f"database '{name}' parsed to no edges",
            path=str(raw) if raw else None,
            field=f"databases.{name}",
            fix="check the file, the relations or the term_regex",
        )
    return table, extra


def fetch_database(
    name: str,
    spec: dict[str, Any],
    out: str | Path,
    info: str | Path | None = None,
    cache_dir: str | Path = "resources/databases/raw",
) -> dict[str, Any]:
    """Obtain, parse and normalise one database; write ``out`` (csv.gz) and ``info`` (json).

    Edge tables keep ``source,target`` (one row per distinct directed pair, self-pairs
    kept: the graph builder drops them); gene-set libraries under the clique rule keep
    ``term,gene``.
    """
    from scgraphbench.download import sha256_file

    spec = resolve_spec(name, spec)
    raw = obtain(name, spec, cache_dir)
    table, extra = load_table(name, spec, raw)
    dropped = int(table.attrs.get("dropped_blank_rows", 0))
    restored = int(table.attrs.get("restored_excel_dates", 0))
    cols = list(table.columns[:2])
    table = table[cols].drop_duplicates().reset_index(drop=True)
    with atomic_path(out, suffix=".csv.gz") as tmp:
        table.to_csv(tmp, index=False, compression="gzip")
    genes = (
        pd.concat([table.iloc[:, 0], table.iloc[:, 1]])
        if cols == reg.EDGE_COLUMNS
        else table["gene"]
    ).unique()
    summary = {
        "name": name,
        "spec": spec,
        "kind": "edges" if cols == reg.EDGE_COLUMNS else "genesets",
        "rows": int(len(table)),
        "genes": int(len(genes)),
        "raw_file": str(raw) if raw else None,
        "raw_sha256": sha256_file(raw) if raw else None,
        "dropped_blank_rows": dropped,
        "restored_excel_dates": restored,
        **extra,
    }
    if info is not None:
        write_json(info, summary)
    log.info("database %s: %d %s rows over %d genes", name, len(table), summary["kind"], len(genes))
    return summary


def read_normalised(path: str | Path) -> pd.DataFrame:
    """A table written by :func:`fetch_database` (or any ``source,target`` / ``term,gene``
    CSV, optionally gzipped)."""
    path = Path(path)
    if not path.is_file():
        raise ScgbError(
            "database table not found",
            path=str(path),
            field="databases",
            fix="run `scgraphbench fetch-database` (the fetch_database rule) first",
        )
    table = reg._read_table(path, compression="infer")
    cols = list(table.columns[:2])
    if cols not in (reg.EDGE_COLUMNS, reg.SET_COLUMNS):
        raise ScgbError(
            f"header {list(table.columns)} is neither source,target nor term,gene",
            path=str(path),
            field="header",
            fix="pass a table written by `scgraphbench fetch-database`",
        )
    table = reg._drop_blanks(table, cols, path, first_line=2)
    return table


def database_name(path: str | Path) -> str:
    """``resources/databases/trrust.csv.gz`` -> ``trrust``."""
    name = Path(path).name
    for suffix in (".csv.gz", ".tsv.gz", ".csv", ".tsv", ".gz"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name
