"""Result tables and figures from evaluated predictions (no model is run here).

Input per row of the table: a metrics.json and predictions.parquet from :mod:`metasplice.evaluation.evaluate`
(or :mod:`metasplice.evaluation.crossval`), plus the training history.tsv for trained experiments.
Outputs: ``summary.tsv`` (every number with its interval bounds), ``summary.md`` (the readable
tables) and PNG figures (matplotlib, Agg backend): the comparison figures of :mod:`metasplice.evaluation.figures`
(headline ROC/PR, small multiples per experiment family, forest plot of ROC-AUC), training curves,
predicted vs target delta scores of the delta models, and per-region bars.
Rows of the effect tasks add their sections to summary.md (effect type, splice-site localisation,
quantile interval calibration, multi-task vs single-task) and, optionally, a long table of their metrics.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from metasplice.evaluation import metrics as M
from metasplice.evaluation.evaluate import REGIONS, read_json
from metasplice.evaluation.figures import (
    CurveRow,
    empty_panel,
    family_of,
    panel_grid,
    plot_families,
    plot_forest,
    plot_headline,
    validation_auroc,
)
from metasplice.evaluation.formatting import (
    CV_SET,
    TEST_SET,
    fmt,
    fmt_ci,
    fmt_duration,
    fmt_n,
    fmt_p,
    md_table,
    shown_name,
)
from metasplice.io import atomic_output, write_tsv

log = logging.getLogger(__name__)

# the report's PNG figures (metasplice.experiments.plan names their paths)
FIGURES: tuple[str, ...] = ("headline", "roc_families", "pr_families", "forest", "training", "scatter", "regions")


@dataclass(frozen=True)
class Entry:
    """One row of the report: its metrics, predictions and (trained experiments) history."""

    name: str
    metrics: str | os.PathLike
    predictions: str | os.PathLike
    history: str | os.PathLike | None = None


@dataclass
class _Loaded:
    entry: Entry
    metrics: dict
    predictions: pd.DataFrame
    history: pd.DataFrame | None

    @property
    def is_baseline(self) -> bool:
        return self.metrics.get("kind") == "baseline"

    @property
    def name(self) -> str:
        """The row's name in the tables: the experiment, or the base model for a base model's own score."""
        return self.entry.name

    @property
    def set(self) -> str:
        """Where the row was measured: ``test`` (the test split) or ``cv`` (pooled cross-validation folds)."""
        return CV_SET if self.metrics.get("evaluation") == "cross-validation" else TEST_SET

    @property
    def label(self) -> str:
        """The name as summary.md and the figures show it (``name (CV)`` for a cross-validated row)."""
        return shown_name(self.name, self.set)


def _load(entry: Entry) -> _Loaded:
    metrics = read_json(entry.metrics)
    pred = pd.read_parquet(entry.predictions)
    history = None
    if entry.history is not None:
        history = pd.read_csv(entry.history, sep="\t")
        if "epoch" not in history.columns:
            raise ValueError(f"{entry.history}: no 'epoch' column; is it a training history?")
    return _Loaded(entry, metrics, pred, history)


# --------------------------------------------------------------------------------------------
# tables


def training_summary(history: pd.DataFrame | None) -> dict[str, Any]:
    """Stopped epoch (last epoch run), best epoch (last row flagged ``best``) and training seconds."""
    if history is None or history.empty:
        return {"stopped_epoch": None, "best_epoch": None, "training_time_s": None}
    best = None
    if "best" in history.columns:
        flagged = history["best"].astype(str).str.lower().isin(("true", "1"))
        if flagged.any():
            best = int(history.loc[flagged, "epoch"].iloc[-1])
    seconds = float(history["seconds"].sum()) if "seconds" in history.columns else None
    return {"stopped_epoch": int(history["epoch"].max()), "best_epoch": best, "training_time_s": seconds}


def _get(d: Mapping | None, *keys: str) -> Any:
    for k in keys:
        if not isinstance(d, Mapping) or k not in d:
            return None
        d = d[k]
    return d


def _interval_columns(prefix: str, iv: Mapping | None) -> dict[str, Any]:
    return {prefix: _get(iv, "estimate"), f"{prefix}_low": _get(iv, "low"), f"{prefix}_high": _get(iv, "high")}


def summary_row(item: _Loaded) -> dict[str, Any]:
    """One summary.tsv row."""
    m = item.metrics
    mt = m.get("metrics", {})
    n_test = _get(m, "n", "test") or {}
    row: dict[str, Any] = {
        "experiment": item.name,
        "set": item.set,
        "kind": m.get("kind", ""),
        "evaluation": m.get("evaluation", "test split"),
        "task": m.get("task", ""),
        "n_test": n_test.get("scored"),
        "n_splice_altering": n_test.get("positive_scored"),
        "n_normal": n_test.get("negative_scored"),
        "n_unscored": n_test.get("unscored"),
        "n_unscored_by_reference": n_test.get("unscored_by_reference"),
    }
    if m.get("task") == "localisation" and isinstance(m.get("localisation"), Mapping):
        # no classifier score: the test variants it is measured on are the Splice-altering ones with a target
        n_loc = m["localisation"].get("n")
        row.update(n_test=n_loc, n_splice_altering=n_loc, n_normal=0)
    row.update(_interval_columns("correlation", _get(m, "correlation", "max")))
    row["correlation_n"] = _get(m, "correlation", "n")
    row.update(_interval_columns("roc_auc", mt.get("roc_auc")))
    row.update(_interval_columns("pr_auc", mt.get("pr_auc")))
    row["n_all_scored"] = _get(m, "all_scored", "n")
    row.update(_interval_columns("roc_auc_all_scored", _get(m, "all_scored", "roc_auc")))
    row["val_threshold"] = _get(m, "threshold", "threshold")
    for key, tag in (("at_val_threshold", "val_threshold"), ("at_fixed_threshold", "fixed_threshold")):
        for metric in ("f1", "detection_rate", "fpr"):
            row.update(_interval_columns(f"{metric}_{tag}", _get(mt, key, metric)))
    cm = m.get("confusion_matrix") or {}
    for k in ("tn", "fp", "fn", "tp"):
        row[f"cm_{k}"] = cm.get(k)
    row.update(training_summary(item.history))
    comp = m.get("comparison")
    row["compared_with"] = _get(comp, "reference")
    row["comparison_n"] = _get(comp, "n")
    row["roc_auc_difference"] = _get(comp, "roc_auc", "difference")
    row["roc_auc_difference_low"] = _get(comp, "roc_auc", "low")
    row["roc_auc_difference_high"] = _get(comp, "roc_auc", "high")
    row["p_roc_auc_bootstrap"] = _get(comp, "roc_auc", "p_value")
    row["comparison_n_boot"] = _get(comp, "roc_auc", "n_boot")
    row["p_roc_auc_delong"] = _get(comp, "roc_auc_delong", "p_value")
    row["pr_auc_difference"] = _get(comp, "pr_auc", "difference")
    row["p_pr_auc_bootstrap"] = _get(comp, "pr_auc", "p_value")
    stacking = m.get("stacking") if isinstance(m.get("stacking"), Mapping) else {}
    folds = stacking.get("folds")
    row["stacking_choice"] = ", ".join(map(str, folds)) if folds else stacking.get("chosen")
    return row


BEST_BASE_COLUMNS: tuple[str, ...] = (
    "best_base",
    "best_base_n",
    "roc_auc_vs_best_base",
    "roc_auc_vs_best_base_low",
    "roc_auc_vs_best_base_high",
    "p_vs_best_base_bootstrap",
    "p_vs_best_base_delong",
)


def _scored_test(pred: pd.DataFrame) -> pd.Series:
    """Score per variant_id of the labelled test rows with a score."""
    part = pred[(pred["split"].astype(str) == "test") & pred["label"].isin((0, 1))]
    part = part[np.isfinite(part["score"].to_numpy(np.float64))]
    return part.drop_duplicates("variant_id").set_index("variant_id")["score"]


def best_base_columns(summary: pd.DataFrame, items: Sequence[_Loaded], cfg: M.BootstrapConfig) -> pd.DataFrame:
    """``summary`` with :data:`BEST_BASE_COLUMNS` inserted after ``roc_auc_high``: per set (test split,
    CV), the base-model row with the highest ROC-AUC is the best base model; every row of that set gets
    its ROC-AUC minus the best base model's on the labelled test variants both scored, with a paired
    bootstrap interval and p-value and DeLong's p (the best base row itself: difference 0)."""
    out = {c: [None] * len(items) for c in BEST_BASE_COLUMNS}
    auc = pd.to_numeric(summary["roc_auc"], errors="coerce").to_numpy(np.float64)
    for where in (TEST_SET, CV_SET):
        idx = [i for i, it in enumerate(items) if it.set == where]
        bases = [i for i in idx if items[i].is_baseline and np.isfinite(auc[i])]
        if not bases:
            continue
        best = max(bases, key=lambda i: (auc[i], -i))
        ref = _scored_test(items[best].predictions)
        for i in idx:
            out["best_base"][i] = items[best].name
            own = _scored_test(items[i].predictions) if i != best else ref
            both = own.index.intersection(ref.index)
            labels = items[i].predictions.drop_duplicates("variant_id").set_index("variant_id")["label"]
            y = labels.reindex(both).to_numpy().astype(np.int8)
            out["best_base_n"][i] = int(len(both))
            if i == best:
                out["roc_auc_vs_best_base"][i] = 0.0
                continue
            if len(both) == 0 or M.single_class(y.astype(bool)):
                continue
            a, b = own.reindex(both).to_numpy(np.float64), ref.reindex(both).to_numpy(np.float64)
            boot = M.paired_bootstrap(y, a, b, "roc_auc", cfg)
            out["roc_auc_vs_best_base"][i] = boot.difference
            out["roc_auc_vs_best_base_low"][i] = boot.low
            out["roc_auc_vs_best_base_high"][i] = boot.high
            out["p_vs_best_base_bootstrap"][i] = boot.p_value
            out["p_vs_best_base_delong"][i] = M.delong_test(y, a, b).p_value
    at = list(summary.columns).index("roc_auc_high") + 1
    table = summary.copy()
    for k, column in enumerate(BEST_BASE_COLUMNS):
        table.insert(at + k, column, out[column])
    return table


