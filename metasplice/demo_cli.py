"""`metasplice demo`: write the synthetic demo dataset, and optionally check SpliceAI's calls on its planted sites."""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from metasplice.data.demo import DemoConfig, DemoGene, generate_demo, make_demo, transcript_sequence
from metasplice.data.genome import Genome

if TYPE_CHECKING:
    import pandas as pd


def planted_site_probabilities(
    contigs: Mapping[str, np.ndarray],
    genes: Iterable[DemoGene],
    model: Any = None,
    device: str = "cpu",
    threshold: float = 0.5,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """SpliceAI acceptor/donor probability at every planted site, and strong unplanted calls.

    Each gene is scored in one forward pass over its transcript-oriented sequence with 5 kb of
    real flank on each side. Returns (sites, spurious): ``sites`` has one row per planted site
    (gene, kind, tx_index, pos (1-based), probability); ``spurious`` the transcript positions that
    are not planted sites but score above ``threshold`` for acceptor or donor."""
    import pandas as pd
    import torch

    from metasplice.base_models.spliceai.model import FLANK, load_spliceai_ensemble

    model = model if model is not None else load_spliceai_ensemble()
    model = model.to(device).eval()
    sites, spurious = [], []
    for gene in genes:
        seq = transcript_sequence(contigs, gene, pad=FLANK)
        onehot = np.zeros((1, 4, len(seq)), dtype=np.float32)
        known = seq < 4
        onehot[0, seq[known], np.flatnonzero(known)] = 1.0
        with torch.no_grad():
            prob = model(torch.from_numpy(onehot).to(device))[0].cpu().numpy()  # (3, tx length)
        planted = {"acceptor": gene.acceptors, "donor": gene.donors - 1}  # donor: last exon base
        for channel, kind in ((1, "acceptor"), (2, "donor")):
            idx = planted[kind]
            sites.append(
                pd.DataFrame(
                    {
                        "gene": gene.name,
                        "strand": gene.strand,
                        "kind": kind,
                        "tx_index": idx,
                        "pos": gene.to_genome(idx) + 1,
                        "probability": prob[channel, idx],
                    }
                )
            )
            mask = prob[channel] > threshold
            mask[idx] = False
            hits = np.flatnonzero(mask)
            spurious.append(
                pd.DataFrame({"gene": gene.name, "kind": kind, "tx_index": hits, "probability": prob[channel, hits]})
            )
    return pd.concat(sites, ignore_index=True), pd.concat(spurious, ignore_index=True)


def add_demo_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``demo`` subcommand to an argparse subparsers object."""
    p = subparsers.add_parser(
        "demo",
        help="write the synthetic demo dataset (genome, annotation, SpliceVarDB-format table)",
        description="Write genome.fa(.fai), annotation.tsv, splicevardb.tsv and truth.tsv, deterministic from --seed.",
    )
    defaults = DemoConfig()
    # not resources/demo: that folder holds the pipeline's own demo inputs (rule make_demo, config `demo:`)
    p.add_argument("--out", default="demo_data", help="output folder (default: %(default)s)")
    p.add_argument("--seed", type=int, default=defaults.seed, help="random seed (default: %(default)s)")
    p.add_argument(
        "--n-variants", type=int, default=defaults.n_variants, help="good variant rows (default: %(default)s)"
    )
    p.add_argument(
        "--benchmark",
        action="store_true",
        help="the 50,000-variant benchmark set on 200 genes (overrides --n-variants and --genes-per-contig)",
    )
    p.add_argument(
        "--contigs", default=",".join(defaults.contigs), help="comma-separated contig names (default: %(default)s)"
    )
    p.add_argument("--genes-per-contig", type=int, default=defaults.genes_per_contig, help="default: %(default)s")
    p.add_argument("--no-bad-rows", action="store_true", help="leave out the planted bad rows")
    p.add_argument(
        "--check-sites", action="store_true", help="score the planted sites with SpliceAI (needs torch; slow on CPU)"
    )
    p.add_argument("--device", default="cpu", help="torch device for --check-sites (default: %(default)s)")
    p.set_defaults(func=run_demo_command)
    return p


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Hook for metasplice.cli (its SUBCOMMANDS list): adds the ``demo`` subcommand."""
    return add_demo_parser(subparsers)


def run_demo_command(args: argparse.Namespace) -> int:
    """Entry point of ``metasplice demo``."""
    import pandas as pd

    settings = {
        "seed": args.seed,
        "n_variants": args.n_variants,
        "contigs": tuple(c.strip() for c in args.contigs.split(",") if c.strip()),
        "genes_per_contig": args.genes_per_contig,
        "bad_rows": not args.no_bad_rows,
    }
    cfg = (
        DemoConfig.benchmark(**{k: v for k, v in settings.items() if k not in ("n_variants", "genes_per_contig")})
        if args.benchmark
        else DemoConfig(**settings)
    )
    started = time.perf_counter()
    paths = make_demo(args.out, cfg)
    print(f"demo dataset written in {time.perf_counter() - started:.1f} s:")
    for key, path in paths.items():
        print(f"  {key}: {path}")
    truth = pd.read_csv(paths["truth"], sep="\t", keep_default_na=False)
    print(truth.loc[truth["bad"] == "", "classification"].value_counts().to_string())
    if args.check_sites:
        data_genes = generate_demo(cfg).genes
        with Genome(paths["genome"]) as genome:
            contigs = {name: genome.tokens(name) for name in genome.names}
        sites, spurious = planted_site_probabilities(contigs, data_genes, device=args.device)
        for kind, sub in sites.groupby("kind"):
            p = sub["probability"]
            print(f"{kind}: n={len(p)} >0.5: {(p > 0.5).mean():.1%} median {p.median():.3f}")
        print(f"unplanted positions > 0.5: {len(spurious)}")
    return 0
