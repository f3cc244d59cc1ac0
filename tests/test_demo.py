"""metasplice.data.demo: determinism, file formats, planted bad rows, labels, speed, and the planted
splice sites scored by the real SpliceAI models."""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import pandas as pd
import pytest

from metasplice.data.annotation import COLUMNS, read_annotation_table
from metasplice.data.demo import (
    BAD_ROW_KINDS,
    HG19_SHIFT,
    LF_LONG,
    MECHANISMS,
    OUTPUT_FILES,
    SPLICEVARDB_COLUMNS,
    DemoConfig,
    generate_demo,
    make_demo,
)
from metasplice.data.genome import Genome, decode, reverse_complement
from metasplice.demo_cli import add_demo_parser, planted_site_probabilities, register

# small enough for the SpliceAI check: three genes of 8-12 kb on both strands
SMALL = DemoConfig(
    seed=3, n_variants=400, contigs=("chr1", "chr21", "chr22"), genes_per_contig=1, gene_length=(8000, 12000)
)


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> dict:
    """The default demo dataset written once, read back as the pipeline would."""
    out = tmp_path_factory.mktemp("demo")
    paths = make_demo(out, DemoConfig())
    table = pd.read_csv(paths["splicevardb"], sep="\t", dtype=str, keep_default_na=False)
    truth = pd.read_csv(paths["truth"], sep="\t", dtype={"variant_id": str, "bad": str, "gain_kind": str})
    text = truth.select_dtypes(exclude="number").columns
    truth[text] = truth[text].fillna("")
    return {"paths": paths, "table": table, "truth": truth, "genome": Genome(paths["genome"])}