def stacking_markdown(summary: pd.DataFrame, items: Sequence[_Loaded], n_boot: Any = None) -> str:
    """One line per stacked row: what it ships (chosen by inner CV on training rows) and how it compares
    with the best base model; '' if there is no stacked row."""
    records = summary.astype(object).where(summary.notna(), None).to_dict("records")
    lines = []
    for item, r in zip(items, records):
        stacking = item.metrics.get("stacking")
        if item.metrics.get("kind") != "stacked" or not isinstance(stacking, Mapping):
            continue
        line = f"- **{item.label}**: {stacking.get('summary') or stacking.get('chosen')}"
        if r.get("best_base") and r.get("roc_auc_vs_best_base") is not None:
            line += (
                f". ROC-AUC {fmt(r['roc_auc'])} vs {r['best_base']} {fmt(r['roc_auc'] - r['roc_auc_vs_best_base'])}: "
                f"Δ {fmt_ci(r, 'roc_auc_vs_best_base')}, p = {fmt_p(r['p_vs_best_base_bootstrap'], n_boot)}"
                f" (bootstrap) / {fmt_p(r['p_vs_best_base_delong'])} (DeLong)"
            )
        lines.append(line + ".")
    if not lines:
        return ""
    return "\n".join(
        [
            "## Stacked models",
            "",
            "What each stacked model ships, chosen by grouped cross-validation inside its training rows (each "
            "base model's own score is a candidate; a learner ships only when it beats the best of them there), "
            "and its difference to the best base model of the same set (`stacker.json`, `inner_cv.tsv` beside "
            "the model hold the choice and every candidate's inner-CV ROC-AUC).",
            "",
            *lines,
            "",
        ]
    )


def summary_table(items: Sequence[_Loaded]) -> pd.DataFrame:
    return pd.DataFrame([summary_row(i) for i in items])


def region_table(items: Sequence[_Loaded], column: str = "region") -> pd.DataFrame:
    """Long table of the breakdown cells: experiment, group, n, n per class, ROC-AUC and detection rate."""
    rows = []
    for item in items:
        for cell in _get(item.metrics, "breakdowns", column) or []:
            rows.append(
                {
                    "experiment": item.name,
                    "set": item.set,
                    column: cell["group"],
                    "n": cell["n"],
                    "n_splice_altering": cell["n_positive"],
                    "n_normal": cell["n_negative"],
                    **_interval_columns("roc_auc", cell.get("roc_auc")),
                    **_interval_columns(
                        "detection_rate_val_threshold", _get(cell, "at_val_threshold", "detection_rate")
                    ),
                    **_interval_columns("fpr_val_threshold", _get(cell, "at_val_threshold", "fpr")),
                }
            )
    return pd.DataFrame(rows)


