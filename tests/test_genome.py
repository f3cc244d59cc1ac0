import numpy as np
import pytest

from metasplice.data.genome import Genome, decode, encode, normalise_chrom, reverse_complement


def test_encode_decode_round_trip_and_unknown_letters():
    tokens = encode("ACGTNacgtRYK")
    assert tokens.dtype == np.uint8
    assert tokens.tolist() == [0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 4, 4]
    assert decode(encode("ACGTN")) == "ACGTN"


def test_reverse_complement_on_last_axis():
    assert decode(reverse_complement(encode("AACGTN"))) == "NACGTT"
    batch = np.stack([encode("ACG"), encode("TTN")])
    assert [decode(r) for r in reverse_complement(batch)] == ["CGT", "NAA"]


def test_normalise_chrom_strips_only_the_prefix():
    assert normalise_chrom("chr21") == "21"
    assert normalise_chrom("21") == "21"
    assert normalise_chrom("chrchr") == "chr"  # never strips characters from the end


def test_genome_resolves_names_fetches_and_pads_windows(tiny_reference):
    seq = tiny_reference["seqs"]["chr1"]
    with Genome(tiny_reference["fasta"]) as genome:
        assert genome.resolve("1") == "chr1" and genome.resolve("chr21") == "chr21"
        assert genome.resolve("7") is None
        assert genome.fetch("1", 10, 20) == seq[10:20]
        win = genome.windows("chr1", np.array([-3, 19_995]), 8)
        assert decode(win[0]) == "NNN" + seq[:5]
        assert decode(win[1]) == seq[19_995:] + "NNN"
        with pytest.raises(KeyError, match="contig '7'"):
            genome.fetch("7", 0, 1)
        with pytest.raises(ValueError, match="outside contig"):
            genome.fetch("chr1", 19_990, 20_010)


def test_genome_without_index_says_how_to_build_it(tmp_path):
    fasta = tmp_path / "x.fa"
    fasta.write_text(">x\nACGT\n")
    with pytest.raises(FileNotFoundError, match="faidx"):
        Genome(fasta)
