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

import logging
import os
import re
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

import numpy as np

from metasplice.base_models.cli_io import STDOUT, AtomicFiles, encode_line, isolate_failures, open_output
from metasplice.base_models.records import (
    LineRecord,
    Slot,
    VcfInput,
    line_message,
    open_vcf,
    parse_line,
    short,
    tsv_field,
)
from metasplice.base_models.spliceai.scoring import DP_COLUMNS, DS_COLUMNS
from metasplice.predict.predictor import BaseScorer, Predictor, load_predictor

if TYPE_CHECKING:
    import pandas as pd

    from metasplice.base_models.spliceai.scoring import AlleleResult
    from metasplice.data.annotation import Annotation, RegionConfig
    from metasplice.data.genome import Genome

log = logging.getLogger("metasplice.predict")

SKIPPED_COLUMNS = ("line", "chrom", "pos", "ref", "alt", "gene", "skipped", "reason")
SKIP_LEVELS = ("line", "record", "allele", "SpliceAI", "MetaSplice")
OUR_KEYS = ("SpliceAI", "MetaSplice")
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


# --------------------------------------------------------------------------------------------
# reading the VCF


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
        return "\t".join(
            tsv_field(str(v))
            for v in (self.line, self.chrom, self.pos, self.ref, self.alt, self.gene, self.skipped, self.reason)
        )

    def message(self) -> str:
        where = f"{self.chrom}:{self.pos} {short(self.ref)}>{short(self.alt)}"
        where += f" ({self.gene})" if self.gene else ""
        text = {
            "line": "line dropped",
            "record": f"{where} not annotated",
            "allele": f"{where} not annotated",
            "SpliceAI": f"{where}: no SpliceAI scores, MetaSplice from the other features",
            "MetaSplice": f"{where}: no MetaSplice probability",
        }[self.skipped]
        return line_message(self.line, f"WARNING: {text} ({self.reason})")


class _ContigView:
    """Token access to one contig for :func:`metasplice.data.variants.left_align`, read in blocks."""

    def __init__(self, genome: Genome, chrom: str, block: int = 4096) -> None:
        self.genome, self.chrom, self.block = genome, chrom, block
        self.length = genome.lengths[chrom]
        self.start, self.tokens = 0, np.empty(0, dtype=np.uint8)

    def __getitem__(self, i: int) -> int:
        if not self.start <= i < self.start + len(self.tokens):
            from metasplice.data.genome import encode

            self.start = max(0, i - self.block)
            self.tokens = encode(self.genome.fetch(self.chrom, self.start, min(self.length, i + 64)))
        return int(self.tokens[i - self.start])


def normalise_allele(genome: Genome, fasta_chrom: str, pos: int, ref: str, alt: str) -> tuple[int, str, str]:
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

    def __init__(self, annotation: Annotation) -> None:
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


def score_keys(keys: Sequence[Key], genome: Genome, genes: GeneIndex, scorer: BaseScorer) -> list[AlleleResult]:
    """One result per (contig, pos, ref, alt, gene row): scores, or the reason there are none.

    The checks, their order and the scoring are those of
    :func:`metasplice.base_models.table.score_variants` (transcript bounds, the CLI's record checks,
    the allele class; MNVs get the MNV reason), with the whole chunk scored in gene order.
    """
    from metasplice.base_models.spliceai.scoring import (
        AlleleResult,
        AlleleTask,
        check_record,
        classify_allele,
        score_tasks,
    )

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
    order = sorted(
        range(len(tasks)), key=lambda k: (tasks[k].chrom, tasks[k].gene.tx_start, tasks[k].gene.name, tasks[k].pos)
    )
    if order:
        scored = score_tasks([tasks[k] for k in order], genome, scorer.backend, scorer.config)
        for k, res in zip(order, scored):
            res.ref_probs = res.alt_probs = None  # not needed: keeps a chunk's memory to DS, DP and deltas
            results[owners[k]] = res
    return results  # type: ignore[return-value]


def scores_frame(results: Sequence[AlleleResult], n_positions: int) -> tuple[pd.DataFrame, np.ndarray]:
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