def markdown(summary: pd.DataFrame, regions: pd.DataFrame, types: pd.DataFrame, meta: Mapping[str, Any]) -> str:
    """summary.md text."""
    records = summary.astype(object).where(summary.notna(), None).to_dict("records")
    for r in records:
        r["experiment"] = shown_name(r["experiment"], r.get("set", TEST_SET))
    reference = meta.get("reference", "spliceai")
    main = []
    for r in records:
        p = (
            "–"
            if r["compared_with"] is None
            else (f"{fmt_p(r['p_roc_auc_bootstrap'], r['comparison_n_boot'])} / {fmt_p(r['p_roc_auc_delong'])}")
        )
        main.append(
            [
                r["experiment"],
                r["task"],
                fmt_ci(r, "correlation"),
                fmt_ci(r, "roc_auc"),
                fmt_ci(r, "pr_auc"),
                fmt_ci(r, "f1_val_threshold"),
                fmt_ci(r, "detection_rate_val_threshold"),
                fmt_ci(r, "fpr_val_threshold"),
                fmt_n(r["stopped_epoch"]),
                fmt_duration(r["training_time_s"]),
                f"{fmt_n(r['n_test'])} ({fmt_n(r['n_splice_altering'])}/{fmt_n(r['n_normal'])})",
                p,
            ]
        )
    fixed = [
        [
            r["experiment"],
            fmt_ci(r, "f1_fixed_threshold"),
            fmt_ci(r, "detection_rate_fixed_threshold"),
            fmt_ci(r, "fpr_fixed_threshold"),
            fmt(r["val_threshold"]),
        ]
        for r in records
        if r.get("f1_fixed_threshold") is not None
    ]
    counts = [r.get("n_unscored_by_reference") for r in records]
    excluded = max((int(v) for v in counts if v is not None and not pd.isna(v)), default=0)
    comp = [
        [
            r["experiment"],
            r["compared_with"],
            fmt_n(r["comparison_n"]),
            fmt_ci(r, "roc_auc_difference"),
            fmt_p(r["p_roc_auc_bootstrap"], r["comparison_n_boot"]),
            fmt_p(r["p_roc_auc_delong"]),
            fmt(r["pr_auc_difference"]),
            fmt_p(r["p_pr_auc_bootstrap"], r["comparison_n_boot"]),
        ]
        for r in records
        if r["compared_with"] is not None
    ]
    vs_best = [
        [
            r["experiment"],
            r["best_base"],
            fmt_n(r["best_base_n"]),
            fmt_ci(r, "roc_auc"),
            fmt_ci(r, "roc_auc_vs_best_base"),
            fmt_p(r["p_vs_best_base_bootstrap"], meta.get("n_boot")),
            fmt_p(r["p_vs_best_base_delong"]),
        ]
        for r in records
        if r.get("best_base") is not None
    ]
    level = int(round(100 * float(meta.get("level", 0.95))))
    parts = [
        "# metasplice results",
        "",
        f"Test set: {meta.get('test_description', 'held-out test split')}. Values are point estimates with "
        f"{level}% percentile-bootstrap intervals ({meta.get('n_boot', '?')} resamples of the test variants, "
        f"seed {meta.get('seed', '?')}). Decision thresholds are chosen on the validation split (maximum F1) "
        f"and applied unchanged to the test split. Rows named after a base model (e.g. spliceai, pangolin) are "
        f"that model's own score without training (SpliceAI: max(DS_AG, DS_AL, DS_DG, DS_DL); Pangolin: "
        f"max(gain, -loss)). The p-values of the summary compare each row "
        f"with the {reference} baseline on the same variants (paired bootstrap / DeLong, ROC-AUC). Every row is "
        f"measured on the test variants the {reference} base model scored"
        + (
            f"; {excluded} test variants it could not score are left out of every row (a meta-model's ROC-AUC on all "
            "the variants it scored is in summary.tsv, roc_auc_all_scored)."
            if excluded
            else "."
        ),
        "",
        *(
            [
                "Rows marked (CV) (set `cv` in summary.tsv) pool the test predictions of the cross-validation "
                "folds (each labelled variant tested once, by the fold that did not train or validate on it); their "
                "calls use each fold's own validation threshold.",
                "",
            ]
            if any(r.get("evaluation") == "cross-validation" for r in records)
            else []
        ),
        "## Summary",
        "",
        md_table(
            [
                "experiment",
                "task",
                "correlation (r)",
                "ROC-AUC",
                "PR-AUC",
                "F1 @ val thr",
                "detection @ val thr",
                "FPR @ val thr",
                "stopped epoch",
                "training time",
                "n (SA/Normal)",
                f"p vs {reference} (bootstrap / DeLong)",
            ],
            main,
        ),
        "",
        f"## At the fixed threshold (score > {meta.get('fixed_threshold', 0.1)})",
        "",
        "SpliceAI's rule applies to delta scores only: baseline rows, delta and quantile models and mean ensembles "
        "of them (a probability, class score or rank has no such scale).",
        "",
        md_table(["experiment", "F1", "detection rate", "FPR", "val-chosen threshold"], fixed),
        "",
        "## Against the best base model",
        "",
        "Per set (test split; pooled CV folds), the base-model row with the highest ROC-AUC is the best base "
        "model; Δ is each row's ROC-AUC minus its own on the test variants both scored (paired bootstrap "
        "interval and p-value, DeLong's p).",
        "",
        md_table(
            ["experiment", "best base", "n", "ROC-AUC", "Δ ROC-AUC vs best base [CI]", "p (bootstrap)", "p (DeLong)"],
            vs_best,
        )
        if vs_best
        else "No base-model row.",
        "",
        f"## Paired comparison with {reference}",
        "",
        md_table(
            [
                "experiment",
                "reference",
                "n",
                "Δ ROC-AUC [CI]",
                "p (bootstrap)",
                "p (DeLong)",
                "Δ PR-AUC",
                "p (bootstrap)",
            ],
            comp,
        )
        if comp
        else "No comparisons (no reference baseline).",
        "",
    ]
    for title, table, col in (("By region", regions, "region"), ("By variant type", types, "variant_type")):
        parts += [f"## {title}", ""]
        if table.empty:
            parts += ["No breakdown available.", ""]
            continue
        recs = table.astype(object).where(table.notna(), None).to_dict("records")
        parts += [
            md_table(
                ["experiment", col, "n (SA/Normal)", "ROC-AUC", "detection @ val thr", "FPR @ val thr"],
                [
                    [
                        r["experiment"],
                        r[col],
                        f"{fmt_n(r['n'])} ({fmt_n(r['n_splice_altering'])}/{fmt_n(r['n_normal'])})",
                        fmt_ci(r, "roc_auc"),
                        fmt_ci(r, "detection_rate_val_threshold"),
                        fmt_ci(r, "fpr_val_threshold"),
                    ]
                    for r in recs
                ],
            ),
            "",
        ]
    parts += [str(section).rstrip() + "\n" for section in meta.get("sections") or ()]
    parts += [
        "Columns of summary.tsv hold every value with its `_low`/`_high` interval bounds; "
        "'–' marks a value that is undefined (e.g. a single class in a cell) or does not apply.",
        "",
    ]
    return "\n".join(parts)


