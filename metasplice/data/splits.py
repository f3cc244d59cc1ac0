"""Splits that never leak: test chromosomes with a grouped validation fraction, and cross-validation folds.

The main split holds out the test chromosomes and draws validation from whole clusters of nearby
genes (or validation chromosomes), so no sequence window lies on both sides. Cross-validation
fold ``k`` tests on chromosome group ``k`` (``evaluation.cross_validation``), or, for a set from one
locus (``split.cv``), on fold ``k`` of the variants grouped by exon, gene or genomic block; fold ``k``
of experiment ``E`` is the instance ``E__fold{k}``, which reads
``results/crossval/fold{k}/variants.parquet`` (variants.parquet with its ``split`` column replaced).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from metasplice.data.annotation import Annotation
from metasplice.data.genome import normalise_chrom
from metasplice.io import write_parquet, write_tsv

log = logging.getLogger(__name__)

DEFAULT_GROUP_GAP = 10_000  # nt: genes closer than this share a group (>= the longest sequence window)
LOCUS_GROUPINGS = ("exon", "gene", "block")  # split.cv.group_by: folds of a set from one locus
DEFAULT_BLOCK_SIZE = 10_000  # nt: split.cv.block_size of group_by: block
FOLD_SUFFIX = re.compile(r"^(?P<experiment>.+)__fold(?P<fold>\d+)$")


@dataclass(frozen=True)
class SplitConfig:
    """How variants are split: test chromosomes, and a grouped validation fraction of the rest."""

    test_chroms: tuple[str, ...] = ("chr21", "chr22")
    val_fraction: float = 0.1
    val_group_by: str = "gene"  # "gene" (clusters of nearby genes) or "chromosome"
    val_chroms: tuple[str, ...] = ()  # used when val_group_by == "chromosome"
    group_gap: int = DEFAULT_GROUP_GAP  # genes closer than this share a validation group (no window on both sides)
    seed: int = 13
    cv: CrossValConfig | None = None  # split.cv: folds of a one-locus set; the main split is then fold 0's


def check_group_gaps(config: Mapping[str, Any]) -> None:
    """Raise when a ``group_gap`` is below the longest sequence window (``sequences.contexts``): genes
    closer than that could then fall on both sides of a split with overlapping windows."""
    contexts = (config.get("sequences") or {}).get("contexts") or []
    if not contexts:
        return
    longest = max(int(c) for c in contexts)
    stacking = dict(config.get("stacking") or {})
    if config.get("dataset") == "demo":
        stacking.update(stacking.get("demo") or {})
    crossval = (config.get("evaluation") or {}).get("cross_validation") or {}
    gaps = {
        "split.group_gap": (config.get("split") or {}).get("group_gap"),
        "stacking.group_gap": stacking.get("group_gap"),
        "evaluation.cross_validation.group_gap": crossval.get("group_gap"),
    }
    small = {key: int(gap) for key, gap in gaps.items() if gap is not None and int(gap) < longest}
    if small:
        raise ValueError(
            f"config: {', '.join(f'{key} = {gap}' for key, gap in small.items())} "
            f"{'is' if len(small) == 1 else 'are'} smaller than the longest sequence window (max of "
            f"sequences.contexts = {longest}): windows of nearby genes could then sit on both sides of a split. "
            f"Raise {' and '.join(small)} to at least {longest}, or shorten sequences.contexts"
        )


def _validation_groups(table: pd.DataFrame, annotation: Annotation, gap: int) -> np.ndarray:
    """Group id per row: genes whose transcripts lie within ``gap`` nt of each other share a group."""
    genes = annotation.genes
    rows = table["gene_row"].to_numpy()
    group_of_row: dict[int, int] = {}
    next_id = 0
    for _chrom, idx in table.groupby("chrom").indices.items():
        used = np.unique(rows[idx])
        order = used[np.argsort(genes["tx_start"].to_numpy()[used])]
        reach = -np.inf
        for r in order:
            if genes["tx_start"].iat[r] > reach + gap:
                next_id += 1
            group_of_row[int(r)] = next_id
            reach = max(reach, genes["tx_end"].iat[r])
    return np.array([group_of_row[int(r)] for r in rows], dtype=np.int64)


def assign_splits(table: pd.DataFrame, annotation: Annotation, cfg: SplitConfig) -> np.ndarray:
    """``test`` on the test chromosomes; ``val`` for a seeded, grouped fraction of the rest; else ``train``."""
    norm = table["chrom"].map(normalise_chrom)
    test = norm.isin({normalise_chrom(c) for c in cfg.test_chroms}).to_numpy()
    split = np.where(test, "test", "train").astype(object)
    if cfg.val_group_by == "chromosome":
        val = norm.isin({normalise_chrom(c) for c in cfg.val_chroms}).to_numpy() & ~test
        split[val] = "val"
    elif cfg.val_group_by == "gene":
        groups = _validation_groups(table, annotation, cfg.group_gap)
        train_idx = np.flatnonzero(~test)
        ids, counts = np.unique(groups[train_idx], return_counts=True)
        order = np.random.default_rng(cfg.seed).permutation(len(ids))
        target = cfg.val_fraction * len(train_idx)
        chosen = ids[order][np.cumsum(counts[order]) - counts[order] < target] if target > 0 else []
        split[np.isin(groups, chosen) & ~test] = "val"
    else:
        raise ValueError(f"split.val_group_by must be 'gene' or 'chromosome', got {cfg.val_group_by!r}")
    if (~test).any() and not (split == "val").any():
        raise ValueError(_empty_validation_message(list(pd.unique(table["chrom"].to_numpy()[~test])), cfg))
    return split


def _empty_validation_message(chroms: list[str], cfg: SplitConfig) -> str:
    """Why no variant went to validation, and which split setting to change."""
    head = "the validation split would be empty: "
    if cfg.val_group_by == "gene":
        return head + f"split.val_fraction is {cfg.val_fraction}; set it above 0"
    test = {normalise_chrom(c) for c in cfg.test_chroms}
    wanted = [normalise_chrom(c) for c in cfg.val_chroms]
    if not wanted:
        why = "split.val_chroms is empty"
    elif set(wanted) <= test:
        why = f"split.val_chroms {list(cfg.val_chroms)} are all test chromosomes (split.test_chroms)"
    else:
        why = f"no variant lies on split.val_chroms {list(cfg.val_chroms)}"
    return (
        f"{head}{why} with split.val_group_by: chromosome. Set split.val_chroms to chromosomes of the "
        f"training variants (here: {', '.join(chroms)}) that are not in split.test_chroms, "
        "or use split.val_group_by: gene"
    )


@dataclass(frozen=True)
class CrossValConfig:
    """Settings of ``evaluation.cross_validation``."""

    enabled: bool = False
    n_folds: int = 5  # used when ``groups`` is empty: chromosomes balanced into n groups
    groups: tuple[tuple[str, ...], ...] = ()  # explicit chromosome groups, one fold each
    val_fraction: float = 0.1  # of each fold's non-test variants, by whole gene clusters
    group_gap: int = DEFAULT_GROUP_GAP  # genes closer than this (nt) share a validation cluster
    seed: int = 13
    group_by: str = "chromosome"  # chromosome groups, or (split.cv) one of LOCUS_GROUPINGS
    block_size: int = DEFAULT_BLOCK_SIZE  # nt, for group_by: block

    def __post_init__(self) -> None:
        if self.group_by not in ("chromosome", *LOCUS_GROUPINGS):
            raise ValueError(f"split.cv.group_by must be one of {', '.join(LOCUS_GROUPINGS)}, got {self.group_by!r}")
        if self.block_size < 1:
            raise ValueError(f"split.cv.block_size must be >= 1 nt, got {self.block_size}")
        if not self.groups and self.n_folds < 2:
            raise ValueError(f"cross_validation.n_folds must be >= 2, got {self.n_folds}")
        if self.groups and len(self.groups) < 2:
            raise ValueError("cross_validation.groups needs at least two chromosome groups")
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"cross_validation.val_fraction must be in (0, 1), got {self.val_fraction}")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> CrossValConfig:
        values = dict(values or {})
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown cross_validation keys {unknown}; valid keys: {', '.join(sorted(known))}")
        if "groups" in values:
            values["groups"] = tuple(tuple(str(c) for c in g) for g in values["groups"] or ())
        return cls(**values)

    @classmethod
    def from_split(cls, values: Mapping[str, Any]) -> CrossValConfig:
        """``split.cv`` (keys folds, group_by, block_size, val_fraction, seed) as an enabled config."""
        values = dict(values or {})
        keys = {"folds": "n_folds", "group_by": "group_by", "block_size": "block_size"}
        keys.update(val_fraction="val_fraction", seed="seed")
        unknown = sorted(set(values) - set(keys))
        if unknown:
            raise ValueError(f"unknown split.cv keys {unknown}; valid keys: {', '.join(sorted(keys))}")
        settings = {keys[k]: v for k, v in values.items()}
        settings.setdefault("group_by", "exon")
        return cls(enabled=True, **settings)

    @property
    def locus(self) -> bool:
        """True for the folds of a one-locus set (``split.cv``), False for chromosome groups."""
        return self.group_by in LOCUS_GROUPINGS

    @property
    def k(self) -> int:
        """Number of folds."""
        return len(self.groups) if self.groups else self.n_folds


def split_fold_name(name: str) -> tuple[str, int | None]:
    """``"exp__fold3"`` -> ``("exp", 3)``; a name without the suffix -> ``(name, None)``."""
    m = FOLD_SUFFIX.match(name)
    return (m["experiment"], int(m["fold"])) if m else (name, None)


def fold_name(experiment: str, fold: int) -> str:
    return f"{experiment}__fold{fold}"


def _chrom_key(name: str) -> tuple[int, str]:
    n = normalise_chrom(name)
    return (int(n), "") if n.isdigit() else (10_000, n)


def chromosome_groups(variants: pd.DataFrame, n_folds: int) -> list[list[str]]:
    """Balance chromosomes into ``n_folds`` groups by their number of labelled variants.

    Greedy: chromosomes in decreasing count (ties in natural order) go to the group with the fewest
    labelled variants so far (ties: the lower group index). Deterministic.
    """
    labelled = variants[variants["label"].isin((0, 1))]
    counts = labelled["chrom"].astype(str).value_counts()
    if len(counts) < n_folds:
        raise ValueError(
            f"cross-validation with {n_folds} folds needs at least {n_folds} chromosomes holding labelled variants; "
            f"found {len(counts)} ({', '.join(sorted(counts.index, key=_chrom_key))})"
        )
    order = sorted(counts.index, key=lambda c: (-int(counts[c]), _chrom_key(c)))
    groups: list[list[str]] = [[] for _ in range(n_folds)]
    totals = np.zeros(n_folds, dtype=np.int64)
    for chrom in order:
        g = int(np.argmin(totals))
        groups[g].append(chrom)
        totals[g] += int(counts[chrom])
    return [sorted(g, key=_chrom_key) for g in groups]


def gene_clusters(variants: pd.DataFrame, gap: int) -> np.ndarray:
    """Cluster id per row: transcripts (chrom, tx_start, tx_end) within ``gap`` nt share a cluster."""
    chrom = variants["chrom"].astype(str).to_numpy()
    start = variants["tx_start"].to_numpy(np.int64)
    end = variants["tx_end"].to_numpy(np.int64)
    genes = pd.DataFrame({"chrom": chrom, "start": start, "end": end}).drop_duplicates()
    genes = genes.sort_values(["chrom", "start", "end"], kind="mergesort")
    cluster = np.empty(len(genes), dtype=np.int64)
    current, reach, prev_chrom = -1, -np.inf, None
    for i, (c, s, e) in enumerate(genes.itertuples(index=False)):
        if c != prev_chrom or s > reach + gap:
            current += 1
            reach = -np.inf
        cluster[i] = current
        reach = max(reach, e)
        prev_chrom = c
    genes["cluster"] = cluster
    key = pd.MultiIndex.from_arrays([chrom, start, end])
    return genes.set_index(["chrom", "start", "end"])["cluster"].reindex(key).to_numpy(np.int64)


def assign_folds(variants: pd.DataFrame, cfg: CrossValConfig) -> tuple[list[list[str]], pd.DataFrame]:
    """(chromosome groups, splits): ``splits`` has one column ``fold{k}`` per fold with ``train``,
    ``val`` or ``test`` per variant row (file order)."""
    for col in ("chrom", "label", "tx_start", "tx_end"):
        if col not in variants.columns:
            raise ValueError(f"variants table lacks column {col!r}; rebuild it with prepare_variants")
    if cfg.groups:
        by_norm = {}
        for chrom in variants["chrom"].astype(str).unique():
            by_norm.setdefault(normalise_chrom(chrom), []).append(chrom)
        groups = []
        seen: dict[str, int] = {}
        for k, group in enumerate(cfg.groups):
            names = []
            for c in group:
                n = normalise_chrom(c)
                if n in seen:
                    raise ValueError(f"chromosome {c!r} is in cross_validation groups {seen[n]} and {k}")
                seen[n] = k
                names.extend(by_norm.get(n, []))
            groups.append(sorted(names, key=_chrom_key))
        labelled = variants[variants["label"].isin((0, 1))]["chrom"].astype(str)
        orphan = sorted({c for c in labelled.unique() if normalise_chrom(c) not in seen}, key=_chrom_key)
        if orphan:
            raise ValueError(
                f"chromosomes {orphan} hold labelled variants but are in no cross_validation group; "
                "add them to a group (every labelled variant is tested once)"
            )
    else:
        groups = chromosome_groups(variants, cfg.n_folds)
    chrom = variants["chrom"].astype(str).to_numpy()
    clusters = gene_clusters(variants, cfg.group_gap)
    splits = {}
    for k, group in enumerate(groups):
        test = np.isin(chrom, group)
        split = np.where(test, "test", "train").astype(object)
        rest = np.flatnonzero(~test)
        ids, counts = np.unique(clusters[rest], return_counts=True)
        order = np.random.default_rng([cfg.seed, k]).permutation(len(ids))
        target = cfg.val_fraction * len(rest)
        chosen = ids[order][np.cumsum(counts[order]) - counts[order] < target]
        split[np.isin(clusters, chosen) & ~test] = "val"
        splits[f"fold{k}"] = split
    return groups, pd.DataFrame(splits)


def fold_summary(
    variants: pd.DataFrame, groups: Sequence[Sequence[str]], splits: pd.DataFrame, column: str = "test_chroms"
) -> pd.DataFrame:
    """One row per fold: its test chromosomes (or groups) and the Splice-altering / Normal counts per split."""
    rows = []
    label = variants["label"].to_numpy()
    for k, group in enumerate(groups):
        split = splits[f"fold{k}"].to_numpy()
        row: dict[str, Any] = {"fold": k, column: ",".join(group)}
        for part in ("train", "val", "test"):
            m = split == part
            row[f"{part}_positive"] = int((m & (label == 1)).sum())
            row[f"{part}_negative"] = int((m & (label == 0)).sum())
        rows.append(row)
    return pd.DataFrame(rows)


def write_fold_variants(
    variants_path: str | os.PathLike,
    fold_outputs: Sequence[str | os.PathLike],
    summary_out: str | os.PathLike,
    cfg: CrossValConfig,
) -> pd.DataFrame:
    """Write ``fold_outputs[k]`` = variants.parquet with fold k's ``split``; return the fold summary."""
    variants = pd.read_parquet(variants_path)
    if len(fold_outputs) != cfg.k:
        raise ValueError(f"{len(fold_outputs)} fold outputs given for {cfg.k} folds")
    if cfg.locus:
        missing = [c for c in LOCUS_COLUMNS if c not in variants.columns]
        if missing:
            raise ValueError(
                f"{variants_path} lacks the fold columns {missing}: rebuild it with prepare_variants and split.cv set"
            )
        splits = locus_splits(variants["cv_group"], variants["cv_fold"], variants["label"], cfg)
        groups = [sorted(pd.unique(variants.loc[variants["cv_fold"] == k, "cv_group"])) for k in range(cfg.k)]
        summary = fold_summary(variants, groups, splits, column="test_groups")
    else:
        groups, splits = assign_folds(variants, cfg)
        summary = fold_summary(variants, groups, splits)
    for k, path in enumerate(fold_outputs):
        write_parquet(variants.assign(split=splits[f"fold{k}"].to_numpy()), path)
    write_tsv(summary, summary_out)
    log.info("cross-validation folds:\n%s", summary.to_string(index=False))
    return summary