def annotate_rows(table: pd.DataFrame, rows: np.ndarray, annotation: Annotation, regions: RegionConfig) -> pd.DataFrame:
    """Add variant_type, region and boundary_offset, computed as :func:`metasplice.data.variants.prepare_variants`
    does (``rows``: annotation row of each variant's gene)."""
    from metasplice.data.variants import variant_type

    table = table.copy()
    table["variant_type"] = variant_type(table["ref"], table["alt"])
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
    table: pd.DataFrame | None  # --tsv rows
    skips: list[Skip]
    metasplice_records: int = 0
    spliceai_records: int = 0
    metasplice_entries: int = 0
    spliceai_entries: int = 0


def _plan(rec: LineRecord, genome: Genome, genes: GeneIndex, skips: list[Skip]) -> None:
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
        return skip(BAD_REF.format(ref=short(rec.ref) or "''"))
    fasta = genome.resolve(rec.chrom)
    if fasta is None:
        return skip(reasons.CONTIG.format(chrom=rec.chrom))
    length = genome.lengths[fasta]
    if rec.pos < 1 or rec.pos + len(rec.ref) - 1 > length:
        return skip(OUTSIDE_CONTIG.format(pos=rec.pos, chrom=fasta, length=length))
    observed = genome.fetch(fasta, rec.pos - 1, rec.pos - 1 + len(rec.ref))
    if observed != rec.ref:
        return skip(reasons.REF_MISMATCH.format(ref=short(rec.ref), fasta=short(observed)))
    rows = genes.overlapping(rec.chrom, rec.pos)
    if not rows:
        return skip(reasons.NO_GENE)
    rec.fasta = fasta
    for alt in rec.alts:
        for row in rows:
            slot = Slot(alt, row, str(genes.names[row]))
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
    records: Sequence[LineRecord],
    genome: Genome,
    genes: GeneIndex,
    predictor: Predictor,
    fields: Sequence[str] = OUR_KEYS,
) -> _Chunk:
    """Plan, score and format one chunk of parsed records (``fields``: the INFO keys written)."""
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
        rec.slots, rec.reason, rec.fasta = [], "", ""  # planned afresh (a chunk may be scored again, record by record)
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
            feature_rows.append(
                {
                    "chrom": rec.chrom,
                    "pos": pos,
                    "ref": ref,
                    "alt": alt,
                    "gene": slot.gene,
                    "strand": str(genes.strands[row]),
                    "tx_start": int(genes.tx_start[row]),
                    "tx_end": int(genes.tx_end[row]),
                    "gene_row": row,
                }
            )
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
                skips.append(
                    Skip(
                        *where,
                        "MetaSplice" if entry else "allele",
                        ALT_EQUALS_REF if entry else f"{ALT_EQUALS_REF}; {res.skip_reason}",
                    )
                )
                continue
            p = float(prob[slot.feature])
            if not np.isfinite(p):
                skips.append(Skip(*where, "MetaSplice", "the model gave no probability (NaN)"))
                continue
            metasplice.append(f"{slot.alt}|{slot.gene}|{p:.4f}")
            row = feature_dicts[slot.feature]
            normalised = (int(row["pos"]), row["ref"], row["alt"]) != (rec.pos, rec.ref.upper(), slot.alt.upper())
            tsv_rows.append(
                {
                    "line": rec.line,
                    "chrom": rec.chrom,
                    "pos": rec.pos,
                    "ref": rec.ref,
                    "alt": slot.alt,
                    "gene": slot.gene,
                    "strand": row["strand"],
                    "region": row["region"],
                    "variant_type": row["variant_type"],
                    "boundary_offset": int(row["boundary_offset"]),
                    "normalised": f"{int(row['pos'])}:{row['ref']}>{row['alt']}" if normalised else "",
                    **{c: row[c] for c in DS_COLUMNS + DP_COLUMNS},
                    "probability": p,
                    **(
                        {f"member_{m}": float(score[slot.feature]) for m, score in member_scores.items()}
                        if predictor.stacked is not None
                        else {}
                    ),
                }
            )
        out.spliceai_records += bool(spliceai)
        out.metasplice_records += bool(metasplice)
        out.spliceai_entries += len(spliceai)
        out.metasplice_entries += len(metasplice)
        entries = {"SpliceAI": spliceai, "MetaSplice": metasplice}
        out.lines.append(_with_info(rec, {k: v for k, v in entries.items() if k in fields}))
    if tsv_rows:
        out.table = pd.DataFrame(tsv_rows).astype(
            {**dict.fromkeys(DS_COLUMNS, np.float32), **dict.fromkeys(DP_COLUMNS, "Int64")}
        )
    skips.sort(key=lambda s: s.line)
    return out


