"""SpliceAI's own expected outputs (tests/data/spliceai, see PROVENANCE.md), reproduced exactly.

Also provides the shared fixtures of the test_spliceai_* modules (imported there by name).
"""

from __future__ import annotations

import gzip
from pathlib import Path

import pandas as pd
import pytest
import torch

from metasplice.base_models.engine import IncrementalBackend
from metasplice.base_models.spliceai.model import load_spliceai_ensemble
from metasplice.base_models.spliceai.scoring import ScoreConfig
from metasplice.base_models.spliceai.vcf import Record, score_records
from metasplice.base_models.windowed import WindowedBackend
from metasplice.cli import main as cli_main
from metasplice.data.annotation import load_annotation
from metasplice.data.genome import Genome

DATA = Path(__file__).resolve().parent / "data" / "spliceai"
GENES = DATA / "grch37_fixture_genes.txt"  # SpliceAI's grch37 rows on the fixture contigs


@pytest.fixture(scope="session")
def spliceai_model():
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    return load_spliceai_ensemble()


@pytest.fixture(scope="session")
def fixture_annotation():
    return load_annotation(GENES)


@pytest.fixture(scope="session")
def chr10_genome():
    with Genome(DATA / "test.fa") as genome:
        yield genome


def vcf_records(path: Path) -> list[list[str]]:
    """Data lines split into columns (header lines dropped)."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt") as fh:
        return [line.rstrip("\n").split("\t") for line in fh if not line.startswith("#")]


EXPECTED = pd.read_csv(DATA / "expected_delta_scores.tsv", sep="\t", dtype=str)


@pytest.mark.parametrize("engine", ["incremental", "windowed"])
def test_expected_delta_scores(engine, spliceai_model, fixture_annotation) -> None:
    """Every assertion of SpliceAI's tests/test_delta_score.py (chr prefix on either side, D=500)."""
    rows = EXPECTED if engine == "incremental" else EXPECTED.drop_duplicates(["pos"])
    backend = (IncrementalBackend if engine == "incremental" else WindowedBackend)(spliceai_model)
    for (fasta, distance, mask), group in rows.groupby(["fasta", "distance", "mask"]):
        config = ScoreConfig(distance=int(distance), mask=bool(int(mask)))
        records = [Record(r["chrom"], int(r["pos"]), r["ref"], (r["alt"],)) for _, r in group.iterrows()]
        with Genome(DATA / fasta) as genome:
            entries, skips = score_records(records, genome, fixture_annotation, backend, config)
        assert entries == [[e] for e in group["expected_spliceai"]], (fasta, skips)


@pytest.mark.parametrize("batch_size", [3])
def test_batch_vcf_matches_expected(tmp_path, batch_size) -> None:
    """The drop-in CLI on SpliceAI's batch test VCF: every record identical to the expected file."""
    out = tmp_path / "out.vcf"
    skipped = tmp_path / "skipped.tsv"
    code = cli_main(
        [
            "spliceai",
            "-I",
            str(DATA / "batch_test.vcf"),
            "-O",
            str(out),
            "-R",
            str(DATA / "chr19_grch37_small.fa"),
            "-A",
            str(GENES),
            "-D",
            "50",
            "-M",
            "0",
            "--batch-size",
            str(batch_size),
            "--device",
            "cpu",
            "--no-progress",
            "--skipped",
            str(skipped),
        ]
    )
    assert code == 0
    assert vcf_records(out) == vcf_records(DATA / "batch_test_expected.vcf")
    header = [line for line in out.read_text().splitlines() if line.startswith("##INFO=<ID=SpliceAI")]
    assert len(header) == 1 and "ALLELE|SYMBOL|DS_AG|DS_AL|DS_DG|DS_DL|DP_AG|DP_AL|DP_DG|DP_DL" in header[0]
    reasons = pd.read_csv(skipped, sep="\t", dtype=str, keep_default_na=False)
    assert set(reasons["reason"].str.split(":").str[0]) == {
        "outside genes",
        "ref mismatch",
        "mnv/complex",
        "missing ALT",
    }
    assert reasons.loc[reasons["pos"] == "1228434", "reason"].str.contains("REF Z").all()


@pytest.mark.parametrize("mask", [0, 1])
def test_indels_and_mask_match_the_official_cli(tmp_path, mask) -> None:
    """Official CLI outputs (generated with spliceai 1.3.1, see PROVENANCE.md): D=500, -M 0 and -M 1,
    minus strand, SNVs, insertions and deletions next to boundaries and the transcript ends."""
    out = tmp_path / "out.vcf"
    code = cli_main(
        [
            "spliceai",
            "-I",
            str(DATA / "tubb8_d500.vcf"),
            "-O",
            str(out),
            "-R",
            str(DATA / "test_without_prefix.fa"),
            "-A",
            str(GENES),
            "-D",
            "500",
            "-M",
            str(mask),
            "--device",
            "cpu",
            "--no-progress",
        ]
    )
    assert code == 0
    assert vcf_records(out) == vcf_records(DATA / f"tubb8_d500_M{mask}_official.vcf")
