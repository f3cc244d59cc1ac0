"""Scatter-gather annotation of large VCFs (the ``annotate`` rules): split, per-shard commands, gather.

A VCF of millions of records is cut into shards of at most ``shard_records`` records. Each shard is a
VCF with the input's full header and a run of the input's data lines, unchanged; every base model
scores each shard with the same entry as its command line (``metasplice spliceai`` /
``metasplice pangolin``, :func:`score_command`), and the shards' outputs are concatenated in order
(:func:`gather_vcf`). Because the scoring command lines treat every line on its own (a record is
written as the one-job run writes it, a line that is no record is dropped in both), the gathered
file equals a one-job run on the whole file record for record.

Where the shards are cut (:func:`split_vcf`): the scoring engines compute one reference per gene
window and reuse it for every variant of the gene, so a gene split over two shards has its
reference computed twice. In a sorted VCF the records inside a gene's transcript are consecutive,
so a cut between two consecutive records costs nothing when no gene contains both; a shard ends
at the last such cut before it exceeds ``shard_records``, and only a run of records longer than
``shard_records`` without any free cut (one gene with that many records) is cut inside a gene.
Records outside every gene (which the command lines pass through unscored) and lines that are no
record go with their neighbours.

The gathered VCF is bgzipped and indexed with tabix, which needs records sorted by contig block
and position: :func:`split_vcf` checks that before any scoring starts and names the first record
out of order.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from metasplice.base_models.records import VcfInput, line_message, open_vcf, parse_line
from metasplice.data.genome import normalise_chrom

SHARD_DIGITS = 5  # shard ids 00000, 00001, ... (sorted as text = in input order)
SHARD_SUFFIX = ".vcf"
PLAN_FILE = "shards.tsv"
PLAN_COLUMNS = ("shard", "first_line", "last_line", "records", "cut")
CUT_FREE = "between genes"  # the shard ends where no gene has records on both sides (or at the end)
CUT_INSIDE = "inside a gene"  # a gene with more than shard_records records: its reference is computed twice
CUT_END = "end of the file"
KINDS = ("spliceai", "openspliceai", "pangolin")  # base-model kinds a shard can be scored with
GENE_FILES = (".gtf", ".gtf.gz", ".db", ".sqlite", ".sqlite3")  # annotations read as a gffutils database


def shard_id(index: int) -> str:
    return f"{index:0{SHARD_DIGITS}d}"


# --------------------------------------------------------------------------------------------
# gene windows


class GeneWindows:
    """The annotation's gene bodies (1-based, inclusive) per contig (``chr`` prefix ignored)."""

    def __init__(self, intervals: Sequence[tuple[str, int, int]]) -> None:
        by_chrom: dict[str, list[tuple[int, int]]] = {}
        for chrom, start, end in intervals:
            by_chrom.setdefault(normalise_chrom(str(chrom)), []).append((int(start), int(end)))
        self._arrays = {
            c: (np.array([s for s, _ in v], dtype=np.int64), np.array([e for _, e in v], dtype=np.int64))
            for c, v in by_chrom.items()
        }
        self.n_genes = len(intervals)

    def at(self, chrom: str, pos: int) -> frozenset[tuple[str, int]]:
        """The genes (contig, index) whose body contains ``pos``."""
        key = normalise_chrom(chrom)
        arrays = self._arrays.get(key)
        if arrays is None:
            return frozenset()
        starts, ends = arrays
        return frozenset((key, int(i)) for i in np.flatnonzero((starts <= pos) & (pos <= ends)))

    @classmethod
    def load(cls, annotation: str) -> GeneWindows:
        """From ``grch37``/``grch38``, a SpliceAI-format table, a GTF or a gffutils database (the
        same sources the command lines read; a GTF gets its database built beside it, as
        ``metasplice pangolin`` builds it)."""
        if str(annotation).lower().endswith(GENE_FILES):
            from metasplice.base_models.pangolin.annotation import GffutilsGenes, load_genes

            genes = load_genes(annotation)
            if not isinstance(genes, GffutilsGenes):
                raise ValueError(f"{annotation}: not read as a gffutils database")
            return cls([(g.seqid, g.start, g.end) for g in genes.db.features_of_type("gene")])
        from metasplice.data.annotation import load_annotation

        table = load_annotation(annotation).genes
        return cls(list(zip(table["chrom"], table["tx_start"], table["tx_end"])))


