"""Base-model scores for the pipeline's variant table (targets/{base}/scores.parquet, deltas.npy).

Each row of ``variants.parquet`` already names one gene (``gene``, ``strand``, ``tx_start``,
``tx_end``); it is scored against that gene only, with the CLI's computation (see
:mod:`.scoring`): transcript masking, strand, indel alignment, DS/DP, the ``mask`` rule and the
same skip rules, each unscored row carrying its reason.

``deltas`` is float32 [N, 2D + 1, 3]: aligned alt - ref ensemble probabilities per position in
**genome orientation** (index D = POS, index k = POS + k - D, whatever the strand), channels
[neither, acceptor, donor]; DS_AG = max(deltas[:, :, 1]), DS_AL = max(-deltas[:, :, 1]), likewise
for the donor channel (before the mask). Rows of unscored variants are NaN.
Validated targets: label 1 (splice-altering) -> the base model's value, label 0 (normal) -> 0,
anything else (or a label-1 variant that could not be scored) -> NaN.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from metasplice.base_models.spliceai.scoring import (
    DP_COLUMNS,
    DS_COLUMNS,
    AlleleTask,
    ScoreConfig,
    SkipReason,
    check_record,
    classify_allele,
    gene_info,
    score_tasks,
)
from metasplice.data.annotation import Annotation
from metasplice.data.genome import Genome, normalise_chrom

log = logging.getLogger("metasplice.spliceai")

SCORE = "score"  # scores.parquet column every base model writes: its classifier score (NaN: not scored)
REQUIRED = ("chrom", "pos", "ref", "alt", "gene", "strand", "tx_start", "tx_end", "label")


@dataclass
class ScoredVariants:
    """Row-aligned scores table, per-position deltas and validated targets."""

    scores: pd.DataFrame
    deltas: np.ndarray
    targets: np.ndarray


def gene_rows(variants: pd.DataFrame, annotation: Annotation) -> np.ndarray:
    """Annotation row of each variant's assigned gene (name, chrom, tx bounds), -1 if absent."""
    g = annotation.genes
    key = {}
    for row, (name, chrom, s, e) in enumerate(zip(g["name"], g["chrom"], g["tx_start"], g["tx_end"])):
        key.setdefault((str(name), normalise_chrom(str(chrom)), int(s), int(e)), row)
    return np.array(
        [
            key.get((str(n), normalise_chrom(str(c)), int(s), int(e)), -1)
            for n, c, s, e in zip(variants["gene"], variants["chrom"], variants["tx_start"], variants["tx_end"])
        ],
        dtype=np.int64,
    )


def validated_targets(labels: np.ndarray, values: np.ndarray) -> np.ndarray:
    """label 1 -> values, label 0 -> zeros, other labels -> NaN (any trailing shape).

    A variant the base model did not score (NaN values) gets NaN whatever its label: with zeros for the
    unscored Normal variants only, every unscored training row would be Normal, and what makes a variant
    unscoreable (an MNV, a long deletion) is visible in its window."""
    labels = np.asarray(labels)
    shape = (-1,) + (1,) * (values.ndim - 1)
    scored = np.isfinite(values)
    out = np.where((labels == 1).reshape(shape), values, np.nan)
    out = np.where((labels == 0).reshape(shape) & scored, 0.0, out)
    return out.astype(np.float32)


