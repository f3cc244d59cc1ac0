"""Pipeline API: scores.parquet / deltas.npy / targets.npy for the variant table, and its script."""

from __future__ import annotations

import runpy
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
from test_spliceai_fixtures import DATA, GENES, fixture_annotation, spliceai_model, vcf_records  # noqa: F401

from metasplice.base_models.engine import IncrementalBackend
from metasplice.base_models.spliceai.scoring import ScoreConfig
from metasplice.base_models.table import DP_COLUMNS, DS_COLUMNS, score_variants
from metasplice.data.genome import Genome

ROOT = Path(__file__).resolve().parents[1]


def expected_entries() -> dict[tuple[int, str, str, str], list[str]]:
    """(pos, ref, alt, gene) -> official fields, from SpliceAI's batch test output."""
    out = {}
    for rec in vcf_records(DATA / "batch_test_expected.vcf"):
        if not rec[7].startswith("SpliceAI="):
            continue
        for entry in rec[7].removeprefix("SpliceAI=").split(","):
            fields = entry.split("|")
            out[(int(rec[1]), rec[3], fields[0], fields[1])] = fields[2:]
    return out


def variant_table() -> pd.DataFrame:
    rows = [  # chrom, pos, ref, alt, gene, strand, tx_start, tx_end, label
        ("chr19", 1228432, "C", "T", "CBARP", "-", 1228319, 1238027, 1),
        ("chr19", 1228433, "TG", "T", "STK11", "+", 1205798, 1228431 + 3, 0),  # wrong tx bounds: not in table
        ("chr19", 1228433, "TG", "T", "CBARP", "-", 1228319, 1238027, -1),
        ("chr19", 1228437, "C", "CA", "CBARP", "-", 1228319, 1238027, 1),
        ("chr19", 1228442, "GG", "CC", "CBARP", "-", 1228319, 1238027, 1),  # MNV: not scored
        ("chr19", 1228434, "T", "A", "CBARP", "-", 1228319, 1238027, 0),  # REF mismatch
        ("chr19", 1228431, "C", "A", "STK11", "+", 1205798, 1228434, 0),
    ]
    cols = ["chrom", "pos", "ref", "alt", "gene", "strand", "tx_start", "tx_end", "label"]
    table = pd.DataFrame(rows, columns=cols)
    return table.astype({"pos": np.int64, "tx_start": np.int64, "tx_end": np.int64, "label": np.int8})


def test_scores_deltas_and_targets(spliceai_model, fixture_annotation) -> None:
    genes = fixture_annotation.genes.set_index("name")
    table = variant_table()
    for name in ("CBARP", "STK11"):  # use the annotation's real bounds except for the deliberate misfit
        ok = (table["gene"] == name) & (table.index != 1)
        table.loc[ok, "tx_start"], table.loc[ok, "tx_end"] = genes.at[name, "tx_start"], genes.at[name, "tx_end"]
    with Genome(DATA / "chr19_grch37_small.fa") as genome:
        result = score_variants(table, genome, fixture_annotation, IncrementalBackend(spliceai_model), ScoreConfig())
    scores, deltas, targets = result.scores, result.deltas, result.targets
    assert len(scores) == len(table) and deltas.shape == (len(table), 101, 3) and targets.shape == deltas.shape
    assert scores["scored"].tolist() == [True, False, True, True, False, False, True]
    reasons = scores["skip_reason"].str.split(":").str[0].tolist()
    assert reasons == ["", "gene not in annotation", "", "", "mnv/complex", "ref mismatch", ""]
    expected = expected_entries()
    for i in np.flatnonzero(scores["scored"]):
        row = table.iloc[i]
        fields = expected[(row.pos, row.ref, row.alt, row.gene)]
        got = [f"{scores.at[i, c]:.2f}" for c in DS_COLUMNS] + [str(scores.at[i, c]) for c in DP_COLUMNS]
        assert got == fields, (row.to_dict(), got, fields)
        d = deltas[i]
        assert np.isclose(scores.at[i, "DS_AG"], d[:, 1].max()) and np.isclose(scores.at[i, "DS_DL"], (-d[:, 2]).max())
        assert int(np.argmax(d[:, 1])) - 50 == scores.at[i, "DP_AG"]
        assert np.isclose(scores.at[i, "DS_max"], scores.loc[i, list(DS_COLUMNS)].max())
    assert np.isnan(deltas[~scores["scored"].to_numpy()]).all()
    assert scores.loc[~scores["scored"], "DP_AG"].isna().all()
    # targets: label 1 -> base model, label 0 -> zeros, other labels and unscored variants of either label
    # (row 5 is Normal) -> NaN
    assert np.array_equal(targets[0], deltas[0]) and np.array_equal(targets[6], np.zeros((101, 3)))
    assert np.isnan(targets[2]).all() and np.isnan(targets[4]).all()
    assert table["label"].iloc[5] == 0 and np.isnan(targets[5]).all()
    assert scores.at[0, "target_DS_AL"] == scores.at[0, "DS_AL"] and scores.at[6, "target_DS_AG"] == 0.0
    assert np.isnan(scores.at[2, "target_DS_AG"])


def test_workflow_script_writes_all_outputs(tmp_path) -> None:
    """workflow_scripts/base_model_scores.py with a stand-in for Snakemake's ``snakemake`` object."""
    table = variant_table().iloc[[0, 4]].reset_index(drop=True)
    genes = pd.read_csv(GENES, sep="\t")
    cbarp = genes[genes["#NAME"] == "CBARP"].iloc[0]
    table["tx_start"], table["tx_end"] = cbarp["TX_START"] + 1, cbarp["TX_END"]
    variants = tmp_path / "variants.parquet"
    table.to_parquet(variants)
    out = {
        k: str(tmp_path / "targets" / "spliceai" / f)
        for k, f in [("scores", "scores.parquet"), ("deltas", "deltas.npy"), ("targets", "targets.npy")]
    }
    smk = SimpleNamespace(
        input=SimpleNamespace(
            variants=str(variants), genome=str(DATA / "chr19_grch37_small.fa"), annotation=str(GENES)
        ),
        output=SimpleNamespace(**out),
        params=SimpleNamespace(scoring={"kind": "spliceai", "distance": 50, "mask": 0}),
        config={"base_models": {"spliceai": {"kind": "spliceai", "batch_size": 8, "device": "cpu"}}},
        wildcards=SimpleNamespace(base="spliceai"),
        threads=1,
        log=[str(tmp_path / "log.txt")],
        rule="base_model_scores",
    )
    runpy.run_path(str(ROOT / "workflow_scripts" / "base_model_scores.py"), init_globals={"snakemake": smk})
    scores = pd.read_parquet(out["scores"])
    assert scores["scored"].tolist() == [True, False]
    assert np.load(out["deltas"]).shape == (2, 101, 3) and np.load(out["targets"]).dtype == np.float32
    assert "1 of 2 variants scored" in (tmp_path / "log.txt").read_text()
    assert not list((tmp_path / "targets" / "spliceai").glob(".*tmp*"))
