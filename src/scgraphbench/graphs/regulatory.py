"""Regulatory databases: parsers for each file format, symbol harmonisation, the rule that
turns a gene-set library into edges, and restriction of a database to a dataset's genes.

Every parser returns a pandas DataFrame in one of two normalised shapes:

- an edge table with columns ``source, target`` (a regulator and the gene it regulates), or
- a membership table with columns ``term, gene`` (gene sets that become cliques later).

Symbols are cleaned (surrounding whitespace removed, spreadsheet dates such as ``7-Sep``
turned back into ``SEPT7``) but keep their case; matching to a dataset is case-insensitive
(``Gata1`` from a mouse-style library matches ``GATA1``) and knows HGNC's 2020 renaming
(``SEPT7`` = ``SEPTIN7``), with an exact match preferred when a dataset holds both spellings.
"""

from __future__ import annotations

import gzip
import io
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from scgraphbench.errors import ScgbError

log = logging.getLogger(__name__)

EDGE_COLUMNS = ["source", "target"]
SET_COLUMNS = ["term", "gene"]
TRRUST_MODES = frozenset({"Activation", "Repression", "Unknown"})
# RegNetwork's direction column: activation, repression, unknown, and a rare '-p'.
REGNETWORK_ARROW = re.compile(r"^-[->|/p]*$")
GENESET_RULES = ("tf", "clique")
# Enrichr libraries hold sets far larger than gseapy's default max_size=2000, which drops
# them silently; we keep every set and let the documented per-rule cap decide.
ENRICHR_MAX_SIZE = 10**9


def _open_text(path: Path) -> io.TextIOBase:
    return gzip.open(path, "rt") if path.suffix == ".gz" else open(path)  # noqa: SIM115


def _require_file(path: str | Path, field: str = "path") -> Path:
    path = Path(path)
    if not path.is_file():
        raise ScgbError(
            "database file not found",
            path=str(path),
            field=field,
            fix="check the path, or fetch the database first (scgraphbench "
            "fetch-database / the fetch_database rule)",
        )
    return path


# Spreadsheet software turns SEPT7, MARCH1, DEC1 into dates ('7-Sep', '1-Mar', '1-Dec');
# DGP-AMIO's EVEX/JASPAR/MOTIFMAP/RegNetwork/trrust files carry such names.
EXCEL_DATE = re.compile(r"^(\d{1,2})-(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)$")
EXCEL_PREFIX = {"Sep": "SEPT", "Mar": "MARCH"}
# HGNC renamed those genes in 2020 (SEPT7 -> SEPTIN7, MARCH1 -> MARCHF1); either spelling
# matches the other.
RENAMED = [(re.compile(r"^SEPTIN(\d+)$"), r"SEPT\1"), (re.compile(r"^MARCHF(\d+)$"), r"MARCH\1")]


def _undo_excel_date(symbol: str) -> str:
    m = EXCEL_DATE.match(symbol)
    if not m:
        return symbol
    return f"{EXCEL_PREFIX.get(m.group(2), m.group(2).upper())}{m.group(1)}"


def clean_symbols(values: pd.Series) -> pd.Series:
    """Strip whitespace (including non-breaking spaces) and undo spreadsheet date
    conversion ('7-Sep' -> 'SEPT7'); case is kept."""
    out = values.astype(str).str.replace("\u00a0", " ", regex=False).str.strip()
    dated = out.str.match(EXCEL_DATE)
    if dated.any():
        out = out.where(~dated, out[dated].map(_undo_excel_date))
    return out


def harmonised_key(symbol: str) -> str:
    """The key two spellings of one gene share: upper case, pre-2020 SEPT/MARCH names."""
    key = symbol.strip().upper()
    for pattern, repl in RENAMED:
        key = pattern.sub(repl, key)
    return key


def _drop_blanks(df: pd.DataFrame, columns: list[str], path: Path, first_line: int) -> pd.DataFrame:
    """Rows with an empty symbol carry no edge. Real exports have them (DGP-AMIO's EVEX file
    has 77, likely a symbol lost on export), so they are dropped with a warning and counted
    in ``df.attrs['dropped_blank_rows']`` rather than rejecting the whole database."""
    bad = np.zeros(len(df), dtype=bool)
    for c in columns:
        bad |= df[c].isna().to_numpy() | (df[c].astype(str).str.strip() == "").to_numpy()
    if bad.any():
        lines = (np.flatnonzero(bad) + first_line).tolist()
        log.warning(
            "%s: dropped %d rows with an empty %s (lines %s...)",
            path,
            bad.sum(),
            " or ".join(columns),
            lines[:5],
        )
        df = df[~bad]
    df.attrs["dropped_blank_rows"] = int(bad.sum())
    return df