# --------------------------------------------------------------------------------------------
# split


@dataclass
class Shard:
    """One shard: its lines of the input and where it was cut."""

    index: int
    lines: list[tuple[int, str]]
    records: int
    cut: str

    @property
    def id(self) -> str:
        return shard_id(self.index)

    def row(self) -> str:
        first, last = self.lines[0][0] if self.lines else 0, self.lines[-1][0] if self.lines else 0
        return "\t".join(str(v) for v in (self.id, first, last, self.records, self.cut))


@dataclass
class _Unit:
    """A record and the lines that are no record before it (or, at the end, those lines alone)."""

    lines: list[tuple[int, str]]
    genes: frozenset
    is_record: bool


class _Order:
    """Checks that records come sorted by contig block and position, as tabix needs them."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.done: set[str] = set()
        self.chrom: str | None = None
        self.pos = 0
        self.line = 0

    def check(self, number: int, chrom: str, pos: int) -> None:
        if chrom != self.chrom:
            if chrom in self.done:
                raise ValueError(
                    f"{self.path}: "
                    + line_message(
                        number, f"{chrom}:{pos} comes after the records of another contig that followed {chrom}'s; "
                    )
                    + "the annotated VCF is indexed with tabix, which needs records grouped by contig and "
                    "sorted by position: sort the VCF first (bcftools sort)"
                )
            if self.chrom is not None:
                self.done.add(self.chrom)
            self.chrom, self.pos = chrom, 0
        if pos < self.pos:
            raise ValueError(
                f"{self.path}: "
                + line_message(number, f"{chrom}:{pos} comes after {chrom}:{self.pos} (line {self.line}); ")
                + "the annotated VCF is indexed with tabix, which needs records sorted by position: sort the "
                "VCF first (bcftools sort)"
            )
        self.pos, self.line = pos, number


def _units(source: VcfInput, windows: GeneWindows) -> Iterator[_Unit]:
    order = _Order(source.path)
    for chunk in source.chunks(1):  # one record per chunk, after the lines that are no record before it
        number, text = chunk[-1]
        rec, why = parse_line(number, text)
        if why:
            yield _Unit(chunk, frozenset(), False)
            continue
        order.check(number, rec.chrom, rec.pos)
        yield _Unit(chunk, windows.at(rec.chrom, rec.pos), True)


def plan_shards(units: Iterator[_Unit], shard_records: int) -> Iterator[Shard]:
    """Group the units into shards of at most ``shard_records`` records, cut between genes where possible."""
    if shard_records < 1:
        raise ValueError(f"shard_records must be >= 1, got {shard_records}")
    buffer: list[_Unit] = []
    records = 0
    free = 0  # units in buffer up to the last free cut (0: none)
    previous: frozenset = frozenset()  # genes of the buffer's last record
    index = 0

    def emit(n: int, cut: str) -> Shard:
        nonlocal index
        part = buffer[:n]
        del buffer[:n]
        shard = Shard(index, [line for u in part for line in u.lines], sum(u.is_record for u in part), cut)
        index += 1
        return shard

    for unit in units:
        if unit.is_record:
            clean = not (previous & unit.genes)  # no gene has records on both sides of a cut before it
            if records == shard_records:
                n = len(buffer) if clean else free
                yield emit(n or len(buffer), CUT_FREE if (clean or free) else CUT_INSIDE)
                records = sum(u.is_record for u in buffer)
                free = 0
            elif clean and records:
                free = len(buffer)
            previous = unit.genes
            records += 1
        buffer.append(unit)
    if buffer or index == 0:
        yield emit(len(buffer), CUT_END)


def split_vcf(vcf: str, annotation: str, shard_records: int, folder: str) -> list[Shard]:
    """Write ``folder/{shard}.vcf`` (the input's header, then the shard's lines) and ``folder/shards.tsv``.

    Returns the shards (their lines dropped once written). At least one shard is written (an
    input without records gives one shard holding its header).
    """
    windows = GeneWindows.load(annotation)
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    shards: list[Shard] = []
    with open_vcf(vcf) as source:
        header = "".join(line + "\n" for line in source.header)
        for shard in plan_shards(_units(source, windows), shard_records):
            path = out / f"{shard.id}{SHARD_SUFFIX}"
            with open(path, "w", encoding="utf-8", errors="surrogateescape", newline="") as fh:
                fh.write(header)
                fh.writelines(text + "\n" for _, text in shard.lines)
            shards.append(Shard(shard.index, shard.lines[:1] + shard.lines[-1:], shard.records, shard.cut))
    with open(out / PLAN_FILE, "w") as fh:
        fh.write("\t".join(PLAN_COLUMNS) + "\n")
        fh.writelines(s.row() + "\n" for s in shards)
    return shards


def shard_ids(folder: str | os.PathLike) -> list[str]:
    """The shard ids a split wrote to ``folder``, in input order."""
    return sorted(
        p.name.removesuffix(SHARD_SUFFIX) for p in Path(folder).glob(f"{'[0-9]' * SHARD_DIGITS}{SHARD_SUFFIX}")
    )


def index_reference(path: str) -> bool:
    """Build the FASTA index (``.fai``, and ``.gzi`` for bgzip) the scoring jobs need when it is missing, as
    the official CLI's pyfaidx does; once, before the shard jobs start. Returns whether it built one."""
    import pysam

    fasta = Path(path)
    if not fasta.is_file():
        raise FileNotFoundError(f"reference FASTA not found: {path}")
    with open(fasta, "rb") as fh:
        bgzip = fh.read(2) == b"\x1f\x8b"
    if Path(f"{path}.fai").exists() and (not bgzip or Path(f"{path}.gzi").exists()):
        return False
    try:
        pysam.faidx(str(fasta))
    except pysam.utils.SamtoolsError as exc:
        raise ValueError(
            f"reference FASTA {path} has no index and cannot be indexed ({str(exc).strip()}); a plain or "
            "bgzip FASTA with the same line length within each sequence can (`samtools faidx`)"
        ) from None
    return True


