"""Labelled-variant ingestion: parse, normalise, check against the reference, merge, annotate and split.

The input is a SpliceVarDB export or a labelled VCF/TSV read into the same shape
(:mod:`metasplice.data.labelled`). One row of the output per unique (build, chrom, pos, ref, alt);
every input row that cannot be used is written to the rejected table with its source line and the
reason.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from metasplice.data.annotation import Annotation, RegionConfig
from metasplice.data.genome import Genome
from metasplice.data.labelled import LabelsConfig, label_counts, read_labels
from metasplice.data.splicevardb import (
    CLASSES,
    LABELS,
    UNLABELLED,
    normalise_classification,
    parse_coordinates,
    read_splicevardb,
)
from metasplice.data.splits import LOCUS_COLUMNS, CrossValConfig, SplitConfig, assign_splits, locus_folds, locus_splits


@dataclass(frozen=True)
class PrepareConfig:
    """Settings of :func:`prepare_variants`."""

    build: str = "GRCh38"
    coordinate_column: str = "hg38"
    max_ref_mismatch_fraction: float = 0.05  # more rows unlike the FASTA than this: wrong build or column, an error
    split: SplitConfig = field(default_factory=SplitConfig)
    regions: RegionConfig = field(default_factory=RegionConfig)


def coordinate_column_for(build: str) -> str:
    """The SpliceVarDB coordinate column of a build: ``hg19`` for GRCh37/hg19, else ``hg38``."""
    return "hg19" if build.strip().lower().startswith(("grch37", "hg19", "b37", "hs37")) else "hg38"


def left_align(contig: np.ndarray, pos: int, ref: str, alt: str) -> tuple[int, str, str]:
    """Trim shared bases and left-align an indel (VCF convention, anchor base kept).

    The anchor is the base before the alleles; at the start of the contig (position 1) it is the base
    after them, as in VCF. ``contig`` is the chromosome as uint8 tokens
    (:meth:`metasplice.data.genome.Genome.tokens`).
    """
    bases = "ACGTN"
    while len(ref) > 0 and len(alt) > 0 and ref[-1] == alt[-1] and (len(ref) > 1 or len(alt) > 1):
        if pos == 1 and min(len(ref), len(alt)) == 1:
            break  # no base before: the shared last base stays as the anchor after the alleles
        ref, alt = ref[:-1], alt[:-1]
        if not ref or not alt:
            pos -= 1
            prev = bases[contig[pos - 1]]
            ref, alt = prev + ref, prev + alt
    while len(ref) > 1 and len(alt) > 1 and ref[0] == alt[0]:
        ref, alt, pos = ref[1:], alt[1:], pos + 1
    return pos, ref, alt


VARIANT_TYPES: tuple[str, ...] = ("snv", "insertion", "deletion", "mnv")


def variant_type(ref: pd.Series, alt: pd.Series) -> np.ndarray:
    """snv, insertion, deletion (one allele is the shared anchor base alone) or mnv (MNVs and complex
    deletion-insertions, whose first base changes too: AA>C is not a deletion)."""
    lr, la = ref.str.len().to_numpy(), alt.str.len().to_numpy()
    anchored = (ref.str[0] == alt.str[0]).to_numpy()
    return np.select(
        [(lr == 1) & (la == 1), (lr == 1) & (la > 1) & anchored, (lr > 1) & (la == 1) & anchored],
        list(VARIANT_TYPES[:3]),
        "mnv",
    )


def _log_other_genes(merged: pd.DataFrame) -> None:
    """Warn about variants given another gene than the one SpliceVarDB names (that gene is not in the annotation
    or does not contain the variant): their strand, windows and scores follow the assigned gene."""
    named = merged["source_gene"].fillna("").astype(str).str.strip()
    other = ((named != "") & (named != merged["gene"].astype(str))).to_numpy()
    if other.any():
        pairs = [f"{a} -> {b}" for a, b in zip(named[other].head(5), merged.loc[other, "gene"].head(5))]
        logging.getLogger(__name__).warning(
            "%d of %d variants were assigned another gene than the one SpliceVarDB names (not in the annotation, "
            "or not containing the variant); their strand follows the assigned gene. First: %s",
            int(other.sum()),
            len(merged),
            "; ".join(pairs),
        )


def _merge_classes(classes: pd.Series) -> str:
    """One class for a duplicated variant: agreement keeps it; an Unlabelled row adds no evidence; SA and
    Normal evidence together (or any Conflicting) make it Conflicting; Splice-altering outranks Low-frequency."""
    found = set(classes)
    if len(found) > 1:
        found.discard(UNLABELLED)
    if len(found) == 1:
        return next(iter(found))
    if "Conflicting" in found or "Normal" in found:
        return "Conflicting"
    return "Splice-altering"


def merge_duplicates(work: pd.DataFrame) -> pd.DataFrame:
    """One row per (chrom, pos, ref, alt); only the duplicated keys go through the slow group-by."""
    key = ["chrom", "pos", "ref", "alt"]
    out = work.rename(columns={"variant_id": "source_ids", "gene": "source_gene", "source_line": "first_line"})
    out = out.assign(n_sources=1)
    dup = work.duplicated(key, keep=False).to_numpy()
    if not dup.any():
        return out.reset_index(drop=True)
    groups = (
        work.loc[dup]
        .groupby(key, sort=False)
        .agg(
            classification=("classification", _merge_classes),
            source_ids=("variant_id", ";".join),
            n_sources=("variant_id", "size"),
            source_gene=("gene", "first"),
            hgvs=("hgvs", "first"),
            method=("method", lambda s: ";".join(pd.unique(s))),
            location=("location", "first"),
            first_line=("source_line", "min"),
        )
        .reset_index()
    )
    merged = pd.concat([out.loc[~dup, groups.columns], groups], ignore_index=True)
    return merged.sort_values("first_line", kind="stable").reset_index(drop=True)


def check_reference_fit(
    mismatched: pd.DataFrame, outside: pd.DataFrame, n_checked: int, genome: Genome, cfg: PrepareConfig
) -> None:
    """Raise when too many of the ``n_checked`` rows on the FASTA's contigs do not fit it (REF differs, or the
    position is outside the contig): the coordinates are then on another build than the genome (wrong FASTA or
    ``coordinate_column``), and the rows that match by chance would be kept at wrong loci."""
    n_bad = len(mismatched) + len(outside)
    if n_checked == 0 or n_bad / n_checked <= cfg.max_ref_mismatch_fraction:
        return
    first = pd.concat([t for t in (mismatched, outside) if len(t)]).sort_values("source_line").head(3)
    examples = "; ".join(f"line {line}: {coord}" for line, coord in first[["source_line", "coordinate"]].values)
    raise ValueError(
        f"{n_bad} of {n_checked} SpliceVarDB rows ({n_bad / n_checked:.1%}) do not fit the reference FASTA "
        f"{genome.path}: {len(mismatched)} have a REF allele that does not match it and {len(outside)} lie outside "
        f"their contig (build {cfg.build}, coordinate column {cfg.coordinate_column!r}); at most "
        f"{cfg.max_ref_mismatch_fraction:.1%} are allowed (variants.max_ref_mismatch_fraction). The coordinates "
        f"are probably on another build than the FASTA: check that the FASTA is {cfg.build} and that "
        "datasets.<dataset>.coordinate_column names the column of that build (hg19 = GRCh37, hg38 = GRCh38). "
        f"First rows: {examples}"
    )


def prepare_variants(
    source: pd.DataFrame, genome: Genome, annotation: Annotation, cfg: PrepareConfig
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Turn a SpliceVarDB table into (variants, summary, rejected)."""
    rejected: list[pd.DataFrame] = []
    work = source.copy()
    if cfg.coordinate_column not in work.columns:
        raise ValueError(f"coordinate column {cfg.coordinate_column!r} is not in the SpliceVarDB table")
    work["coordinate"] = work[cfg.coordinate_column].astype(str)

    def reject(mask: np.ndarray, reason: str | pd.Series) -> None:
        nonlocal work
        mask = np.asarray(mask, dtype=bool)
        if mask.any():
            bad = work.loc[mask, ["source_line", "variant_id", "coordinate"]].copy()
            bad["reason"] = reason.reindex(bad.index) if isinstance(reason, pd.Series) else reason
            rejected.append(bad)
            work = work.loc[~mask].copy()

    work["classification"] = normalise_classification(work["classification"])
    reject(
        work["classification"].isna().to_numpy(), "unknown classification (expected one of " + ", ".join(CLASSES) + ")"
    )
    empty = work["coordinate"].str.strip().isin(["", "NA", "nan", "-", "."]).to_numpy()
    reject(empty, f"no {cfg.coordinate_column} coordinate")
    parts = parse_coordinates(work["coordinate"])
    work = work.join(parts)
    reject(work["pos"].isna().to_numpy(), "malformed coordinate (expected CHROM-POS-REF-ALT, 1-based)")
    bad_letters = ~(work["ref"].str.fullmatch("[ACGT]+") & work["alt"].str.fullmatch("[ACGT]+")).to_numpy()
    reject(bad_letters, "REF/ALT contain letters other than A, C, G, T (IUPAC codes are not guessed)")
    reject((work["ref"] == work["alt"]).to_numpy(), "REF equals ALT")
    work["pos"] = work["pos"].astype(np.int64)
    work["chrom"] = [genome.resolve(c) for c in work["chrom"]]
    missing_contig = work["chrom"].isna().to_numpy()
    if missing_contig.any():
        names = work.loc[missing_contig, "coordinate"].str.split("-").str[0]
        reject(missing_contig, "contig " + names + f" is not in the reference FASTA {genome.path.name}")
    length = work["chrom"].map(genome.lengths).to_numpy()
    pos = work["pos"].to_numpy()
    outside = (pos + work["ref"].str.len().to_numpy() - 1 > length) | (pos < 1)
    off_contig, n_on_contigs = work.loc[outside, ["source_line", "coordinate"]], len(work)
    reject(outside, "position outside the contig")

    # REF check against the FASTA, one contig at a time
    observed = np.empty(len(work), dtype=object)
    for chrom, idx in work.groupby("chrom", sort=False).indices.items():
        contig = genome.tokens(chrom)
        pos = work["pos"].to_numpy()[idx]
        refs = work["ref"].to_numpy()[idx]
        width = max(len(r) for r in refs)
        window = contig[np.minimum(pos[:, None] - 1 + np.arange(width)[None, :], len(contig) - 1)]
        letters = np.frombuffer(b"ACGTN", dtype=np.uint8)[window].view(f"S{width}").ravel()
        observed[idx] = [w.decode()[: len(r)] for w, r in zip(letters, refs)]
    mismatch = observed != work["ref"].to_numpy()
    reason = pd.Series(
        [f"REF {r} does not match the reference ({o})" for r, o in zip(work["ref"], observed)], index=work.index
    )
    check_reference_fit(work.loc[mismatch, ["source_line", "coordinate"]], off_contig, n_on_contigs, genome, cfg)
    reject(mismatch, reason)

    # normalise indels and MNVs (trim shared bases, left-align), one contig at a time
    multi = ((work["ref"].str.len() > 1) | (work["alt"].str.len() > 1)).to_numpy()
    pos_col, ref_col, alt_col = (work.columns.get_loc(c) for c in ("pos", "ref", "alt"))
    for chrom, idx in work.loc[multi].groupby("chrom", sort=False).indices.items():
        rows = np.flatnonzero(multi)[idx]
        contig = genome.tokens(chrom)
        aligned = [
            left_align(contig, p, r, a)
            for p, r, a in work.iloc[rows, [pos_col, ref_col, alt_col]].itertuples(index=False)
        ]
        work.iloc[rows, pos_col] = [a[0] for a in aligned]
        work.iloc[rows, ref_col] = [a[1] for a in aligned]
        work.iloc[rows, alt_col] = [a[2] for a in aligned]
    work["pos"] = work["pos"].astype(np.int64)

    merged = merge_duplicates(work)

    # gene, strand, region
    key = ["chrom", "pos", "ref", "alt"]
    merged["gene_row"] = annotation.assign(
        merged["chrom"].to_numpy(), merged["pos"].to_numpy(), merged["source_gene"].to_numpy()
    )
    outside = merged["gene_row"].to_numpy() < 0
    if outside.any():
        lines = work.merge(merged.loc[outside, key], on=key)
        bad = lines[["source_line", "variant_id", "coordinate"]].copy()
        bad["reason"] = "outside every annotated transcript (no gene or strand to score it on)"
        rejected.append(bad)
        merged = merged.loc[~outside].reset_index(drop=True)

    genes = annotation.genes
    rows = merged["gene_row"].to_numpy()
    merged["gene"] = genes["name"].to_numpy()[rows]
    merged["strand"] = genes["strand"].to_numpy()[rows]
    merged["tx_start"] = genes["tx_start"].to_numpy()[rows]
    merged["tx_end"] = genes["tx_end"].to_numpy()[rows]
    _log_other_genes(merged)
    merged["variant_type"] = variant_type(merged["ref"], merged["alt"])
    lr = merged["ref"].str.len().to_numpy()
    pos = merged["pos"].to_numpy()
    is_indel = np.isin(merged["variant_type"], ["insertion", "deletion"])
    first = np.where(is_indel & (lr > 1), pos + 1, pos)
    last = np.where(merged["variant_type"] == "insertion", pos + 1, pos + lr - 1)
    merged["region"] = annotation.regions(rows, first, np.maximum(first, last), cfg.regions)
    merged["boundary_offset"] = annotation.boundary_offsets(rows, pos)
    merged["label"] = merged["classification"].map(LABELS).fillna(-1).astype(np.int8)
    merged["build"] = cfg.build

    contig_order = {name: i for i, name in enumerate(genome.names)}
    merged["_order"] = merged["chrom"].map(contig_order)
    merged = merged.sort_values(["_order", "pos", "ref", "alt"], kind="stable").reset_index(drop=True)
    cv = cfg.split.cv
    if cv is not None and cv.locus:  # folds of a one-locus set; the main split is fold 0's
        merged["cv_group"], merged["cv_fold"] = locus_folds(merged, annotation, cv)
        merged["split"] = locus_splits(merged["cv_group"], merged["cv_fold"], merged["label"], cv)["fold0"].to_numpy()
    else:
        merged["split"] = assign_splits(merged, annotation, cfg.split)
    merged["variant_id"] = merged["chrom"] + ":" + merged["pos"].astype(str) + ":" + merged["ref"] + ":" + merged["alt"]
    variants = merged[
        [
            "variant_id",
            "build",
            "chrom",
            "pos",
            "ref",
            "alt",
            "variant_type",
            "classification",
            "label",
            "split",
            "gene",
            "strand",
            "tx_start",
            "tx_end",
            "region",
            "boundary_offset",
            "source_ids",
            "n_sources",
            "hgvs",
            "method",
            "location",
            *(c for c in LOCUS_COLUMNS if c in merged.columns),
        ]
    ].astype(
        {"pos": np.int64, "tx_start": np.int64, "tx_end": np.int64, "boundary_offset": np.int64, "n_sources": np.int64}
    )

    rejected_table = (
        pd.concat(rejected, ignore_index=True).sort_values("source_line").reset_index(drop=True)
        if rejected
        else pd.DataFrame(columns=["source_line", "variant_id", "coordinate", "reason"])
    )
    return variants, summarise(variants, rejected_table, len(source)), rejected_table