def _with_info(rec: LineRecord, entries: Mapping[str, list[str]]) -> str:
    """The record's line with the INFO keys of ``entries`` replaced (unchanged text if nothing changes)."""
    info = rec.fields[7]
    items = [] if info in (".", "") else info.split(";")
    kept = [i for i in items if i.split("=", 1)[0] not in entries]
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


def info_header_lines(predictor: Predictor, fields: Sequence[str] = OUR_KEYS) -> list[str]:
    """The ``##INFO`` lines of the fields written (``fields``) and a provenance line."""
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
    metasplice = f'##INFO=<ID=MetaSplice,Number=.,Type=String,Description="{description}. Format: ALLELE|SYMBOL|PROB">'
    bases = ",".join(
        f"{s.name}(kind={s.kind};D={s.config.distance};M={int(s.config.mask)})" for s in predictor.bases.values()
    )
    provenance = (
        f"##metasplice_predict=version {__version__}; model {predictor.name} ({predictor.kind}); "
        f"bases {bases}; reference {predictor.reference}; "
        f"{'strand' if predictor.strand_oriented else 'genome'}-oriented windows"
    )
    return [line for key, line in zip(OUR_KEYS, (spliceai, metasplice)) if key in fields] + [provenance]


def output_header(lines: Sequence[str], predictor: Predictor, fields: Sequence[str] = OUR_KEYS) -> list[str]:
    """Input header with the INFO lines of ``fields`` (replacing any of the same IDs) before ``#CHROM``."""
    ours = (*tuple(f"##INFO=<ID={k}," for k in fields), "##metasplice_predict=")
    kept = [line for line in lines[:-1] if not line.startswith(ours)]
    return kept + info_header_lines(predictor, fields) + [lines[-1]]


SCORING_FAILED = "scoring failed"


def _score_chunk(
    records: Sequence[LineRecord],
    genome: Genome,
    genes: GeneIndex,
    predictor: Predictor,
    fields: Sequence[str] = OUR_KEYS,
) -> _Chunk:
    """:func:`annotate_chunk`, where an error scoring one record costs that record only: it is written
    unannotated with a ``scoring failed`` skip (:func:`metasplice.base_models.cli_io.isolate_failures`)."""
    import pandas as pd

    def failed(rec: LineRecord, exc: Exception) -> _Chunk:
        reason = f"{SCORING_FAILED}: {type(exc).__name__}: {exc}"
        alts = ",".join(rec.alts) or "."
        if rec.fields is None:
            return _Chunk(lines=[None], table=None, skips=[])
        return _Chunk(
            lines=[rec.text],
            table=None,
            skips=[Skip(rec.line, rec.chrom, str(rec.pos), rec.ref, alts, "", "record", reason)],
        )

    parts = isolate_failures(
        list(records), lambda items: annotate_chunk(items, genome, genes, predictor, fields), failed
    )
    if len(parts) == 1:
        return parts[0]
    tables = [p.table for p in parts if p.table is not None]
    out = _Chunk(
        lines=[line for p in parts for line in p.lines],
        table=pd.concat(tables, ignore_index=True) if tables else None,
        skips=sorted((s for p in parts for s in p.skips), key=lambda s: s.line),
    )
    for p in parts:
        out.metasplice_records += p.metasplice_records
        out.spliceai_records += p.spliceai_records
        out.metasplice_entries += p.metasplice_entries
        out.spliceai_entries += p.spliceai_entries
    return out


