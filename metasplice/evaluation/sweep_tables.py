"""One table per sweep from the report's summary table: the swept values as columns, the metrics beside them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from metasplice.evaluation.formatting import CV_SET, TEST_SET, fmt_ci, fmt_p, format_value, md_table, shown_name

# summary.tsv columns (metasplice.evaluation.report.summary_row) a sweep table carries, in this order
METRIC_COLUMNS: tuple[str, ...] = (
    "correlation",
    "correlation_low",
    "correlation_high",
    "roc_auc",
    "roc_auc_low",
    "roc_auc_high",
    "pr_auc",
    "pr_auc_low",
    "pr_auc_high",
    "f1_val_threshold",
    "f1_val_threshold_low",
    "f1_val_threshold_high",
    "compared_with",
    "roc_auc_difference",
    "roc_auc_difference_low",
    "roc_auc_difference_high",
    "p_roc_auc_bootstrap",
    "p_roc_auc_delong",
    "comparison_n_boot",
    # headline metrics of the multi-step tasks (added to the summary by metasplice.evaluation.report)
    "effect_type_macro_f1",
    "effect_type_macro_f1_low",
    "effect_type_macro_f1_high",
    "localisation_top1",
    "localisation_top1_low",
    "localisation_top1_high",
    "quantile_coverage",
    "quantile_coverage_low",
    "quantile_coverage_high",
)


def _name_column(summary: pd.DataFrame) -> str:
    for column in ("experiment", "name"):
        if column in summary.columns:
            return column
    raise ValueError("summary table has no 'experiment' (or 'name') column")


def _one_table(summary: pd.DataFrame, column: str, entries: Sequence[Mapping], where: str) -> pd.DataFrame | None:
    sets = summary["set"] if "set" in summary.columns else pd.Series(TEST_SET, index=summary.index)
    rows_by_name = {(str(n), str(s)): i for i, (n, s) in enumerate(zip(summary[column], sets))}
    params = list(dict.fromkeys(p for e in entries for p in e["params"]))
    metric_columns = [c for c in METRIC_COLUMNS if c in summary.columns]
    rows = []
    for entry in entries:
        i = rows_by_name.get((entry["experiment"], where))
        if i is None:
            continue
        record = summary.iloc[i]
        rows.append(
            {
                "experiment": entry["experiment"],
                **{p: entry["params"].get(p) for p in params},
                **{c: record[c] for c in metric_columns},
            }
        )
    if not rows:
        return None
    table = pd.DataFrame(rows, columns=["experiment", *params, *metric_columns])
    empty = [c for c in metric_columns if table[c].isna().all()]
    return table.drop(columns=empty)


def sweep_tables(summary: pd.DataFrame, sweeps: Mapping[str, Sequence[Mapping]]) -> dict[str, pd.DataFrame]:
    """One table per sweep from the report's summary table (:func:`metasplice.evaluation.report.summary_table`).

    Rows: the sweep's children found in the summary (others are skipped), in sweep order. Columns:
    ``experiment``, one per swept param, then the metric columns of :data:`METRIC_COLUMNS` present
    in the summary with at least one value (correlation, ROC-AUC, PR-AUC and F1 at the validation
    threshold with their interval bounds, the paired comparison with the reference). Rows of pooled
    cross-validation (``set`` ``cv``) give a second table ``{sweep} (CV)``. Sweeps without any
    evaluated child get no table.
    """
    column = _name_column(summary)
    tables: dict[str, pd.DataFrame] = {}
    for name, entries in sweeps.items():
        for where in (TEST_SET, CV_SET):
            table = _one_table(summary, column, entries, where)
            if table is not None:
                tables[shown_name(name, where)] = table
    return tables


def _shown(value: Any) -> str:
    try:
        return format_value(value)
    except ValueError:
        return str(value)


def sweep_markdown(tables: Mapping[str, pd.DataFrame]) -> str:
    """A ``## Sweeps`` section with one ``### {sweep}`` table each ("" when there is none)."""
    if not tables:
        return ""
    parts = [
        "## Sweeps",
        "",
        "Test-split values of each combination. Picking the best combination by these numbers selects on the "
        "test set; choose on validation (the training histories' val_auroc) or cross-validation instead.",
        "",
    ]
    for name, table in tables.items():
        params = [c for c in table.columns if c != "experiment" and c not in METRIC_COLUMNS]
        records = table.astype(object).where(table.notna(), None).to_dict("records")
        header = ["experiment", *params]
        shown = [
            (label, prefix)
            for label, prefix in (
                ("correlation (r)", "correlation"),
                ("ROC-AUC", "roc_auc"),
                ("PR-AUC", "pr_auc"),
                ("F1 @ val thr", "f1_val_threshold"),
                ("effect-type macro-F1", "effect_type_macro_f1"),
                ("localisation top-1", "localisation_top1"),
                ("interval coverage", "quantile_coverage"),
            )
            if prefix in table.columns
        ]
        header += [label for label, _ in shown]
        compared = "compared_with" in table.columns
        if compared:
            reference = next((r["compared_with"] for r in records if r["compared_with"] is not None), "reference")
            header += [f"Δ ROC-AUC vs {reference}", "p (bootstrap / DeLong)"]
        rows = []
        for r in records:
            row = [r["experiment"], *("–" if r[p] is None else _shown(r[p]) for p in params)]
            row += [fmt_ci(r, prefix) for _, prefix in shown]
            if compared:
                if r["compared_with"] is None:
                    row += ["–", "–"]
                else:
                    row += [
                        fmt_ci(r, "roc_auc_difference"),
                        f"{fmt_p(r.get('p_roc_auc_bootstrap'), r.get('comparison_n_boot'))} / "
                        f"{fmt_p(r.get('p_roc_auc_delong'))}",
                    ]
            rows.append(row)
        parts += [f"### {name}", "", md_table(header, rows), ""]
    return "\n".join(parts)