# --------------------------------------------------------------------------------------------
# folds of a set from one locus (split.cv)

LOCUS_COLUMNS = ("cv_group", "cv_fold")  # variants.parquet columns written when split.cv is set


def locus_groups(
    table: pd.DataFrame, annotation: Annotation, group_by: str, block_size: int = DEFAULT_BLOCK_SIZE
) -> np.ndarray:
    """Group name per variant row (``chrom``, ``pos``, ``gene_row`` = row of its assigned transcript).

    ``exon``: the nearest exon of the assigned transcript (the exon itself for an exonic variant, the
    closer flanking exon for an intronic one; ties go to the lower coordinate), named
    ``GENE:exonN`` with exons numbered in transcript order; ``gene``: the assigned transcript;
    ``block``: ``CHROM:START-END``, genomic blocks of ``block_size`` nt.
    """
    chrom = table["chrom"].astype(str).to_numpy()
    pos = table["pos"].to_numpy(np.int64)
    rows = table["gene_row"].to_numpy(np.int64)
    genes = annotation.genes
    if group_by == "block":
        start = (pos - 1) // block_size * block_size + 1
        return np.array([f"{c}:{s}-{s + block_size - 1}" for c, s in zip(chrom, start)], dtype=object)
    if group_by == "gene":
        return np.array([f"{genes['name'].iat[r]}:{genes['tx_start'].iat[r]}" for r in rows], dtype=object)
    if group_by != "exon":
        raise ValueError(f"split.cv.group_by must be one of {', '.join(LOCUS_GROUPINGS)}, got {group_by!r}")
    out = np.empty(len(table), dtype=object)
    for row in np.unique(rows):
        sel = np.flatnonzero(rows == row)
        g = genes.iloc[int(row)]
        ex_s, ex_e = np.asarray(g["exon_starts"], np.int64), np.asarray(g["exon_ends"], np.int64)
        order = np.argsort(ex_s, kind="stable")
        ex_s, ex_e = ex_s[order], ex_e[order]
        p = pos[sel][:, None]
        distance = np.maximum(np.maximum(ex_s[None, :] - p, p - ex_e[None, :]), 0)
        nearest = distance.argmin(axis=1)
        number = nearest + 1 if g["strand"] != "-" else len(ex_s) - nearest
        out[sel] = [f"{g['name']}:exon{n}" for n in number]
    return out