def _read_table(path: Path, **kwargs: Any) -> pd.DataFrame:
    """pandas read_csv with every field as text ('NA' stays a symbol) and parse errors
    turned into a user error naming the file."""
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""], **kwargs)
    except pd.errors.ParserError as e:
        raise ScgbError(
            f"malformed row: {e}",
            path=str(path),
            fix="each row must have the same number of fields as the header",
        ) from None
    except pd.errors.EmptyDataError:
        raise ScgbError(
            "the file is empty", path=str(path), fix="download it again or point to the right file"
        ) from None
    except UnicodeDecodeError as e:
        raise ScgbError(
            f"not a text table ({e})",
            path=str(path),
            fix="point to the uncompressed or .gz text file",
        ) from None


def _read_headerless(
    path: Path, names: list[str], *, min_fields: int, fix: str, **kwargs: Any
) -> pd.DataFrame:
    """A headerless table whose rows must have between ``min_fields`` and ``len(names)``
    fields. Giving pandas the names up front would silently turn an extra leading field
    into the index, so the width is checked before naming."""
    df = _read_table(path, header=None, **kwargs)
    if not min_fields <= df.shape[1] <= len(names):
        raise ScgbError(
            f"malformed rows: {df.shape[1]} fields per row, expected "
            f"{min_fields}-{len(names)} ({', '.join(names)})",
            path=str(path),
            fix=fix,
        )
    df.columns = names[: df.shape[1]]
    return df


def _finish_edges(df: pd.DataFrame, extra: Sequence[str] = ()) -> pd.DataFrame:
    out = df[EDGE_COLUMNS + list(extra)].copy()
    raw = pd.unique(pd.concat([out["source"], out["target"]]).astype(str).str.strip())
    dated = [r for r in raw if EXCEL_DATE.match(r)]
    if dated:
        log.warning(
            "restored %d spreadsheet-mangled symbols, e.g. %s -> %s",
            len(dated),
            dated[0],
            _undo_excel_date(dated[0]),
        )
    out["source"] = clean_symbols(out["source"])
    out["target"] = clean_symbols(out["target"])
    out = out.reset_index(drop=True)
    out.attrs["dropped_blank_rows"] = int(df.attrs.get("dropped_blank_rows", 0))
    out.attrs["restored_excel_dates"] = len(dated)
    return out


def read_edge_csv(path: str | Path) -> pd.DataFrame:
    """DGP-AMIO ``edges_<DB>.csv``: header ``source,target``, one directed edge per row."""
    path = _require_file(path)
    df = _read_table(path)
    missing = [c for c in EDGE_COLUMNS if c not in df.columns]
    if missing:
        raise ScgbError(
            f"header {list(df.columns)} lacks {missing}",
            path=str(path),
            field="header",
            fix="the first line must be 'source,target'",
        )
    df = _drop_blanks(df, EDGE_COLUMNS, path, first_line=2)
    return _finish_edges(df)


def read_trrust(path: str | Path) -> pd.DataFrame:
    """TRRUST v2 raw TSV: no header; TF, target, mode (Activation/Repression/Unknown), PMIDs."""
    path = _require_file(path)
    df = _read_headerless(
        path,
        ["source", "target", "mode", "pmids"],
        min_fields=3,
        sep="\t",
        fix="TRRUST raw files have 4 tab-separated columns: TF, target, mode, PMIDs",
    )
    df = _drop_blanks(df, ["source", "target", "mode"], path, first_line=1)
    bad = ~df["mode"].isin(TRRUST_MODES)
    if bad.any():
        i = int(df.index[bad.to_numpy()][0])  # row label = line - 1 (no header)
        raise ScgbError(
            f"line {i + 1}: mode {df['mode'].loc[i]!r} is not one of "
            f"{sorted(TRRUST_MODES)} ({bad.sum()} such rows)",
            path=str(path),
            field="mode",
            fix="TRRUST raw files have no header and 4 tab-separated "
            "columns: TF, target, mode, PMIDs",
        )
    return _finish_edges(df, extra=["mode"])


def read_collectri(path: str | Path) -> pd.DataFrame:
    """CollecTRI human CSV: header ``tf,target,sign`` (decoupler's ``source,target,weight``
    export is accepted too)."""
    path = _require_file(path)
    df = _read_table(path)
    df = df.rename(columns={"tf": "source", "weight": "sign", "mor": "sign"})
    missing = [c for c in EDGE_COLUMNS if c not in df.columns]
    if missing:
        raise ScgbError(
            f"header {list(df.columns)} lacks a tf/source or target column",
            path=str(path),
            field="header",
            fix="expected header 'tf,target,sign'",
        )
    df = _drop_blanks(df, EDGE_COLUMNS, path, first_line=2)
    return _finish_edges(df, extra=["sign"] if "sign" in df.columns else [])