def _sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _good(demo: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    keep = (demo["truth"]["bad"] == "").to_numpy()
    return demo["table"][keep], demo["truth"][keep]


def test_same_seed_gives_byte_identical_files(tmp_path):
    first = make_demo(tmp_path / "a", SMALL)
    second = make_demo(tmp_path / "b", SMALL)
    other = make_demo(tmp_path / "c", DemoConfig(**{**SMALL.__dict__, "seed": 4}))
    assert set(first) == set(OUTPUT_FILES)
    for key in OUTPUT_FILES:
        assert _sha(first[key]) == _sha(second[key]), key
    assert _sha(first["genome"]) != _sha(other["genome"])
    assert _sha(first["splicevardb"]) != _sha(other["splicevardb"])
    assert not list(tmp_path.glob("*/.*tmp*")), "temporary files left behind"


def test_genome_contigs_and_fasta_layout(demo):
    genome = demo["genome"]
    assert genome.names == ["chr1", "chr2", "chr3", "chr21", "chr22"]
    assert all(200_000 <= n <= 600_000 for n in genome.lengths.values()), genome.lengths
    lines = Path(demo["paths"]["genome"]).read_text().splitlines()
    body = [line for line in lines if not line.startswith(">")]
    assert max(map(len, body)) == 60 and set("".join(body)) == set("ACGT")
    # human-like composition: GC between 38 and 50 %, CpG depleted
    seq = "".join(body)
    gc = (seq.count("G") + seq.count("C")) / len(seq)
    assert 0.38 < gc < 0.50
    assert seq.count("CG") / len(seq) < 0.5 * (gc / 2) ** 2


def test_annotation_table_format_and_splice_signals(demo):
    path = demo["paths"]["annotation"]
    lines = Path(path).read_text().splitlines()
    assert lines[0].split("\t") == list(COLUMNS)
    genome = demo["genome"]
    rows = [line.split("\t") for line in lines[1:]]
    assert len(rows) == 40 and {r[2] for r in rows} == {"+", "-"}
    assert {r[1] for r in rows} == set(genome.names)
    for name, chrom, strand, tx_start, tx_end, ex_start, ex_end in rows:
        assert ex_start.endswith(",") and ex_end.endswith(","), name
        starts = [int(x) for x in ex_start.split(",")[:-1]]
        ends = [int(x) for x in ex_end.split(",")[:-1]]
        assert 4 <= len(starts) == len(ends) <= 10
        assert starts == sorted(starts) and all(s < e for s, e in zip(starts, ends))
        assert all(e < s for e, s in zip(ends[:-1], starts[1:])), "exons overlap or touch"
        assert int(tx_start) == starts[0] and int(tx_end) == ends[-1]
        assert 8_000 <= int(tx_end) - int(tx_start) <= 20_000
        introns = [s - e for e, s in zip(ends[:-1], starts[1:])]
        assert min(introns) >= 300 and max(introns) <= 3000
        # 0-based starts, 1-based ends: the intron starts right after EXON_END, ends at EXON_START
        left = [genome.fetch(chrom, e, e + 2) for e in ends[:-1]]  # first two intron bases
        right = [genome.fetch(chrom, s - 2, s) for s in starts[1:]]  # last two intron bases
        if strand == "+":
            assert set(left) == {"GT"} and set(right) == {"AG"}, name
        else:
            assert set(left) == {"CT"} and set(right) == {"AC"}, name
    parsed = read_annotation_table(path)
    assert parsed["tx_start"].tolist() == [int(r[3]) + 1 for r in rows]


def test_splicevardb_columns_and_values(demo):
    table, truth = _good(demo)
    assert list(demo["table"].columns) == list(SPLICEVARDB_COLUMNS)
    assert len(table) == DemoConfig().n_variants
    assert not table["hg38"].duplicated().any()
    assert set(table["classification"]) == {"Splice-altering", "Normal", "Low-frequency", LF_LONG, "Conflicting"}
    assert set(table["location"]) == {"Exonic", "Intronic"}
    assert {"RNA-Seq", "Minigene", "MaPSy"} <= set(table["method"])
    assert table["doi"].str.match(r"^10\.\d{4}/").all()
    assert (
        table["hgvs"]
        .str.match(r"^NM_DEMO\d{3}\.1:c\.[-*]?\d+([+-]\d+)?(_[-*]?\d+([+-]\d+)?)?([ACGT]>[ACGT]|del|ins[ACGT]+)$")
        .all()
    )
    assert table["hgvs"].str.contains(r"\+1[ACGT]>").any() and table["hgvs"].str.contains(r"-2[ACGT]>").any()
    parts = table["hg38"].str.split("-", expand=True)
    assert not parts[0].str.startswith("chr").any()
    ref, alt = parts[2], parts[3]
    snv = (ref.str.len() == 1) & (alt.str.len() == 1)
    deletion = (ref.str.len() > 1) & (alt.str.len() == 1)
    insertion = (ref.str.len() == 1) & (alt.str.len() > 1)
    assert (snv | deletion | insertion).all()
    assert snv.mean() > 0.7 and deletion.sum() > 50 and insertion.sum() > 30
    indel_len = (ref.str.len() - alt.str.len()).abs()
    assert indel_len[~snv].between(1, 10).all()
    assert (ref.str[0][~snv] == alt.str[0][~snv]).all(), "indels carry their anchor base"
    assert set(truth["strand"]) == {"+", "-"}
    assert set(truth["mechanism"]) == set(MECHANISMS)
    hg19 = table["hg19"].str.split("-", expand=True)
    assert (hg19[1].astype(int) - parts[1].astype(int) == HG19_SHIFT).all()


def test_every_good_ref_matches_the_fasta(demo):
    table, _ = _good(demo)
    genome = demo["genome"]
    parts = table["hg38"].str.split("-", expand=True)
    for chrom, pos, ref in zip(parts[0], parts[1].astype(int), parts[2]):
        assert genome.fetch(chrom, pos - 1, pos - 1 + len(ref)) == ref, (chrom, pos, ref)


def test_planted_bad_rows(demo):
    table, truth = demo["table"], demo["truth"]
    assert sorted(truth.loc[truth["bad"] != "", "bad"]) == sorted(BAD_ROW_KINDS)
    bad = dict(zip(truth["bad"], table["hg38"]))
    good_table, _ = _good(demo)
    genome = demo["genome"]
    genes = read_annotation_table(demo["paths"]["annotation"])

    chrom, pos, ref, alt = bad["ref_mismatch"].split("-")
    assert genome.fetch(chrom, int(pos) - 1, int(pos)) != ref and ref != alt
    assert bad["unknown_contig"].startswith("99-") and genome.resolve("99") is None
    assert bad["malformed_position"].split("-")[1] == "abc"
    assert len(bad["malformed_fields"].split("-")) == 3
    chrom, pos, ref, alt = bad["iupac_allele"].split("-")
    assert alt == "R" and genome.fetch(chrom, int(pos) - 1, int(pos)) == ref
    chrom, pos, ref, alt = bad["intergenic"].split("-")
    assert genome.fetch(chrom, int(pos) - 1, int(pos)) == ref
    on_chrom = genes[genes["chrom"] == genome.resolve(chrom)]
    assert not ((on_chrom["tx_start"] <= int(pos)) & (int(pos) <= on_chrom["tx_end"])).any()
    by_coord = dict(zip(good_table["hg38"], good_table["classification"]))
    dup = table[truth["bad"] == "duplicate_conflict"].iloc[0]
    assert by_coord[dup["hg38"]] == "Splice-altering" and dup["classification"] == "Normal"
    dup = table[truth["bad"] == "duplicate_exact"].iloc[0]
    assert by_coord[dup["hg38"]] == dup["classification"]


def test_class_balance(demo):
    _, truth = _good(demo)
    share = truth["classification"].replace({LF_LONG: "Low-frequency"}).value_counts(normalize=True)
    assert 0.33 <= share["Splice-altering"] <= 0.47, share
    assert 0.30 <= share["Normal"] <= 0.45, share
    assert 0.15 <= share["Low-frequency"] <= 0.30, share
    assert 0.005 <= share["Conflicting"] <= 0.03, share
    assert 0.1 <= (truth["classification"] == LF_LONG).sum() / share["Low-frequency"] / len(truth) <= 0.4


def test_labels_follow_the_mechanism(demo):
    _, truth = _good(demo)
    rule = truth["rule_class"]
    canonical_snv = truth["mechanism"].isin(["donor_canonical", "acceptor_canonical"])
    assert (rule[canonical_snv] == "Splice-altering").all()
    assert (rule[truth["mechanism"] == "deletion_canonical"] == "Splice-altering").mean() > 0.85
    for neutral in ("deep_intronic", "intronic", "exonic", "indel_intronic"):
        assert (rule[truth["mechanism"] == neutral] == "Normal").mean() > 0.8, neutral
    assert (rule[truth["mechanism"] == "exonic_enhancer"] == "Low-frequency").mean() > 0.7
    for created in ("cryptic_donor", "cryptic_acceptor"):  # new sites: weak or strong effects
        assert (rule[truth["mechanism"] == created] != "Normal").mean() > 0.45, created
    assert (rule[truth["mechanism"] == "cryptic_donor"] == "Splice-altering").mean() > 0.2
    # the written class is the rule's class except for Conflicting rows and the label noise
    written = truth["classification"].replace({LF_LONG: "Low-frequency"})
    differs = (written != rule) & (written != "Conflicting")
    assert (differs == truth["noise"]).all()
    assert 0.02 <= truth["noise"].mean() <= 0.04
    # effect ordering: Splice-altering > Low-frequency > Normal by the rule
    mean_effect = truth.groupby("rule_class")["effect"].mean()
    assert mean_effect["Splice-altering"] > mean_effect["Low-frequency"] > mean_effect["Normal"]


def test_distinct_after_left_alignment(demo):
    _, truth = _good(demo)
    assert not truth["hg38_left_aligned"].duplicated().any()
    moved = truth[truth["hg38"] != truth["hg38_left_aligned"]]
    assert len(moved) > 0 and (moved["ref"].str.len() != moved["alt"].str.len()).all()


def test_config_from_dict_and_validation():
    cfg = DemoConfig.from_dict({"seed": 1, "contigs": ["chrA", "chr21"], "exon_length": [90, 200]})
    assert cfg.contigs == ("chrA", "chr21") and cfg.exon_length == (90, 200)
    with pytest.raises(ValueError, match="unknown key.*n_genes"):
        DemoConfig.from_dict({"n_genes": 3})
    with pytest.raises(ValueError, match="intron_length"):
        DemoConfig(intron_length=(3000, 300))


def test_benchmark_mode_makes_50k_distinct_variants():
    data = generate_demo(DemoConfig.benchmark())
    good = data.truth[data.truth["bad"] == ""]
    assert len(good) == 50_000 and not good["hg38"].duplicated().any()
    share = good["classification"].replace({LF_LONG: "Low-frequency"}).value_counts(normalize=True)
    assert 0.33 <= share["Splice-altering"] <= 0.47 and 0.15 <= share["Low-frequency"] <= 0.30


def test_cli_subcommand(tmp_path, capsys):
    parser = argparse.ArgumentParser(prog="metasplice")
    sub = parser.add_subparsers(dest="command")
    assert register(sub).prog.endswith("demo")
    add_demo_parser(argparse.ArgumentParser().add_subparsers())  # the same parser, under its own name
    args = parser.parse_args(
        [
            "demo",
            "--out",
            str(tmp_path),
            "--seed",
            "3",
            "--n-variants",
            "400",
            "--contigs",
            "chr1,chr21,chr22",
            "--genes-per-contig",
            "1",
        ]
    )
    assert args.func(args) == 0
    expected = DemoConfig(seed=3, n_variants=400, contigs=("chr1", "chr21", "chr22"), genes_per_contig=1)
    assert _sha(tmp_path / "splicevardb.tsv") == _sha(make_demo(tmp_path / "again", expected)["splicevardb"])
    assert "splicevardb" in capsys.readouterr().out


def test_spliceai_recognises_planted_sites(tmp_path):
    """The real SpliceAI ensemble calls most planted acceptors and donors (one forward per gene)."""
    torch = pytest.importorskip("torch")
    torch.set_num_threads(2)
    paths = make_demo(tmp_path, SMALL)
    data = generate_demo(SMALL)
    with Genome(paths["genome"]) as genome:  # the written FASTA, as the pipeline reads it
        contigs = {name: genome.tokens(name) for name in genome.names}
    sites, spurious = planted_site_probabilities(contigs, data.genes)
    assert set(sites["strand"]) == {"+", "-"}
    assert len(sites) == 2 * sum(len(g.tx_exons) - 1 for g in data.genes)
    for kind, sub in sites.groupby("kind"):
        p = sub["probability"]
        assert (p > 0.5).mean() >= 0.8, f"{kind}: {(p > 0.5).mean():.0%} of planted sites above 0.5"
        assert p.median() > 0.8, f"{kind}: median {p.median():.2f}"
    # strong unplanted calls stay rare (fewer than one per planted site)
    assert len(spurious) < len(sites)
    # orientation sanity: donors sit at the last exon base, acceptors at the first, on both strands
    gene = next(g for g in data.genes if g.strand == "-")
    last_exon_base = gene.to_genome(gene.donors[:1] - 1)[0]
    tx = reverse_complement(contigs[gene.chrom][last_exon_base - 2 : last_exon_base])  # intron +1, +2
    assert decode(tx) == "GT"