def predict_vcf(
    input_path: str | VcfInput,
    output_path: str,
    genome: Genome,
    annotation: Annotation,
    predictor: Predictor,
    *,
    tsv_path: str | None = None,
    skipped_path: str | None = None,
    chunk_size: int = 2000,
    progress: bool = True,
    max_warnings: int = 20,
    warn: Callable[[str], None] | None = None,
    fields: Sequence[str] = OUR_KEYS,
) -> PredictSummary:
    """Write ``input_path`` to ``output_path`` with INFO/SpliceAI and INFO/MetaSplice (see module docstring).

    ``fields``: the INFO keys written, ``("MetaSplice",)`` to add the probability and keep the input's
    own SpliceAI field and header line (as the annotate target does after its base models).

    ``input_path``: a file name ('-' = stdin) or a :class:`~metasplice.base_models.records.VcfInput`
    opened (its header read) before the models were loaded. ``tsv_path``: one row per scored
    (record, allele, gene); ``skipped_path``: every skip with its line and reason;
    ``max_warnings``: warnings per kind of record or allele skip (0: none; a dropped line is always
    named), each given to ``warn`` (default: printed on stderr). All outputs are written to
    temporary files and moved into place only when the whole input has been read; on an error or
    an interruption they are removed.
    """
    from tqdm import tqdm

    if chunk_size < 1:
        raise ValueError(f"chunk size must be >= 1, got {chunk_size}")
    if "MetaSplice" not in fields or not set(fields) <= set(OUR_KEYS):
        raise ValueError(f"fields must hold MetaSplice and may hold SpliceAI, got {list(fields)}")
    if output_path.endswith(".bcf"):
        raise ValueError(
            f"{output_path}: BCF output is not supported; write .vcf.gz and convert with `bcftools view -Ob`"
        )
    t0 = time.perf_counter()
    source = input_path if isinstance(input_path, VcfInput) else open_vcf(input_path)
    summary = PredictSummary()
    warned: Counter = Counter()
    genes = GeneIndex(annotation)
    with source, AtomicFiles() as files:
        handles: list[IO] = []
        try:
            tsv = files.text(tsv_path) if tsv_path else None
            report = files.text(skipped_path) if skipped_path else None
            handles += [h for h in (tsv, report) if h is not None]
            if report:
                report.write("\t".join(SKIPPED_COLUMNS) + "\n")
            out = open_output(output_path, files)  # registered last: renamed last
            if output_path not in STDOUT:
                handles.append(out)
            for line in output_header(source.header, predictor, fields):
                out.write(encode_line(line))
            tsv_header = True
            bar = tqdm(unit=" records", disable=not progress, file=sys.stderr, dynamic_ncols=True, mininterval=1.0)
            say = warn or (lambda text: bar.write(text, file=sys.stderr))
            try:
                for lines in source.chunks(chunk_size):
                    records: list[LineRecord] = []
                    dropped: list[Skip] = []
                    for number, text in lines:
                        rec, why = parse_line(number, text)
                        records.append(rec)
                        if why:
                            f = text.split("\t")
                            where = (f[i] if len(f) > i else "" for i in (0, 1, 3, 4))
                            dropped.append(Skip(number, *where, "", "line", why))
                    chunk = _score_chunk(records, genome, genes, predictor, fields)
                    for line in chunk.lines:
                        if line is not None:
                            out.write(encode_line(line))
                    if tsv is not None and chunk.table is not None:
                        chunk.table.to_csv(tsv, sep="\t", index=False, header=tsv_header, lineterminator="\n")
                        tsv_header = False
                    for s in sorted(dropped + chunk.skips, key=lambda s: s.line):
                        _report(s, summary, warned, report, say, max_warnings, skipped_path)
                    summary.lines += len(records)
                    summary.dropped += len(dropped)
                    summary.records += len(records) - len(dropped)
                    summary.metasplice_records += chunk.metasplice_records
                    summary.spliceai_records += chunk.spliceai_records
                    summary.metasplice_entries += chunk.metasplice_entries
                    summary.spliceai_entries += chunk.spliceai_entries
                    bar.update(len(records))
                if source.ending_note():
                    say(source.ending_note())
            finally:
                bar.close()
            if tsv is not None and tsv_header:  # no scored row: the header alone
                tsv.write("\t".join(_tsv_columns(predictor)) + "\n")
            if output_path in STDOUT:
                out.flush()
        finally:
            for h in handles:
                h.close()
    summary.seconds = time.perf_counter() - t0
    return summary