def read_regnetwork(path: str | Path) -> pd.DataFrame:
    """RegNetwork's own format: whitespace-separated ``regulator regulator_id target
    target_id [direction]`` with a header line starting with ``#``. The direction arrow
    (``-->`` activation, ``--|`` repression, ``-/-`` unknown) is kept as ``mode``; the
    undirected ``human.source`` export (4 columns, no arrow) is read the same way."""
    path = _require_file(path)
    rows: list[tuple[str, str, str]] = []
    with _open_text(path) as fh:
        for lineno, line in enumerate(fh, start=1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            parts = text.split()
            if len(parts) not in (4, 5) or (
                len(parts) == 5 and not REGNETWORK_ARROW.match(parts[4])
            ):
                raise ScgbError(
                    f"line {lineno}: expected 'regulator id target id [arrow]', got "
                    f"{len(parts)} fields: {text[:80]!r}",
                    path=str(path),
                    fix="repair or remove that line (RegNetwork files are "
                    "space-separated with a direction arrow such as '-->')",
                )
            rows.append((parts[0], parts[2], parts[4] if len(parts) == 5 else ""))
    if not rows:
        raise ScgbError("no edges in the file", path=str(path), fix="point to a RegNetwork file")
    return _finish_edges(pd.DataFrame(rows, columns=["source", "target", "mode"]), extra=["mode"])


def read_sif(path: str | Path, relations: Iterable[str] | None = None) -> pd.DataFrame:
    """Simple interaction format (Pathway Commons): ``A<TAB>relation<TAB>B``, no header;
    only the rows whose relation is in ``relations`` are kept (all when None)."""
    path = _require_file(path)
    df = _read_headerless(
        path,
        ["source", "relation", "target"],
        min_fields=3,
        sep="\t",
        compression="infer",
        fix="SIF rows are A<TAB>relation<TAB>B",
    )
    if relations is not None:  # filter first: Pathway Commons has 1.5 M rows
        wanted = set(relations)
        present = set(df["relation"].unique())
        unknown = wanted - present
        if unknown:
            raise ScgbError(
                f"relations {sorted(unknown)} do not occur in the file",
                path=str(path),
                field="relations",
                fix=f"choose from {sorted(present)}",
            )
        df = df[df["relation"].isin(wanted)]
    df = _drop_blanks(df, ["source", "relation", "target"], path, first_line=1)
    return _finish_edges(df, extra=["relation"])


def read_gmt(path: str | Path) -> dict[str, list[str]]:
    """A GMT gene-set library: ``term<TAB>description<TAB>gene...`` per line.

    Hand-written rather than ``gseapy.read_gmt`` because that one drops malformed lines
    silently and cannot say which line was wrong. Enrichr exports end lines with a tab and
    can end with a line holding only tabs (an empty term): both are skipped.
    """
    path = _require_file(path)
    sets: dict[str, dict[str, None]] = {}
    with _open_text(path) as fh:
        for lineno, line in enumerate(fh, start=1):
            fields = line.rstrip("\r\n").split("\t")
            term = fields[0].strip()
            genes = [g.strip() for g in fields[2:] if g.strip()]
            if not term:
                if genes:
                    raise ScgbError(
                        f"line {lineno}: {len(genes)} genes under an empty term",
                        path=str(path),
                        fix="give the set a name or remove the line",
                    )
                continue  # blank line or Enrichr's trailing empty-term line
            if len(fields) < 2:
                raise ScgbError(
                    f"line {lineno}: no tab after the term {term[:40]!r}",
                    path=str(path),
                    fix="GMT lines are term<TAB>description<TAB>gene1<TAB>gene2...",
                )
            # a dict keeps first-seen order and drops repeated genes (and repeated terms merge)
            sets.setdefault(term, {}).update(dict.fromkeys(genes))
    sets = {t: list(g) for t, g in sets.items() if g}
    if not sets:
        raise ScgbError(
            "the GMT file holds no gene set with genes",
            path=str(path),
            fix="point to a non-empty .gmt library",
        )
    return sets


def enrichr_library(name: str, organism: str = "Human") -> dict[str, list[str]]:
    """An Enrichr library through gseapy, keeping sets of every size (gseapy's default
    ``max_size=2000`` would drop the largest sets without a word)."""
    import gseapy

    try:
        sets = gseapy.get_library(
            name=name, organism=organism, min_size=0, max_size=ENRICHR_MAX_SIZE
        )
    except ValueError as e:  # gseapy's message for an unknown library name
        raise ScgbError(
            str(e),
            field="library",
            fix="use an Enrichr library name such as ChEA_2022 or KEGG_2021_Human",
        ) from None
    except Exception as e:  # requests/urllib errors: Enrichr unreachable
        raise ScgbError(
            f"could not fetch Enrichr library {name!r}: {type(e).__name__}: {e}",
            field="library",
            fix="check the network, or download the library as a "
            ".gmt and set the database's 'path' to it",
        ) from None
    sets = {
        str(t).strip(): [str(g).strip() for g in genes if str(g).strip()]
        for t, genes in sets.items()
        if str(t).strip()
    }
    sets = {t: g for t, g in sets.items() if g}
    if not sets:
        raise ScgbError(
            f"Enrichr library {name!r} ({organism}) holds no gene sets",
            field="library",
            fix="check the library name and organism",
        )
    return sets


def term_regulator(term: str) -> str:
    """The regulator a TF-named set is about: the term's first word (``'Gata1 (mouse)'`` ->
    ``Gata1``, ``'AR 20517297 ChIP-Seq ...'`` -> ``AR``, ``'NANOG CHEA'`` -> ``NANOG``)."""
    return term.split()[0].strip("()[],;:")


def geneset_table(
    sets: dict[str, list[str]],
    rule: str,
    *,
    max_set_size: int | None = None,
    term_regex: str | None = None,
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Turn a gene-set library into the normalised table for ``rule``.

    - ``tf``: each set is named after a transcription factor (ChEA, TRRUST, TRANSFAC/JASPAR,
      ENCODE libraries); edges regulator -> every member. No size cap.
    - ``clique``: pathway-style sets (KEGG, Reactome, GO, Hallmark); each set connects all
      of its members pairwise once restricted to a dataset. Sets larger than
      ``max_set_size`` (counted on the whole library, before any restriction) are dropped:
      a 2000-gene set says nothing specific about any pair.

    ``term_regex`` keeps only the terms it matches (case-insensitive search), e.g. ``human``
    for libraries that mix species. Returns the table and counts of what was kept.
    """
    if rule not in GENESET_RULES:
        raise ScgbError(
            f"unknown gene-set rule {rule!r}",
            field="geneset_rule",
            fix=f"use one of {list(GENESET_RULES)}",
        )
    n_sets = len(sets)
    if term_regex:
        pattern = re.compile(term_regex, re.IGNORECASE)
        sets = {t: g for t, g in sets.items() if pattern.search(t)}
        if not sets:
            raise ScgbError(
                f"no term of the {n_sets} in the library matches {term_regex!r}",
                field="term_regex",
                fix="loosen or remove term_regex",
            )
    counts = {"sets": n_sets, "sets_matching_regex": len(sets)}
    if rule == "tf":
        rows = [(term_regulator(t), g) for t, genes in sets.items() for g in genes]
        table = _finish_edges(pd.DataFrame(rows, columns=EDGE_COLUMNS))
    else:
        if max_set_size is None:
            raise ScgbError(
                "the clique rule needs max_set_size",
                field="max_set_size",
                fix="set max_set_size (e.g. 100) for pathway-style libraries",
            )
        kept = {t: g for t, g in sets.items() if len(g) <= max_set_size}
        counts["sets_over_max_size"] = len(sets) - len(kept)
        if not kept:
            raise ScgbError(
                f"every set is larger than max_set_size={max_set_size}",
                field="max_set_size",
                fix="raise max_set_size",
            )
        rows = [(t, g) for t, genes in kept.items() for g in genes]
        table = pd.DataFrame(rows, columns=SET_COLUMNS)
        table["gene"] = clean_symbols(table["gene"])
    counts["sets_used"] = int(table.iloc[:, 0].nunique())
    return table.drop_duplicates().reset_index(drop=True), counts


# --- matching a database to a dataset -------------------------------------------------------


class GeneMatcher:
    """Maps database symbols to dataset gene indices: exact match first, then through
    :func:`harmonised_key` (case-insensitive, so mouse-style ``Gata1`` meets human ``GATA1``;
    ``SEPT7`` meets ``SEPTIN7``) when that is unambiguous in the dataset."""

    def __init__(self, genes: Sequence[str]) -> None:
        self.genes = [str(g) for g in genes]
        self.exact = {g.strip(): i for i, g in enumerate(self.genes)}
        keyed: dict[str, list[int]] = {}
        for i, g in enumerate(self.genes):
            keyed.setdefault(harmonised_key(g), []).append(i)
        self.keyed = {k: v[0] for k, v in keyed.items() if len(v) == 1}

    def index(self, symbols: pd.Series) -> tuple[np.ndarray, np.ndarray]:
        """Dataset index per symbol (-1 when absent) and whether it matched only after
        harmonisation (case or renaming), not as spelled."""
        sym = clean_symbols(symbols)
        exact = sym.map(self.exact)
        keys = sym.map({u: harmonised_key(u) for u in pd.unique(sym)})
        harmonised = exact.isna() & keys.isin(self.keyed.keys())
        idx = exact.fillna(keys.map(self.keyed)).fillna(-1).astype(np.int64)
        return idx.to_numpy(), harmonised.to_numpy()


@dataclass
class Coverage:
    """How one database meets a dataset: the mismatch report in stats.json."""

    name: str
    db_genes: int
    dataset_genes: int
    matched_genes: int
    matched_by_harmonisation: int
    db_rows: int
    kept_edges: int
    unmatched_dataset_examples: list[str] = field(default_factory=list)

    @property
    def hvg_fraction(self) -> float:
        return self.matched_genes / max(self.dataset_genes, 1)

    def as_dict(self) -> dict[str, Any]:
        return {
            "db_genes": self.db_genes,
            "dataset_genes": self.dataset_genes,
            "matched_genes": self.matched_genes,
            "hvg_fraction": round(self.hvg_fraction, 4),
            "matched_by_harmonisation": self.matched_by_harmonisation,
            "db_rows": self.db_rows,
            "kept_edges": self.kept_edges,
            "unmatched_dataset_examples": self.unmatched_dataset_examples,
        }


def restrict_to_genes(
    table: pd.DataFrame, matcher: GeneMatcher, name: str, path: str | None = None
) -> tuple[np.ndarray, np.ndarray, Coverage]:
    """Edges (src_idx, dst_idx) among the dataset's genes, from an edge table or a
    membership table (cliques), with the coverage report.

    A database that shares no gene with the dataset is almost always the wrong species or
    identifier type, so it raises with the counts instead of contributing nothing silently.
    """
    n = len(matcher.genes)
    if list(table.columns[:2]) == SET_COLUMNS:
        db_symbols = table["gene"]
        gidx, by_case = matcher.index(table["gene"])
        members = pd.DataFrame({"term": table["term"].to_numpy(), "g": gidx})
        members = members[members["g"] >= 0].drop_duplicates()
        pairs = members.merge(members, on="term")
        pairs = pairs[pairs["g_x"] != pairs["g_y"]]
        src, dst = pairs["g_x"].to_numpy(), pairs["g_y"].to_numpy()
        all_idx, all_case = gidx, by_case
    else:
        db_symbols = pd.concat([table["source"], table["target"]])
        s_idx, s_case = matcher.index(table["source"])
        t_idx, t_case = matcher.index(table["target"])
        keep = (s_idx >= 0) & (t_idx >= 0) & (s_idx != t_idx)
        src, dst = s_idx[keep], t_idx[keep]
        all_idx = np.concatenate([s_idx, t_idx])
        all_case = np.concatenate([s_case, t_case])
    matched = np.unique(all_idx[all_idx >= 0])
    # genes reached only through harmonisation (case, renaming), never spelled exactly
    case_only = set(all_idx[(all_idx >= 0) & all_case]) - set(all_idx[(all_idx >= 0) & ~all_case])
    if len(src):
        uniq = np.unique(src.astype(np.int64) * n + dst)
        src, dst = uniq // n, uniq % n
    db_genes = clean_symbols(db_symbols).unique()
    unmatched = sorted(set(range(n)) - set(matched.tolist()))
    cov = Coverage(
        name=name,
        db_genes=int(len(db_genes)),
        dataset_genes=n,
        matched_genes=int(len(matched)),
        matched_by_harmonisation=len(case_only),
        db_rows=int(len(table)),
        kept_edges=int(len(src)),
        unmatched_dataset_examples=[matcher.genes[i] for i in unmatched[:10]],
    )
    if cov.matched_genes == 0:
        raise ScgbError(
            f"database '{name}' shares no gene with the dataset: 0 of {n} dataset genes among "
            f"its {cov.db_genes} genes (database e.g. {list(db_genes[:5])}, dataset e.g. "
            f"{matcher.genes[:5]})",
            path=path,
            field=f"databases.{name}",
            fix="check the species and that both use gene symbols (not Ensembl IDs)",
        )
    return src, dst, cov