# --------------------------------------------------------------------------------------------
# gather


def _read_parts(path: str) -> tuple[list[bytes], Iterator[bytes]]:
    fh = open(path, "rb")
    header: list[bytes] = []
    line = fh.readline()
    while line.startswith(b"#"):
        header.append(line)
        line = fh.readline()

    def body() -> Iterator[bytes]:
        with fh:
            current = line
            while current:
                yield current
                current = fh.readline()

    return header, body()


def gather_vcf(parts: Sequence[str], output: str) -> int:
    """Concatenate the scored shards (each with the same header) into ``output``, bgzipped, and index
    it with tabix (``output``.tbi). Returns the number of records written."""
    import pysam
    from pysam.libcbgzf import BGZFile

    if not parts:
        raise ValueError("no shard to gather")
    target = Path(output)
    tmp = target.with_name(f".{target.name}.part{os.getpid()}.gz")
    n = 0
    try:
        with BGZFile(str(tmp), "wb") as out:
            first: list[bytes] | None = None
            for part in parts:
                header, body = _read_parts(part)
                if first is None:
                    first = header
                    out.write(b"".join(header))
                elif header != first:
                    raise ValueError(f"{part}: its header differs from that of {parts[0]}; were they scored alike?")
                for line in body:
                    out.write(line)
                    n += 1
        try:
            pysam.tabix_index(str(tmp), preset="vcf", force=True)
        except (OSError, ValueError) as exc:
            raise ValueError(f"{output}: tabix cannot index the gathered VCF ({exc})") from exc
        os.replace(f"{tmp}.tbi", f"{output}.tbi")
        os.replace(tmp, output)
    finally:
        for leftover in (tmp, Path(f"{tmp}.tbi")):
            leftover.unlink(missing_ok=True)
    return n