def assign_group_folds(groups: np.ndarray, label: np.ndarray, n_folds: int, seed: int) -> np.ndarray:
    """Test fold per row: whole groups, balanced by labelled variants (greedy: largest group first, to the
    fold with the fewest so far; ties broken by a seeded shuffle). Every fold gets labelled variants."""
    groups = np.asarray(groups, dtype=object)
    labelled = np.isin(label, (0, 1))
    names = pd.unique(groups)
    counts = np.array([int((labelled & (groups == g)).sum()) for g in names])
    n_groups = int((counts > 0).sum())
    if n_groups < n_folds:
        raise ValueError(
            f"split.cv: {n_folds} folds need at least {n_folds} groups holding labelled variants; found {n_groups}. "
            "Use fewer folds or a finer split.cv.group_by (exon, or block with a smaller block_size)"
        )
    tie = np.random.default_rng(seed).permutation(len(names))
    return deal_groups(groups, names, counts, np.lexsort((tie, -counts)), n_folds)


def deal_groups(
    groups: np.ndarray, names: np.ndarray, counts: np.ndarray, order: np.ndarray, n_folds: int
) -> np.ndarray:
    """Fold (0..n_folds-1) per row of ``groups``: group ``names[i]`` (weighing ``counts[i]``), taken in
    ``order``, goes whole to the fold with the least weight so far."""
    totals = np.zeros(n_folds, dtype=np.int64)
    fold_of = {}
    for i in order:
        k = int(np.argmin(totals))
        fold_of[names[i]] = k
        totals[k] += counts[i]
    return np.array([fold_of[g] for g in groups], dtype=np.int64)