def ensemble_markdown(summary: pd.DataFrame, items: Sequence[_Loaded]) -> str:
    """Section comparing every ensemble row with its members (rows of the same evaluation); '' if none."""
    rows = []
    by_name = {
        (r["experiment"], r["set"]): r for r in summary.astype(object).where(summary.notna(), None).to_dict("records")
    }
    for item in items:
        if item.metrics.get("kind") != "ensemble":
            continue
        own = by_name.get((item.name, item.set))
        if own is None:
            continue
        members = [by_name.get((m, item.set)) for m in item.metrics.get("members") or ()]
        listed = ", ".join(
            f"{m} {fmt(r['roc_auc']) if r else '–'}" for m, r in zip(item.metrics.get("members") or (), members)
        )
        scored = [r["roc_auc"] for r in members if r and r.get("roc_auc") is not None]
        best = max(scored) if scored else None
        delta = "–" if best is None or own.get("roc_auc") is None else f"{own['roc_auc'] - best:+.3f}"
        rows.append(
            [
                item.label,
                str(item.metrics.get("combine", "")),
                fmt_ci(own, "roc_auc"),
                fmt_ci(own, "pr_auc"),
                listed,
                delta,
            ]
        )
    if not rows:
        return ""
    return "\n".join(
        [
            "## Ensembles",
            "",
            "Each ensemble combines the test predictions of already evaluated member experiments (never retrained): "
            "mean, rank mean, or a logistic regression cross-fitted on the validation split (stack). Δ: the "
            "ensemble's ROC-AUC minus its best member's (point estimates; the summary's p-value compares it with "
            "the reference base model).",
            "",
            md_table(["ensemble", "combine", "ROC-AUC", "PR-AUC", "members (ROC-AUC)", "Δ vs best member"], rows),
            "",
        ]
    )


def importance_markdown(tables: Mapping[str, pd.DataFrame], top: int = 15) -> str:
    """Section of the stacked models' permutation importances (drop in validation ROC-AUC)."""
    parts = [
        "## Stacked models: feature importance",
        "",
        "Permutation importance on the validation split: the mean drop in validation ROC-AUC when one "
        "feature's values are shuffled (± standard deviation over the repeats); the "
        f"{top} most important features of each stacked model.",
        "",
    ]
    for name, table in tables.items():
        rows = [
            [r.feature, f"{r.importance_mean:.4f} ± {r.importance_std:.4f}"]
            for r in table.head(top).itertuples(index=False)
        ]
        n_rep = int(table["n_repeats"].iloc[0]) if "n_repeats" in table.columns and len(table) else "?"
        parts += [f"### {name} ({n_rep} repeats)", "", md_table(["feature", "Δ validation ROC-AUC"], rows), ""]
    return "\n".join(parts)


# --------------------------------------------------------------------------------------------
# effect tasks (effect_type, localisation, quantile, multitask): their sections of summary.md and
# the long table of their metrics, from the task keys of metrics.json (metasplice.evaluation.evaluate.task_metrics)

