"""`metasplice predict`: score a VCF with a trained meta-model (see :mod:`metasplice.predict.annotate`)."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Any

from metasplice.base_models.cli_io import EXIT_OK, check_output, int_range, named, positive_int, run_command
from metasplice.predict.annotate import predict_vcf
from metasplice.predict.predictor import MEMBER_BATCH, load_predictor

log = logging.getLogger("metasplice.predict")


DESCRIPTION = (
    "Score a VCF with a trained meta-model: every record x ALT x overlapping gene gets INFO/MetaSplice "
    "(ALLELE|SYMBOL|PROB, P(Splice-altering)) and INFO/SpliceAI (the official format). Bad records are "
    "reported ([Line n] and reason, --skipped) and written unannotated (lines that are not VCF records: "
    "dropped); they never stop the run. Exit status: 0 done, 1 a file is missing or damaged or the run "
    "failed (nothing written), 2 a wrong flag, 130/143 interrupted (SIGINT/SIGTERM)."
)


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Hook for metasplice.cli (its SUBCOMMANDS list): adds the ``predict`` subcommand."""
    p = subparsers.add_parser("predict", help="score a VCF with a trained meta-model", description=DESCRIPTION)
    p.add_argument("-I", metavar="input", required=True, help="input VCF (plain, gzip or bgzip; '-' = stdin)")
    p.add_argument(
        "-O",
        metavar="output",
        required=True,
        help="output VCF (.gz/.bgz: bgzipped; '-' = stdout); written to a temporary file, renamed when done",
    )
    p.add_argument("-R", metavar="reference", required=True, help="reference FASTA (plain or bgzip, with .fai)")
    p.add_argument(
        "-A",
        metavar="annotation",
        required=True,
        help='"grch37" or "grch38" (the spliceai package\'s tables) or a SpliceAI-format gene table',
    )
    p.add_argument(
        "--model",
        required=True,
        metavar="DIR",
        help="model directory: a stacked model (model.json, stacker.joblib, members/) or a trained "
        "sequence model (model.pt), e.g. results/models/<experiment>",
    )
    p.add_argument("--tsv", metavar="TSV", default=None, help="also write one row per scored record x allele x gene")
    p.add_argument(
        "--skipped",
        metavar="TSV",
        default=None,
        help="write every dropped line, unannotated record and allele with its line number and reason",
    )
    p.add_argument(
        "-D",
        "--distance",
        type=int_range(0, 4999),
        default=None,
        metavar="D",
        help="SpliceAI -D for a trained model (default 50); a stacked model uses the distance it was "
        "trained with and refuses another",
    )
    p.add_argument(
        "-M",
        "--mask",
        type=int,
        default=None,
        choices=(0, 1),
        help="SpliceAI -M for a trained model (default 0); a stacked model uses its own",
    )
    p.add_argument(
        "--genome-oriented",
        action="store_true",
        help="a trained model whose windows were not strand-oriented (sequences.strand_oriented: false)",
    )
    p.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda, cuda:N")
    p.add_argument(
        "--batch-size",
        type=positive_int,
        default=None,
        help="alleles per base-model batch (default 32 on CPU, 256 on CUDA) and windows per member batch "
        f"(default {MEMBER_BATCH})",
    )
    p.add_argument("--threads", type=positive_int, default=None, help="CPU threads for torch (default: torch's choice)")
    p.add_argument("--chunk-size", type=positive_int, default=2000, help="records read, scored and written at a time")
    p.add_argument(
        "--max-warnings", type=int_range(0), default=20, help="stderr warnings per kind of skip (default 20)"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Entry point of ``metasplice predict``."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s", stream=sys.stderr)
    return run_command("predict", log, lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    from metasplice.base_models.records import open_vcf
    from metasplice.data.annotation import load_annotation
    from metasplice.data.genome import Genome

    # everything that can be checked before the models load: outputs, input, reference, annotation
    for path, flag in ((args.O, "-O"), (args.tsv, "--tsv"), (args.skipped, "--skipped")):
        check_output(path, flag)
    if args.O.endswith(".bcf"):
        raise ValueError(
            f"-O {args.O}: BCF output is not supported; write .vcf.gz and convert with `bcftools view -Ob`"
        )
    if not Path(args.model).is_dir():
        load_predictor(args.model)  # names the missing directory and how to make it
    with open_vcf(args.I) as source, Genome(args.R) as genome:
        try:
            annotation = load_annotation(args.A)
        except (ValueError, OSError) as exc:
            raise ValueError(
                named(args.A, exc, "gene annotation") + " (-A: grch37, grch38 or a SpliceAI-format table)"
            ) from exc
        predictor = load_predictor(
            args.model,
            device=args.device,
            batch_size=args.batch_size,
            threads=args.threads,
            distance=args.distance,
            mask=args.mask,
            strand_oriented=False if args.genome_oriented else None,
        )
        summary = predict_vcf(
            source,
            args.O,
            genome,
            annotation,
            predictor,
            tsv_path=args.tsv,
            skipped_path=args.skipped,
            chunk_size=args.chunk_size,
            progress=not args.no_progress,
            max_warnings=args.max_warnings,
        )
    log.info("%s", summary.text())
    log.info("done in %.1f s", time.perf_counter() - t0)
    return EXIT_OK
