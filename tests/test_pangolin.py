"""`metasplice pangolin` against the official Pangolin 1.0.2 output on real BRCA1 ClinVar records.

The official tool's output (tests/data/pangolin, see PROVENANCE.md) at -d 50, -d 500 and -m False:
every record's Pangolin INFO string equal (positions, values, gene order, warnings), the same
records skipped with the same [Line n] warnings.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from metasplice.base_models.backends import BaseModelSpec, EngineSpec, load_base_model, make_backend
from metasplice.base_models.pangolin.annotation import GffutilsGenes, TableGenes, create_db, load_genes
from metasplice.base_models.pangolin.model import WEIGHTS, PangolinWeights
from metasplice.base_models.pangolin.scoring import PangolinConfig, check_variant, score_tasks
from metasplice.base_models.pangolin.vcf import annotate_csv, annotate_vcf
from metasplice.data.annotation import Annotation
from metasplice.data.fetch import sha256_file
from metasplice.data.genome import Genome

DATA = Path(__file__).parent / "data"
PG = DATA / "pangolin"
FASTA = DATA / "realdata" / "grch38_chr17_brca1_region.fa.gz"
VCF = PG / "clinvar_subset.vcf"


def _records(path: Path) -> list[tuple[str, str, str, str, str | None]]:
    out = []
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            continue
        f = line.split("\t")
        m = re.search(r"(?:^|;)Pangolin=([^;]*)", f[7])
        out.append((f[0], f[1], f[3], f[4], m.group(1) if m else None))
    return out


def _warnings(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if line.startswith("[Line")]


@pytest.fixture(scope="module")
def backend():
    torch.set_num_threads(2)
    model = load_base_model(BaseModelSpec("pangolin", (str(PG / "models"),)))
    return make_backend(model, EngineSpec("incremental", "cpu", None))


@pytest.fixture(scope="module")
def genome():
    with Genome(FASTA) as g:
        yield g


@pytest.fixture(scope="module")
def genes():
    return GffutilsGenes(PG / "region_genes.db")


def test_weights_are_the_official_files():
    for name, digest in WEIGHTS.items():
        assert sha256_file(PG / "models" / name) == digest
    assert len(PangolinWeights(PG / "models").paths()) == 12


@pytest.mark.parametrize(
    ("official", "config"),
    [
        ("clinvar_official_d50", PangolinConfig(distance=50)),
        ("clinvar_official_d500", PangolinConfig(distance=500)),
        ("clinvar_official_d50_nomask", PangolinConfig(distance=50, mask=False)),
    ],
)
def test_vcf_equals_the_official_output(tmp_path, backend, genome, genes, official, config):
    out = tmp_path / "out.vcf"
    warned: list[str] = []
    summary = annotate_vcf(str(VCF), genome, genes, backend, config, str(out), chunk_size=37, warn=warned.append)
    ours, theirs = _records(out), _records(PG / f"{official}.vcf")
    assert len(ours) == len(theirs) == 80
    assert ours == theirs  # every INFO string equal, byte for byte
    assert [w for w in warned if w.startswith("[Line")] == _warnings(PG / f"{official}.log")
    assert (summary.scored, summary.skipped) == (79, 1)
    header = [line for line in out.read_text().splitlines() if line.startswith("##INFO=<ID=Pangolin")]
    assert len(header) == 1


def test_batch_size_does_not_change_the_output(genome, genes):
    model = load_base_model(BaseModelSpec("pangolin", (str(PG / "models"),)))
    lines = [line for line in VCF.read_text().splitlines() if not line.startswith("#")][:12]
    config = PangolinConfig(distance=50)
    tasks = []
    for k, line in enumerate(lines):
        f = line.split("\t")
        task, _ = check_variant(k + 1, f[0], int(f[1]), f[3], f[4], genome, genes, config)
        if task is not None:
            tasks.append(task)
    texts = []
    for batch in (1, 5, 64):
        backend = make_backend(model, EngineSpec("incremental", "cpu", batch))
        results = score_tasks(tasks, genome, backend, config)
        texts.append([r.text for r in results])
        deltas = np.concatenate([r.tissue_deltas["-"].ravel() for r in results])
        if batch == 1:
            first = deltas
        else:
            # float32 sums in another order (batched convolutions): at most a few ulps apart
            np.testing.assert_allclose(deltas, first, rtol=0, atol=1e-6)
    assert texts[0] == texts[1] == texts[2]


def test_gtf_and_spliceai_table_give_the_official_genes(tmp_path, genome):
    db = create_db(PG / "region_genes.gtf", tmp_path / "genes.db")
    built, official = GffutilsGenes(db), GffutilsGenes(PG / "region_genes.db")
    table = TableGenes(Annotation(_table_from_gtf(PG / "region_genes.gtf")))
    for pos in (43045795, 43047634, 43063900, 43104000, 43125483, 42500000, 43000000):
        expected = official.genes_at("chr17", pos)
        assert built.genes_at("chr17", pos) == expected
        # the same genes and exons; a table lists exons in genome order, a database in its own
        assert tuple({f"gene_{k}": _pairs(v) for k, v in side.items()} for side in table.genes_at("chr17", pos)) == (
            tuple({k: _pairs(v) for k, v in side.items()} for side in expected)
        )
    assert isinstance(load_genes(PG / "region_genes.db"), GffutilsGenes)


def _pairs(exons: list[int]) -> list[tuple[int, int]]:
    return sorted(zip(exons[::2], exons[1::2], strict=True))


def _table_from_gtf(path: Path):
    import pandas as pd

    rows: dict[str, dict] = {}
    for line in path.read_text().splitlines():
        f = line.split("\t")
        name = re.search(r'gene_name "([^"]+)"', f[8]).group(1)
        if f[2] == "gene":
            rows[name] = {
                "name": name,
                "chrom": f[0],
                "strand": f[6],
                "tx_start": int(f[3]),
                "tx_end": int(f[4]),
                "exon_starts": [],
                "exon_ends": [],
            }
        elif f[2] == "exon":
            rows[name]["exon_starts"].append(int(f[3]))
            rows[name]["exon_ends"].append(int(f[4]))
    return pd.DataFrame(list(rows.values()))


def test_csv_input_matches_the_vcf(tmp_path, backend, genome, genes):
    lines = [line.split("\t") for line in VCF.read_text().splitlines() if not line.startswith("#")][:6]
    csv = tmp_path / "in.csv"
    csv.write_text("CHROM,POS,REF,ALT\n" + "".join(f"{f[0]},{f[1]},{f[3]},{f[4]}\n" for f in lines))
    out = tmp_path / "out.csv"
    annotate_csv(str(csv), genome, genes, backend, PangolinConfig(), str(out))
    rows = out.read_text().splitlines()
    assert rows[0] == "CHROM,POS,REF,ALT,Pangolin"
    official = _records(PG / "clinvar_official_d50.vcf")[:6]
    assert [r.split(",", 4)[4] for r in rows[1:]] == [o[4] or "" for o in official]


def test_pipeline_table_matches_the_official_values(genome, backend):
    """targets/{base}/scores.parquet of a kind: pangolin base model: each variant scored on its assigned
    gene (from a SpliceAI-format table), the official gain and loss (2 decimals) and positions."""
    import pandas as pd

    from metasplice.base_models.pangolin.table import score_pangolin_variants

    table = _table_from_gtf(PG / "region_genes.gtf")
    brca1 = table[table["name"] == "BRCA1"].iloc[0]
    recs = [line.split("\t") for line in VCF.read_text().splitlines() if not line.startswith("#")][:10]
    variants = pd.DataFrame(
        {
            "chrom": [f[0] for f in recs],
            "pos": [int(f[1]) for f in recs],
            "ref": [f[3] for f in recs],
            "alt": [f[4] for f in recs],
            "gene": "BRCA1",
            "strand": brca1["strand"],
            "tx_start": brca1["tx_start"],
            "tx_end": brca1["tx_end"],
            "label": [1, 0, -1, 1, 0, 1, 0, 1, 0, 1],
        }
    )
    result = score_pangolin_variants(variants, genome, Annotation(table), backend, PangolinConfig(distance=50))
    scores = result.scores
    assert scores["scored"].all() and result.deltas.shape == (10, 101, 4)
    for (_, row), official in zip(scores.iterrows(), _records(PG / "clinvar_official_d50.vcf")[:10], strict=True):
        gene, gain, loss, _ = official[4].split("|")
        assert gene == "gene_BRCA1"
        # the official INFO prints float32 repr (-0.019999999552965164): compare at its 2 decimals
        assert (int(row["gain_pos"]), round(float(row["gain"]), 2)) == (
            int(gain.split(":")[0]),
            round(float(gain.split(":")[1]), 2),
        )
        assert (int(row["loss_pos"]), round(float(row["loss"]), 2)) == (
            int(loss.split(":")[0]),
            round(float(loss.split(":")[1]), 2),
        )
        assert row["score"] == pytest.approx(max(row["gain"], -row["loss"]))
    assert np.isnan(scores["target_score"].iloc[2]) and scores["target_score"].iloc[1] == 0