def _report(s: Skip, summary, warned: Counter, report, say, max_warnings: int, skipped_path: str | None) -> None:
    """Count, list and warn about one skip: a dropped line always, other kinds ``max_warnings`` times."""
    key = (s.skipped, s.reason.split(":")[0])
    summary.skips[key] += 1
    if report:
        report.write(s.row() + "\n")
    if s.skipped == "SpliceAI" and s.reason == _spliceai_reasons().MNV:
        return  # the official CLI's '.' entry: expected, not warned about
    if s.skipped == "line":
        say(s.message())  # a line lost from the output is always named
        return
    warned[key] += 1
    if warned[key] <= max_warnings:
        say(s.message())
    if warned[key] == max_warnings + 1 and max_warnings > 0:
        say(
            f"WARNING: further '{key[1]}' ({key[0]}) warnings suppressed; see the summary"
            + (f" and {skipped_path}" if skipped_path else "")
        )


def _tsv_columns(predictor: Predictor) -> list[str]:
    members = [f"member_{m}" for m in predictor.members] if predictor.stacked is not None else []
    return [
        "line",
        "chrom",
        "pos",
        "ref",
        "alt",
        "gene",
        "strand",
        "region",
        "variant_type",
        "boundary_offset",
        "normalised",
        *DS_COLUMNS,
        *DP_COLUMNS,
        "probability",
        *members,
    ]


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
    fields: Sequence[str] = OUR_KEYS,
) -> PredictSummary:
    """File-level entry point (rules ``score_vcf`` and ``annotate_predict``): load everything, score
    ``vcf``, log the summary (``fields``: see :func:`predict_vcf`)."""
    from metasplice.data.annotation import load_annotation
    from metasplice.data.genome import Genome

    with Genome(genome) as ref:
        genes = load_annotation(str(annotation))
        predictor = load_predictor(
            model_dir,
            device=device,
            batch_size=batch_size,
            threads=threads,
            base=base,
            strand_oriented=strand_oriented,
            regions=regions,
        )
        summary = predict_vcf(
            vcf,
            output,
            ref,
            genes,
            predictor,
            tsv_path=tsv,
            skipped_path=skipped,
            chunk_size=chunk_size,
            progress=progress,
            warn=lambda text: log.warning("%s", text.removeprefix("WARNING: ")),
            fields=fields,
        )
    log.info("%s", summary.text())
    return summary


def predict_with_settings(
    settings: Mapping[str, Any],
    *,
    vcf: str,
    output: str,
    genome: str | os.PathLike,
    annotation: str | os.PathLike,
    threads: int | None = None,
    tsv: str | None = None,
    skipped: str | None = None,
    fields: Sequence[str] = OUR_KEYS,
) -> PredictSummary:
    """:func:`predict_files` with the workflow's settings (rules ``score_vcf`` and ``annotate_predict``):
    ``model_dir`` and how its inputs were made (:func:`metasplice.experiments.plan.score_vcf_params`),
    ``device``, ``batch_size`` and ``chunk_size`` (:func:`metasplice.experiments.plan.score_vcf_runtime`)."""
    return predict_files(
        vcf=vcf,
        output=output,
        tsv=tsv,
        skipped=skipped,
        genome=genome,
        annotation=annotation,
        model_dir=settings["model_dir"],
        device=settings.get("device", "auto"),
        batch_size=settings.get("batch_size"),
        threads=threads,
        chunk_size=int(settings.get("chunk_size", 2000)),
        base=settings.get("base"),
        strand_oriented=settings.get("strand_oriented"),
        regions=settings.get("regions"),
        fields=fields,
    )


# --------------------------------------------------------------------------------------------
# the command
