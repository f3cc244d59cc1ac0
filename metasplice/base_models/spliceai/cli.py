"""``metasplice spliceai``: drop-in replacement for the official ``spliceai`` CLI (version 1.3.1).

Same flags and output (``-I -O -R -A -D -M``), plus the engine options. Heavy imports happen in
:func:`run` so that ``metasplice --help`` stays fast.
"""

from __future__ import annotations

import argparse
import logging
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

DESCRIPTION = (
    "Annotate a VCF with SpliceAI delta scores (INFO/SpliceAI, the official spliceai 1.3.1 format), "
    "computed in PyTorch without TensorFlow. Scores equal the official CLI's; records it skips are "
    "skipped here too, each with a reason (see --skipped). A line that is not a VCF record is named "
    "([Line n]) and dropped, never fatal. Exit status: 0 done, 1 a file is missing or damaged or the "
    "run failed (nothing written), 2 a wrong flag, 130/143 interrupted (SIGINT/SIGTERM)."
)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "spliceai", help="SpliceAI delta scores for a VCF (drop-in for `spliceai`)", description=DESCRIPTION
    )
    p.add_argument("-I", metavar="input", default="-", help="input VCF (plain, .gz or BCF); default stdin")
    p.add_argument("-O", metavar="output", default="-", help="output VCF (.gz: bgzipped, .bcf: BCF); default stdout")
    p.add_argument("-R", metavar="reference", required=True, help="reference FASTA (plain or bgzip, with .fai)")
    p.add_argument(
        "-A",
        metavar="annotation",
        required=True,
        help='"grch37" or "grch38" (the tables bundled with the spliceai package) or a path to a '
        "SpliceAI-format gene table",
    )
    p.add_argument(
        "-D",
        metavar="distance",
        type=int_range(0, 4999),
        default=50,
        help="maximum distance between the variant and gained/lost splice site (0-4999), default 50",
    )
    p.add_argument(
        "-M",
        metavar="mask",
        type=int,
        default=0,
        choices=[0, 1],
        help="mask scores of annotated acceptor/donor gain and unannotated loss, default 0",
    )
    p.add_argument(
        "--model",
        choices=("spliceai", "openspliceai"),
        default="spliceai",
        help="base model (default spliceai: the five official networks)",
    )
    p.add_argument(
        "--weights",
        nargs="+",
        metavar="PATH",
        default=None,
        help="weight files (spliceai: spliceai1..5.h5, default from the spliceai package; "
        "openspliceai: PyTorch state dicts, required)",
    )
    p.add_argument(
        "--flanking-size",
        type=int,
        default=10000,
        choices=(80, 400, 2000, 10000),
        help="OpenSpliceAI checkpoints' flanking size (default 10000)",
    )
    p.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda, cuda:N")
    p.add_argument(
        "--batch-size", type=positive_int, default=None, help="alt alleles per batch (default 32 on CPU, 256 on CUDA)"
    )
    p.add_argument(
        "--precision",
        choices=("fp32", "tf32", "bf16", "fp16"),
        default="fp32",
        help="fp32 (exact), or on CUDA tf32 / bf16 / fp16 autocast (faster, scores may differ by 0.01)",
    )
    p.add_argument(
        "--engine",
        choices=("incremental", "windowed"),
        default="incremental",
        help="incremental (fast, default) or windowed (full-window forward per allele, as the "
        "official CLI; slow, for checking)",
    )
    p.add_argument("--threads", type=positive_int, default=None, help="CPU threads for torch (default: torch's choice)")
    p.add_argument("--chunk-size", type=positive_int, default=2000, help="records read, scored and written at a time")
    p.add_argument(
        "--skipped",
        metavar="TSV",
        default=None,
        help="write every dropped line and unscored record/allele with its line number and reason to this TSV",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s", stream=sys.stderr)
    log = logging.getLogger("metasplice.spliceai")
    return run_command("spliceai", log, lambda: _run(args, log))


def _run(args: argparse.Namespace, log: logging.Logger) -> int:
    t0 = time.perf_counter()
    if args.model == "openspliceai" and not args.weights:
        log.error("--model openspliceai needs --weights (the released OpenSpliceAI .pt state dicts)")
        return EXIT_USAGE
    # everything that can be checked before the models load: outputs, input, reference, annotation
    check_output(args.O, "-O")
    check_output(args.skipped, "--skipped")
    for w in args.weights or ():
        check_input(w, "weight file")
    from metasplice.base_models.backends import BaseModelSpec, EngineSpec, load_base_model, make_backend
    from metasplice.base_models.records import open_vcf
    from metasplice.base_models.spliceai.scoring import ScoreConfig
    from metasplice.base_models.spliceai.vcf import annotate_vcf, check_header
    from metasplice.data.annotation import load_annotation
    from metasplice.data.genome import Genome

    with open_vcf(args.I) as source, Genome(args.R) as genome:
        check_header(source)
        try:
            annotation = load_annotation(args.A)
        except (ValueError, OSError) as exc:
            raise ValueError(
                named(args.A, exc, "gene annotation") + " (-A: grch37, grch38 or a SpliceAI-format table)"
            ) from exc
        model = load_base_model(BaseModelSpec(args.model, tuple(args.weights or ()), args.flanking_size))
        backend = make_backend(
            model, EngineSpec(args.engine, args.device, args.batch_size, args.precision, args.threads)
        )
        log.info("loaded %s on %s in %.1f s", args.model, getattr(backend, "device", "cpu"), time.perf_counter() - t0)
        summary = annotate_vcf(
            source,
            args.O,
            genome,
            annotation,
            backend,
            ScoreConfig(distance=args.D, mask=bool(args.M)),
            chunk_size=args.chunk_size,
            progress=not args.no_progress,
            skipped_path=args.skipped,
        )
    log.info("%s", summary.text())
    log.info("done in %.1f s", time.perf_counter() - t0)
    return EXIT_OK