def locus_splits(groups: pd.Series, folds: pd.Series, label: pd.Series, cfg: CrossValConfig) -> pd.DataFrame:
    """``fold{k}`` columns: ``test`` for fold k's rows; ``val`` for whole groups of the other folds (a seeded
    ``val_fraction`` of their rows, with both classes when they have both); else ``train``."""
    groups = np.asarray(groups, dtype=object)
    folds = np.asarray(folds, dtype=np.int64)
    label = np.asarray(label)
    out = {}
    for k in range(cfg.k):
        test = folds == k
        split = np.where(test, "test", "train").astype(object)
        rest = np.flatnonzero(~test)
        names = pd.unique(groups[rest])
        order = np.random.default_rng([cfg.seed, k]).permutation(len(names))
        target, chosen, n_val, classes = cfg.val_fraction * len(rest), [], 0, set()
        wanted = set(np.unique(label[rest])) & {0, 1}
        for i in order:
            if n_val >= target and classes >= wanted:
                break
            members = rest[groups[rest] == names[i]]
            chosen.append(names[i])
            n_val += len(members)
            classes |= set(np.unique(label[members])) & {0, 1}
        split[np.isin(groups, chosen) & ~test] = "val"
        out[f"fold{k}"] = split
    return pd.DataFrame(out)


def locus_folds(table: pd.DataFrame, annotation: Annotation, cfg: CrossValConfig) -> tuple[np.ndarray, np.ndarray]:
    """(group name, test fold) per row of a prepared table (``chrom``, ``pos``, ``gene_row``, ``label``)."""
    groups = locus_groups(table, annotation, cfg.group_by, cfg.block_size)
    folds = assign_group_folds(groups, table["label"].to_numpy(), cfg.k, cfg.seed)
    return groups, folds