TASK_TABLE_COLUMNS: tuple[str, ...] = (
    "experiment",
    "set",
    "evaluation",
    "task",
    "section",
    "metric",
    "group",
    "n",
    "nominal",
    "estimate",
    "low",
    "high",
)
# (label, single task whose rows are compared, metrics.json path of the value, of its n)
MULTITASK_COMPARISONS: tuple[tuple[str, str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("binary ROC-AUC", "binary", ("metrics", "roc_auc"), ("n", "test", "scored")),
    ("effect-type macro-F1", "effect_type", ("effect_type", "macro_f1"), ("effect_type", "n")),
    ("localisation top-1", "localisation", ("localisation", "top1"), ("localisation", "n")),
)


def _with_task_key(items: Sequence[_Loaded], key: str) -> list[_Loaded]:
    """Rows whose metrics.json carries task metrics ``key`` (``effect_type``, ``localisation``, ``quantile``)."""
    return [it for it in items if isinstance(it.metrics.get(key), Mapping)]


def _iv_text(iv: Mapping | None) -> str:
    """``estimate [low, high]`` of an interval dict; '–' when undefined."""
    return fmt_ci(_interval_columns("value", iv), "value")


def _suffix_order(keys: Sequence[str], prefix: str) -> list[str]:
    """Keys ``<prefix><int>`` in increasing order of their number (``top1``, ``top3``; ``within_2`` ...)."""
    found = [k for k in keys if k.startswith(prefix) and k[len(prefix) :].isdigit()]
    return sorted(found, key=lambda k: int(k[len(prefix) :]))


def effect_type_markdown(items: Sequence[_Loaded]) -> str:
    """``## Effect type (step 2)``: macro-F1 per row, then per row the per-class precision / recall / F1
    with their support and the confusion matrix (counts); "" when no row has effect-type metrics."""
    rows = _with_task_key(items, "effect_type")
    if not rows:
        return ""
    parts = [
        "## Effect type (step 2)",
        "",
        "Effect class of the labelled test variants that have one: Normal, or the class of the base model's "
        "dominant delta score for Splice-altering variants (complex when a second delta score comes close). "
        "Macro-F1 is the mean per-class F1 over the classes present among the targets or the predictions; "
        "support is the number of test variants of each target class.",
        "",
        md_table(
            ["experiment", "task", "n", "macro-F1"],
            [
                [
                    it.label,
                    it.metrics.get("task", ""),
                    fmt_n(it.metrics["effect_type"].get("n")),
                    _iv_text(it.metrics["effect_type"].get("macro_f1")),
                ]
                for it in rows
            ],
        ),
        "",
    ]
    for it in rows:
        fx = it.metrics["effect_type"]
        per_class = fx.get("per_class") or {}
        classes = list(fx.get("classes") or per_class)
        parts += [
            f"### {it.label}",
            "",
            md_table(
                ["class", "support", "precision", "recall", "F1"],
                [
                    [
                        c,
                        fmt_n(_get(per_class, c, "support")),
                        _iv_text(_get(per_class, c, "precision")),
                        _iv_text(_get(per_class, c, "recall")),
                        _iv_text(_get(per_class, c, "f1")),
                    ]
                    for c in classes
                ],
            ),
            "",
        ]
        counts = _get(fx, "confusion_matrix", "counts")
        if counts:
            labels = list(_get(fx, "confusion_matrix", "labels") or classes)
            parts += [
                "Confusion matrix (counts; rows: target class, columns: predicted class):",
                "",
                md_table(
                    ["target / predicted", *labels, "total"],
                    [[t, *(fmt_n(v) for v in row), fmt_n(sum(row))] for t, row in zip(labels, counts)],
                ),
                "",
            ]
    return "\n".join(parts)


def localisation_markdown(items: Sequence[_Loaded]) -> str:
    """``## Splice-site localisation (step 3)``: top-k accuracy and the hit rates within ± t nt of every
    row with localisation metrics, each with its interval and n; "" when there is none."""
    rows = _with_task_key(items, "localisation")
    if not rows:
        return ""
    keys = list(dict.fromkeys(k for it in rows for k in it.metrics["localisation"]))
    tops, within = _suffix_order(keys, "top"), _suffix_order(keys, "within_")
    header = ["experiment", "task", "n", *(f"top-{k[3:]}" for k in tops), *(f"within ±{k[7:]} nt" for k in within)]
    table = [
        [
            it.label,
            it.metrics.get("task", ""),
            fmt_n(it.metrics["localisation"].get("n")),
            *(_iv_text(it.metrics["localisation"].get(k)) for k in (*tops, *within)),
        ]
        for it in rows
    ]
    return "\n".join(
        [
            "## Splice-site localisation (step 3)",
            "",
            "Where the splice change lies: the target is the offset (nt from the variant, in window orientation) of "
            "the base model's dominant delta score, for the Splice-altering test variants whose dominant delta lies "
            "within the model's distance (n). Top-k: the target is among the model's k most probable offsets; "
            "within ± t nt: the most probable offset is at most t nt from the target.",
            "",
            md_table(header, table),
            "",
        ]
    )


def _quantile_label_counts(item: _Loaded, targets: Sequence[str]) -> dict[str, int]:
    """Labelled test variants with finite ``target_<t>`` for every quantile target, per label."""
    pred = item.predictions
    columns = [f"target_{t}" for t in targets]
    if not columns or any(c not in pred.columns for c in columns) or "label" not in pred.columns:
        return {}
    part = pred[(pred["split"].astype(str) == "test") & pred["label"].isin((0, 1))]
    ok = np.isfinite(part[columns].to_numpy(np.float64)).all(axis=1)
    label = part["label"].to_numpy()[ok]
    return {"splice_altering": int((label == 1).sum()), "normal": int((label == 0).sum())}


def quantile_markdown(items: Sequence[_Loaded]) -> str:
    """``## Quantile delta regression: interval calibration``: nominal vs empirical coverage of the
    predicted [lowest, highest] quantile interval overall, per target and per label, and the share of
    targets at or below each predicted quantile; "" when no row has quantile metrics."""
    rows = _with_task_key(items, "quantile")
    if not rows:
        return ""
    coverage, shares = [], []
    for it in rows:
        q = it.metrics["quantile"]
        nominal = q.get("nominal")
        interval = q.get("interval") or []
        span = f"[q{_g(interval[0])}, q{_g(interval[-1])}]" if len(interval) >= 2 else "–"
        per_target = q.get("per_target") or {}
        by_label = q.get("by_label") or {}
        n_label = _quantile_label_counts(it, list(per_target))
        scopes = [("all targets", q.get("n"), q.get("coverage"))]
        scopes += [(t, q.get("n"), iv) for t, iv in per_target.items()]
        scopes += [(name.replace("_", "-").capitalize(), n_label.get(name), iv) for name, iv in by_label.items()]
        for scope, n, iv in scopes:
            est = _get(iv, "estimate")
            diff = None if est is None or nominal is None else float(est) - float(nominal)
            coverage.append([it.label, span, scope, fmt_n(n), fmt(nominal), _iv_text(iv), _signed(diff)])
        for level, iv in (q.get("share_at_or_below") or {}).items():
            shares.append([it.label, f"q{level}", fmt(_float(level)), _iv_text(iv)])
    tolerance = next((it.metrics["quantile"].get("tolerance") for it in rows), None)
    parts = [
        "## Quantile delta regression: interval calibration",
        "",
        "Coverage of the predicted interval between the lowest and the highest quantile of each delta score: the "
        "share of the validated targets inside it"
        + (f" (within {_g(tolerance)}, the resolution of the base model's scores)" if tolerance else "")
        + ", on the labelled test variants with finite targets; nominal is the interval's level (highest minus "
        "lowest quantile). Overall and per label every target of a variant counts; n is the number of variants.",
        "",
        md_table(
            ["experiment", "interval", "scope", "n", "nominal", "empirical coverage", "empirical − nominal"], coverage
        ),
        "",
    ]
    if shares:
        parts += [
            "Share of the targets at or below each predicted quantile (ideally the quantile itself):",
            "",
            md_table(["experiment", "quantile", "nominal", "share at or below"], shares),
            "",
        ]
    return "\n".join(parts)


def _g(v: Any) -> str:
    return "–" if v is None else f"{float(v):g}"


def _float(v: Any) -> float | None:
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def _signed(v: float | None) -> str:
    return "–" if v is None or not math.isfinite(v) else f"{v:+.3f}"


def _best_single_task(items: Sequence[_Loaded], task: str, value: Sequence[str], cv: bool) -> _Loaded | None:
    """The row of ``task`` (same evaluation as ``cv``) with the largest finite estimate at ``value``."""
    best, best_value = None, -math.inf
    for it in items:
        if it.metrics.get("task") != task or _is_cv(it) != cv:
            continue
        est = _get(it.metrics, *value, "estimate")
        if est is not None and math.isfinite(float(est)) and float(est) > best_value:
            best, best_value = it, float(est)
    return best


def multitask_markdown(items: Sequence[_Loaded]) -> str:
    """``## Multi-task model vs single-task models (step 4)``: each multitask row's binary ROC-AUC,
    effect-type macro-F1 and localisation top-1 next to the best single-task row of the same metric
    (tasks binary, effect_type, localisation; test-split rows with test-split rows, cross-validated
    with cross-validated); "" when there is no multitask row."""
    rows = [it for it in items if it.metrics.get("task") == "multitask"]
    if not rows:
        return ""
    table = []
    for it in rows:
        for label, task, value, n_path in MULTITASK_COMPARISONS:
            mine = _get(it.metrics, *value)
            best = _best_single_task(items, task, value, _is_cv(it))
            theirs = _get(best.metrics, *value) if best is not None else None
            a, b = _get(mine, "estimate"), _get(theirs, "estimate")
            diff = None if a is None or b is None else float(a) - float(b)
            table.append(
                [
                    it.label,
                    label,
                    _iv_text(mine),
                    fmt_n(_get(it.metrics, *n_path)),
                    best.label if best is not None else "–",
                    _iv_text(theirs),
                    fmt_n(_get(best.metrics, *n_path)) if best is not None else "–",
                    _signed(diff),
                ]
            )
    return "\n".join(
        [
            "## Multi-task model vs single-task models (step 4)",
            "",
            "Each head of a multi-task model next to the best single-task model of the same metric (binary for "
            "ROC-AUC, effect_type for macro-F1, localisation for top-1), evaluated on the same split (test-split rows "
            "with test-split rows, cross-validated rows with cross-validated rows). Intervals are each row's own; "
            "the difference is of the point estimates, not a paired test. '–': no single-task row of that task.",
            "",
            md_table(
                [
                    "multi-task model",
                    "metric",
                    "multi-task",
                    "n",
                    "best single-task model",
                    "single-task",
                    "n",
                    "difference",
                ],
                table,
            ),
            "",
        ]
    )


def task_sections(items: Sequence[_Loaded]) -> list[str]:
    """The non-empty effect-task sections of summary.md, in step order."""
    sections = (
        effect_type_markdown(items),
        localisation_markdown(items),
        quantile_markdown(items),
        multitask_markdown(items),
    )
    return [s for s in sections if s]


def task_summary_columns(summary: pd.DataFrame, items: Sequence[_Loaded]) -> pd.DataFrame:
    """``summary`` (one row per item, in order) with the headline task metrics of the rows that carry
    them: ``effect_type_n``, ``effect_type_macro_f1``; ``localisation_n``, ``localisation_top1``,
    ``localisation_top3``, ``localisation_within_2`` ...; ``quantile_n``, ``quantile_nominal``,
    ``quantile_coverage``; each value with its ``_low`` / ``_high`` bounds. Columns of a task no row
    has are not added."""
    if len(summary) != len(items):
        raise ValueError(f"summary has {len(summary)} rows for {len(items)} report rows")
    keys = {
        section: list(dict.fromkeys(k for it in _with_task_key(items, section) for k in it.metrics[section]))
        for section in ("effect_type", "localisation", "quantile")
    }
    values = {
        "effect_type": ["macro_f1"] if keys["effect_type"] else [],
        "localisation": [*_suffix_order(keys["localisation"], "top"), *_suffix_order(keys["localisation"], "within_")],
        "quantile": ["coverage"] if keys["quantile"] else [],
    }
    rows = []
    for it in items:
        row: dict[str, Any] = {}
        for section, names in values.items():
            if not keys[section]:
                continue
            m = it.metrics.get(section) if isinstance(it.metrics.get(section), Mapping) else None
            row[f"{section}_n"] = _get(m, "n")
            if section == "quantile":
                row["quantile_nominal"] = _get(m, "nominal")
            for name in names:
                row.update(_interval_columns(f"{section}_{name}", _get(m, name)))
        rows.append(row)
    extra = pd.DataFrame(rows, index=summary.index)
    return pd.concat([summary, extra], axis=1) if len(extra.columns) else summary


def task_table(items: Sequence[_Loaded]) -> pd.DataFrame:
    """Long table of the effect-task metrics (columns :data:`TASK_TABLE_COLUMNS`), one value per row.

    ``section``: the metrics.json key; ``metric`` / ``group``: ``macro_f1``; ``precision``, ``recall``,
    ``f1`` per class (n: its support); ``confusion_count`` (estimate: the count) and ``confusion_rate``
    per ``target -> predicted`` cell (n: the target class's support); ``top1``, ``top3``, ``within_2``,
    ``within_5``; ``coverage`` for ``all``, each target and each label (nominal: the interval's level);
    ``share_at_or_below`` per quantile (nominal: the quantile).
    """
    out: list[dict[str, Any]] = []
    for it in items:
        base = {
            "experiment": it.name,
            "set": it.set,
            "evaluation": it.metrics.get("evaluation", "test split"),
            "task": it.metrics.get("task", ""),
        }

        def add(
            section: str, metric: str, group: str, n: Any, iv: Mapping | None, nominal: Any = None, **values: Any
        ) -> None:
            out.append(
                {
                    **base,  # noqa: B023 (called within this iteration)
                    "section": section,
                    "metric": metric,
                    "group": group,
                    "n": n,
                    "nominal": nominal,
                    **{k: _get(iv, k) for k in ("estimate", "low", "high")},
                    **values,
                }
            )

        fx = it.metrics.get("effect_type")
        if isinstance(fx, Mapping):
            add("effect_type", "macro_f1", "", fx.get("n"), fx.get("macro_f1"))
            for c, cell in (fx.get("per_class") or {}).items():
                for metric in ("precision", "recall", "f1"):
                    add("effect_type", metric, c, cell.get("support"), cell.get(metric))
            cm = fx.get("confusion_matrix") or {}
            labels = list(cm.get("labels") or [])
            rate = cm.get("rate") or {}
            for i, (t, row) in enumerate(zip(labels, cm.get("counts") or [])):
                for j, (p, count) in enumerate(zip(labels, row)):
                    group = f"{t} -> {p}"
                    add("effect_type", "confusion_count", group, sum(row), None, estimate=count)
                    iv = {k: rate[k][i][j] for k in ("estimate", "low", "high") if k in rate}
                    add("effect_type", "confusion_rate", group, sum(row), iv)
        loc = it.metrics.get("localisation")
        if isinstance(loc, Mapping):
            keys = list(loc)
            for key in (*_suffix_order(keys, "top"), *_suffix_order(keys, "within_")):
                add("localisation", key, "", loc.get("n"), loc.get(key))
        q = it.metrics.get("quantile")
        if isinstance(q, Mapping):
            nominal = q.get("nominal")
            add("quantile", "coverage", "all", q.get("n"), q.get("coverage"), nominal)
            for t, iv in (q.get("per_target") or {}).items():
                add("quantile", "coverage", t, q.get("n"), iv, nominal)
            n_label = _quantile_label_counts(it, list(q.get("per_target") or {}))
            for name, iv in (q.get("by_label") or {}).items():
                add("quantile", "coverage", name, n_label.get(name), iv, nominal)
            for level, iv in (q.get("share_at_or_below") or {}).items():
                add("quantile", "share_at_or_below", f"q{level}", q.get("n"), iv, _float(level))
    return pd.DataFrame(out, columns=list(TASK_TABLE_COLUMNS))


# --------------------------------------------------------------------------------------------
# figures


def _test_arrays(pred: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    part = pred[(pred["split"].astype(str) == "test") & pred["label"].isin((0, 1))]
    s = part["score"].to_numpy(np.float64)
    ok = np.isfinite(s)
    return part["label"].to_numpy()[ok].astype(int), s[ok]


def _has_scores(item: _Loaded) -> bool:
    """Whether a row has a classifier score on a labelled test variant (a localisation model has none)."""
    return _test_arrays(item.predictions)[0].size > 0


def _save(fig: plt.Figure, path: str | os.PathLike) -> None:
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)


def _is_cv(item: _Loaded) -> bool:
    return item.metrics.get("evaluation") == "cross-validation"


def curve_rows(
    items: Sequence[_Loaded], sweeps: Mapping[str, Sequence[Mapping[str, Any]]] | None = None
) -> list[CurveRow]:
    """The scored rows of the comparison figures (:mod:`metasplice.evaluation.figures`), in report order."""
    sweep_of = {str(c["experiment"]): name for name, children in (sweeps or {}).items() for c in children}
    rows = []
    for item in items:
        if not _has_scores(item):
            continue
        pred, m = item.predictions, item.metrics
        part = pred[(pred["split"].astype(str) == "test") & pred["label"].isin((0, 1))]
        score = part["score"].to_numpy(np.float64)
        ok = np.isfinite(score)
        fold = part["fold"].to_numpy()[ok] if "fold" in part.columns else None
        val = pred[(pred["split"].astype(str) == "val") & pred["label"].isin((0, 1))]
        folds = _get(m, "cross_validation", "folds") or []
        fold_auc = [_get(f, "roc_auc", "estimate") for f in folds]
        rows.append(
            CurveRow(
                label=item.label,
                kind=str(m.get("kind", "")),
                family=family_of(m, sweep_of),
                y=part["label"].to_numpy()[ok].astype(int),
                score=score[ok],
                roc_auc=_get(m, "metrics", "roc_auc") or {},
                pr_auc=_get(m, "metrics", "pr_auc") or {},
                cv=_is_cv(item),
                fold=fold,
                val_auroc=validation_auroc(val["label"].to_numpy().astype(int), val["score"].to_numpy(np.float64)),
                fold_roc_auc=tuple(float(v) for v in fold_auc if v is not None),
            )
        )
    return rows


TRAINING_PER_PANEL = 3  # experiments per training panel (a train and a validation line each)


def plot_training(
    items: Sequence[_Loaded], path: str | os.PathLike, sweeps: Mapping[str, Sequence[Mapping[str, Any]]] | None = None
) -> plt.Figure:
    """Training (dashed) and validation (solid) loss per epoch of every trained experiment, small multiples
    per experiment family (at most TRAINING_PER_PANEL experiments a panel); the dot marks the restored
    epoch, the legend its validation ROC-AUC."""
    sweep_of = {str(c["experiment"]): name for name, children in (sweeps or {}).items() for c in children}
    trained = [it for it in items if it.history is not None and not it.history.empty and not _is_cv(it)]
    families: dict[str, list[_Loaded]] = {}
    for it in trained:
        families.setdefault(family_of(it.metrics, sweep_of), []).append(it)
    panels = [
        (
            fam if len(members) <= TRAINING_PER_PANEL else f"{fam} ({j // TRAINING_PER_PANEL + 1})",
            members[j : j + TRAINING_PER_PANEL],
        )
        for fam, members in families.items()
        for j in range(0, len(members), TRAINING_PER_PANEL)
    ]
    fig, axes = panel_grid(len(panels), (6.5, 4.2), "no training histories")
    for ax, (title, members) in zip(axes.ravel(), panels):
        for i, item in enumerate(members):
            h, color = item.history, f"C{i}"
            best = training_summary(h)["best_epoch"]
            auroc = ""
            if best is not None and "val_auroc" in h:
                at = h.loc[h["epoch"] == best, "val_auroc"]
                auroc = f", val ROC-AUC {fmt(float(at.iloc[0]))}" if len(at) else ""
            if "train_loss" in h:
                ax.plot(h["epoch"], h["train_loss"], color=color, linestyle="--", linewidth=1.2)
            if "val_loss" in h:
                ax.plot(
                    h["epoch"], h["val_loss"], color=color, linewidth=1.6, label=f"{item.label} (epoch {best}{auroc})"
                )
                if best is not None:
                    at = h.loc[h["epoch"] == best, "val_loss"]
                    ax.scatter([best] * len(at), at, color=color, s=30, zorder=3)
        ax.set(xlabel="epoch", ylabel="loss (dashed: training, solid: validation)")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.25)
        ax.legend(fontsize=8)
    for ax in axes.ravel()[len(panels) :]:
        ax.set_axis_off()
    _save(fig, path)
    return fig


