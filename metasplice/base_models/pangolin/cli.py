"""``metasplice pangolin``: drop-in replacement for the official ``pangolin`` command line (1.0.2).

Same positional arguments (VARIANT_FILE REFERENCE_FILE ANNOTATION_FILE OUTPUT_PREFIX) and flags
(``-c -m -s -d --score_exons``), the same records scored and skipped with the same ``[Line n]``
warnings (on stderr), the same INFO strings. ANNOTATION_FILE may also be a GTF (a gffutils database
is built beside it as the official ``create_db.py`` builds it) or a SpliceAI-format gene table.
Extra options choose the weights, device, batch size and threads. Inputs are checked before the
networks load, lines that are not records are named and dropped, output is renamed into place when
complete; exit status as for every scoring command (:mod:`metasplice.base_models.cli_io`).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time

from metasplice.base_models.cli_io import (
    EXIT_OK,
    EXIT_USAGE,
    check_input,
    check_output,
    int_range,
    named,
    positive_int,
    run_command,
)

DEFAULT_WEIGHTS = "resources/pangolin/models"
WEIGHTS_ENV = "METASPLICE_PANGOLIN_WEIGHTS"
DESCRIPTION = (
    "Annotate a VCF (or CSV) with Pangolin splice scores (INFO/Pangolin, the official pangolin 1.0.2 "
    "format) using the shared incremental engine: the official values, many times faster."
)


def _bool(text: str) -> bool:
    if text not in ("True", "False"):
        raise argparse.ArgumentTypeError(f"expected True or False, got {text!r}")
    return text == "True"


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "pangolin", help="Pangolin splice scores for a VCF (drop-in for `pangolin`)", description=DESCRIPTION
    )
    p.add_argument("variant_file", help="VCF (.vcf, .vcf.gz) or CSV (.csv) with a header")
    p.add_argument("reference_file", help="reference FASTA (plain or bgzip, with .fai)")
    p.add_argument("annotation_file", help="gffutils database (create_db.py), a GTF, or a SpliceAI-format gene table")
    p.add_argument("output_file", help="output prefix: writes PREFIX.vcf (VCF input) or PREFIX.csv (CSV input)")
    p.add_argument(
        "-c",
        "--column_ids",
        default="CHROM,POS,REF,ALT",
        help="CSV input: column names of chromosome, position, ref and alt (default: %(default)s)",
    )
    p.add_argument(
        "-m",
        "--mask",
        default=True,
        type=_bool,
        metavar="{False,True}",
        help="clip gains at annotated sites and losses at unannotated sites to 0 (default True)",
    )
    p.add_argument(
        "-s",
        "--score_cutoff",
        type=float,
        default=None,
        help="print every site with |change| >= cutoff instead of the largest gain and loss",
    )
    p.add_argument(
        "-d",
        "--distance",
        type=int_range(0),
        default=50,
        help="bases on either side of the variant to score (default %(default)s)",
    )
    p.add_argument(
        "--score_exons",
        default=False,
        type=_bool,
        metavar="{False,True}",
        help="per annotated exon in reach, the change at both of its sites (default False)",
    )
    p.add_argument(
        "--weights",
        default=None,
        help=f"folder with the 12 final.*.*.3.v2 state dicts (default ${WEIGHTS_ENV} or {DEFAULT_WEIGHTS})",
    )
    p.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda, cuda:N")
    p.add_argument(
        "--batch-size", type=positive_int, default=None, help="alleles per batch (default 32 on CPU, 256 on CUDA)"
    )
    p.add_argument("--threads", type=positive_int, default=None, help="CPU threads for torch (default: torch's choice)")
    p.add_argument("--chunk-size", type=positive_int, default=2000, help="records read, scored and written at a time")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s", stream=sys.stderr)
    log = logging.getLogger("metasplice.pangolin")
    return run_command("pangolin", log, lambda: _run(args, log))


def _run(args: argparse.Namespace, log: logging.Logger) -> int:
    t0 = time.perf_counter()
    path = args.variant_file
    lower = path.lower()
    if lower.endswith((".vcf", ".vcf.gz", ".vcf.bgz")):
        output, kind = args.output_file + ".vcf", "vcf"
    elif lower.endswith(".csv"):
        output, kind = args.output_file + ".csv", "csv"
    else:
        log.error("%s: the variant file needs to be a VCF (.vcf, .vcf.gz) or a CSV (.csv)", path)
        return EXIT_USAGE
    # everything that can be checked before the networks load: output, input, reference, annotation
    check_output(output, "OUTPUT_PREFIX")
    check_input(path, "variant file")
    check_input(args.annotation_file, "annotation file")

    from metasplice.base_models.backends import BaseModelSpec, EngineSpec, load_base_model, make_backend
    from metasplice.base_models.pangolin.annotation import load_genes
    from metasplice.base_models.pangolin.scoring import PangolinConfig
    from metasplice.base_models.pangolin.vcf import annotate_csv, annotate_vcf
    from metasplice.base_models.records import open_vcf
    from metasplice.data.genome import Genome

    weights = args.weights or os.environ.get(WEIGHTS_ENV) or DEFAULT_WEIGHTS
    config = PangolinConfig(
        distance=args.distance, mask=args.mask, score_cutoff=args.score_cutoff, score_exons=args.score_exons
    )
    source = open_vcf(path) if kind == "vcf" else None
    try:
        with Genome(args.reference_file) as genome:
            try:
                genes = load_genes(args.annotation_file)
            except (ValueError, OSError) as exc:
                raise ValueError(named(args.annotation_file, exc, "annotation file")) from exc
            model = load_base_model(BaseModelSpec("pangolin", (weights,)))
            backend = make_backend(model, EngineSpec("incremental", args.device, args.batch_size, "fp32", args.threads))
            log.info("loaded pangolin (12 networks) on %s in %.1f s", backend.device, time.perf_counter() - t0)
            if source is not None:
                summary = annotate_vcf(source, genome, genes, backend, config, output, chunk_size=args.chunk_size)
            else:
                summary = annotate_csv(
                    path, genome, genes, backend, config, output, columns=args.column_ids, chunk_size=args.chunk_size
                )
    finally:
        if source is not None:
            source.close()
    log.info(
        "%d records: %d scored, %d skipped, %d lines dropped; wrote %s",
        summary.records,
        summary.scored,
        summary.skipped,
        summary.dropped,
        output,
    )
    log.info("done in %.1f s", time.perf_counter() - t0)
    return EXIT_OK
