"""Score VCFs with a trained meta-model: ``metasplice predict`` and the ``score_vcf`` rule.

Model directory (``--model``):

- a **stacked** model (``model.json``, ``stacker.joblib``, ``members/*.pt``; :mod:`metasplice.experiments.stacking`):
  every base model of the stack scores each row with the settings recorded in ``model.json`` (the
  ``base_models`` entry it was trained with; distance and mask cannot be overridden), the members
  (trained sequence models) score the row's windows, and the stacker turns the features built by
  :func:`metasplice.experiments.stacking.build_features` into P(Splice-altering);
- a **trained** sequence model (``model.pt``, :mod:`metasplice.training.train`): its classifier score
  (:func:`metasplice.training.train.classifier_score`: P(Splice-altering) of a binary model, the largest
  predicted delta score of a delta model) is the probability; SpliceAI (default settings, or the
  given distance and mask) supplies the ``SpliceAI`` field.

Rows. Every (record, ALT allele, gene whose transcript contains POS) is a row, genes in annotation
order, as the SpliceAI CLI lists them. A row's features are computed as the pipeline computes them
for ``variants.parquet``: the allele is trimmed and left-aligned (:func:`metasplice.data.variants.left_align`),
then gets its region class and boundary offset (:class:`metasplice.data.annotation.RegionConfig`, the
pipeline's defaults unless the model or caller gives others), its variant type, the base models'
scores with the checks and arithmetic of :func:`metasplice.base_models.table.score_variants`, and its
windows from :func:`metasplice.sequences.extract_windows` in the model's strand orientation. A row a
base model cannot score (an MNV, a variant within the model's context of a contig end, a REF longer
than 2 x D) keeps NaN base features, as in training, and the meta-model scores it from the rest.

Output VCF. Every record that is a VCF record is written, in input order, unchanged except INFO:

- ``SpliceAI=ALLELE|SYMBOL|DS_AG|DS_AL|DS_DG|DS_DL|DP_AG|DP_AL|DP_DG|DP_DL``: the reference base
  model's scores of the allele as written in the record, identical to ``metasplice spliceai`` with
  the same settings (``.`` fields for MNVs, as the official CLI);
- ``MetaSplice=ALLELE|SYMBOL|PROB``: the meta-model's probability, 4 decimals.

Both are declared in the header; values of these two keys already present in the input are
replaced on every record. The output is written in chunks of records (memory stays bounded) to a
temporary file next to it that is renamed when complete; ``.gz``/``.bgz`` names are bgzipped.

The TSV (``--tsv``) has one row per (record, allele, gene) with a probability: the record's
chrom, pos, ref, alt, the gene and its strand, the row's region, variant type and boundary offset,
``normalised`` (``pos:ref>alt`` when trimming or left-alignment changed the allele), the reference
base model's DS_*/DP_* of the allele as the meta-model saw it (empty where not scored), the
probability at full precision and, for a stacked model, each member's score.

Bad input never stops a run. Data lines are read as text and checked one by one; each problem is
warned about with its line number (on stderr; in the rule's log; at most ``max_warnings`` per
kind), counted in the summary, and listed in the skipped table (``line, chrom, pos, ref, alt, gene,
skipped, reason``). ``skipped``:

- ``line``: not a VCF record (fewer than 8 columns, non-integer POS, an empty line); left out of the
  output, because htslib-based tools could not read the file with it;
- ``record``: written unchanged (no ALT, REF with letters other than A, C, G, T, N, unknown contig,
  REF outside the contig or different from the FASTA, POS inside no transcript);
- ``allele``: this ALT x gene gets no entry (missing, symbolic or non-ACGTN ALT);
- ``SpliceAI``: a MetaSplice entry but no SpliceAI scores (the base model skips it: MNV, near a contig
  end, REF too long, non-ACGTN bases in its window);
- ``MetaSplice``: a SpliceAI entry but no probability (ALT equals REF).
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import logging
import os
import re
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Callable, Iterator, Mapping, Sequence

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

    from metasplice.data.annotation import Annotation, RegionConfig
    from metasplice.data.genome import Genome
    from metasplice.base_models.spliceai.scoring import AlleleResult, ScoreConfig
    from metasplice.experiments.stacking import StackedModel

log = logging.getLogger("metasplice.predict.annotate")

DS_COLUMNS = ("DS_AG", "DS_AL", "DS_DG", "DS_DL")
DP_COLUMNS = ("DP_AG", "DP_AL", "DP_DG", "DP_DL")
SKIPPED_COLUMNS = ("line", "chrom", "pos", "ref", "alt", "gene", "skipped", "reason")
SKIP_LEVELS = ("line", "record", "allele", "SpliceAI", "MetaSplice")
OUR_KEYS = ("SpliceAI", "MetaSplice")
DEFAULT_BASE = "spliceai"
DEFAULT_SETTINGS: dict[str, Any] = {
    "kind": "spliceai", "weights": [], "flanking_size": 10000, "distance": 50, "mask": 0,
}  # a base model's settings where nothing else is given (config.yaml's base_models defaults)
MEMBER_BATCH = 256
_ACGTN = re.compile(r"[ACGTN]+")
_INTEGER = re.compile(r"[0-9]+")
_NAME = re.compile(r"[A-Za-z0-9_-]+")
ALT_EQUALS_REF = "ALT equals REF: not a variant, no probability"
BAD_REF = "bad REF: {ref} has letters other than A, C, G, T, N"
EMPTY_ALT = "missing ALT: an empty allele"
OUTSIDE_CONTIG = "outside contig: REF at {pos} reaches past the end of {chrom} (length {length})"


def _spliceai_reasons() -> Any:
    from metasplice.base_models.spliceai.scoring import SkipReason

    return SkipReason


# --------------------------------------------------------------------------------------------
# the model


@dataclass
class BaseScorer:
    """One base model as the meta-model needs it: its backend and the settings it was trained with."""

    name: str
    settings: dict
    backend: Any
    config: "ScoreConfig"
    feature: bool  # its scores are stacking features (False: only the SpliceAI field)

    @property
    def kind(self) -> str:
        return str(self.settings.get("kind", "spliceai"))

    def describe(self) -> str:
        return f"{self.name} ({self.kind}, D={self.config.distance}, M={int(self.config.mask)})"


@dataclass
class Member:
    """A trained sequence model scoring the row's windows."""

    name: str
    model: Any
    context: int
    task: str
    output_names: tuple[str, ...]
    architecture: str