# --------------------------------------------------------------------------------------------
# the command line each shard job runs


def score_command(
    kind: str,
    vcf: str,
    output: str,
    reference: str,
    annotation: str,
    distance: int,
    mask: int,
    settings: Mapping[str, Any],
    threads: int | None = None,
) -> list[str]:
    """The arguments of ``metasplice`` that score one shard with base model ``kind`` (``settings``: the
    base model's config: weights, flanking_size, engine, device, batch_size, precision)."""
    if kind not in KINDS:
        raise ValueError(f"annotate: base model kind {kind!r} cannot score a VCF (kinds: {', '.join(KINDS)})")
    runtime = []
    if settings.get("device"):
        runtime += ["--device", str(settings["device"])]
    if settings.get("batch_size"):
        runtime += ["--batch-size", str(settings["batch_size"])]
    if threads:
        runtime += ["--threads", str(threads)]
    weights = [str(w) for w in settings.get("weights") or ()]
    if kind == "pangolin":
        if not output.endswith(".vcf"):
            raise ValueError(f"pangolin writes PREFIX.vcf: the output {output} must end with .vcf")
        if annotation in BUNDLED_ANNOTATIONS:  # the pangolin command line reads the table by its path
            from metasplice.data.annotation import bundled_annotation_path

            annotation = str(bundled_annotation_path(annotation))
        args = ["pangolin", vcf, reference, annotation, output.removesuffix(".vcf")]
        args += ["-d", str(distance), "-m", str(bool(mask))]
        if weights:
            args += ["--weights", weights[0]]
        return args + runtime
    args = ["spliceai", "-I", vcf, "-O", output, "-R", reference, "-A", annotation, "-D", str(distance)]
    args += ["-M", str(int(mask)), "--model", kind, "--no-progress"]
    if weights:
        args += ["--weights", *weights]
    if kind == "openspliceai":
        args += ["--flanking-size", str(int(settings.get("flanking_size", 10000)))]
    args += [
        "--engine",
        str(settings.get("engine", "incremental")),
        "--precision",
        str(settings.get("precision", "fp32")),
    ]
    return args + runtime


# --------------------------------------------------------------------------------------------
# the workflow's view of CONFIG `annotate`

ANNOTATE_DIR = "results/annotate"
ANNOTATE_DEFAULTS: dict[str, Any] = {
    "vcfs": {},
    "reference": "",
    "annotation": "grch38",
    "base_models": ["spliceai"],
    "distance": 50,
    "mask": 0,
    "shard_records": 50000,
    "experiment": "",
}
BUNDLED_ANNOTATIONS = ("grch37", "grch38")  # names of the spliceai package's tables, not files


def annotate_section(config: Mapping[str, Any]) -> dict[str, Any]:
    """CONFIG ``annotate`` with its defaults."""
    return {**ANNOTATE_DEFAULTS, **(config.get("annotate") or {})}


def annotate_targets(config: Mapping[str, Any]) -> list[str]:
    """The gathered VCFs and their indexes (nothing when ``annotate.vcfs`` is empty)."""
    names = annotate_section(config)["vcfs"]
    return [f"{ANNOTATE_DIR}/{name}.vcf.gz{ext}" for name in names for ext in ("", ".tbi")]


def annotate_vcf(config: Mapping[str, Any], name: str) -> str:
    vcfs = annotate_section(config)["vcfs"]
    if name not in vcfs:
        raise ValueError(f"config: annotate.vcfs has no VCF {name!r} (defined: {', '.join(vcfs) or 'none'})")
    return str(vcfs[name])


