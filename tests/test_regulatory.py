"""Regulatory databases: parsers on the real files and on small written fixtures, symbol
harmonisation, the gene-set rule, sources (package, url, local override) and bad inputs."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import pandas as pd
import pytest

from scgraphbench.errors import ScgbError
from scgraphbench.graphs import databases as dbs
from scgraphbench.graphs import regulatory as reg

DGP_COUNTS = {
    "EVEX": 236242,
    "JASPAR": 148069,
    "MOTIFMAP": 158860,
    "RegNetwork": 211928,
    "kegg": 63288,
    "string": 279162,
    "trrust": 9396,
}
GMT_SETS = {
    "KEGG_2021_Human": 320,
    "TRRUST_Transcription_Factors_2019": 571,
    "ENCODE_and_ChEA_Consensus_TFs_from_ChIP-X": 104,
    "TRANSFAC_and_JASPAR_PWMs": 326,
    "TF_Perturbations_Followed_by_Expression": 1958,
    "MSigDB_Hallmark_2020": 50,
    "Reactome_2022": 1818,
    "GO_Biological_Process_2023": 5407,
}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- real files ------------------------------------------------------------------------------


@pytest.mark.shared
@pytest.mark.parametrize("db", sorted(DGP_COUNTS))
def test_dgp_amio_edge_lists_parse_and_match_the_pinned_checksums(shared_data: Path, db: str):
    path = shared_data / "regulatory_edges" / f"edges_{db}.csv"
    edges = reg.read_edge_csv(path)
    assert list(edges.columns) == ["source", "target"]
    assert len(edges) + edges.attrs["dropped_blank_rows"] == DGP_COUNTS[db]
    assert edges.attrs["dropped_blank_rows"] == (77 if db == "EVEX" else 0)
    assert (edges["source"].str.len() > 0).all() and (edges["target"].str.len() > 0).all()
    assert dbs.KNOWN_SHA256[dbs.dgp_amio_url(db)] == sha256(path)


def test_unpinned_dgp_amio_databases_are_exactly_the_three_never_hashed() -> None:
    unpinned = {db for db in dbs.DGP_AMIO_DBS if dbs.dgp_amio_url(db) not in dbs.KNOWN_SHA256}
    assert unpinned == {"CHEA", "CPDB", "IREF"}


@pytest.mark.shared
def test_trrust_raw_files(shared_data: Path) -> None:
    human = reg.read_trrust(shared_data / "trrust/trrust_rawdata.human.tsv")
    assert len(human) == 9396 and human["source"].nunique() == 795
    assert set(human["mode"]) == {"Activation", "Repression", "Unknown"}
    mouse = reg.read_trrust(shared_data / "trrust/trrust_rawdata.mouse.tsv")
    assert len(mouse) == 7057 and mouse["source"].nunique() == 827
    # the DGP-AMIO trrust graph is the same 9396 human rows once its spreadsheet-mangled
    # symbols ('1-Dec', '7-Sep') are restored to DEC1 and SEPT7
    dgp = reg.read_edge_csv(shared_data / "regulatory_edges/edges_trrust.csv")
    assert dgp.attrs["restored_excel_dates"] == 2
    assert set(zip(dgp.source, dgp.target, strict=True)) == set(
        zip(human.source, human.target, strict=True)
    )


@pytest.mark.shared
def test_collectri_human(shared_data: Path) -> None:
    c = reg.read_collectri(shared_data / "collectri/collectri_human.csv")
    assert len(c) == 45561
    assert c["source"].nunique() == 1176 and c["target"].nunique() == 6628
    assert c["sign"].value_counts().to_dict() == {"1": 40092, "-1": 5469}


@pytest.mark.shared
def test_regnetwork_direction_file(shared_data: Path) -> None:
    r = reg.read_regnetwork(shared_data / "regnetwork/new_kegg.human.reg.direction.txt")
    assert len(r) == 3954
    assert r["source"].nunique() == 294 and r["target"].nunique() == 776
    assert r["mode"].value_counts().to_dict() == {"-->": 3862, "--|": 80, "-/-": 11, "-p": 1}


@pytest.mark.shared
@pytest.mark.parametrize("lib", sorted(GMT_SETS))
def test_enrichr_gmt_files_agree_with_gseapy(shared_data: Path, lib: str) -> None:
    import gseapy

    path = shared_data / "enrichr_gmt" / f"{lib}.gmt"
    sets = reg.read_gmt(path)
    assert len(sets) == GMT_SETS[lib]
    reference = gseapy.read_gmt(str(path))
    assert set(sets) == set(reference)
    assert all(set(sets[t]) == set(reference[t]) - {""} for t in sets)


@pytest.mark.shared
def test_mouse_style_tf_library_matches_human_symbols_by_case(shared_data: Path) -> None:
    sets = reg.read_gmt(shared_data / "enrichr_gmt/TRANSFAC_and_JASPAR_PWMs.gmt")
    table, counts = reg.geneset_table(sets, "tf", term_regex=r"\(mouse\)")
    assert 0 < counts["sets_matching_regex"] < counts["sets"]
    assert "Gata1" in set(table["source"])  # 'Gata1 (mouse)' keeps its mouse-style case
    targets = [g for g in sets["Gata1 (mouse)"] if g.upper() != "GATA1"][:5]
    src, dst, _ = reg.restrict_to_genes(table, reg.GeneMatcher(["GATA1", *targets]), "transfac")
    # the mouse-style regulator 'Gata1' reaches the dataset's GATA1: one edge per target
    assert sorted(dst[src == 0].tolist()) == [1, 2, 3, 4, 5]


@pytest.mark.shared
def test_fetch_with_local_override_checks_the_pinned_sha256(
    shared_data: Path, tmp_path: Path
) -> None:
    src = shared_data / "regulatory_edges/edges_trrust.csv"
    summary = dbs.fetch_database(
        "trrust",
        {"source": "dgp_amio", "db": "trrust", "path": str(src)},
        tmp_path / "trrust.csv.gz",
        info=tmp_path / "trrust.json",
    )
    assert summary["raw_sha256"] == dbs.KNOWN_SHA256[dbs.dgp_amio_url("trrust")]
    assert summary["rows"] == len(reg.read_edge_csv(src).drop_duplicates())
    tampered = tmp_path / "edges_trrust.csv"
    tampered.write_text(src.read_text() + "EXTRA,ROW\n")
    with pytest.raises(ScgbError, match="sha256"):
        dbs.fetch_database(
            "trrust",
            {"source": "dgp_amio", "db": "trrust", "path": str(tampered)},
            tmp_path / "bad.csv.gz",
        )
    assert not (tmp_path / "bad.csv.gz").exists()


# --- the offline default: Pathway Commons inside regulon-enrichment --------------------------


def test_pathway_commons_ships_in_the_pinned_package(tmp_path: Path) -> None:
    spec = {k: v for k, v in dbs.PATHWAY_COMMONS_PACKAGE.items() if k != "sha256"}
    out = tmp_path / "pc.csv.gz"
    summary = dbs.fetch_database("pathwaycommons", spec, out, info=tmp_path / "pc.json")
    assert summary["rows"] == 122785  # every controls-expression-of row is a distinct pair
    assert summary["raw_sha256"] == dbs.PATHWAY_COMMONS_PACKAGE["sha256"]
    table = dbs.read_normalised(out)
    assert list(table.columns) == ["source", "target"] and len(table) == 122785


def test_package_source_errors_name_the_pin(tmp_path: Path) -> None:
    spec = {**dbs.PATHWAY_COMMONS_PACKAGE, "version": "9.9"}
    with pytest.raises(ScgbError, match="0.4a0 is installed") as e:
        dbs.fetch_database("pc", spec, tmp_path / "x.csv.gz")
    assert "pip install" in str(e.value)
    with pytest.raises(ScgbError, match="not installed"):
        dbs.fetch_database("pc", {**spec, "package": "no-such-package-scgb"}, tmp_path / "x.csv.gz")
    with pytest.raises(ScgbError, match="has no file"):
        dbs.fetch_database(
            "pc", {**dbs.PATHWAY_COMMONS_PACKAGE, "member": "nope.sif"}, tmp_path / "x.csv.gz"
        )


# --- small fixtures: parsers ------------------------------------------------------------------


def test_edge_csv_bad_inputs(tmp_path: Path) -> None:
    p = tmp_path / "edges_X.csv"
    p.write_text("source,target\nA,B\nC,D,E\n")
    with pytest.raises(ScgbError, match="malformed row") as e:
        reg.read_edge_csv(p)
    assert str(p) in str(e.value)
    p.write_text("from,to\nA,B\n")
    with pytest.raises(ScgbError, match="lacks"):
        reg.read_edge_csv(p)
    p.write_text("source,target\nA,B\nC,\nNA,D\n")  # an empty symbol: row dropped, counted
    e = reg.read_edge_csv(p)
    assert e.values.tolist() == [["A", "B"], ["NA", "D"]] and e.attrs["dropped_blank_rows"] == 1
    p.write_text("source,target\n A ,NA\n")  # 'NA' is a symbol, whitespace is not
    assert reg.read_edge_csv(p).values.tolist() == [["A", "NA"]]
    with pytest.raises(ScgbError, match="not found"):
        reg.read_edge_csv(tmp_path / "missing.csv")


def test_trrust_bad_inputs(tmp_path: Path) -> None:
    p = tmp_path / "trrust.tsv"
    p.write_text("TF\tTarget\tMode\tPMID\nAATF\tBAX\tRepression\t1\n")
    with pytest.raises(ScgbError, match="line 1: mode 'Mode'"):
        reg.read_trrust(p)
    p.write_text("AATF\tBAX\tRepression\t1\nAATF\tCDKN1A\tActivation\t2\nX\tY\tActivated\t3\n")
    with pytest.raises(ScgbError, match="line 3: mode 'Activated'"):
        reg.read_trrust(p)
    p.write_text("AATF\tBAX\tRepression\t1\tEXTRA\n")
    with pytest.raises(ScgbError, match="malformed row"):
        reg.read_trrust(p)


def test_regnetwork_formats_and_bad_rows(tmp_path: Path) -> None:
    p = tmp_path / "reg.txt"
    p.write_text(
        "#TF ID Target ID Up or Down or Unknown\nAHR 196 CDKN1B 1027 -->\nE2F1 1869 TP53 7157 --|\n"
    )
    r = reg.read_regnetwork(p)
    assert r[["source", "target", "mode"]].values.tolist() == [
        ["AHR", "CDKN1B", "-->"],
        ["E2F1", "TP53", "--|"],
    ]
    p.write_text("#regulator\tid\ttarget\tid\nAHR\t196\tCDKN1B\t1027\n")  # human.source
    assert reg.read_regnetwork(p)["target"].tolist() == ["CDKN1B"]
    p.write_text("#h\nAHR 196 CDKN1B 1027 -->\nAHR 196 CDKN1B\n")
    with pytest.raises(ScgbError, match="line 3"):
        reg.read_regnetwork(p)
    p.write_text("#h\nAHR 196 CDKN1B 1027 activates\n")
    with pytest.raises(ScgbError, match="line 2"):
        reg.read_regnetwork(p)
    p.write_text("#only a header\n")
    with pytest.raises(ScgbError, match="no edges"):
        reg.read_regnetwork(p)


def test_gmt_parser_skips_enrichr_trailing_line_and_rejects_bad_files(tmp_path: Path) -> None:
    p = tmp_path / "lib.gmt"
    p.write_bytes(b"SETA\t\tG1\tG2\t\r\nSETB\tdesc\tG2\tG3\tG2\t\n\t\t\n")
    assert reg.read_gmt(p) == {"SETA": ["G1", "G2"], "SETB": ["G2", "G3"]}
    gz = tmp_path / "lib.gmt.gz"
    gz.write_bytes(gzip.compress(p.read_bytes()))
    assert reg.read_gmt(gz) == reg.read_gmt(p)
    p.write_text("")
    with pytest.raises(ScgbError, match="no gene set"):
        reg.read_gmt(p)
    p.write_text("\t\t\n")
    with pytest.raises(ScgbError, match="no gene set"):
        reg.read_gmt(p)
    p.write_text("SETA\t\tG1\nSETB G2 G3\n")
    with pytest.raises(ScgbError, match="line 2: no tab"):
        reg.read_gmt(p)
    p.write_text("SETA\t\tG1\n\t\tG2\tG3\n")
    with pytest.raises(ScgbError, match="line 2: 2 genes under an empty term"):
        reg.read_gmt(p)


def test_sif_relations(tmp_path: Path) -> None:
    p = tmp_path / "pc.sif"
    p.write_text("A\tcontrols-expression-of\tB\nA\tin-complex-with\tC\n")
    assert reg.read_sif(p, ["controls-expression-of"])[["source", "target"]].values.tolist() == [
        ["A", "B"]
    ]
    assert len(reg.read_sif(p)) == 2
    with pytest.raises(ScgbError, match="choose from"):
        reg.read_sif(p, ["controls-expresion-of"])


def test_collectri_accepts_decoupler_columns(tmp_path: Path) -> None:
    p = tmp_path / "c.csv"
    p.write_text("source,target,weight\nJUNB,JUN,1\n")
    assert reg.read_collectri(p)[["source", "target", "sign"]].values.tolist() == [
        ["JUNB", "JUN", "1"]
    ]
    p.write_text("regulator,gene\nJUNB,JUN\n")
    with pytest.raises(ScgbError, match="tf/source"):
        reg.read_collectri(p)


# --- gene sets -> edges -------------------------------------------------------------------------


def test_tf_rule_and_clique_rule() -> None:
    sets = {
        "Gata1 (mouse)": ["Klf1", "Tal1"],
        "AR 20517297 ChIP-Seq LNCaP Human": ["KLK3"],
        "BIG": [f"G{i}" for i in range(200)],
        "SMALL": ["X", "Y", "Z"],
    }
    assert reg.term_regulator("NANOG CHEA") == "NANOG"
    tf, _ = reg.geneset_table({k: sets[k] for k in list(sets)[:2]}, "tf")
    assert set(zip(tf.source, tf.target, strict=True)) == {
        ("Gata1", "Klf1"),
        ("Gata1", "Tal1"),
        ("AR", "KLK3"),
    }
    cl, counts = reg.geneset_table(sets, "clique", max_set_size=100)
    assert counts["sets_over_max_size"] == 1 and "BIG" not in set(cl["term"])
    m = reg.GeneMatcher(["X", "Y", "Z", "W"])
    src, dst, cov = reg.restrict_to_genes(cl, m, "pathways")
    assert set(zip(src.tolist(), dst.tolist(), strict=True)) == {
        (a, b) for a in range(3) for b in range(3) if a != b
    }
    assert cov.kept_edges == 6 and cov.matched_genes == 3
    with pytest.raises(ScgbError, match="max_set_size"):
        reg.geneset_table(sets, "clique")
    with pytest.raises(ScgbError, match="no term"):
        reg.geneset_table(sets, "tf", term_regex="zebrafish")
    with pytest.raises(ScgbError, match="unknown gene-set rule"):
        reg.geneset_table(sets, "knn")


def test_enrichr_through_gseapy_keeps_sets_larger_than_its_default(monkeypatch) -> None:
    import gseapy

    calls = {}

    def fake_get_library(**kwargs):
        calls.update(kwargs)
        big = [f"G{i}" for i in range(3000)]
        sets = {"ChEA big": big, "TF small": ["A", "B"], "": ["C"]}
        return {t: g for t, g in sets.items() if kwargs["min_size"] <= len(g) <= kwargs["max_size"]}

    monkeypatch.setattr(gseapy, "get_library", fake_get_library)
    sets = reg.enrichr_library("ChEA_2022")
    assert calls["max_size"] > 3000 and calls["min_size"] == 0 and calls["organism"] == "Human"
    assert len(sets["ChEA big"]) == 3000 and "" not in sets

    def offline(**kwargs):
        raise ConnectionError("no route to host")

    monkeypatch.setattr(gseapy, "get_library", offline)
    with pytest.raises(ScgbError, match="'path'"):
        dbs.fetch_database(
            "chea",
            {"source": "enrichr", "library": "ChEA_2022"},
            Path("/nonexistent/never-written.csv.gz"),
        )


# --- matching -------------------------------------------------------------------------------------


def test_symbol_harmonisation_whitespace_case_renames_and_exact_first() -> None:
    m = reg.GeneMatcher(["GATA1", "Stat3", "MYC", "myc", "SEPTIN7", "MARCH1"])
    idx, harmonised = m.index(
        pd.Series(
            [
                " GATA1",
                "Gata1",
                "STAT3",
                "MYC",
                "myc",
                "Myc",
                "ABC\u00a0",
                "7-Sep",
                "SEPT7",
                "MARCHF1",
                "1-Mar",
            ]
        )
    )
    # 'Myc' is ambiguous between MYC and myc; '7-Sep' is a spreadsheet's SEPT7 = SEPTIN7
    assert idx.tolist() == [0, 0, 1, 2, 3, -1, -1, 4, 4, 5, 5]
    assert harmonised.tolist() == [
        False,
        True,
        True,
        False,
        False,
        False,
        False,
        True,
        True,
        True,
        False,
    ]
    assert reg.clean_symbols(pd.Series(["1-Dec", "12-Sep", "Sep-12", "2-Oct"])).tolist() == [
        "DEC1",
        "SEPT12",
        "Sep-12",
        "OCT2",
    ]


def test_database_with_no_overlapping_gene_is_an_error_with_counts() -> None:
    table = pd.DataFrame({"source": ["ENSG01", "ENSG02"], "target": ["ENSG03", "ENSG01"]})
    with pytest.raises(ScgbError) as e:
        reg.restrict_to_genes(table, reg.GeneMatcher(["CD3E", "MS4A1", "LYZ"]), "ids")
    msg = str(e.value)
    assert "0 of 3 dataset genes" in msg and "its 3 genes" in msg and "Ensembl" in msg


def test_coverage_report() -> None:
    table = pd.DataFrame({"source": ["A", "A", "B", "Q"], "target": ["B", "C", "B", "A"]})
    src, dst, cov = reg.restrict_to_genes(table, reg.GeneMatcher(["A", "B", "C", "D"]), "db")
    assert set(zip(src.tolist(), dst.tolist(), strict=True)) == {
        (0, 1),
        (0, 2),
    }  # B->B self pair dropped
    d = cov.as_dict()
    assert d["db_genes"] == 4 and d["matched_genes"] == 3 and d["hvg_fraction"] == 0.75
    assert d["kept_edges"] == 2 and d["unmatched_dataset_examples"] == ["D"]


# --- sources -------------------------------------------------------------------------------------


def test_resolve_spec_fills_pins_and_rejects_bad_entries() -> None:
    s = dbs.resolve_spec("string", {"source": "dgp_amio", "db": "string"})
    assert s["url"].endswith(f"{dbs.DGP_AMIO_COMMIT}/graphs/edges_string.csv")
    assert s["sha256"] == dbs.KNOWN_SHA256[s["url"]] and s["format"] == "dgp_edges"
    assert dbs.resolve_spec("chea", {"source": "dgp_amio", "db": "CHEA"})["sha256"] is None
    t = dbs.resolve_spec("t", {"source": "url", "url": dbs.TRRUST_HUMAN_URL, "format": "trrust"})
    assert t["sha256"] == "9b909319ccc8e36588b5a1bd3640e0dfba03936c6fc154cc4304d742bec11bed"
    assert (
        dbs.resolve_spec(
            "k", {"source": "file", "path": "k.gmt", "format": "gmt", "geneset_rule": "clique"}
        )["max_set_size"]
        == 100
    )
    for bad, field in [
        ({"source": "ftp"}, "source"),
        ({"source": "dgp_amio", "db": "Chea"}, "db"),
        ({"source": "url", "format": "sif"}, "url"),
        ({"source": "package", "package": "x"}, "version"),
        ({"source": "file", "path": "x", "format": "xml"}, "format"),
        ({"source": "enrichr"}, "library"),
    ]:
        with pytest.raises(ScgbError) as e:
            dbs.resolve_spec("bad", bad)
        assert e.value.field == f"databases.bad.{field}"


def test_url_source_downloads_into_the_cache_and_verifies(tmp_path: Path) -> None:
    remote = tmp_path / "remote" / "trrust.tsv"
    remote.parent.mkdir()
    remote.write_text("AATF\tBAX\tRepression\t1\nAHR\tCYP1A1\tActivation\t2\n")
    spec = {"source": "url", "url": remote.as_uri(), "format": "trrust", "sha256": sha256(remote)}
    summary = dbs.fetch_database(
        "mini", spec, tmp_path / "out/mini.csv.gz", cache_dir=tmp_path / "cache"
    )
    assert (tmp_path / "cache/mini/trrust.tsv").read_bytes() == remote.read_bytes()
    assert summary["rows"] == 2 and summary["genes"] == 4
    with pytest.raises(ScgbError, match="checksum mismatch"):
        dbs.fetch_database(
            "mini2",
            {**spec, "sha256": "0" * 64},
            tmp_path / "out/m2.csv.gz",
            cache_dir=tmp_path / "cache",
        )
    assert not (tmp_path / "out/m2.csv.gz").exists()


def test_clique_library_is_stored_as_membership(tmp_path: Path) -> None:
    p = tmp_path / "kegg.gmt"
    p.write_text("P1\t\tA\tB\tC\t\nP2\t\tC\tD\t\n\t\t\n")
    out = tmp_path / "kegg.csv.gz"
    summary = dbs.fetch_database(
        "kegg",
        {
            "source": "file",
            "path": str(p),
            "format": "gmt",
            "geneset_rule": "clique",
            "max_set_size": 2,
        },
        out,
    )
    assert summary["kind"] == "genesets" and summary["sets_over_max_size"] == 1
    table = dbs.read_normalised(out)
    assert list(table.columns) == ["term", "gene"] and table.values.tolist() == [
        ["P2", "C"],
        ["P2", "D"],
    ]
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(ScgbError, match="neither"):
        dbs.read_normalised(bad)
    assert dbs.database_name("resources/databases/my.db.csv.gz") == "my.db"


def test_empty_parse_is_an_error(tmp_path: Path) -> None:
    p = tmp_path / "pc.sif"
    p.write_text("A\tin-complex-with\tB\n")
    with pytest.raises(ScgbError, match="do not occur"):
        dbs.fetch_database(
            "pc",
            {
                "source": "file",
                "path": str(p),
                "format": "sif",
                "relations": ["controls-expression-of"],
            },
            tmp_path / "o.csv.gz",
        )