@dataclass
class Predictor:
    """A loaded model directory: base models, sequence models and (stacked) the learner over them."""

    directory: Path
    name: str
    kind: str  # "stacked" | "trained"
    bases: dict[str, BaseScorer]
    reference: str  # base model of the SpliceAI field
    members: dict[str, Member]
    strand_oriented: bool
    regions: "RegionConfig"
    stacked: "StackedModel | None" = None
    device: Any = "cpu"
    batch_size: int = MEMBER_BATCH

    def describe(self) -> str:
        """One line naming the model and what its probability is made of (no double quotes)."""
        if self.stacked is not None:
            cfg = self.stacked.config
            parts = [f"{b} scores" for b in cfg.bases]
            if cfg.annotation_features:
                parts.append("annotation")
            parts += [f"member {m}" for m in cfg.members]
            text = f"stacked model {self.name} ({self.stacked.learner} over {', '.join(parts)})"
        else:
            m = next(iter(self.members.values()))
            text = f"trained model {self.name} ({m.architecture}, task {m.task}, context {m.context})"
        return text.replace('"', "'")

    def probabilities(
        self, table: "pd.DataFrame", genome: "Genome", base_scores: Mapping[str, tuple["pd.DataFrame", np.ndarray]]
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """P(Splice-altering) per row of ``table`` and each member's score.

        ``table``: chrom, pos, ref, alt, gene, strand, tx_start, tx_end, region, boundary_offset,
        variant_type; ``base_scores``: per base model its scores table (DS_*, DP_*) and deltas.
        """
        from metasplice.sequences import extract_windows
        from metasplice.training.train import classifier_score, predict

        members: dict[str, np.ndarray] = {}
        windows: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for name, m in self.members.items():
            if m.context not in windows:
                windows[m.context] = extract_windows(table, genome, m.context, self.strand_oriented)
            ref, alt = windows[m.context]
            out = predict(m.model, ref, alt, batch_size=self.batch_size, device=self.device)
            members[name] = np.asarray(classifier_score(out, m.task, m.output_names), dtype=np.float64)
        if self.stacked is None:
            return next(iter(members.values())), members
        from metasplice.experiments.stacking import build_features

        cfg = self.stacked.config
        bases = {b: (base_scores[b][0], base_scores[b][1] if cfg.profile_features else None) for b in cfg.bases}
        features = build_features(table, bases, members, cfg.annotation_features, cfg.profile_features)
        return self.stacked.predict_proba(features), members


def model_hint(directory: Path) -> str:
    """What to give ``--model``, and how the pipeline makes it."""
    name = directory.name or str(directory)
    return (
        "give --model a trained model's directory: a stacked one (model.json, stacker.joblib, members/) or a "
        f"sequence model's (model.pt). In the pipeline, train it first, e.g. `snakemake --cores 4 "
        f"results/models/{name}/model.json` for a stacked experiment or `snakemake --cores 4 "
        f"results/models/{name}/model.pt` for a trained one"
    )


def _recorded_regions(directory: Path) -> dict | None:
    """The ``regions`` entry of a stacked model's model.json, when it records one."""
    try:
        meta = json.loads((directory / "model.json").read_text())
    except (OSError, ValueError):
        return None
    value = meta.get("regions")
    return dict(value) if isinstance(value, Mapping) else None


def _region_config(values: Mapping[str, Any] | None) -> "RegionConfig":
    from dataclasses import fields as dc_fields

    from metasplice.data.annotation import RegionConfig

    values = dict(values or {})
    known = {f.name for f in dc_fields(RegionConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"regions: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    return RegionConfig(**{k: int(v) for k, v in values.items()})


def _make_backend(settings: Mapping[str, Any], device: str, batch_size: int | None, threads: int | None,
                  cache: dict) -> Any:
    """The backend of a base model's settings (one per distinct network, shared between bases)."""
    from metasplice.base_models.backends import BaseModelSpec, EngineSpec, load_base_model, make_backend

    spec = BaseModelSpec(str(settings.get("kind", "spliceai")), tuple(settings.get("weights") or ()),
                         int(settings.get("flanking_size", 10000)))
    engine = EngineSpec(str(settings.get("engine", "incremental")), device, batch_size,
                        str(settings.get("precision", "fp32")), threads)
    key = (spec, engine.engine, engine.precision)
    if key not in cache:
        cache[key] = make_backend(load_base_model(spec), engine)
    return cache[key]


def load_predictor(
    model_dir: str | os.PathLike,
    *,
    device: str = "auto",
    batch_size: int | None = None,
    threads: int | None = None,
    distance: int | None = None,
    mask: bool | int | None = None,
    base: Mapping[str, Mapping[str, Any]] | None = None,
    strand_oriented: bool | None = None,
    regions: Mapping[str, Any] | None = None,
) -> Predictor:
    """Load a stacked (``model.json``) or trained (``model.pt``) model directory for scoring VCFs.

    ``distance``/``mask``: SpliceAI's -D/-M for a trained model; for a stacked one they must equal
    the settings its base models were trained with (None: the model's). ``base``: for a trained
    model, the ``{name: base_models entry}`` of the base model behind the SpliceAI field (default
    SpliceAI with default settings). ``strand_oriented``/``regions``: how the training windows and
    region classes were made (default: the model's record, else the pipeline's defaults); a value
    that contradicts the model's record is an error. ``batch_size``: base-model alleles and member
    windows per batch; ``device``: auto, cpu, cuda, cuda:N.
    """
    from metasplice.base_models.backends import resolve_device
    from metasplice.base_models.spliceai.scoring import ScoreConfig

    directory = Path(model_dir)
    if not directory.is_dir():
        raise FileNotFoundError(f"model directory {directory} not found; {model_hint(directory)}")
    stacked_model = None
    if (directory / "model.json").exists():
        from metasplice.experiments.stacking import StackedModel

        stacked_model = StackedModel.load(directory)
        kind = "stacked"
    elif (directory / "model.pt").exists():
        kind = "trained"
    else:
        raise FileNotFoundError(
            f"{directory} holds neither model.json (a stacked model) nor model.pt (a trained sequence model); "
            + model_hint(directory)
        )
    name = stacked_model.config.name if stacked_model is not None else directory.name

    # settings first (cheap checks), then the networks
    plans: dict[str, tuple[dict, bool]] = {}
    if stacked_model is not None:
        if base:
            raise ValueError(f"{directory} is a stacked model: its base models are fixed by its model.json")
        for b in stacked_model.config.bases:
            recorded = dict(stacked_model.base_models.get(b) or {})
            if not recorded and b != DEFAULT_BASE:
                raise ValueError(f"{directory}/model.json records no settings for base model {b!r}; retrain the "
                                 "stacked model with the pipeline (it records config base_models)")
            settings = {**DEFAULT_SETTINGS, **recorded}
            for key, given in (("distance", distance), ("mask", mask)):
                if given is not None and int(given) != int(settings[key]):
                    raise ValueError(
                        f"stacked model {name!r} was trained on base model {b!r} scores with {key} "
                        f"{int(settings[key])}; {key} {int(given)} would change its features. Leave --{key} out "
                        "(the model's settings are used)")
            plans[b] = (settings, True)
        stack_orient = stacked_model.sequences.get("strand_oriented")
        if stack_orient is not None and strand_oriented is not None and bool(stack_orient) != bool(strand_oriented):
            raise ValueError(f"stacked model {name!r} was trained on {'strand' if stack_orient else 'genome'}-oriented "
                             "windows; the requested orientation differs")
        if stack_orient is None:
            stack_orient = True if strand_oriented is None else strand_oriented
        orient = bool(stack_orient)
        recorded_regions = _recorded_regions(directory)
        if recorded_regions is not None and regions is not None and \
                _region_config(recorded_regions) != _region_config(regions):
            raise ValueError(f"stacked model {name!r} records region settings {recorded_regions}; the requested "
                             f"ones ({dict(regions)}) differ")
        region_cfg = _region_config(recorded_regions if recorded_regions is not None else regions)
    else:
        from metasplice.models import load_checkpoint

        recorded = (load_checkpoint(directory / "model.pt").get("info") or {}).get("strand_oriented")
        if recorded is not None and strand_oriented is not None and bool(recorded) != bool(strand_oriented):
            raise ValueError(f"model {name!r} was trained on {'strand' if recorded else 'genome'}-oriented windows; "
                             "the requested orientation differs (leave it out: the model's own is used)")
        orient = bool(recorded) if recorded is not None else (True if strand_oriented is None else bool(strand_oriented))
        region_cfg = _region_config(regions)
    if not any(feature for _, feature in plans.values()):
        # the SpliceAI field of a trained model, or of a stack without base models
        (ref_name, given), = (base or {DEFAULT_BASE: {}}).items()
        settings = {**DEFAULT_SETTINGS, **dict(given)}
        if distance is not None:
            settings["distance"] = int(distance)
        if mask is not None:
            settings["mask"] = int(bool(mask))
        plans[ref_name] = (settings, False)
    reference = DEFAULT_BASE if DEFAULT_BASE in plans else next(
        (b for b, (s, _) in plans.items() if s.get("kind", "spliceai") == "spliceai"), next(iter(plans)))

    dev = resolve_device(device)
    members: dict[str, Member] = {}
    if stacked_model is not None:
        for m in stacked_model.config.members:
            path = directory / stacked_model.member_files.get(m, f"members/{m}.pt")
            if not path.exists():
                raise FileNotFoundError(f"{path}: checkpoint of member {m!r} of stacked model {name!r} is missing; "
                                        "retrain the stacked model (train_stacked copies every member there)")
            members[m] = _load_member(m, path, dev)
    else:
        members[name] = _load_member(name, directory / "model.pt", dev)
        if members[name].task == "localisation":
            raise ValueError(f"{directory}/model.pt is a localisation model: it predicts where a splice effect lies, "
                             "not whether there is one, so it gives no probability")
    cache: dict = {}
    bases: dict[str, BaseScorer] = {}
    for b, (settings, feature) in plans.items():
        try:
            config = ScoreConfig(distance=int(settings["distance"]), mask=bool(int(settings["mask"])))
            backend = _make_backend(settings, str(dev), batch_size, threads, cache)
        except ValueError as exc:
            raise ValueError(f"base model {b!r} of {name!r}: {exc}") from exc
        bases[b] = BaseScorer(b, settings, backend, config, feature)
    predictor = Predictor(directory=directory, name=name, kind=kind, bases=bases, reference=reference,
                          members=members, strand_oriented=orient, regions=region_cfg, stacked=stacked_model,
                          device=dev, batch_size=int(batch_size or MEMBER_BATCH))
    log.info("%s on %s; base models %s; %s windows", predictor.describe(), dev,
             ", ".join(s.describe() for s in bases.values()), "strand-oriented" if orient else "genome-oriented")
    return predictor


def _load_member(name: str, path: Path, device: Any) -> Member:
    from metasplice.models import load_model

    model = load_model(path, device)
    config = model.config
    return Member(name=name, model=model, context=int(config.context), task=str(config.task),
                  output_names=tuple(model.output_names), architecture=str(getattr(model, "architecture", "")))


# --------------------------------------------------------------------------------------------
# reading the VCF


def _open_text(path: str) -> IO[str]:
    """A text stream of a plain, gzip or bgzip file ('-': stdin); bytes that are not UTF-8 survive."""
    if path == "-":
        raw = sys.stdin.buffer
        binary: IO[bytes] = gzip.GzipFile(fileobj=raw, mode="rb") if raw.peek(2)[:2] == b"\x1f\x8b" else raw
        return io.TextIOWrapper(binary, encoding="utf-8", errors="surrogateescape", newline="")
    with open(path, "rb") as fh:
        compressed = fh.read(2) == b"\x1f\x8b"
    binary = gzip.open(path, "rb") if compressed else open(path, "rb")
    return io.TextIOWrapper(binary, encoding="utf-8", errors="surrogateescape", newline="")


def _lines(stream: IO[str], path: str, first: int) -> Iterator[tuple[int, str]]:
    """(line number, text without the line break); a file that cannot be read on is a ValueError."""
    number = first - 1
    try:
        for number, raw in enumerate(stream, start=first):
            yield number, raw.rstrip("\r\n")
    except (OSError, EOFError) as exc:  # a truncated or corrupt gzip stream
        raise ValueError(f"{path}: cannot read past line {number} ({exc}); is the file complete?") from exc


def read_header(stream: IO[str], path: str) -> tuple[list[str], int]:
    """Header lines (without newlines, ending with ``#CHROM``) and the number of lines read."""
    lines: list[str] = []
    for number, text in _lines(stream, path, 1):
        if text.startswith("##"):
            lines.append(text)
            continue
        if text.startswith("#CHROM"):
            if len(text.split("\t")) < 8:
                raise ValueError(f"{path}, line {number}: the #CHROM line has fewer than 8 tab-separated columns")
            lines.append(text)
            return lines, number
        if text.startswith("#"):
            raise ValueError(f"{path}, line {number}: expected a '##' meta line or the '#CHROM' header line")
        raise ValueError(f"{path}, line {number}: no #CHROM header line before the first record; is it a VCF?")
    raise ValueError(f"{path}: no #CHROM header line; is it a VCF?")


@dataclass
class Skip:
    """One line, record or (allele, gene) left (partly) unannotated, with where it is and why."""

    line: int
    chrom: str
    pos: str
    ref: str
    alt: str
    gene: str
    skipped: str  # one of SKIP_LEVELS
    reason: str

    def row(self) -> str:
        return "\t".join(_tsv_field(str(v)) for v in (self.line, self.chrom, self.pos, self.ref, self.alt, self.gene,
                                                      self.skipped, self.reason))

    def message(self) -> str:
        where = f"{self.chrom}:{self.pos} {_short(self.ref)}>{_short(self.alt)}"
        where += f" ({self.gene})" if self.gene else ""
        text = {
            "line": "line dropped",
            "record": f"{where} not annotated",
            "allele": f"{where} not annotated",
            "SpliceAI": f"{where}: no SpliceAI scores, MetaSplice from the other features",
            "MetaSplice": f"{where}: no MetaSplice probability",
        }[self.skipped]
        return f"WARNING: line {self.line}: {text} ({self.reason})"


def _tsv_field(text: str) -> str:
    return text.replace("\t", " ").replace("\n", " ")


def _short(text: str, n: int = 20) -> str:
    return text if len(text) <= n else f"{text[:n]}...({len(text)} nt)"


@dataclass
class _Slot:
    """One (ALT, gene) of a record."""

    alt: str
    gene_row: int
    gene: str
    info_key: int | None = None  # chunk key of the SpliceAI entry (the allele as written)
    feature: int | None = None  # row of the chunk's feature table (the normalised allele)
    reason: str = ""  # allele-level skip


@dataclass
class _Record:
    """A data line and what becomes of it."""

    line: int
    text: str
    fields: list[str] | None = None  # None: not a record (dropped)
    chrom: str = ""
    pos: int = 0
    ref: str = ""
    alts: tuple[str, ...] = ()
    fasta: str = ""  # the FASTA's contig name
    reason: str = ""  # record-level skip
    slots: list[_Slot] = field(default_factory=list)


def parse_line(number: int, text: str) -> tuple[_Record, str]:
    """The record of a data line, or (a dropped record, why)."""
    rec = _Record(number, text)
    if not text.strip():
        return rec, "malformed line: empty line"
    if text.startswith("#"):
        return rec, "malformed line: a header line after the first record"
    fields = text.split("\t")
    if len(fields) < 8:
        return rec, f"malformed line: {len(fields)} tab-separated column(s), a VCF record has at least 8"
    if not _INTEGER.fullmatch(fields[1]):
        return rec, f"malformed line: POS {_short(fields[1])!r} is not an integer"
    rec.fields = fields
    rec.chrom, rec.pos, rec.ref = fields[0], int(fields[1]), fields[3]
    rec.alts = () if fields[4] in (".", "") else tuple(fields[4].split(","))
    return rec, ""


class _ContigView:
    """Token access to one contig for :func:`metasplice.data.variants.left_align`, read in blocks."""

    def __init__(self, genome: "Genome", chrom: str, block: int = 4096) -> None:
        self.genome, self.chrom, self.block = genome, chrom, block
        self.length = genome.lengths[chrom]
        self.start, self.tokens = 0, np.empty(0, dtype=np.uint8)

    def __getitem__(self, i: int) -> int:
        if not self.start <= i < self.start + len(self.tokens):
            from metasplice.data.genome import encode

            self.start = max(0, i - self.block)
            self.tokens = encode(self.genome.fetch(self.chrom, self.start, min(self.length, i + 64)))
        return int(self.tokens[i - self.start])


def normalise_allele(genome: "Genome", fasta_chrom: str, pos: int, ref: str, alt: str) -> tuple[int, str, str]:
    """Trim shared bases and left-align (as :func:`metasplice.data.variants.prepare_variants` does)."""
    from metasplice.data.variants import left_align

    ref, alt = ref.upper(), alt.upper()
    if len(ref) == 1 and len(alt) == 1:
        return pos, ref, alt
    return left_align(_ContigView(genome, fasta_chrom), pos, ref, alt)


# --------------------------------------------------------------------------------------------
# scoring a chunk


Key = tuple[str, int, str, str, int]  # (FASTA contig, pos, ref, ALT upper-case, annotation row)


class GeneIndex:
    """The annotation's genes as arrays, for per-record look-ups (same rows and order as
    :meth:`metasplice.data.annotation.Annotation.overlapping`) and a cache of their :class:`GeneInfo`."""

    def __init__(self, annotation: "Annotation") -> None:
        g = annotation.genes
        self.annotation = annotation
        self.names = g["name"].astype(str).to_numpy()
        self.strands = g["strand"].astype(str).to_numpy()
        self.tx_start = g["tx_start"].to_numpy(dtype=np.int64)
        self.tx_end = g["tx_end"].to_numpy(dtype=np.int64)
        self._chroms: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._info: dict[int, Any] = {}

    def overlapping(self, chrom: str, pos: int) -> list[int]:
        """Rows whose transcript contains ``pos``, in file order."""
        if chrom not in self._chroms:
            rows = self.annotation.rows_on(chrom)
            self._chroms[chrom] = (rows, self.tx_start[rows], self.tx_end[rows])
        rows, starts, ends = self._chroms[chrom]
        return [int(r) for r in rows[(starts <= pos) & (pos <= ends)]]

    def info(self, row: int) -> Any:
        """The :class:`metasplice.base_models.spliceai.scoring.GeneInfo` of a row."""
        if row not in self._info:
            from metasplice.base_models.spliceai.scoring import gene_info

            self._info[row] = gene_info(self.annotation, row)
        return self._info[row]


def score_keys(
    keys: Sequence[Key], genome: "Genome", genes: GeneIndex, scorer: BaseScorer
) -> list["AlleleResult"]:
    """One result per (contig, pos, ref, alt, gene row): scores, or the reason there are none.

    The checks, their order and the scoring are those of
    :func:`metasplice.base_models.table.score_variants` (transcript bounds, the CLI's record checks,
    the allele class; MNVs get the MNV reason), with the whole chunk scored in gene order.
    """
    from metasplice.base_models.spliceai.scoring import AlleleResult, AlleleTask, check_record, classify_allele, score_tasks

    reasons = _spliceai_reasons()
    results: list[AlleleResult | None] = [None] * len(keys)
    tasks: list[AlleleTask] = []
    owners: list[int] = []
    for i, (chrom, pos, ref, alt, row) in enumerate(keys):
        g = genes.info(row)
        if not g.tx_start <= pos <= g.tx_end:
            results[i] = AlleleResult(skip_reason=reasons.NO_GENE)
            continue
        fasta_chrom, why = check_record(genome, chrom, pos, ref, scorer.backend.flank, scorer.config.distance)
        if not why:
            kind, why = classify_allele(ref, alt)
            if kind != "score":
                why = why or reasons.MNV
        if why:
            results[i] = AlleleResult(skip_reason=why)
            continue
        tasks.append(AlleleTask(fasta_chrom, pos, ref, alt, g))
        owners.append(i)
    order = sorted(range(len(tasks)), key=lambda k: (tasks[k].chrom, tasks[k].gene.tx_start, tasks[k].gene.name,
                                                     tasks[k].pos))
    if order:
        scored = score_tasks([tasks[k] for k in order], genome, scorer.backend, scorer.config)
        for k, res in zip(order, scored):
            res.ref_probs = res.alt_probs = None  # not needed: keeps a chunk's memory to DS, DP and deltas
            results[owners[k]] = res
    return results  # type: ignore[return-value]


def scores_frame(results: Sequence["AlleleResult"], n_positions: int) -> tuple["pd.DataFrame", np.ndarray]:
    """(scores table, deltas) of results, with the dtypes of ``targets/{base}/scores.parquet`` and
    ``deltas.npy``: DS float32 (NaN unscored), DP Int64 (NA unscored), deltas float32 [N, 2D+1, 3]."""
    import pandas as pd

    n = len(results)
    ds = np.full((n, 4), np.nan, dtype=np.float32)
    dp = np.zeros((n, 4), dtype=np.int64)
    scored = np.zeros(n, dtype=bool)
    deltas = np.full((n, n_positions, 3), np.nan, dtype=np.float32)
    for i, res in enumerate(results):
        if res.scored:
            ds[i] = np.array([float(x) for x in res.ds], dtype=np.float32)
            dp[i] = res.dp
            deltas[i] = res.delta
            scored[i] = True
    scores = pd.DataFrame({c: ds[:, k] for k, c in enumerate(DS_COLUMNS)})
    for k, c in enumerate(DP_COLUMNS):
        scores[c] = pd.array(np.where(scored, dp[:, k], 0), dtype="Int64")
        scores.loc[~scored, c] = pd.NA
    scores["scored"] = scored
    scores["skip_reason"] = [r.skip_reason for r in results]
    return scores, deltas


def annotate_rows(table: "pd.DataFrame", rows: np.ndarray, annotation: "Annotation",
                  regions: "RegionConfig") -> "pd.DataFrame":
    """Add variant_type, region and boundary_offset, computed as :func:`metasplice.data.variants.prepare_variants`
    does (``rows``: annotation row of each variant's gene)."""
    from metasplice.data.variants import _variant_type

    table = table.copy()
    table["variant_type"] = _variant_type(table["ref"], table["alt"])
    lr = table["ref"].str.len().to_numpy()
    pos = table["pos"].to_numpy(dtype=np.int64)
    is_indel = np.isin(table["variant_type"], ["insertion", "deletion"])
    first = np.where(is_indel & (lr > 1), pos + 1, pos)
    last = np.where(table["variant_type"] == "insertion", pos + 1, pos + lr - 1)
    table["region"] = annotation.regions(rows, first, np.maximum(first, last), regions)
    table["boundary_offset"] = annotation.boundary_offsets(rows, pos)
    return table


@dataclass
class _Chunk:
    """What one chunk of records produced."""

    lines: list[str | None]  # output line per record (None: dropped)
    table: "pd.DataFrame | None"  # --tsv rows
    skips: list[Skip]
    metasplice_records: int = 0
    spliceai_records: int = 0
    metasplice_entries: int = 0
    spliceai_entries: int = 0


def _plan(rec: _Record, genome: "Genome", genes: GeneIndex, skips: list[Skip]) -> None:
    """Record and allele checks; fills ``rec.slots`` (keys and features are assigned later)."""
    from metasplice.base_models.spliceai.scoring import classify_allele

    reasons = _spliceai_reasons()
    alts = ",".join(rec.alts) or "."

    def skip(reason: str) -> None:
        rec.reason = reason
        skips.append(Skip(rec.line, rec.chrom, str(rec.pos), rec.ref, alts, "", "record", reason))

    if not rec.alts:
        return skip(reasons.BAD_INPUT)
    if not _ACGTN.fullmatch(rec.ref):
        return skip(BAD_REF.format(ref=_short(rec.ref) or "''"))
    fasta = genome.resolve(rec.chrom)
    if fasta is None:
        return skip(reasons.CONTIG.format(chrom=rec.chrom))
    length = genome.lengths[fasta]
    if rec.pos < 1 or rec.pos + len(rec.ref) - 1 > length:
        return skip(OUTSIDE_CONTIG.format(pos=rec.pos, chrom=fasta, length=length))
    observed = genome.fetch(fasta, rec.pos - 1, rec.pos - 1 + len(rec.ref))
    if observed != rec.ref:
        return skip(reasons.REF_MISMATCH.format(ref=_short(rec.ref), fasta=_short(observed)))
    rows = genes.overlapping(rec.chrom, rec.pos)
    if not rows:
        return skip(reasons.NO_GENE)
    rec.fasta = fasta
    for alt in rec.alts:
        for row in rows:
            slot = _Slot(alt, row, str(genes.names[row]))
            if not alt:
                slot.reason = EMPTY_ALT
            else:
                kind, why = classify_allele(rec.ref, alt)
                if kind == "skip":
                    slot.reason = why
            if slot.reason:
                skips.append(Skip(rec.line, rec.chrom, str(rec.pos), rec.ref, alt, slot.gene, "allele", slot.reason))
            rec.slots.append(slot)


def annotate_chunk(
    records: Sequence[_Record], genome: "Genome", genes: GeneIndex, predictor: Predictor
) -> _Chunk:
    """Plan, score and format one chunk of parsed records."""
    import pandas as pd

    from metasplice.base_models.spliceai.scoring import format_entry

    reasons = _spliceai_reasons()
    skips: list[Skip] = []
    keys: dict[Key, int] = {}
    feature_rows: list[dict] = []
    feature_keys: list[int] = []
    for rec in records:
        if rec.fields is None:
            continue
        _plan(rec, genome, genes, skips)
        for slot in rec.slots:
            if slot.reason:
                continue
            slot.info_key = keys.setdefault((rec.fasta, rec.pos, rec.ref, slot.alt.upper(), slot.gene_row), len(keys))
            if slot.alt.upper() == rec.ref:
                continue
            pos, ref, alt = normalise_allele(genome, rec.fasta, rec.pos, rec.ref, slot.alt)
            row = slot.gene_row
            slot.feature = len(feature_rows)
            feature_keys.append(keys.setdefault((rec.fasta, pos, ref, alt, row), len(keys)))
            feature_rows.append({"chrom": rec.chrom, "pos": pos, "ref": ref, "alt": alt, "gene": slot.gene,
                                 "strand": str(genes.strands[row]), "tx_start": int(genes.tx_start[row]),
                                 "tx_end": int(genes.tx_end[row]), "gene_row": row})
    key_list = list(keys)
    results: dict[str, list] = {}
    for name, scorer in predictor.bases.items():
        # the reference base scores the alleles as written too (the SpliceAI field); the others only features
        wanted = range(len(key_list)) if name == predictor.reference else sorted(set(feature_keys))
        scored = score_keys([key_list[k] for k in wanted], genome, genes, scorer)
        results[name] = [None] * len(key_list)
        for k, res in zip(wanted, scored):
            results[name][k] = res
    ref_results = results[predictor.reference]

    table = None
    prob = np.empty(0)
    member_scores: dict[str, np.ndarray] = {}
    feature_dicts: list[dict] = []
    if feature_rows:
        table = pd.DataFrame(feature_rows)
        table = annotate_rows(table, table["gene_row"].to_numpy(dtype=np.int64), genes.annotation, predictor.regions)
        base_scores = {
            name: scores_frame([res[k] for k in feature_keys], predictor.bases[name].config.n_positions)
            for name, res in results.items()
        }
        prob, member_scores = predictor.probabilities(table, genome, base_scores)
        ref_scores = base_scores[predictor.reference][0]
        for c in DS_COLUMNS + DP_COLUMNS:
            table[c] = ref_scores[c].to_numpy()
        feature_dicts = table.to_dict("records")

    out = _Chunk(lines=[], table=None, skips=skips)
    tsv_rows: list[dict] = []
    for rec in records:
        if rec.fields is None:
            out.lines.append(None)
            continue
        spliceai, metasplice = [], []
        for slot in rec.slots:
            if slot.reason:
                continue
            res = ref_results[slot.info_key]
            where = (rec.line, rec.chrom, str(rec.pos), rec.ref, slot.alt, slot.gene)
            if res.scored:
                spliceai.append(format_entry(slot.alt, slot.gene, res))
            elif res.skip_reason == reasons.MNV:
                spliceai.append(format_entry(slot.alt, slot.gene, None))
            if not res.scored and slot.feature is not None:
                skips.append(Skip(*where, "SpliceAI", res.skip_reason))
            if slot.feature is None:  # ALT equals REF: a SpliceAI entry (as the CLI), no probability
                entry = res.scored or res.skip_reason == reasons.MNV
                skips.append(Skip(*where, "MetaSplice" if entry else "allele",
                                  ALT_EQUALS_REF if entry else f"{ALT_EQUALS_REF}; {res.skip_reason}"))
                continue
            p = float(prob[slot.feature])
            if not np.isfinite(p):
                skips.append(Skip(*where, "MetaSplice", "the model gave no probability (NaN)"))
                continue
            metasplice.append(f"{slot.alt}|{slot.gene}|{p:.4f}")
            row = feature_dicts[slot.feature]
            normalised = (int(row["pos"]), row["ref"], row["alt"]) != (rec.pos, rec.ref.upper(), slot.alt.upper())
            tsv_rows.append({
                "line": rec.line, "chrom": rec.chrom, "pos": rec.pos, "ref": rec.ref, "alt": slot.alt,
                "gene": slot.gene, "strand": row["strand"], "region": row["region"],
                "variant_type": row["variant_type"], "boundary_offset": int(row["boundary_offset"]),
                "normalised": f"{int(row['pos'])}:{row['ref']}>{row['alt']}" if normalised else "",
                **{c: row[c] for c in DS_COLUMNS + DP_COLUMNS},
                "probability": p,
                **({f"member_{m}": float(score[slot.feature]) for m, score in member_scores.items()}
                   if predictor.stacked is not None else {}),
            })
        out.spliceai_records += bool(spliceai)
        out.metasplice_records += bool(metasplice)
        out.spliceai_entries += len(spliceai)
        out.metasplice_entries += len(metasplice)
        out.lines.append(_with_info(rec, {"SpliceAI": spliceai, "MetaSplice": metasplice}))
    if tsv_rows:
        out.table = pd.DataFrame(tsv_rows).astype({**{c: np.float32 for c in DS_COLUMNS},
                                                   **{c: "Int64" for c in DP_COLUMNS}})
    skips.sort(key=lambda s: s.line)
    return out


def _with_info(rec: _Record, entries: Mapping[str, list[str]]) -> str:
    """The record's line with our INFO keys replaced by ``entries`` (unchanged text if nothing changes)."""
    info = rec.fields[7]
    items = [] if info in (".", "") else info.split(";")
    kept = [i for i in items if i.split("=", 1)[0] not in OUR_KEYS]
    added = [f"{k}={','.join(v)}" for k, v in entries.items() if v]
    if not added and len(kept) == len(items):
        return rec.text
    fields = list(rec.fields)
    fields[7] = ";".join(kept + added) or "."
    return "\t".join(fields)


# --------------------------------------------------------------------------------------------
# the whole file


@dataclass
class PredictSummary:
    """Counts of one run."""

    lines: int = 0  # data lines read
    records: int = 0  # records written
    dropped: int = 0  # lines not written
    metasplice_records: int = 0
    spliceai_records: int = 0
    metasplice_entries: int = 0
    spliceai_entries: int = 0
    skips: Counter = field(default_factory=Counter)  # (skipped, reason key) -> count
    seconds: float = 0.0

    def text(self) -> str:
        lines = [
            f"{self.lines} data lines: {self.records} records written ({self.dropped} lines dropped), "
            f"{self.metasplice_records} with MetaSplice ({self.metasplice_entries} entries), "
            f"{self.spliceai_records} with SpliceAI ({self.spliceai_entries} entries)"
            + (f", {self.records / self.seconds:.1f} records/s" if self.seconds > 0 else "")
        ]
        lines += [f"  skipped {level} ({n}): {reason}" for (level, reason), n in sorted(self.skips.items())]
        return "\n".join(lines)


def info_header_lines(predictor: Predictor) -> list[str]:
    """The ``##INFO`` lines of the two fields and a provenance line."""
    from metasplice import __version__
    from metasplice.base_models.spliceai.vcf import INFO_HEADER

    ref = predictor.bases[predictor.reference]
    if ref.kind == "spliceai":
        spliceai = INFO_HEADER
    else:
        spliceai = (
            '##INFO=<ID=SpliceAI,Number=.,Type=String,Description="Delta scores of base model '
            f"{ref.name} ({ref.kind}) in the SpliceAI format: delta scores (DS) and delta positions (DP) for "
            "acceptor gain (AG), acceptor loss (AL), donor gain (DG), and donor loss (DL). "
            'Format: ALLELE|SYMBOL|DS_AG|DS_AL|DS_DG|DS_DL|DP_AG|DP_AL|DP_DG|DP_DL">'
        )
    description = f"MetaSplice probability that the variant is splice-altering, from {predictor.describe()}"
    metasplice = (f'##INFO=<ID=MetaSplice,Number=.,Type=String,Description="{description}. '
                  'Format: ALLELE|SYMBOL|PROB">')
    bases = ",".join(f"{s.name}(kind={s.kind};D={s.config.distance};M={int(s.config.mask)})"
                     for s in predictor.bases.values())
    provenance = (f"##metasplice_predict=version {__version__}; model {predictor.name} ({predictor.kind}); "
                  f"bases {bases}; reference {predictor.reference}; "
                  f"{'strand' if predictor.strand_oriented else 'genome'}-oriented windows")
    return [spliceai, metasplice, provenance]


def output_header(lines: Sequence[str], predictor: Predictor) -> list[str]:
    """Input header with our INFO lines (replacing any of the same IDs) before ``#CHROM``."""
    ours = tuple(f"##INFO=<ID={k}," for k in OUR_KEYS) + ("##metasplice_predict=",)
    kept = [line for line in lines[:-1] if not line.startswith(ours)]
    return kept + info_header_lines(predictor) + [lines[-1]]


class _AtomicFiles:
    """Temporary files beside the outputs, moved into place together by :meth:`commit`."""

    def __init__(self) -> None:
        self.pending: list[tuple[str, str]] = []

    def temp(self, path: str) -> str:
        target = Path(path).resolve()
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        os.close(fd)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # the permissions of a file created the usual way, not mkstemp's 0600
        self.pending.append((tmp, str(target)))
        return tmp

    def commit(self) -> None:
        for tmp, target in self.pending:  # the VCF is registered last: it appears last
            os.replace(tmp, target)
        self.pending = []

    def discard(self) -> None:
        for tmp, _ in self.pending:
            Path(tmp).unlink(missing_ok=True)
        self.pending = []


def _open_output(path: str, files: _AtomicFiles) -> IO[bytes]:
    if path in ("-", "/dev/stdout"):
        return sys.stdout.buffer
    if path.endswith(".bcf"):
        raise ValueError(f"{path}: BCF output is not supported; write .vcf.gz and convert with `bcftools view -Ob`")
    tmp = files.temp(path)
    if path.endswith((".gz", ".bgz")):
        from pysam.libcbgzf import BGZFile

        return BGZFile(tmp, "wb")
    return open(tmp, "wb")


def _encode(line: str) -> bytes:
    return (line + "\n").encode("utf-8", errors="surrogateescape")


def _chunks(stream: IO[str], path: str, first_line: int, size: int) -> Iterator[list[tuple[int, str]]]:
    chunk: list[tuple[int, str]] = []
    for number, text in _lines(stream, path, first_line):
        chunk.append((number, text))
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def predict_vcf(
    input_path: str,
    output_path: str,
    genome: "Genome",
    annotation: "Annotation",
    predictor: Predictor,
    *,
    tsv_path: str | None = None,
    skipped_path: str | None = None,
    chunk_size: int = 2000,
    progress: bool = True,
    max_warnings: int = 20,
    warn: Callable[[str], None] | None = None,
) -> PredictSummary:
    """Write ``input_path`` to ``output_path`` with INFO/SpliceAI and INFO/MetaSplice (see module docstring).

    ``tsv_path``: one row per scored (record, allele, gene); ``skipped_path``: every skip with its
    line and reason; ``max_warnings``: warnings per kind of skip (0: none), each given to ``warn``
    (default: printed on stderr). All outputs are written to temporary files and moved into place
    only when the whole input has been read.
    """
    from tqdm import tqdm

    if chunk_size < 1:
        raise ValueError(f"chunk size must be >= 1, got {chunk_size}")
    if input_path != "-" and not Path(input_path).is_file():
        raise FileNotFoundError(f"input VCF not found: {input_path}")
    t0 = time.perf_counter()
    summary = PredictSummary()
    warned: Counter = Counter()
    genes = GeneIndex(annotation)
    files = _AtomicFiles()
    stream = _open_text(input_path)
    handles: list[IO] = []
    try:
        header, n_header = read_header(stream, input_path)
        tsv = open(files.temp(tsv_path), "w", encoding="utf-8", errors="surrogateescape") if tsv_path else None
        report = open(files.temp(skipped_path), "w", encoding="utf-8", errors="surrogateescape") \
            if skipped_path else None
        handles += [h for h in (tsv, report) if h is not None]
        if report:
            report.write("\t".join(SKIPPED_COLUMNS) + "\n")
        out = _open_output(output_path, files)
        if out is not sys.stdout.buffer:
            handles.append(out)
        for line in output_header(header, predictor):
            out.write(_encode(line))
        tsv_header = True
        bar = tqdm(unit=" records", disable=not progress, file=sys.stderr, dynamic_ncols=True, mininterval=1.0)
        say = warn or (lambda text: bar.write(text, file=sys.stderr))
        try:
            for lines in _chunks(stream, input_path, n_header + 1, chunk_size):
                records: list[_Record] = []
                dropped: list[Skip] = []
                for number, text in lines:
                    rec, why = parse_line(number, text)
                    records.append(rec)
                    if why:
                        f = text.split("\t")
                        dropped.append(Skip(number, f[0] if len(f) > 0 else "", f[1] if len(f) > 1 else "",
                                            f[3] if len(f) > 3 else "", f[4] if len(f) > 4 else "", "", "line", why))
                chunk = annotate_chunk(records, genome, genes, predictor)
                for line in chunk.lines:
                    if line is not None:
                        out.write(_encode(line))
                if tsv is not None and chunk.table is not None:
                    chunk.table.to_csv(tsv, sep="\t", index=False, header=tsv_header, lineterminator="\n")
                    tsv_header = False
                skips = sorted(dropped + chunk.skips, key=lambda s: s.line)
                for s in skips:
                    key = (s.skipped, s.reason.split(":")[0])
                    summary.skips[key] += 1
                    if report:
                        report.write(s.row() + "\n")
                    if s.skipped == "SpliceAI" and s.reason == _spliceai_reasons().MNV:
                        continue  # the official CLI's '.' entry: expected, not warned about
                    warned[key] += 1
                    if warned[key] <= max_warnings:
                        say(s.message())
                    if warned[key] == max_warnings + 1 and max_warnings > 0:
                        say(f"WARNING: further '{key[1]}' ({key[0]}) warnings suppressed; see the summary"
                            + (f" and {skipped_path}" if skipped_path else ""))
                summary.lines += len(records)
                summary.dropped += len(dropped)
                summary.records += len(records) - len(dropped)
                summary.metasplice_records += chunk.metasplice_records
                summary.spliceai_records += chunk.spliceai_records
                summary.metasplice_entries += chunk.metasplice_entries
                summary.spliceai_entries += chunk.spliceai_entries
                bar.update(len(records))
        finally:
            bar.close()
        if tsv is not None and tsv_header:  # no scored row: the header alone
            tsv.write("\t".join(_tsv_columns(predictor)) + "\n")
        for h in handles:
            h.close()
        handles = []
        if out is sys.stdout.buffer:
            out.flush()
        files.commit()
    finally:
        for h in handles:
            h.close()
        if input_path != "-":
            stream.close()
        files.discard()
    summary.seconds = time.perf_counter() - t0
    return summary


def _tsv_columns(predictor: Predictor) -> list[str]:
    members = [f"member_{m}" for m in predictor.members] if predictor.stacked is not None else []
    return ["line", "chrom", "pos", "ref", "alt", "gene", "strand", "region", "variant_type", "boundary_offset",
            "normalised", *DS_COLUMNS, *DP_COLUMNS, "probability", *members]


def predict_files(
    *,
    vcf: str,
    output: str,
    genome: str | os.PathLike,
    annotation: str | os.PathLike,
    model_dir: str | os.PathLike,
    tsv: str | None = None,
    skipped: str | None = None,
    device: str = "auto",
    batch_size: int | None = None,
    threads: int | None = None,
    chunk_size: int = 2000,
    base: Mapping[str, Mapping[str, Any]] | None = None,
    strand_oriented: bool | None = None,
    regions: Mapping[str, Any] | None = None,
    progress: bool = False,
) -> PredictSummary:
    """File-level entry point (rule ``score_vcf``): load everything, score ``vcf``, log the summary."""
    from metasplice.data.annotation import load_annotation
    from metasplice.data.genome import Genome

    with Genome(genome) as ref:
        genes = load_annotation(str(annotation))
        predictor = load_predictor(model_dir, device=device, batch_size=batch_size, threads=threads, base=base,
                                   strand_oriented=strand_oriented, regions=regions)
        summary = predict_vcf(vcf, output, ref, genes, predictor, tsv_path=tsv, skipped_path=skipped,
                              chunk_size=chunk_size, progress=progress,
                              warn=lambda text: log.warning("%s", text.removeprefix("WARNING: ")))
    log.info("%s", summary.text())
    return summary


# --------------------------------------------------------------------------------------------
# the command


DESCRIPTION = (
    "Score a VCF with a trained meta-model: every record x ALT x overlapping gene gets INFO/MetaSplice "
    "(ALLELE|SYMBOL|PROB, P(Splice-altering)) and INFO/SpliceAI (the official format). Bad records are "
    "reported (line and reason, --skipped) and written unannotated; they never stop the run."
)


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Hook for metasplice.cli (its SUBCOMMANDS list): adds the ``predict`` subcommand."""
    p = subparsers.add_parser("predict", help="score a VCF with a trained meta-model", description=DESCRIPTION)
    p.add_argument("-I", metavar="input", required=True, help="input VCF (plain, gzip or bgzip; '-' = stdin)")
    p.add_argument("-O", metavar="output", required=True,
                   help="output VCF (.gz/.bgz: bgzipped; '-' = stdout); written to a temporary file, renamed when done")
    p.add_argument("-R", metavar="reference", required=True, help="reference FASTA (plain or bgzip, with .fai)")
    p.add_argument("-A", metavar="annotation", required=True,
                   help='"grch37" or "grch38" (the spliceai package\'s tables) or a SpliceAI-format gene table')
    p.add_argument("--model", required=True, metavar="DIR",
                   help="model directory: a stacked model (model.json, stacker.joblib, members/) or a trained "
                        "sequence model (model.pt), e.g. results/models/<experiment>")
    p.add_argument("--tsv", metavar="TSV", default=None, help="also write one row per scored record x allele x gene")
    p.add_argument("--skipped", metavar="TSV", default=None,
                   help="write every dropped line, unannotated record and allele with its line number and reason")
    p.add_argument("-D", "--distance", type=int, default=None, choices=range(0, 5000), metavar="D",
                   help="SpliceAI -D for a trained model (default 50); a stacked model uses the distance it was "
                        "trained with and refuses another")
    p.add_argument("-M", "--mask", type=int, default=None, choices=(0, 1),
                   help="SpliceAI -M for a trained model (default 0); a stacked model uses its own")
    p.add_argument("--genome-oriented", action="store_true",
                   help="a trained model whose windows were not strand-oriented (sequences.strand_oriented: false)")
    p.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda, cuda:N")
    p.add_argument("--batch-size", type=int, default=None,
                   help="alleles per base-model batch (default 32 on CPU, 256 on CUDA) and windows per member batch "
                        f"(default {MEMBER_BATCH})")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's choice)")
    p.add_argument("--chunk-size", type=int, default=2000, help="records read, scored and written at a time")
    p.add_argument("--max-warnings", type=int, default=20, help="stderr warnings per kind of skip (default 20)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Entry point of ``metasplice predict``."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s", stream=sys.stderr)
    t0 = time.perf_counter()
    from metasplice.data.annotation import load_annotation
    from metasplice.data.genome import Genome

    try:
        if args.chunk_size < 1 or (args.batch_size is not None and args.batch_size < 1):
            raise ValueError("--chunk-size and --batch-size must be >= 1")
        if args.I != "-" and not Path(args.I).is_file():
            raise FileNotFoundError(f"input VCF not found: {args.I}")
        with Genome(args.R) as genome:
            annotation = load_annotation(args.A)
            predictor = load_predictor(
                args.model, device=args.device, batch_size=args.batch_size, threads=args.threads,
                distance=args.distance, mask=args.mask, strand_oriented=False if args.genome_oriented else None,
            )
            summary = predict_vcf(args.I, args.O, genome, annotation, predictor, tsv_path=args.tsv,
                                  skipped_path=args.skipped, chunk_size=args.chunk_size,
                                  progress=not args.no_progress, max_warnings=args.max_warnings)
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        log.error("%s", exc)
        return 1
    log.info("%s", summary.text())
    log.info("done in %.1f s", time.perf_counter() - t0)
    return 0


# --------------------------------------------------------------------------------------------
# workflow wiring (rules/predict.smk): paths and settings of rule score_vcf from the plain config


def predict_section(config: Mapping[str, Any]) -> dict:
    """The ``predict`` config section (empty when absent: nothing is scored)."""
    return dict(config.get("predict") or {})


def experiment_kind(config: Mapping[str, Any], experiment: str) -> str:
    """``stacked`` or ``trained``: the kind of model directory experiment ``experiment`` leaves."""
    from metasplice.experiments.registry import experiment_kind as kind

    experiments = config.get("experiments") or {}
    if experiment not in experiments:
        raise ValueError(f"config predict: experiment {experiment!r} is not defined under `experiments` "
                         f"(defined: {', '.join(experiments) or 'none'})")
    value = kind(experiments[experiment])
    if value not in ("stacked", "trained"):
        raise ValueError(f"config predict: experiment {experiment!r} is a meta-model of kind {value!r}, which "
                         "leaves no model directory to score VCFs with; name a stacked or trained experiment")
    return value


def predict_targets(config: Mapping[str, Any]) -> list[str]:
    """Outputs of rule score_vcf for every VCF of ``predict.vcfs`` (none when it is empty)."""
    section = predict_section(config)
    vcfs = dict(section.get("vcfs") or {})
    if not vcfs:
        return []
    experiment = str(section.get("experiment") or "")
    if not experiment:
        raise ValueError("config predict.vcfs lists VCFs but predict.experiment is empty: name the experiment "
                         "(a key of `experiments`) whose model scores them")
    experiment_kind(config, experiment)
    bad = [n for n in vcfs if not _NAME.fullmatch(str(n))]
    if bad:
        raise ValueError(f"config predict.vcfs: names {bad} may only hold letters, digits, '_' and '-' "
                         "(they become file names)")
    return [f"results/predict/{experiment}/{name}{suffix}" for name in vcfs
            for suffix in (".vcf.gz", ".tsv", ".skipped.tsv")]


def score_vcf_inputs(config: Mapping[str, Any], experiment: str, name: str, genome: str,
                     annotation: str) -> dict[str, str]:
    """Inputs of rule score_vcf: the VCF, the reference and annotation, the model's files."""
    vcfs = dict(predict_section(config).get("vcfs") or {})
    if name not in vcfs:
        raise ValueError(f"config predict.vcfs has no VCF named {name!r} (named: {', '.join(vcfs) or 'none'})")
    inputs = {"vcf": str(vcfs[name]), "genome": genome, "fai": f"{genome}.fai", "annotation": annotation}
    model = f"results/models/{experiment}"
    if experiment_kind(config, experiment) == "stacked":
        inputs.update(model_json=f"{model}/model.json", stacker=f"{model}/stacker.joblib")
    else:
        inputs["model"] = f"{model}/model.pt"
    return inputs


def score_vcf_runtime(config: Mapping[str, Any]) -> dict[str, Any]:
    """Runtime settings of rule score_vcf, read by its script from the config: device, batch and chunk sizes."""
    section = predict_section(config)
    return {"device": str(section.get("device", "auto")), "batch_size": section.get("batch_size"),
            "chunk_size": int(section.get("chunk_size", 2000))}


def score_vcf_params(config: Mapping[str, Any], experiment: str) -> dict[str, Any]:
    """Settings of rule score_vcf that change its output (a change reruns it): the model directory and how
    its inputs were made. How it runs (device, batch and chunk sizes) is :func:`score_vcf_runtime`."""
    params: dict[str, Any] = {
        "model_dir": f"results/models/{experiment}",
        "regions": dict(config.get("regions") or {}),
    }
    if experiment_kind(config, experiment) == "trained":
        from metasplice.evaluation.evaluate import reference_base

        reference = reference_base(config)
        settings = dict((config.get("base_models") or {}).get(reference) or {})
        keep = ("kind", "weights", "flanking_size", "distance", "mask", "precision", "engine")
        params["base"] = {reference: {k: settings[k] for k in keep if k in settings}}
        params["strand_oriented"] = bool((config.get("sequences") or {}).get("strand_oriented", True))
    return params