def plot_scatter(items: Sequence[_Loaded], path: str | os.PathLike) -> None:
    """Predicted vs target max delta score of Splice-altering test variants, one panel per delta model."""
    delta = []
    for item in items:
        pred = item.predictions
        names = [c[5:] for c in pred.columns if c.startswith("pred_") and f"target_{c[5:]}" in pred.columns]
        if names and not item.is_baseline:
            delta.append((item, names))
    fig, axes = panel_grid(len(delta), (4.2, 4.0), "no delta models", max_cols=3)
    for ax, (item, names) in zip(axes.ravel(), delta):
        part = item.predictions
        part = part[(part["split"].astype(str) == "test") & (part["label"] == 1)]
        p = part[[f"pred_{n}" for n in names]].to_numpy(np.float64).max(axis=1)
        t = part[[f"target_{n}" for n in names]].to_numpy(np.float64).max(axis=1)
        ok = np.isfinite(p) & np.isfinite(t)
        ax.scatter(t[ok], p[ok], s=6, alpha=0.5)
        ax.plot([0, 1], [0, 1], color="gray", linewidth=0.8)
        r = _get(item.metrics, "correlation", "max", "estimate")
        ax.set(
            xlim=(0, 1),
            ylim=(0, 1),
            xlabel="target max DS",
            ylabel="predicted max DS",
            title=f"{item.label}: r = {fmt(r)} (n = {int(ok.sum())})",
        )
    for ax in axes.ravel()[len(delta) :]:
        if delta:
            ax.set_axis_off()
    _save(fig, path)