def annotate_bases(config: Mapping[str, Any]) -> list[str]:
    """``annotate.base_models``, each checked against CONFIG ``base_models``; scored in this order."""
    bases = list(annotate_section(config)["base_models"])
    models = config.get("base_models") or {}
    if not bases:
        raise ValueError("config: annotate.base_models is empty; name at least one key of base_models")
    for base in bases:
        if base not in models:
            raise ValueError(
                f"config: annotate.base_models names {base!r}, which is not defined under base_models "
                f"(defined: {', '.join(models) or 'none'})"
            )
        kind = (models[base] or {}).get("kind", "spliceai")
        if kind not in KINDS:
            raise ValueError(
                f"config: base_models.{base}.kind {kind!r} cannot annotate a VCF (kinds: {', '.join(KINDS)})"
            )
    if len(set(bases)) != len(bases):
        raise ValueError(f"config: annotate.base_models names a base model twice: {bases}")
    return bases


def annotate_step(config: Mapping[str, Any], name: str, base: str, shard: str) -> str:
    """The VCF that base model ``base`` scores for one shard: the split shard for the first base
    model, else the previous base model's output (each adds its INFO field to the records)."""
    bases = annotate_bases(config)
    k = bases.index(base)
    if k == 0:
        return f"{ANNOTATE_DIR}/{name}/shards/{shard}{SHARD_SUFFIX}"
    return f"{ANNOTATE_DIR}/{name}/scored/{bases[k - 1]}/{shard}{SHARD_SUFFIX}"


def annotate_reference(config: Mapping[str, Any], genome: str) -> str:
    """The reference FASTA (``annotate.reference``; empty: the dataset's ``genome``)."""
    return str(annotate_section(config)["reference"] or genome)


def annotate_reference_inputs(config: Mapping[str, Any], genome: str) -> list[str]:
    """The reference as a rule input (with its index when the workflow builds it: the dataset's genome)."""
    reference = annotate_reference(config, genome)
    return [reference, f"{reference}.fai"] if reference == genome else [reference]


def annotate_annotation(config: Mapping[str, Any], table: str) -> str:
    """The gene annotation (``annotate.annotation``; empty: the dataset's ``table``)."""
    return str(annotate_section(config)["annotation"] or table)


def annotate_annotation_inputs(config: Mapping[str, Any], table: str) -> list[str]:
    """The annotation as a file input of the rules (none for a bundled table)."""
    annotation = annotate_annotation(config, table)
    return [] if annotation in BUNDLED_ANNOTATIONS else [annotation]


def annotate_outputs(config: Mapping[str, Any], name: str, shards: str) -> list[str]:
    """What the gather reads for every shard that the split wrote to ``shards``, in input order: the
    meta-model's output (``annotate.experiment``), else the last base model's."""
    if annotate_experiment(config):
        return [f"{ANNOTATE_DIR}/{name}/predicted/{shard}{SHARD_SUFFIX}" for shard in shard_ids(shards)]
    last = annotate_bases(config)[-1]
    return [f"{ANNOTATE_DIR}/{name}/scored/{last}/{shard}{SHARD_SUFFIX}" for shard in shard_ids(shards)]


def annotate_experiment(config: Mapping[str, Any]) -> str:
    """``annotate.experiment``: a stacked or trained experiment whose MetaSplice probability is added
    to every shard after the base models ("" = none)."""
    from metasplice.experiments.plan import predict_experiment_kind

    experiment = str(annotate_section(config)["experiment"] or "")
    if experiment:
        predict_experiment_kind(config, experiment)  # a clear error for an unknown or model-less experiment
    return experiment


def annotate_predict_inputs(config: Mapping[str, Any], name: str, shard: str) -> dict[str, str]:
    """Inputs of rule annotate_predict: the shard as the last base model wrote it and the model's files."""
    from metasplice.experiments.plan import model_inputs

    experiment = annotate_experiment(config)
    if not experiment:
        raise ValueError("annotate_predict runs only when annotate.experiment names an experiment")
    last = annotate_bases(config)[-1]
    return {"vcf": f"{ANNOTATE_DIR}/{name}/scored/{last}/{shard}{SHARD_SUFFIX}", **model_inputs(config, experiment)}
