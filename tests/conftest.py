"""Shared fixtures: a small random reference with two genes, written fresh for each session."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pysam
import pytest

from metasplice.data.annotation import write_annotation

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture(scope="session")
def tiny_reference(tmp_path_factory) -> dict:
    """chr1 and chr21 (20 kb each) with a + strand gene on chr1 and a - strand gene on chr21."""
    root = tmp_path_factory.mktemp("tiny_reference")
    rng = np.random.default_rng(0)
    seqs = {name: "".join(rng.choice(list("ACGT"), 20_000)) for name in ("chr1", "chr21")}
    fasta = root / "genome.fa"
    with open(fasta, "w") as out:
        for name, seq in seqs.items():
            out.write(f">{name}\n")
            out.writelines(seq[i : i + 60] + "\n" for i in range(0, len(seq), 60))
    pysam.faidx(str(fasta))
    genes = pd.DataFrame(
        {
            "name": ["G1", "G2"],
            "chrom": ["chr1", "chr21"],
            "strand": ["+", "-"],
            "tx_start": [1001, 2001],
            "tx_end": [9000, 12000],
            "exon_starts": [(1001, 3001, 6001), (2001, 7001)],
            "exon_ends": [(1200, 3200, 9000), (2300, 12000)],
        }
    )
    annotation = root / "annotation.tsv"
    write_annotation(genes, annotation)
    return {"fasta": fasta, "annotation": annotation, "seqs": seqs, "genes": genes, "root": root}


@pytest.fixture()
def one_torch_thread():
    """Tiny models on a shared 2-core machine run fastest (and steadiest) on one thread."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