def summarise(variants: pd.DataFrame, rejected: pd.DataFrame, n_rows: int) -> pd.DataFrame:
    """Counts per class x split (with totals) of the prepared variants."""
    counts = pd.crosstab(variants["classification"], variants["split"]).reindex(
        index=list(CLASSES), columns=["train", "val", "test"], fill_value=0
    )
    counts["total"] = counts.sum(axis=1)
    counts.loc["all"] = counts.sum(axis=0)
    counts = counts.reset_index().rename(columns={"index": "classification"})
    counts.columns.name = None
    counts.attrs["rows_read"] = n_rows
    counts.attrs["rows_rejected"] = len(rejected)
    return counts


def split_config(split: dict) -> SplitConfig:
    """The ``split`` config section as a :class:`SplitConfig` (``split.cv``: the folds of a one-locus set)."""
    values = dict(split or {})
    cv = values.pop("cv", None)
    return SplitConfig(
        **{
            **values,
            "test_chroms": tuple(values.get("test_chroms", ())),
            "val_chroms": tuple(values.get("val_chroms", ())),
            "cv": CrossValConfig.from_split(cv) if cv else None,
        }
    )


def prepare_from_files(
    *,
    genome: str | Path,
    annotation: str | Path,
    variants_out: str | Path,
    summary_out: str | Path,
    rejected_out: str | Path,
    build: str,
    coordinate_column: str,
    split: dict,
    regions: dict,
    splicevardb: str | Path | None = None,
    labels: dict | None = None,
    labels_path: str | Path | None = None,
    max_ref_mismatch_fraction: float = 0.05,
) -> pd.DataFrame:
    """File-level entry point of the prepare_variants rule; returns the variants table.

    The source is a SpliceVarDB export (``splicevardb``) or a labelled VCF/TSV (``labels``, the
    ``datasets.<name>.labels`` section; ``labels_path`` the file to read, default the section's path).
    """
    from metasplice.data.annotation import load_annotation
    from metasplice.io import write_parquet, write_tsv

    log = logging.getLogger("metasplice.data.variants")
    if (splicevardb is None) == (labels is None):
        raise ValueError("prepare_variants reads either a SpliceVarDB export or a labelled set (labels), not both")
    if labels is not None:
        labels_cfg = LabelsConfig.from_dict(labels)
        path = labels_path if labels_path is not None else labels_cfg.path
        source = read_labels(labels_cfg, path)
        coordinate_column = "coordinate"
        log.info("read %d rows from %s: %s", len(source), path, label_counts(source))
    else:
        source = read_splicevardb(splicevardb)
        log.info("read %d rows from %s", len(source), splicevardb)
    cfg = PrepareConfig(
        build=build,
        coordinate_column=coordinate_column,
        max_ref_mismatch_fraction=max_ref_mismatch_fraction,
        split=split_config(split),
        regions=RegionConfig(**regions),
    )
    with Genome(genome) as ref:
        variants, summary, rejected = prepare_variants(source, ref, load_annotation(annotation), cfg)
    for reason, n in (
        rejected["reason"]
        .str.replace(r"^(REF \w+ does not match|contig \S+ is not).*", r"\1...", regex=True)
        .value_counts()
        .items()
    ):
        log.warning("rejected %d row(s): %s", n, reason)
    log.info("%d unique variants kept from %d rows (%d rejected)", len(variants), len(source), len(rejected))
    log.info("class x split counts:\n%s", summary.to_string(index=False))
    write_parquet(variants, variants_out)
    write_tsv(summary, summary_out)
    write_tsv(rejected, rejected_out)
    return variants
