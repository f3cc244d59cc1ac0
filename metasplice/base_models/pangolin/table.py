"""Pangolin scores for the pipeline's variant table (targets/{base}/scores.parquet, deltas.npy, targets.npy).

Each row of ``variants.parquet`` names one gene; it is scored on that gene's strand and masked with
that gene's exons (the SpliceAI-format table's rows give the same genes and exons as the official
database, see :mod:`.annotation`), with the official checks and arithmetic (:mod:`.scoring`).

``scores.parquet`` (row-aligned with the variants):

- ``score``: the classifier score, max(gain, -loss) after masking (the baseline row's score);
- ``gain``, ``loss``: the largest gain and the most negative loss after masking, as the official
  output prints them (unrounded); ``gain_pos``, ``loss_pos``: their offsets from POS;
- ``gain_{tissue}``, ``loss_{tissue}`` for heart, liver, brain, testis: each tissue's own largest
  gain and most negative loss (unmasked);
- ``scored``, ``skip_reason`` (the official warning text), ``target_score`` (validated target).

``deltas.npy`` is float32 [N, 2D + 1, 4]: per tissue the mean over replicates of aligned (alt - ref)
P(splice site) at offsets -D .. D (genome order; a deletion's positions past +D are left out).
``targets.npy`` holds the validated ``deltas`` (label 1 -> deltas, label 0 -> zeros, else NaN).
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from metasplice.base_models.pangolin.model import TISSUES
from metasplice.base_models.pangolin.scoring import PangolinConfig, PangolinTask, check_variant, score_tasks
from metasplice.base_models.table import REQUIRED, ScoredVariants, gene_rows, validated_targets
from metasplice.data.annotation import Annotation
from metasplice.data.genome import Genome

log = logging.getLogger("metasplice.pangolin")

SCORE_COLUMNS: tuple[str, ...] = ("score", "gain", "loss", "gain_pos", "loss_pos")
TISSUE_COLUMNS: tuple[str, ...] = tuple(f"{side}_{t}" for t in TISSUES for side in ("gain", "loss"))


class _OneGene:
    """The gene look-up of one variant: its assigned gene only."""

    def __init__(self, strand: str, name: str, exons: list[int]) -> None:
        self.strand, self.name, self.exons = strand, name, exons

    def genes_at(self, chrom: str, pos: int) -> tuple[dict[str, list[int]], dict[str, list[int]]]:
        side = {self.name: list(self.exons)}
        return (side, {}) if self.strand == "+" else ({}, side)


def score_pangolin_variants(
    variants: pd.DataFrame,
    genome: Genome,
    annotation: Annotation,
    backend,
    config: PangolinConfig = PangolinConfig(),
    chunk_size: int = 2000,
) -> ScoredVariants:
    """Score every row of the variant table against its assigned gene (see the module docstring)."""
    missing = [c for c in REQUIRED if c not in variants.columns]
    if missing:
        raise ValueError(f"variant table lacks column(s) {', '.join(missing)}")
    n, d = len(variants), config.distance
    values = {c: np.full(n, np.nan) for c in (*SCORE_COLUMNS, *TISSUE_COLUMNS)}
    reasons = np.array([""] * n, dtype=object)
    deltas = np.full((n, 2 * d + 1, len(TISSUES)), np.nan, dtype=np.float32)
    rows = gene_rows(variants, annotation)
    genes = annotation.genes
    tasks: list[PangolinTask] = []
    owners: list[int] = []
    for i in range(n):
        row = int(rows[i])
        if row < 0:
            reasons[i] = f"gene not in annotation: {variants['gene'].iat[i]}"
            continue
        g = genes.iloc[row]
        exons = [x for s, e in zip(g["exon_starts"], g["exon_ends"], strict=True) for x in (int(s), int(e))]
        lookup = _OneGene(str(g["strand"]), str(g["name"]), exons)
        task, why = check_variant(
            i + 1,
            str(variants["chrom"].iat[i]),
            int(variants["pos"].iat[i]),
            str(variants["ref"].iat[i]),
            str(variants["alt"].iat[i]),
            genome,
            lookup,
            config,
        )
        if task is None:
            reasons[i] = why.split("WARNING, skipping variant: ")[-1]
            continue
        tasks.append(task)
        owners.append(i)
    order = sorted(range(len(tasks)), key=lambda k: (tasks[k].chrom, tasks[k].pos))
    for start in range(0, len(order), chunk_size):
        part = [tasks[k] for k in order[start : start + chunk_size]]
        for k, res in zip(order[start : start + chunk_size], score_tasks(part, genome, backend, config), strict=True):
            i, strand = owners[k], next(iter(tasks[k].genes))
            loss, gain, tissue = res.loss[strand], res.gain[strand], res.tissue_deltas[strand]
            lo, hi = int(np.argmin(loss)), int(np.argmax(gain))
            values["gain"][i], values["loss"][i] = float(gain[hi]), float(loss[lo])
            values["gain_pos"][i], values["loss_pos"][i] = hi - d, lo - d
            values["score"][i] = max(float(gain[hi]), -float(loss[lo]))
            for j, t in enumerate(TISSUES):
                values[f"gain_{t}"][i], values[f"loss_{t}"][i] = float(tissue[j].max()), float(tissue[j].min())
            deltas[i] = tissue[:, : 2 * d + 1].T
    scored = np.isfinite(values["score"])
    scores = pd.DataFrame({c: values[c].astype(np.float32) for c in (*SCORE_COLUMNS, *TISSUE_COLUMNS)})
    for c in ("gain_pos", "loss_pos"):
        scores[c] = pd.array(np.where(scored, values[c], 0).astype(np.int64), dtype="Int64")
        scores.loc[~scored, c] = pd.NA
    scores["scored"] = scored
    scores["skip_reason"] = reasons.astype(str)
    labels = variants["label"].to_numpy()
    scores["target_score"] = validated_targets(labels, values["score"])
    if (~scored).any():
        counts = pd.Series([r.split(" (")[0] for r in reasons[~scored]]).value_counts()
        log.info(
            "%d of %d variants not scored: %s",
            int((~scored).sum()),
            n,
            ", ".join(f"{k} {v}" for k, v in counts.items()),
        )
    return ScoredVariants(scores=scores, deltas=deltas, targets=validated_targets(labels, deltas))