def score_variants(
    variants: pd.DataFrame,
    genome: Genome,
    annotation: Annotation,
    backend,
    config: ScoreConfig = ScoreConfig(),
    chunk_size: int = 5000,
    progress: bool = False,
) -> ScoredVariants:
    """Score every row of the variant table against its assigned gene (see module docstring)."""
    missing = [c for c in REQUIRED if c not in variants.columns]
    if missing:
        raise ValueError(f"variant table lacks column(s) {', '.join(missing)}")
    from tqdm import tqdm

    n = len(variants)
    cov = config.n_positions
    ds = np.full((n, 4), np.nan, dtype=np.float32)
    dp = np.zeros((n, 4), dtype=np.int64)
    scored = np.zeros(n, dtype=bool)
    reasons = np.array([""] * n, dtype=object)
    deltas = np.full((n, cov, 3), np.nan, dtype=np.float32)
    rows = gene_rows(variants, annotation)
    genes = {int(r): gene_info(annotation, int(r)) for r in np.unique(rows[rows >= 0])}
    chroms = variants["chrom"].astype(str).to_numpy()
    positions = variants["pos"].to_numpy(dtype=np.int64)
    refs = variants["ref"].astype(str).to_numpy()
    alts = variants["alt"].astype(str).to_numpy()

    tasks: list[AlleleTask] = []
    owners: list[int] = []
    for i in range(n):
        row = int(rows[i])
        if row < 0:
            reasons[i] = SkipReason.NO_ANNOTATION.format(
                gene=variants["gene"].iat[i],
                chrom=chroms[i],
                start=variants["tx_start"].iat[i],
                end=variants["tx_end"].iat[i],
            )
            continue
        g = genes[row]
        if not g.tx_start <= positions[i] <= g.tx_end:
            reasons[i] = SkipReason.NO_GENE
            continue
        fasta_chrom, why = check_record(genome, chroms[i], int(positions[i]), refs[i], backend.flank, config.distance)
        if not why:
            kind, why = classify_allele(refs[i], alts[i])
            if kind != "score":
                why = why or SkipReason.MNV
        if why:
            reasons[i] = why
            continue
        tasks.append(AlleleTask(fasta_chrom, int(positions[i]), refs[i], alts[i], g))
        owners.append(i)

    # chunks of whole genes, in gene order, keep memory bounded and share each gene's reference
    order = sorted(
        range(len(tasks)), key=lambda k: (tasks[k].chrom, tasks[k].gene.tx_start, tasks[k].gene.name, tasks[k].pos)
    )
    bar = tqdm(total=len(tasks), unit=" variants", disable=not progress, mininterval=5.0)
    start = 0
    while start < len(order):
        stop = min(start + chunk_size, len(order))
        while stop < len(order) and tasks[order[stop]].gene == tasks[order[stop - 1]].gene:
            stop += 1
        part = [tasks[k] for k in order[start:stop]]
        results = score_tasks(part, genome, backend, config, progress=bar.update)
        for k, res in zip(order[start:stop], results):
            i = owners[k]
            if not res.scored:
                reasons[i] = res.skip_reason
                continue
            ds[i] = np.array([float(x) for x in res.ds], dtype=np.float32)
            dp[i] = res.dp
            deltas[i] = res.delta
            scored[i] = True
        start = stop
    bar.close()

    labels = variants["label"].to_numpy()
    scores = pd.DataFrame({c: ds[:, k] for k, c in enumerate(DS_COLUMNS)})
    for k, c in enumerate(DP_COLUMNS):
        scores[c] = pd.array(np.where(scored, dp[:, k], 0), dtype="Int64")
        scores.loc[~scored, c] = pd.NA
    scores["DS_max"] = np.where(scored, np.nanmax(np.where(scored[:, None], ds, 0.0), axis=1), np.nan).astype(
        np.float32
    )
    scores[SCORE] = scores["DS_max"]  # the classifier score every base model writes
    scores["scored"] = scored
    scores["skip_reason"] = reasons.astype(str)
    target_ds = validated_targets(labels, ds)
    for k, c in enumerate(DS_COLUMNS):
        scores[f"target_{c}"] = target_ds[:, k]
    n_skip = int((~scored).sum())
    if n_skip:
        counts = pd.Series([r.split(":")[0] for r in reasons[~scored]]).value_counts()
        log.info("%d of %d variants not scored: %s", n_skip, n, ", ".join(f"{k} {v}" for k, v in counts.items()))
    return ScoredVariants(scores=scores, deltas=deltas, targets=validated_targets(labels, deltas))