def plot_regions(items: Sequence[_Loaded], path: str | os.PathLike) -> None:
    """Bars per region: ROC-AUC and detection rate at the validation threshold, with intervals and n
    (test-split rows; the cross-validated cells are in the tables)."""
    items = [it for it in items if not _is_cv(it)]
    regions = region_table(items, "region")
    fig, axes = plt.subplots(2, 1, figsize=(max(7, 1.6 * len(REGIONS) + 0.4 * len(items)), 8))
    if regions.empty:
        empty_panel(axes[0], "no region breakdown")
        axes[1].set_axis_off()
        _save(fig, path)
        return
    groups = [g for g in REGIONS if g in set(regions["region"])] + sorted(set(regions["region"]) - set(REGIONS))
    names = list(dict.fromkeys(regions["experiment"]))
    baseline_names = [it.label for it in items if it.is_baseline]
    others = [n for n in names if n not in baseline_names]
    colors = {n: ("0.2", "0.5", "0.7")[i % 3] for i, n in enumerate(b for b in names if b in baseline_names)}
    colors.update({n: f"C{i % 10}" for i, n in enumerate(others)})  # as in the ROC / PR figures
    width = 0.8 / max(1, len(names))
    x = np.arange(len(groups))
    for ax, metric, title in (
        (axes[0], "roc_auc", "ROC-AUC"),
        (axes[1], "detection_rate_val_threshold", "detection rate at the validation threshold"),
    ):
        for j, name in enumerate(names):
            sub = regions[regions["experiment"] == name].set_index("region").reindex(groups)
            est = sub[metric].astype(float).to_numpy()
            low = sub[f"{metric}_low"].astype(float).to_numpy()
            high = sub[f"{metric}_high"].astype(float).to_numpy()
            err = np.vstack([np.nan_to_num(est - low), np.nan_to_num(high - est)])
            pos = x - 0.4 + width * (j + 0.5)
            ax.bar(pos, np.nan_to_num(est), width, yerr=err, capsize=2, label=name, color=colors[name])
            if ax is axes[0]:  # n (Splice-altering) of each cell under its bar
                for xp, n, n_sa in zip(pos, sub["n"], sub["n_splice_altering"]):
                    ax.text(
                        xp,
                        0.02,
                        f"{fmt_n(n)} ({fmt_n(n_sa)})",
                        rotation=90,
                        ha="center",
                        va="bottom",
                        fontsize=6,
                        color="white" if name in baseline_names else "black",
                    )
        ax.set_xticks(x, groups)
        ax.set(ylim=(0, 1.05), ylabel=title, title=f"{title} by region (test split)")
    axes[0].text(1.0, -0.12, "in bars: n (Splice-altering)", transform=axes[0].transAxes, ha="right", fontsize=7)
    axes[0].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    _save(fig, path)


# --------------------------------------------------------------------------------------------
# entry point


def build_report(
    entries: Sequence[Entry],
    summary_md: str | os.PathLike,
    summary_tsv: str | os.PathLike,
    figures: Mapping[str, str | os.PathLike],
    regions_tsv: str | os.PathLike | None = None,
    meta: Mapping[str, Any] | None = None,
    importance: Mapping[str, str | os.PathLike] | None = None,
    sweeps: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
    tasks_tsv: str | os.PathLike | None = None,
) -> pd.DataFrame:
    """Write the summary tables and figures (``figures`` maps each name of FIGURES to a PNG path).

    ``importance``: stacked experiment -> its importance.tsv (a feature-importance section);
    ``sweeps``: sweep name -> its children (:func:`metasplice.experiments.sweeps.expand_sweeps`), one table each.
    Rows of the effect tasks add their sections (:func:`task_sections`); ``tasks_tsv``: where to write
    the long table of their metrics (:func:`task_table`). The ROC and PR figures show the rows that
    have a classifier score (not a localisation model).
    """
    missing = [f for f in FIGURES if f not in figures]
    if missing:
        raise ValueError(f"figure paths missing for {missing}")
    if not entries:
        raise ValueError("nothing to report: no evaluated experiments or baselines")
    items = [_load(e) for e in entries]
    # test-split rows before cross-validated ones, baseline rows first in each; otherwise as given
    items.sort(key=lambda it: (_is_cv(it), not it.is_baseline))
    meta = dict(meta or {})
    first = items[0].metrics
    meta.setdefault("n_boot", _get(first, "bootstrap", "n"))
    meta.setdefault("seed", _get(first, "bootstrap", "seed"))
    meta.setdefault("level", _get(first, "bootstrap", "level") or 0.95)
    meta.setdefault("fixed_threshold", _get(first, "fixed_threshold", "threshold"))
    if importance:
        tables = {name: pd.read_csv(path, sep="\t") for name, path in importance.items()}
        meta["sections"] = [*meta.get("sections", ()), importance_markdown(tables)]
    boot = M.BootstrapConfig(n=int(meta["n_boot"] or 1000), seed=int(meta["seed"] or 0), level=float(meta["level"]))
    summary = best_base_columns(task_summary_columns(summary_table(items), items), items, boot)
    stacked = stacking_markdown(summary, items, meta.get("n_boot"))
    if stacked:
        meta["sections"] = [stacked, *meta.get("sections", ())]
    ensembles = ensemble_markdown(summary, items)
    if ensembles:
        meta["sections"] = [*meta.get("sections", ()), ensembles]
    if sweeps:
        from metasplice.evaluation.sweep_tables import sweep_markdown, sweep_tables

        section = sweep_markdown(sweep_tables(summary, sweeps))
        if section:
            meta["sections"] = [*meta.get("sections", ()), section]
    meta["sections"] = [*meta.get("sections", ()), *task_sections(items)]
    regions = region_table(items, "region")
    types = region_table(items, "variant_type")
    write_tsv(summary, summary_tsv)
    if regions_tsv is not None:
        write_tsv(
            pd.concat(
                [
                    regions.assign(breakdown="region").rename(columns={"region": "group"}),
                    types.assign(breakdown="variant_type").rename(columns={"variant_type": "group"}),
                ],
                ignore_index=True,
            ),
            regions_tsv,
        )
    if tasks_tsv is not None:
        write_tsv(task_table(items), tasks_tsv)
    with atomic_output(summary_md) as tmp:
        Path(tmp).write_text(markdown(summary, regions, types, meta))
    rows = curve_rows(items, sweeps)
    plot_headline(rows, figures["headline"])
    plot_families(rows, "roc", figures["roc_families"])
    plot_families(rows, "pr", figures["pr_families"])
    plot_forest(rows, figures["forest"])
    plot_training(items, figures["training"], sweeps)
    plot_scatter(items, figures["scatter"])
    plot_regions(items, figures["regions"])
    log.info("report of %d rows written to %s", len(items), summary_md)
    return summary
